"""Demand response event: shed X kW for a window, choosing assets by available flexibility
and priority; reports the expected reduction (the achieved one is measured by the runner)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridfunctions._framework import Action, GridFunction, GridState, Plan
from gridfunctions._shed import KIND_ORDER, ShedBounds, shed_option


class DemandResponseParams(ShedBounds):
    shed_kw: float = Field(gt=0, description="reduction asked for")
    duration_s: float = Field(gt=0, le=24 * 3600, description="event window")
    #: Over-commit a little: expected sheds are estimates.
    reserve: float = Field(default=0.1, ge=0, le=1)


class DemandResponse(GridFunction):
    name = "demand-response"
    title = "Demand response event"
    Params = DemandResponseParams
    kinds = ("water_heater", "ev_charger", "battery", "thermostat", "hvac")
    priority = 70

    def plan(self, state: GridState, params: Any) -> Plan:
        p: DemandResponseParams = params
        options = []
        for s in state.assets:
            option = shed_option(s, p, p.duration_s)
            if option is not None and option.kw > 0:
                options.append((KIND_ORDER.get(s.asset.kind, 5), -option.kw, s.asset.id, s, option))
        options.sort(key=lambda x: x[:3])
        goal = p.shed_kw * (1 + p.reserve)
        actions: list[Action] = []
        expected = 0.0
        for _order, _kw, _id, s, option in options:
            if expected >= goal:
                break
            a = s.asset
            actions.append(
                Action(
                    a.building,
                    a.point,
                    a.id,
                    option.value,
                    f"demand response: shed {p.shed_kw:g} kW",
                    -option.kw,
                    0.0,
                    p.duration_s,
                )
            )
            expected += option.kw
        available = sum(o[4].kw for o in options)
        return Plan(
            actions=actions,
            report={
                "asked_kw": p.shed_kw,
                "expected_kw": round(expected, 2),
                "available_kw": round(available, 2),
                "assets": len(actions),
                "short_kw": round(max(0.0, p.shed_kw - expected), 2),
            },
        )
