"""Grid-function simulation: N buildings (thermal RC zones with thermostats, water heaters,
EV chargers, batteries, baseline load) whose models are generated graphs; the functions bind
to them by query, plan with the real planners, and act on a simulated adapter.

``python -m eval.gridsim [--buildings N]`` prints the results table of docs/gridfunctions.md.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphstore import OxigraphStore
from gridfunctions import Asset, AssetState, GridState, find_assets, load_topology, topology_graph
from gridfunctions.capacity import CapacityLimit
from gridfunctions.coldload import ColdLoadPickup
from gridfunctions.demand_response import DemandResponse
from gridfunctions.tariff import DynamicTariff
from mapper import LabeledPoint, ModbusAddress, RawPoint, Suggestion, build_model
from mapper._records import EquipmentRef
from ontology import Ontology

DT_S = 60.0
AC_KW = 3.5
WH_KW = 4.5
EV_KW = 7.2
DEADBAND_F = 0.5


# -- generated buildings -----------------------------------------------------------------------
def building_points(b: int, has_ev: bool, has_battery: bool) -> list[LabeledPoint]:
    """A home/small building as a BMS export would list it, already labeled."""

    def point(
        name: str,
        cls: str,
        equip: str,
        equip_cls: str,
        unit: str,
        writable: bool,
        reg: int,
        lo: float | None = None,
        hi: float | None = None,
    ) -> LabeledPoint:
        raw = RawPoint(
            name=name,
            unit=unit,
            writable=writable,
            minimum=lo,
            maximum=hi,
            address=ModbusAddress(unit=1, register=reg, host=f"sim-{b}"),
        )
        return LabeledPoint(
            raw, Suggestion(cls, 0.99, equipment=EquipmentRef(equip_cls, equip)), "confirmed", cls
        )

    pts = [
        point("MTR kW", "Electric_Power_Sensor", "MTR", "Electrical_Meter", "kW", False, 1),
        point(
            "TSTAT-1 Cooling SP",
            "Cooling_Zone_Air_Temperature_Setpoint",
            "TSTAT-1",
            "Thermostat",
            "°F",
            True,
            10,
            60,
            90,
        ),
        point("TSTAT-1 Zone T", "Zone_Air_Temperature_Sensor", "TSTAT-1", "Thermostat", "°F", False, 11),
        point(
            "TSTAT-2 Cooling SP",
            "Cooling_Zone_Air_Temperature_Setpoint",
            "TSTAT-2",
            "Thermostat",
            "°F",
            True,
            12,
            60,
            90,
        ),
        point("TSTAT-2 Zone T", "Zone_Air_Temperature_Sensor", "TSTAT-2", "Thermostat", "°F", False, 13),
        point(
            "WH-1 Setpoint",
            "Domestic_Hot_Water_Temperature_Setpoint",
            "WH-1",
            "Water_Heater",
            "°F",
            True,
            20,
            110,
            140,
        ),
        point("WH-1 kW", "Electric_Power_Sensor", "WH-1", "Water_Heater", "kW", False, 21),
    ]
    if has_ev:
        pts.append(
            point(
                "EVSE-1 Current Limit",
                "Current_Limit",
                "EVSE-1",
                "Electric_Vehicle_Charging_Station",
                "A",
                True,
                30,
                6,
                32,
            )
        )
    if has_battery:
        pts.append(
            point("BATT-1 Power SP", "Active_Power_Setpoint", "BATT-1", "Battery", "kW", True, 40, -5, 5)
        )
    return pts


@dataclass
class Fleet:
    """The simulated buildings, vectorised: one row per building."""

    n: int
    rng: np.random.Generator
    setpoint: np.ndarray = field(init=False)  # (n, 2) customer cooling setpoints
    zone: np.ndarray = field(init=False)  # (n, 2) zone temperatures
    ac_on: np.ndarray = field(init=False)
    wh_temp: np.ndarray = field(init=False)
    wh_sp: np.ndarray = field(init=False)
    wh_on: np.ndarray = field(init=False)
    has_ev: np.ndarray = field(init=False)
    ev_need: np.ndarray = field(init=False)
    ev_arrive: np.ndarray = field(init=False)
    ev_limit: np.ndarray = field(init=False)
    base: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n, r = self.n, self.rng
        self.setpoint = r.uniform(72, 76, (n, 2)).round(1)
        self.cmd_sp = self.setpoint.copy()
        self.zone = self.setpoint + r.uniform(-DEADBAND_F, DEADBAND_F, (n, 2))
        self.ac_on = r.random((n, 2)) < 0.5
        self.tau_h = r.uniform(2.5, 4.0, (n, 2))
        self.wh_sp = np.full(n, 125.0)
        self.cmd_wh = self.wh_sp.copy()
        self.wh_temp = r.uniform(118, 125, n)
        self.wh_on = r.random(n) < 0.2
        self.has_ev = r.random(n) < 0.5
        self.ev_need = np.where(self.has_ev, r.uniform(8, 25, n), 0.0)
        self.ev_arrive = r.uniform(0, 90, n)  # minutes after the start
        self.ev_limit = np.full(n, 32.0)
        self.base = r.uniform(0.8, 2.0, n)

    def a_b(self, outdoor: float) -> tuple[np.ndarray, np.ndarray]:
        a = np.exp(-DT_S / 3600 / self.tau_h)
        # b: an AC running half the time holds 75 °F at 95 °F outdoors.
        b = (1 - a) * (95 - 75) / (0.5 * AC_KW)
        return a, b

    def step(self, minute: float, outdoor: float, draw_f: np.ndarray) -> np.ndarray:
        """Advance one minute; returns each building's load (kW)."""
        a, b = self.a_b(outdoor)
        sp = self.cmd_sp
        self.ac_on = np.where(
            self.zone > sp + DEADBAND_F, True, np.where(self.zone < sp - DEADBAND_F, False, self.ac_on)
        )
        self.zone = a * self.zone + (1 - a) * outdoor - b * AC_KW * self.ac_on
        wsp = self.cmd_wh
        self.wh_on = np.where(self.wh_temp < wsp - 5, True, np.where(self.wh_temp > wsp, False, self.wh_on))
        self.wh_temp = self.wh_temp - draw_f - 0.02 + self.wh_on * 0.35
        ev_rate = np.where(
            self.has_ev & (minute >= self.ev_arrive) & (self.ev_need > 0), EV_KW * self.ev_limit / 32, 0.0
        )
        self.ev_need = np.maximum(0.0, self.ev_need - ev_rate * DT_S / 3600)
        self.last_ev = ev_rate
        return self.base + AC_KW * self.ac_on.sum(axis=1) + WH_KW * self.wh_on + ev_rate

    def power(self) -> dict[str, np.ndarray]:
        return {
            "ac": AC_KW * self.ac_on,
            "wh": WH_KW * self.wh_on,
            "ev": getattr(self, "last_ev", np.zeros(self.n)),
        }


def build_site(n: int, seed: int = 7) -> tuple[OxigraphStore, Ontology, list[Asset], Fleet, float]:
    """Generated graphs for ``n`` buildings under one transformer, bound by query."""
    ontology = Ontology.load()
    store = OxigraphStore(None)
    rng = np.random.default_rng(seed)
    fleet = Fleet(n, rng)
    graphs = {}
    for b in range(n):
        graphs[f"urn:osed:b{b}"] = build_model(
            f"b{b}", building_points(b, bool(fleet.has_ev[b]), False), ontology
        )
    store.replace_graphs(graphs)
    rows = ["id,kind,label,parent,rated_kva", "F-1,feeder,Feeder 1,,", f"T-1,transformer,T-1,F-1,{n * 6}"]
    rows += [f"b{b},building,b{b},T-1," for b in range(n)]
    load_topology(store, topology_graph(data="\n".join(rows).encode(), path=None))
    t0 = time.perf_counter()
    assets = find_assets(store, ontology.index, kinds=("thermostat", "water_heater", "ev_charger"))
    bind_s = time.perf_counter() - t0
    return store, ontology, assets, fleet, bind_s


class SimAdapter:
    """Applies actions to the fleet: the simulated devices behind the asset points."""

    def __init__(self, fleet: Fleet, assets: list[Asset]) -> None:
        self.fleet = fleet
        self.where: dict[str, tuple[int, str, int]] = {}
        for a in assets:
            b = int(a.building[1:])
            if a.kind == "thermostat":
                self.where[a.point] = (b, "tstat", int(a.label.split("-")[1]) - 1)
            elif a.kind == "water_heater":
                self.where[a.point] = (b, "wh", 0)
            else:
                self.where[a.point] = (b, "ev", 0)

    def write(self, point: str, value: Any) -> None:
        b, what, i = self.where[point]
        f = self.fleet
        if what == "tstat":
            f.cmd_sp[b, i] = f.setpoint[b, i] if value is None else float(value)
        elif what == "wh":
            f.cmd_wh[b] = f.wh_sp[b] if value is None else float(value)
        else:
            f.ev_limit[b] = 32.0 if value is None else float(value)

    def state(self, assets: list[Asset]) -> list[AssetState]:
        f = self.fleet
        p = f.power()
        out = []
        for a in assets:
            b, what, i = self.where[a.point]
            if what == "tstat":
                out.append(
                    AssetState(
                        a, float(p["ac"][b, i]), float(f.cmd_sp[b, i]), {"zone_f": float(f.zone[b, i])}
                    )
                )
            elif what == "wh":
                out.append(AssetState(a, float(p["wh"][b]), float(f.cmd_wh[b])))
            else:
                out.append(AssetState(a, float(p["ev"][b]), float(f.ev_limit[b])))
        return out


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.03, rng.uniform(1, 4, n), 0.0)


# -- capacity limit --------------------------------------------------------------------------
def capacity(n: int, minutes: int = 240, seed: int = 7) -> dict[str, Any]:
    _store, _ont, assets, fleet, bind_s = build_site(n, seed)
    # Uncontrolled run first, same weather and draws, to set the limit at 85% of its peak.
    free = Fleet(n, np.random.default_rng(seed))
    draws = [(_draw(np.random.default_rng(seed * 1000 + m), n)) for m in range(minutes)]
    outdoor = [95 + 3 * math.sin(math.pi * m / minutes) for m in range(minutes)]
    free_load = np.array([free.step(m, outdoor[m], draws[m]).sum() for m in range(minutes)])
    limit = float(0.85 * free_load.max())
    fn = CapacityLimit()
    params = fn.params(
        {
            "limit_kw": limit,
            "confirm_steps": 1,
            "margin": 0.03,
            "release_stagger_s": 60,
            "release_random_s": 60,
            "max_curtail_s": 3600,
        }
    )
    sim = SimAdapter(fleet, assets)
    memory: dict[str, Any] = {}
    pending: list[tuple[float, str, Any]] = []
    loads, decide_s, over_deg = [], [], 0.0
    last = prev = float(free_load[0])
    for m in range(minutes):
        now = m * DT_S
        for item in [x for x in pending if x[0] <= now]:
            sim.write(item[1], item[2])
            pending.remove(item)
        forecast = last + max(0.0, last - prev)  # persistence plus the current trend
        state = GridState(
            now=now, assets=sim.state(assets), load_kw=last, forecast_kw=[forecast], memory=memory
        )
        t0 = time.perf_counter()
        plan = fn.plan(state, params)
        decide_s.append(time.perf_counter() - t0)
        memory = plan.memory
        for act in plan.actions:
            if act.at_s <= 0:
                sim.write(act.point, act.value)
            else:
                pending.append((now + act.at_s, act.point, act.value))
        prev, last = last, float(fleet.step(m, outdoor[m], draws[m]).sum())
        loads.append(last)
        over_deg += float(np.clip(fleet.zone - (params.comfort_max_f + DEADBAND_F), 0, None).sum()) / 60
    # The event ends: everything is released (staggered); the next hour shows the rebound.
    end = fn.finish(GridState(now=minutes * DT_S, assets=sim.state(assets), memory=memory), params)
    pending = [(minutes * DT_S + a.at_s, a.point, a.value) for a in end.actions] + pending
    after = []
    free_after = []
    for m in range(minutes, minutes + 60):
        now = m * DT_S
        for item in [x for x in pending if x[0] <= now]:
            sim.write(item[1], item[2])
            pending.remove(item)
        d = _draw(np.random.default_rng(seed * 1000 + m), n)
        after.append(float(fleet.step(m, outdoor[-1], d).sum()))
        free_after.append(float(free.step(m, outdoor[-1], d).sum()))
    load = np.array(loads)
    return {
        "buildings": n,
        "assets": len(assets),
        "rebound_peak_pct_of_limit": round(100 * max(after) / limit, 1),
        "rebound_peak_pct_of_uncontrolled": round(100 * max(after) / max(free_after), 1),
        "bind_s": round(bind_s, 2),
        "limit_kw": round(limit, 1),
        "uncontrolled_peak_kw": round(float(free_load.max()), 1),
        "controlled_peak_kw": round(float(load.max()), 1),
        "max_over_limit_pct": round(100 * max(0.0, float(load.max()) / limit - 1), 2),
        "minutes_over_limit": int((load > limit).sum()),
        "minutes_over_2pct": int((load > limit * 1.02).sum()),
        "comfort_degree_hours": round(over_deg, 3),
        "decision_ms_mean": round(1000 * float(np.mean(decide_s)), 1),
        "decision_ms_max": round(1000 * float(np.max(decide_s)), 1),
    }


def decision_time(devices: int = 10_000, seed: int = 3) -> dict[str, Any]:
    """One capacity-limit decision over ``devices`` assets (all needed: the worst case)."""
    rng = np.random.default_rng(seed)
    assets = []
    for i in range(devices):
        kind = ("thermostat", "water_heater", "ev_charger")[i % 3]
        cls = {
            "thermostat": "Cooling_Zone_Air_Temperature_Setpoint",
            "water_heater": "Domestic_Hot_Water_Temperature_Setpoint",
            "ev_charger": "Current_Limit",
        }[kind]
        assets.append(
            Asset(f"b{i // 3}", f"urn:e{i}", f"E{i}", kind, f"urn:p{i}", f"P{i}", cls, None, 4.0, 6, 140)
        )
    states = [AssetState(a, float(rng.uniform(0.5, 6)), float(rng.uniform(70, 125))) for a in assets]
    total = sum(s.power_kw for s in states)
    fn = CapacityLimit()
    params = fn.params({"limit_kw": total * 0.5})
    state = GridState(now=0, assets=states, load_kw=total)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        plan = fn.plan(state, params)
        times.append(time.perf_counter() - t0)
    return {
        "devices": devices,
        "actions": len(plan.actions),
        "decision_s_median": round(float(np.median(times)), 3),
    }


# -- cold-load pick-up ---------------------------------------------------------------------
def cold_load(
    n: int,
    outage_min: int = 120,
    after_min: int = 900,
    seed: int = 11,
    limit_share: float = 0.6,
    mode: str = "loop",
    loop_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    loop_params = loop_params or {}
    _store, _ont, assets, _fleet, _bind = build_site(n, seed)
    outdoor = 95.0
    rng = np.random.default_rng(seed)

    def run(mode: str) -> tuple[np.ndarray, dict[str, Any]]:
        """``free``: uncontrolled; ``schedule``: the one-shot plan carried out open loop;
        ``loop``: re-planned every minute on the measured load (an event run)."""
        f = Fleet(n, np.random.default_rng(seed))
        f.ev_need[:] = 0.0  # a night-time outage: the cars are charged; thermostatic loads remain
        for _ in range(outage_min):  # no power: zones warm, tanks cool, nothing runs
            a, _b = f.a_b(outdoor)
            f.zone = a * f.zone + (1 - a) * outdoor
            f.wh_temp = f.wh_temp - 0.05
            f.ac_on[:] = False
            f.wh_on[:] = False
        sim = SimAdapter(f, assets)
        report: dict[str, Any] = {}
        pending: list[tuple[float, str, Any]] = []
        fn = ColdLoadPickup()
        base = float(f.base.sum())
        limit = limit_share * free_peak if mode != "free" else 0.0
        params = (
            fn.params({"limit_kw": limit, "outage_s": outage_min * 60, "base_kw": base, **loop_params})
            if mode != "free"
            else None
        )
        memory: dict[str, Any] = {}
        if mode == "schedule":
            states = [AssetState(s.asset, 0.0, s.value, s.extra) for s in sim.state(assets)]
            plan = fn.plan(GridState(now=0, assets=states), params)
            report = plan.report
            for act in plan.actions:
                pending.append((act.at_s, act.point, act.value))
        loads: list[float] = []
        last_restored = 0.0
        for m in range(after_min):
            now = m * DT_S
            if mode == "loop":
                states = sim.state(assets)
                if m == 0:
                    states = [AssetState(s.asset, 0.0, s.value, s.extra) for s in states]
                measured = loads[-1] if loads else base
                plan = fn.plan(
                    GridState(now=now, assets=states, load_kw=measured, memory=memory, loop=True), params
                )
                memory = plan.memory
                if plan.report.get("new"):
                    last_restored = now
                report = {"groups": plan.report["groups"], "limit_kw": limit}
                for act in plan.actions:
                    pending.append((now + act.at_s, act.point, act.value))
            for item in [x for x in pending if x[0] <= now]:
                sim.write(item[1], item[2])
                pending.remove(item)
            if m == 0:  # the first minute after restoration: every thermostat calls for cooling
                f.ac_on = f.zone > f.cmd_sp - DEADBAND_F
                f.wh_on = f.wh_temp < f.cmd_wh - 5
            loads.append(float(f.step(m, outdoor, _draw(rng, n)).sum()))
        if mode == "loop":
            report["starts_s"] = [last_restored]
            report["still_held"] = len(memory.get("held", []))
        return np.array(loads), report

    free, _ = run("free")
    free_peak = float(free.max())
    held, report = run(mode)
    return {
        "buildings": n,
        "mode": mode,
        "outage_min": outage_min,
        "uncontrolled_peak_kw": round(float(free.max()), 1),
        "controlled_peak_kw": round(float(held.max()), 1),
        "peak_reduction_pct": round(float(100 * (1 - held.max() / free.max())), 1),
        "groups": report.get("groups"),
        "limit_kw": round(float(report.get("limit_kw", 0.0)), 1),
        "minutes_over_limit": int((held > report.get("limit_kw", 0.0)).sum()),
        "restored_by_min": round(max(report.get("starts_s", [0])) / 60, 1),
        "still_held": report.get("still_held", 0),
        "uncontrolled_back_to_normal_min": int(np.argmax(free < 0.55 * free.max())),
    }


# -- dynamic tariff ------------------------------------------------------------------------
def tariff(n: int = 20, hours: int = 24, seed: int = 5) -> dict[str, Any]:
    """Thermostats, water heaters, batteries and EVs of ``n`` homes scheduled against a
    day of 15-min prices, re-planned every hour (receding horizon), executed in a model of
    the same zones and tanks; compared with conventional control."""
    rng = np.random.default_rng(seed)
    steps = hours * 4
    t = np.arange(steps)
    prices = 0.10 + 0.05 * np.sin(2 * np.pi * (t - 30) / steps) + np.where((t >= 64) & (t < 80), 0.25, 0.0)
    outdoor = 85 + 10 * np.sin(2 * np.pi * (t - 40) / steps)
    fn = DynamicTariff()
    a_zone, b_zone = 0.85, 1.2
    total_cost = total_base = comfort_violation = 0.0
    solve_s = []
    for h in range(n):
        asset_th = Asset(
            f"h{h}",
            f"urn:h{h}:t",
            "TSTAT",
            "thermostat",
            f"urn:h{h}:tp",
            "SP",
            "Cooling_Zone_Air_Temperature_Setpoint",
            None,
            AC_KW,
            68,
            82,
        )
        asset_wh = Asset(
            f"h{h}",
            f"urn:h{h}:w",
            "WH",
            "water_heater",
            f"urn:h{h}:wp",
            "WH SP",
            "Domestic_Hot_Water_Temperature_Setpoint",
            None,
            WH_KW,
            110,
            140,
        )
        asset_bt = Asset(
            f"h{h}",
            f"urn:h{h}:b",
            "BATT",
            "battery",
            f"urn:h{h}:bp",
            "B SP",
            "Active_Power_Setpoint",
            None,
            5.0,
            -5,
            5,
        )
        asset_ev = Asset(
            f"h{h}",
            f"urn:h{h}:e",
            "EVSE",
            "ev_charger",
            f"urn:h{h}:ep",
            "EV",
            "Current_Limit",
            None,
            EV_KW,
            6,
            32,
        )
        zone, tank, soc = 74.0, 10.0, 6.0
        ev_need = float(rng.uniform(10, 30))
        ev_left = ev_need
        arrive, depart = int(rng.integers(68, 76)), steps  # evening arrival, leaves at the end of the day
        draw = np.where((t % 48 > 26) & (t % 48 < 34), 0.6, 0.1)
        base_zone, base_tank = 74.0, 10.0
        for start in range(0, steps, 4):
            horizon = steps - start
            extra_ev = {
                "arrive_step": max(0, arrive - start),
                "depart_step": depart - start,
                "need_kwh": ev_left,
            }
            states = [
                AssetState(
                    asset_th,
                    0.0,
                    74.0,
                    {"zone_f": zone, "a": a_zone, "b": b_zone, "low": 72.0, "high": 76.0, "setpoint": 74.0},
                ),
                AssetState(
                    asset_wh,
                    0.0,
                    125.0,
                    {"energy_kwh": tank, "cap_kwh": 12.0, "min_kwh": 3.0, "draw_kwh": float(draw[start])},
                ),
                AssetState(asset_bt, 0.0, 0.0, {"soc_kwh": soc, "cap_kwh": 13.5}),
                AssetState(asset_ev, 0.0, 32.0, extra_ev),
            ]
            params = fn.params(
                {
                    "prices": prices[start:].tolist(),
                    "outdoor_f": outdoor[start:].tolist(),
                    "draw_kwh": draw[start:].tolist(),
                    "step_s": 900,
                }
            )
            t0 = time.perf_counter()
            plan = fn.plan(GridState(now=start * 900, assets=states, prices=prices[start:].tolist()), params)
            solve_s.append(time.perf_counter() - t0)
            sched = plan.report["schedules_kw"]
            for k in range(min(4, horizon)):  # execute one hour of the plan, then re-plan
                step = start + k
                p_ac = sched[asset_th.id][k] if asset_th.id in sched else 0.0
                zone = a_zone * zone + (1 - a_zone) * outdoor[step] - b_zone * p_ac
                comfort_violation += max(0.0, zone - 76.0 - 0.05) * 0.25 + max(0.0, 72.0 - 0.05 - zone) * 0.25
                p_wh = sched.get(asset_wh.id, [0.0] * 4)[k]
                tank = tank + p_wh * 0.25 - draw[step]
                p_bt = sched.get(asset_bt.id, [0.0] * 4)[k]
                soc = soc + (0.92 * max(p_bt, 0) - max(-p_bt, 0) / 0.92) * 0.25
                p_ev = sched.get(asset_ev.id, [0.0] * 4)[k]
                ev_left = max(0.0, ev_left - p_ev * 0.25)
                total_cost += prices[step] * (p_ac + p_wh + p_bt + p_ev) * 0.25
                # Conventional control of the same home: thermostat holds 74, tank reheats as
                # used, EV charges at full power on arrival, battery idle.
                need = ((1 - a_zone) * outdoor[step] + a_zone * base_zone - 74.0) / b_zone
                p_ac_b = float(np.clip(need, 0, AC_KW))
                base_zone = a_zone * base_zone + (1 - a_zone) * outdoor[step] - b_zone * p_ac_b
                p_wh_b = min(WH_KW, max(0.0, (10.0 - base_tank + draw[step]) / 0.25))
                base_tank = base_tank + p_wh_b * 0.25 - draw[step]
                total_base += prices[step] * (p_ac_b + p_wh_b) * 0.25
        ev_base_cost = 0.0
        left = ev_need
        for step in range(arrive, depart):
            p = min(EV_KW, left / 0.25)
            ev_base_cost += prices[step] * p * 0.25
            left -= p * 0.25
        total_base += ev_base_cost
    return {
        "homes": n,
        "steps": steps,
        "cost": round(float(total_cost), 2),
        "baseline_cost": round(float(total_base), 2),
        "saved_pct": round(float(100 * (1 - total_cost / total_base)), 1) if total_base else 0.0,
        "comfort_degree_hours": round(comfort_violation, 3),
        "plan_ms_mean": round(1000 * float(np.mean(solve_s)), 1),
    }


# -- demand response -----------------------------------------------------------------------
def demand_response(n: int, window_min: int = 60, seed: int = 13) -> dict[str, Any]:
    _store, _ont, assets, fleet, _bind = build_site(n, seed)
    base_fleet = Fleet(n, np.random.default_rng(seed))
    outdoor = 95.0
    draws = [_draw(np.random.default_rng(seed * 100 + m), n) for m in range(window_min + 10)]
    for m in range(10):  # warm up both the same way
        fleet.step(m, outdoor, draws[m])
        base_fleet.step(m, outdoor, draws[m])
    load_now = float(fleet.step(10, outdoor, np.zeros(n)).sum())
    base_fleet.step(10, outdoor, np.zeros(n))
    ask = 0.2 * load_now
    fn = DemandResponse()
    sim = SimAdapter(fleet, assets)
    plan = fn.plan(
        GridState(now=0, assets=sim.state(assets), load_kw=load_now),
        fn.params({"shed_kw": ask, "duration_s": window_min * 60}),
    )
    for act in plan.actions:
        sim.write(act.point, act.value)
    controlled, baseline = [], []
    for m in range(window_min):
        d = draws[min(m, len(draws) - 1)]
        controlled.append(float(fleet.step(m, outdoor, d).sum()))
        baseline.append(float(base_fleet.step(m, outdoor, d).sum()))
    achieved = float(np.mean(np.array(baseline) - np.array(controlled)))
    return {
        "buildings": n,
        "asked_kw": round(ask, 1),
        "expected_kw": plan.report["expected_kw"],
        "achieved_mean_kw": round(achieved, 1),
        "achieved_pct_of_ask": round(100 * achieved / ask, 1),
        "assets_used": plan.report["assets"],
    }


def report(buildings: int = 1000) -> str:
    """The grid-function results as Markdown (docs/gridsim.md)."""
    t0 = time.perf_counter()
    cap = capacity(buildings)
    dec = decision_time()
    colds = [
        ("event run (re-planned every minute on the measured load)", 0.6, cold_load(buildings)),
        ("event run, margin 10 %", 0.6, cold_load(buildings, loop_params={"margin": 0.10})),
        ("one-shot schedule (open loop)", 0.6, cold_load(buildings, mode="schedule")),
        ("one-shot schedule (open loop)", 0.5, cold_load(buildings, limit_share=0.5, mode="schedule")),
    ]
    tar = tariff()
    dr = demand_response(buildings)
    lines = [
        "# Grid-function simulation",
        "",
        f"Generated by `make eval` (`python -m eval.gridsim --buildings {buildings}`) in "
        f"{time.perf_counter() - t0:.0f} s. Buildings are generated Brick graphs (2 thermostats with RC",
        "zones, a water heater, an EV charger in half of them, baseline load), bound by the functions' own",
        "queries; the real planners decide every minute and act on a simulated adapter. See",
        "docs/gridfunctions.md for the models and what the numbers mean.",
        "",
        "## Capacity limit (one transformer, limit = 85 % of the uncontrolled evening peak, 4 h event)",
        "",
        "| buildings | assets | limit kW | uncontrolled peak kW | controlled peak kW | max over limit | "
        "minutes over limit | minutes over limit + 2 % | comfort °F·h | rebound peak / limit | "
        "decision ms (mean / max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {cap['buildings']} | {cap['assets']} | {cap['limit_kw']} | {cap['uncontrolled_peak_kw']} | "
        f"{cap['controlled_peak_kw']} | {cap['max_over_limit_pct']} % | {cap['minutes_over_limit']} | "
        f"{cap['minutes_over_2pct']} | {cap['comfort_degree_hours']} | "
        f"{cap['rebound_peak_pct_of_limit']} % | "
        f"{cap['decision_ms_mean']} / {cap['decision_ms_max']} |",
        "",
        f"One decision over {dec['devices']:,} devices that all have to act: {dec['decision_s_median']} s "
        f"(median of 5; {dec['actions']:,} actions). Binding {cap['assets']} assets by query: "
        f"{cap['bind_s']} s.",
        "",
        "## Cold-load pick-up (2 h outage at 95 °F, thermostats and water heaters)",
        "",
        "| how | limit (share of uncontrolled peak) | uncontrolled peak kW | controlled peak kW | "
        "reduction | minutes over limit | groups | last group starts (min) | "
        "uncontrolled back to 55 % of peak (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for how, share, c in colds:
        lines.append(
            f"| {how} | {share:.0%} | {c['uncontrolled_peak_kw']} | {c['controlled_peak_kw']} | "
            f"{c['peak_reduction_pct']} % | {c['minutes_over_limit']} | "
            f"{c['groups']} | {c['restored_by_min']} | {c['uncontrolled_back_to_normal_min']} |"
        )
    lines += [
        "",
        "Restoring everything under 60 % of the uncontrolled peak takes hours on a 95 °F night because",
        "the recovered steady load itself is close to 55 % of that peak; a higher limit restores sooner.",
    ]
    lines += [
        "",
        "## Dynamic tariff (24 h at 15-min steps, re-planned every hour)",
        "",
        "| homes | cost | conventional cost | saved | comfort °F·h | plan ms per home |",
        "|---|---|---|---|---|---|",
        f"| {tar['homes']} | {tar['cost']} | {tar['baseline_cost']} | {tar['saved_pct']} % | "
        f"{tar['comfort_degree_hours']} | {tar['plan_ms_mean']} |",
        "",
        "## Demand response (shed 20 % of the load for 1 h)",
        "",
        "| buildings | asked kW | expected kW | achieved kW (mean over the hour) | achieved / asked | "
        "assets |",
        "|---|---|---|---|---|---|",
        f"| {dr['buildings']} | {dr['asked_kw']} | {dr['expected_kw']} | {dr['achieved_mean_kw']} | "
        f"{dr['achieved_pct_of_ask']} % | {dr['assets_used']} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buildings", type=int, default=1000)
    args = parser.parse_args()
    print(report(args.buildings))


if __name__ == "__main__":
    main()
