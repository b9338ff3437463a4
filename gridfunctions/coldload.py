"""Cold-load pick-up relief: after an outage, thermostatic loads come back all at once (they
lost their diversity). Hold them, then restore them in groups sized from each group's
estimated pick-up peak, spaced so the restoration peak stays under the limit, and ramp
thermostat setpoints back instead of stepping them."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from gridfunctions._assets import KINDS
from gridfunctions._framework import Action, AssetState, GridFunction, GridState, Plan
from gridfunctions._shed import ShedBounds


class ColdLoadParams(ShedBounds):
    limit_kw: float = Field(gt=0, description="peak the restoration may reach at the constraint")
    outage_s: float = Field(gt=0, description="how long the outage lasted")
    #: Load that returns at once and cannot be held (lighting, plug loads), kW.
    base_kw: float = Field(default=0.0, ge=0)
    #: How long a restored unit runs flat out before it is back to its normal duty. Default:
    #: the heat its zone gained while off (outage plus time held, saturating with the zone's
    #: time constant) removed with the spare capacity of a unit at normal duty:
    #: gain_time x duty / (1 - duty).
    recovery_s: float | None = Field(default=None, gt=0)
    zone_time_constant_s: float = Field(default=3 * 3600, gt=0)
    #: A group's pick-up peak may use this share of the room under the limit.
    group_share: float = Field(default=0.4, gt=0, le=1)
    #: Room kept under the limit for what the estimates miss (load noise, held loads
    #: that come back on their own).
    margin: float = Field(default=0.12, ge=0, lt=1)
    #: Within a group, restorations are spread over this long (units held side by side
    #: lose all diversity; starting them a little apart brings some back).
    spread_s: float = Field(default=600, ge=0)
    #: Thermostat setpoints come back in this many steps.
    ramp_steps: int = Field(default=4, ge=1, le=20)
    ramp_step_s: float = Field(default=300, gt=0)
    event_s: float = Field(default=4 * 3600, gt=0)


def pickup_kw(s: AssetState, outage_s: float, recovery_s: float) -> float:
    """Estimated pick-up peak of one asset: its normal draw, rising to its full rated power
    as the outage outlasts the time its thermal storage bridges."""
    kind = KINDS[s.asset.kind]
    normal = max(s.power_kw, kind.duty * s.asset.rated_kw)
    loss = 1 - math.exp(-outage_s / max(recovery_s / 2, 1.0))  # share of diversity lost
    return normal + (s.asset.rated_kw - normal) * loss


class ColdLoadPickup(GridFunction):
    name = "cold-load-pickup"
    title = "Cold-load pick-up relief"
    Params = ColdLoadParams
    #: Thermostatic loads are what lose diversity; EV charging is left to capacity limits.
    kinds = ("thermostat", "water_heater")
    priority = 80

    def plan(self, state: GridState, params: Any) -> Plan:
        p: ColdLoadParams = params
        duty = KINDS["thermostat"].duty
        tau = p.zone_time_constant_s

        def recovery_after(off_s: float) -> float:
            if p.recovery_s:
                return p.recovery_s
            gained = tau * (1 - math.exp(-off_s / tau))
            return max(600.0, gained * duty / (1 - duty))

        recovery = recovery_after(p.outage_s)
        items = []
        for s in state.assets:
            if s.asset.kind not in self.kinds:
                continue
            items.append((pickup_kw(s, p.outage_s, recovery), KINDS[s.asset.kind].duty * s.asset.rated_kw, s))
        # Comfort first (thermostats), then water heaters; larger pick-ups first within a kind.
        items.sort(key=lambda x: (x[2].asset.kind != "thermostat", -x[0], x[2].asset.id))
        # Restore in groups, greedily in time: at each moment, as many of the remaining
        # assets (largest pick-up first) as fit under the limit given what the groups
        # already restored still draw (their peak decaying back to normal); then wait.
        groups: list[list[tuple[float, float, AssetState]]] = []
        starts: list[float] = []
        budget = (p.limit_kw - p.base_kw) * (1 - p.margin)
        if budget <= 0:
            raise ValueError("the limit leaves no room above the base load")
        remaining = list(items)
        runs: list[float] = []  # how long each group runs flat out
        t = 0.0
        give_up = 24 * 3600.0
        while remaining:
            room = budget - sum(_load_at(t - starts[i], groups[i], runs[i]) for i in range(len(starts)))
            group: list[tuple[float, float, AssetState]] = []
            cap = min(room, budget * p.group_share)
            for item in list(remaining):
                if sum(x[0] for x in group) + item[0] <= cap:
                    group.append(item)
                    remaining.remove(item)
            if not group and t >= give_up:
                group = remaining[:]  # the limit cannot be met: restore the rest, and say so
                remaining = []
            if group:
                groups.append(group)
                starts.append(t)
                runs.append(recovery_after(p.outage_s + t) + p.spread_s + p.ramp_steps * p.ramp_step_s)
                t += max(p.spread_s, 60.0)
            else:
                t += 60.0
        actions: list[Action] = []
        peak = 0.0
        horizon = (starts[-1] + runs[-1]) if starts else 0.0
        for t in range(0, int(horizon) + 1, 60):
            load = sum(
                _load_at(t - starts[i], groups[i], runs[i]) for i in range(len(starts)) if t >= starts[i]
            )
            peak = max(peak, load + p.base_kw)
        for gi, (g, start) in enumerate(zip(groups, starts, strict=True)):
            for j, (peak_kw, _normal, s) in enumerate(g):
                a = s.asset
                why = f"cold-load pick-up: group {gi + 1} of {len(groups)}"
                own = start + p.spread_s * j / max(1, len(g))
                hold = self._hold_value(s, p)
                if hold is not None:
                    actions.append(
                        Action(a.building, a.point, a.id, hold, why + " (held)", -peak_kw, 0.0, p.event_s)
                    )
                end = own
                if a.kind == "thermostat" and s.value is not None and hold is not None:
                    # Ramp back to the customer's setpoint from the held one.
                    for k in range(1, p.ramp_steps):
                        v = round(float(hold) - (float(hold) - s.value) * k / p.ramp_steps, 1)
                        at = own + (k - 1) * p.ramp_step_s
                        actions.append(
                            Action(a.building, a.point, a.id, v, why + " (ramp)", 0.0, at, p.event_s)
                        )
                    end = own + (p.ramp_steps - 1) * p.ramp_step_s
                actions.append(Action(a.building, a.point, a.id, None, why + " (restored)", peak_kw, end))
        undiversified = p.base_kw + sum(x[0] for x in items)
        return Plan(
            actions=actions,
            report={
                "groups": len(groups),
                "limit_kw": p.limit_kw,
                "starts_s": [round(t) for t in starts],
                "expected_peak_kw": round(peak, 1),
                "uncontrolled_peak_kw": round(undiversified, 1),
                "reduction": round(1 - peak / undiversified, 3) if undiversified else 0.0,
            },
        )

    @staticmethod
    def _hold_value(s: AssetState, p: ColdLoadParams) -> float | bool | None:
        a = s.asset
        if a.kind == "thermostat":
            # Above the zone's temperature (it is hot after the outage), so the unit stays
            # off until its group's turn; as high as the thermostat accepts.
            # The zone keeps warming until its turn: hold well above it.
            ceiling = a.maximum if a.maximum is not None else 90.0
            zone = s.extra.get("zone_f", ceiling)
            return round(max(min(ceiling, zone + 8.0), (s.value or 74.0) + p.setpoint_offset_f), 1)
        if a.kind == "water_heater":
            return (
                round(max(p.tank_min_f, (s.value or 125.0) - p.water_offset_f), 1)
                if "Setpoint" in a.point_class
                else False
            )
        if a.kind == "ev_charger" and ("Limit" in a.point_class or "Setpoint" in a.point_class):
            return a.minimum if a.minimum is not None else 6.0
        return None


def _load_at(t: float, group: list[tuple[float, float, AssetState]], run_s: float) -> float:
    """A restored group's load ``t`` seconds after it starts: its pick-up peak while its
    units run flat out, then their normal draw."""
    if t < 0:
        return 0.0
    return sum(peak if t < run_s else normal for peak, normal, _s in group)
