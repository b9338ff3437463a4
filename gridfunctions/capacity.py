"""Capacity limit: keep a transformer's or feeder's load under a limit by curtailing assets
in priority order, fairly, with hysteresis and confirmation, and a staggered, randomised
release so the load does not rebound above the limit."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from gridfunctions._framework import Action, GridFunction, GridState, Plan
from gridfunctions._shed import KIND_ORDER, SHEDDABLE, ShedBounds, shed_option


class CapacityParams(ShedBounds):
    limit_kw: float = Field(gt=0, description="the load the constraint may carry")
    #: Curtail down to this share below the limit (room for noise), release only once the
    #: load is this much further below (hysteresis).
    margin: float = Field(default=0.02, ge=0, le=0.2)
    hysteresis: float = Field(default=0.06, ge=0, le=0.5)
    #: Steps above the limit before acting (a spike is not a trend) …
    confirm_steps: int = Field(default=1, ge=1, le=60)
    #: … unless the load is this share above the limit.
    escalate_over: float = Field(default=0.05, ge=0, le=1)
    #: An asset is curtailed at most this long before another takes its turn.
    max_curtail_s: float = Field(default=1800, gt=0)
    #: Releases are spread over time: one group per stagger, each delayed at random.
    release_stagger_s: float = Field(default=60, ge=0)
    release_random_s: float = Field(default=60, ge=0)
    #: Load that comes back when a curtailed asset is released, per kW it shed
    #: (thermostatic loads come back above their old level).
    rebound: float = Field(default=1.5, ge=1, le=5)
    event_s: float = Field(default=4 * 3600, gt=0, description="leases end with the event")
    #: At the end of the event, releases are spread over this long.
    release_window_s: float = Field(default=1800, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> CapacityParams:
        if self.hysteresis <= self.margin:
            raise ValueError("hysteresis must be larger than margin")
        return self


class CapacityLimit(GridFunction):
    name = "capacity-limit"
    title = "Capacity limit (transformer or feeder)"
    Params = CapacityParams
    kinds = SHEDDABLE
    priority = 60
    requires = (
        (
            "not fed by a transformer in the grid topology (load one with `osed topology load`)",
            "?t brick:feeds $this . ?t a brick:Transformer",
        ),
    )

    def plan(self, state: GridState, params: Any) -> Plan:
        p: CapacityParams = params
        mem = state.memory
        curtailed: dict[str, dict[str, Any]] = dict(mem.get("curtailed", {}))
        last_turn: dict[str, float] = dict(mem.get("last_turn", {}))
        over = int(mem.get("over_steps", 0))
        rng = random.Random(f"{p.seed}:{state.now}")
        load = max([state.load_kw, *state.forecast_kw[:1]])
        over = over + 1 if load > p.limit_kw else 0
        target = p.limit_kw * (1 - p.margin)
        by_id = {s.asset.id: s for s in state.assets}
        actions: list[Action] = []
        released: list[str] = []

        # Rotation: assets curtailed too long hand over (released only if others can take over).
        expired = [a for a, c in curtailed.items() if state.now - c["since"] >= p.max_curtail_s]

        def release(asset_id: str, k: int, why: str) -> float:
            info = curtailed.pop(asset_id)
            s = by_id.get(asset_id)
            delay = k * p.release_stagger_s + rng.uniform(0, p.release_random_s)
            if s is not None:
                actions.append(
                    Action(
                        s.asset.building,
                        s.asset.point,
                        asset_id,
                        None,
                        why,
                        info["kw"] * p.rebound,
                        round(delay, 1),
                    )
                )
            released.append(asset_id)
            return float(info["kw"]) * p.rebound

        excess = load - target
        act_now = excess > 0 and (over >= p.confirm_steps or load > p.limit_kw * (1 + p.escalate_over))
        need = excess if act_now else 0.0
        if expired and not act_now:
            need = sum(curtailed[a]["kw"] for a in expired)  # replacements for those rotating out
        chosen = self._choose(state, p, curtailed, last_turn, need, rng) if need > 0 else []
        for s, option in chosen:
            a = s.asset
            curtailed[a.id] = {"since": state.now, "kw": option.kw}
            last_turn[a.id] = state.now
            actions.append(
                Action(
                    a.building,
                    a.point,
                    a.id,
                    option.value,
                    f"capacity limit {p.limit_kw:g} kW",
                    -option.kw,
                    duration_s=p.event_s,
                )
            )
        # Rotate out the assets that had their turn (their replacements are in).
        got = sum(o.kw for _s, o in chosen)
        k = 0
        for asset_id in sorted(expired, key=lambda x: curtailed[x]["since"]):
            if asset_id in curtailed and (not act_now and got >= curtailed[asset_id]["kw"] * 0.5):
                got -= curtailed[asset_id]["kw"]
                release(asset_id, k, "capacity limit: turn over")
                k += 1
        # Release when the load is well below the limit, no more than the headroom allows.
        floor = p.limit_kw * (1 - p.hysteresis)
        if load < floor and curtailed:
            headroom = floor - load
            for asset_id in sorted(curtailed, key=lambda x: (curtailed[x]["since"], x)):
                back = curtailed[asset_id]["kw"] * p.rebound
                if back > headroom:
                    break
                headroom -= release(asset_id, k, "capacity limit: load is below the limit")
                k += 1
        shed = sum(c["kw"] for c in curtailed.values())
        return Plan(
            actions=actions,
            memory={"curtailed": curtailed, "last_turn": last_turn, "over_steps": over},
            report={
                "load_kw": round(load, 2),
                "limit_kw": p.limit_kw,
                "curtailed": len(curtailed),
                "curtailed_kw": round(shed, 2),
                "new": len(chosen),
                "released": len(released),
                "short_kw": round(max(0.0, need - sum(o.kw for _s, o in chosen)), 2),
            },
        )

    def finish(self, state: GridState, params: Any) -> Plan:
        """The end of the event: release every curtailed asset, staggered and randomised
        so the load does not rebound all at once."""
        p: CapacityParams = params
        curtailed = dict(state.memory.get("curtailed", {}))
        rng = random.Random(f"{p.seed}:end:{state.now}")
        by_id = {s.asset.id: s for s in state.assets}
        per_step = max(
            1, math.ceil(len(curtailed) / max(1.0, p.release_window_s / max(p.release_stagger_s, 1.0)))
        )
        actions = []
        for k, asset_id in enumerate(sorted(curtailed, key=lambda x: (curtailed[x]["since"], x))):
            s = by_id.get(asset_id)
            if s is None:
                continue
            delay = (k // per_step) * p.release_stagger_s + rng.uniform(0, p.release_random_s)
            back = curtailed[asset_id]["kw"] * p.rebound
            a = s.asset
            actions.append(
                Action(
                    a.building, a.point, asset_id, None, "capacity limit: event over", back, round(delay, 1)
                )
            )
        return Plan(actions=actions, memory={}, report={"released": len(actions)})

    def _choose(
        self,
        state: GridState,
        p: CapacityParams,
        curtailed: dict[str, Any],
        last_turn: dict[str, float],
        need: float,
        rng: random.Random,
    ) -> list[tuple[Any, Any]]:
        """Assets to curtail, cheapest to the customer first and, among equals, those whose
        last turn is longest ago (fairness), until ``need`` kW is covered."""
        candidates = [s for s in state.assets if s.asset.id not in curtailed]
        if not candidates:
            return []
        order = np.array([KIND_ORDER.get(s.asset.kind, 5) for s in candidates])
        turn = np.array([last_turn.get(s.asset.id, -1e18) for s in candidates])
        jitter = np.array([rng.random() for _ in candidates])
        picked = []
        got = 0.0
        for i in np.lexsort((jitter, turn, order)):
            s = candidates[int(i)]
            option = shed_option(s, p)
            if option is None or option.kw <= 0:
                continue
            picked.append((s, option))
            got += option.kw
            if got >= need:
                break
        return picked
