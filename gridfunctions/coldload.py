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
    #: Closed loop only: restore whatever is still held after this long, limit or not.
    give_up_s: float = Field(default=12 * 3600, gt=0)
    #: Closed loop only: a restored group's pick-up is counted as still to come until this
    #: long after its ramp ends (its units take a while to all be running).
    settle_s: float = Field(default=300, ge=0)


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
        """One-shot: the whole restoration scheduled from the model. In a loop: hold
        everything, then restore the next group whenever the measured load leaves room for
        its estimated pick-up (what the model misses, such as held loads coming back on by
        themselves, is then seen and waited for)."""
        p: ColdLoadParams = params
        if state.loop:
            return self._step(state, p)
        return self._schedule(state, p)

    def _recovery_after(self, p: ColdLoadParams, off_s: float) -> float:
        if p.recovery_s:
            return p.recovery_s
        duty = KINDS["thermostat"].duty
        tau = p.zone_time_constant_s
        gained = tau * (1 - math.exp(-off_s / tau))
        return max(600.0, gained * duty / (1 - duty))

    def _items(
        self, state: GridState, p: ColdLoadParams, off_s: float
    ) -> list[tuple[float, float, AssetState]]:
        """(estimated pick-up kW, normal kW, state) in restoration order: comfort first
        (thermostats), then water heaters; larger pick-ups first within a kind."""
        recovery = self._recovery_after(p, off_s)
        items = [
            (pickup_kw(s, off_s, recovery), KINDS[s.asset.kind].duty * s.asset.rated_kw, s)
            for s in state.assets
            if s.asset.kind in self.kinds
        ]
        items.sort(key=lambda x: (x[2].asset.kind != "thermostat", -x[0], x[2].asset.id))
        return items

    @staticmethod
    def _restore_steps(
        kind: str, hold: float | bool | None, customer: float | None, own: float, p: ColdLoadParams
    ) -> list[tuple[float, float | bool | None, str]]:
        """(time, value, what) that bring one held asset back from ``own`` on: a thermostat's
        setpoint ramps from the held value to the customer's, then the lease is released."""
        steps: list[tuple[float, float | bool | None, str]] = []
        end = own
        if kind == "thermostat" and customer is not None and isinstance(hold, float | int):
            for k in range(1, p.ramp_steps):
                v = round(float(hold) - (float(hold) - customer) * k / p.ramp_steps, 1)
                steps.append((own + (k - 1) * p.ramp_step_s, v, "ramp"))
            end = own + (p.ramp_steps - 1) * p.ramp_step_s
        steps.append((end, None, "restored"))
        return steps

    def _schedule(self, state: GridState, p: ColdLoadParams) -> Plan:
        items = self._items(state, p, p.outage_s)
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
                runs.append(
                    self._recovery_after(p, p.outage_s + t) + p.spread_s + p.ramp_steps * p.ramp_step_s
                )
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
                hold = self._hold_value(s, p)
                if hold is not None:
                    actions.append(
                        Action(a.building, a.point, a.id, hold, why + " (held)", -peak_kw, 0.0, p.event_s)
                    )
                own = start + p.spread_s * j / max(1, len(g))
                for at, value, what in self._restore_steps(a.kind, hold, s.value, own, p):
                    kw = peak_kw if value is None else 0.0
                    actions.append(
                        Action(a.building, a.point, a.id, value, f"{why} ({what})", kw, at, p.event_s)
                    )
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

    def _step(self, state: GridState, p: ColdLoadParams) -> Plan:
        """One closed-loop step. Memory: ``t0``; ``held`` (asset ids in restoration order
        with their estimated pick-up); ``groups`` restored so far (start, pick-up, ids,
        when their ramps end); ``due`` (per asset, the restore steps still to send)."""
        mem = state.memory
        now = state.now
        by_id = {s.asset.id: s for s in state.assets}
        actions: list[Action] = []
        if "held" not in mem:
            items = self._items(state, p, p.outage_s)
            held: list[list[Any]] = []
            for pickup, _normal, s in items:
                a = s.asset
                hold = self._hold_value(s, p)
                if hold is not None:
                    why = "cold-load pick-up (held)"
                    actions.append(Action(a.building, a.point, a.id, hold, why, -pickup, 0.0, p.event_s))
                held.append([a.id, round(pickup, 3), hold, s.value])
            memory = {"t0": now, "held": held, "groups": [], "due": {}}
            report = {"held": len(held), "groups": 0, "restored": 0, "load_kw": round(state.load_kw, 2)}
            return Plan(actions=actions, memory=memory, report=report)
        held = [list(h) for h in mem["held"]]
        groups: list[list[Any]] = [list(g) for g in mem["groups"]]
        due: dict[str, list[list[Any]]] = {k: [list(x) for x in v] for k, v in mem["due"].items()}
        # Restore steps that fall before the next decision.
        horizon = now + state.step_s
        for asset_id in sorted(due):
            now_state = by_id.get(asset_id)
            keep = []
            for at, value, what, kw, why in due[asset_id]:
                if at < horizon and now_state is not None:
                    a = now_state.asset
                    reason = f"{why} ({what})"
                    actions.append(
                        Action(a.building, a.point, a.id, value, reason, kw, max(0.0, at - now), p.event_s)
                    )
                else:
                    keep.append([at, value, what, kw, why])
            if keep:
                due[asset_id] = keep
            else:
                del due[asset_id]
        # Room now: the limit less the margin, less the measured load, less what groups still
        # ramping up will add on top of what they already draw.
        coming = 0.0
        for _start, pickup, ids, ramp_end in groups:
            if now < ramp_end + p.settle_s:
                drawn = sum(by_id[i].power_kw for i in ids if i in by_id)
                coming += max(0.0, pickup - drawn)
        # Held loads come back on by themselves once a zone or tank passes what the hold
        # allows: project their recent rise over the time a new group takes to ramp up.
        held_ids = {h[0] for h in held}
        held_kw = sum(by_id[i].power_kw for i in held_ids if i in by_id)
        trend = [*mem.get("held_kw", []), [now, round(held_kw, 3)]][-_TREND_SAMPLES:]
        leak = 0.0
        if len(trend) > 1 and trend[-1][0] > trend[0][0]:
            rate = (trend[-1][1] - trend[0][1]) / (trend[-1][0] - trend[0][0])
            leak = max(0.0, rate) * (p.spread_s + p.ramp_steps * p.ramp_step_s + p.settle_s)
        room = p.limit_kw * (1 - p.margin) - state.load_kw - coming - leak
        cap = min(room, (p.limit_kw - p.base_kw) * (1 - p.margin) * p.group_share)
        last_start = max((g[0] for g in groups), default=-math.inf)
        group: list[list[Any]] = []
        if held and now - last_start >= p.spread_s:
            if now - mem["t0"] >= p.give_up_s:
                group = held[:]  # the limit cannot be met in time: restore the rest, and say so
            else:
                total = 0.0
                for h in held:
                    if total + h[1] <= cap:
                        group.append(h)
                        total += h[1]
        if group:
            chosen = {h[0] for h in group}
            held = [h for h in held if h[0] not in chosen]
            why = f"cold-load pick-up: group {len(groups) + 1}"
            ramp_end = now
            for j, (asset_id, pickup, hold, customer) in enumerate(group):
                st = by_id.get(asset_id)
                if st is None:
                    continue
                own = now + p.spread_s * j / max(1, len(group))
                steps = self._restore_steps(st.asset.kind, hold, customer, own, p)
                ramp_end = max(ramp_end, steps[-1][0])
                due[asset_id] = [[at, v, what, pickup if v is None else 0.0, why] for at, v, what in steps]
                # Send what is due before the next decision now.
                first = [x for x in due[asset_id] if x[0] < horizon]
                for at, v, what, kw, w in first:
                    a = st.asset
                    actions.append(
                        Action(
                            a.building, a.point, a.id, v, f"{w} ({what})", kw, max(0.0, at - now), p.event_s
                        )
                    )
                due[asset_id] = [x for x in due[asset_id] if x[0] >= horizon]
                if not due[asset_id]:
                    del due[asset_id]
            groups.append([now, round(sum(h[1] for h in group), 3), sorted(chosen), ramp_end])
        memory = {"t0": mem["t0"], "held": held, "groups": groups, "due": due, "held_kw": trend}
        report = {
            "held": len(held),
            "groups": len(groups),
            "restored": sum(len(g[2]) for g in groups),
            "new": len(group),
            "room_kw": round(room, 2),
            "held_rise_kw": round(leak, 2),
            "load_kw": round(state.load_kw, 2),
            "done": not held and not due,
        }
        return Plan(actions=actions, memory=memory, report=report)

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


#: Decisions over which the rise of the held loads is measured.
_TREND_SAMPLES = 15


def _load_at(t: float, group: list[tuple[float, float, AssetState]], run_s: float) -> float:
    """A restored group's load ``t`` seconds after it starts: its pick-up peak while its
    units run flat out, then their normal draw."""
    if t < 0:
        return 0.0
    return sum(peak if t < run_s else normal for peak, normal, _s in group)
