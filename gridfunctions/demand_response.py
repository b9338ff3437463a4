"""Demand response event: shed X kW (or a share of the flexibility there is) for a window,
choosing assets by available flexibility and priority; reports the expected reduction and,
in an event run, the achieved one (load when the event began less the load now)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from gridfunctions._framework import Action, GridFunction, GridState, Plan
from gridfunctions._shed import KIND_ORDER, SHEDDABLE, ShedBounds, shed_option


class DemandResponseParams(ShedBounds):
    shed_kw: float | None = Field(default=None, gt=0, description="reduction asked for, kW")
    #: Or: this share of the flexibility the assets have (OpenADR SIMPLE levels map here).
    shed_share: float | None = Field(default=None, ge=0, le=1)
    duration_s: float = Field(gt=0, le=24 * 3600, description="event window")
    #: Over-commit a little: expected sheds are estimates.
    reserve: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> DemandResponseParams:
        if (self.shed_kw is None) == (self.shed_share is None):
            raise ValueError("give exactly one of shed_kw and shed_share")
        return self


class DemandResponse(GridFunction):
    name = "demand-response"
    title = "Demand response event"
    Params = DemandResponseParams
    kinds = SHEDDABLE
    priority = 70

    def plan(self, state: GridState, params: Any) -> Plan:
        """Choose what to shed. In a loop the choice is kept while the ask stays the same
        (the leases last for the event); a changed ask keeps what is already shed, adds
        more or gives back the last chosen. Later steps report the achieved reduction."""
        p: DemandResponseParams = params
        mem = state.memory
        shed: dict[str, list[Any]] = (
            {k: list(v) for k, v in mem.get("shed", {}).items()} if state.loop else {}
        )
        options = []
        for s in state.assets:
            if s.asset.id in shed:
                continue  # already shed: its value now is ours, not the customer's
            option = shed_option(s, p, p.duration_s)
            if option is not None and option.kw > 0:
                options.append((KIND_ORDER.get(s.asset.kind, 5), -option.kw, s.asset.id, s, option))
        options.sort(key=lambda x: x[:3])
        available = sum(o[4].kw for o in options) + sum(v[1] for v in shed.values())
        asked = p.shed_kw if p.shed_kw is not None else p.shed_share * available
        key = [p.shed_kw, p.shed_share]
        if state.loop and "shed" in mem and mem.get("ask") == key:
            report = {
                **mem["report"],
                "load_kw": round(state.load_kw, 2),
                "achieved_kw": round(mem["baseline_kw"] - state.load_kw, 2),
            }
            return Plan(actions=[], memory=mem, report=report)
        goal = asked * (1 + p.reserve) if asked > 0 else 0.0
        why = f"demand response: shed {asked:.3g} kW"
        actions: list[Action] = []
        by_id = {s.asset.id: s for s in state.assets}
        expected = 0.0
        # Keep what is shed already, in the order it was chosen, while it is needed.
        for asset_id in list(shed):
            _value, kw = shed[asset_id]
            held = by_id.get(asset_id)
            if expected < goal or held is None:
                expected += kw if held is not None else 0.0
                continue
            a = held.asset
            actions.append(Action(a.building, a.point, a.id, None, "demand response: ask lowered", kw))
            del shed[asset_id]
        for _order, _kw, _id, s, option in options:
            if expected >= goal:
                break
            a = s.asset
            actions.append(
                Action(a.building, a.point, a.id, option.value, why, -option.kw, 0.0, p.duration_s)
            )
            shed[a.id] = [option.value, option.kw]
            expected += option.kw
        report = {
            "asked_kw": round(asked, 2),
            "expected_kw": round(expected, 2),
            "available_kw": round(available, 2),
            "assets": len(shed) if state.loop else len(actions),
            "short_kw": round(max(0.0, asked - expected), 2),
        }
        memory: dict[str, Any] = {}
        if state.loop:
            baseline = mem.get("baseline_kw", state.load_kw)
            memory = {"shed": shed, "baseline_kw": baseline, "report": report, "ask": key}
            report = {
                **report,
                "load_kw": round(state.load_kw, 2),
                "achieved_kw": round(baseline - state.load_kw, 2),
            }
        return Plan(actions=actions, memory=memory, report=report)
