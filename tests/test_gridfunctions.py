"""Grid functions: found by entry point, bound by query, checked by SHACL, planned purely,
run through the safety layer against a real Modbus peer, and proven in a small simulation."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from api._service import Platform
from core.errors import OsedError
from edge import GraphResolver, SafetyLayer
from edge.modbus import ModbusAdapter
from eval import gridsim
from gridfunctions import (
    Asset,
    AssetState,
    GridState,
    available,
    check,
    execute,
    find_assets,
    get,
    load_topology,
    read_topology,
    topology_graph,
)
from gridfunctions._runner import prepare
from gridfunctions.tariff import fit_zone
from mapper import read_points
from tests.peers.modbus_server import ModbusPeer

TOPOLOGY = b"id,kind,label,parent,rated_kva\nF-1,feeder,Feeder 1,,\nT-17,transformer,T-17,F-1,500\nhq,building,HQ,T-17,\n"
COLUMNS = ["name", "unit", "writable", "min", "max", "modbus_unit", "modbus_register", "modbus_type",
           "modbus_datatype", "modbus_scale", "modbus_host"]  # fmt: skip


def home(platform: Platform, tmp_path: Path, host: str, building: str = "hq") -> None:
    """Thermostats, a water heater and an EV charger reached over Modbus, and a meter."""
    rows = [
        ("TSTAT-1 Cooling Setpoint", "°F", "yes", 60, 90, 10),
        ("TSTAT-2 Cooling Setpoint", "°F", "yes", 60, 90, 11),
        ("WH-1 Temp Setpoint", "°F", "yes", 110, 140, 12),
        ("EVSE-1 Current Limit", "A", "yes", 6, 32, 13),
        ("MTR-MAIN kW", "kW", "no", None, None, 14),
    ]
    path = tmp_path / f"{building}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for name, unit, writable, lo, hi, reg in rows:
            w.writerow({"name": name, "unit": unit, "writable": writable, "min": lo, "max": hi, "modbus_unit": 1,
                        "modbus_register": reg, "modbus_type": "holding", "modbus_datatype": "int16",
                        "modbus_scale": 0.1, "modbus_host": host})  # fmt: skip
    platform.import_points(building, read_points(path))


@pytest.fixture
def peer() -> Any:
    p = ModbusPeer(unit=1)
    p.start()
    for reg, value in ((10, 740), (11, 750), (12, 1250), (13, 320), (14, 125)):
        p.set_holding(reg, [value])
    yield p
    p.stop()


def test_the_four_functions_are_found_through_the_entry_point_group(ontology) -> None:
    found = available()
    assert set(found) >= {"capacity-limit", "cold-load-pickup", "dynamic-tariff", "demand-response"}
    fn = get("capacity-limit")
    sparql = fn.requirements(ontology.index)
    assert "brick:Thermostat" in sparql and "osed:writable true" in sparql
    assert "sh:NodeShape" in fn.shape() and "brick.Transformer" not in fn.shape()
    with pytest.raises(OsedError, match="no grid function 'nope'"):
        get("nope")


def test_assets_are_found_by_query_and_check_explains_what_is_missing(
    platform: Platform, tmp_path, peer
) -> None:
    home(platform, tmp_path, peer.host)
    assets = find_assets(platform.store, platform.ontology.index)
    kinds = sorted((a.kind, a.point_name) for a in assets)
    assert kinds == [
        ("ev_charger", "EVSE-1 Current Limit"),
        ("thermostat", "TSTAT-1 Cooling Setpoint"),
        ("thermostat", "TSTAT-2 Cooling Setpoint"),
        ("water_heater", "WH-1 Temp Setpoint"),
    ]
    cap = get("capacity-limit")
    before = check(cap, platform.store, platform.ontology, "hq")
    assert not before.bindable and before.missing == [
        "not fed by a transformer in the grid topology (load one with `osed topology load`)"
    ]
    load_topology(platform.store, topology_graph(data=TOPOLOGY))
    assert read_topology(platform.store).buildings_under("F-1") == ["hq"]
    after = check(cap, platform.store, platform.ontology, "hq")
    assert after.bindable and after.assets == {"ev_charger": 1, "thermostat": 2, "water_heater": 1}
    # A building with nothing writable cannot bind, and says why.
    sensors = tmp_path / "sensors.csv"
    sensors.write_text("name,unit,writable\nTSTAT-9 Room Temp,°F,no\nMTR-MAIN kW,kW,no\n", "utf-8")
    platform.import_points("empty", read_points(sensors))
    dr = check(get("demand-response"), platform.store, platform.ontology, "empty")
    assert dr.bindable is False and dr.missing and "no controllable asset" in dr.missing[0]


def test_parameters_out_of_range_are_refused(platform: Platform) -> None:
    with pytest.raises(OsedError, match="limit_kw"):
        get("capacity-limit").params({"limit_kw": -5})
    with pytest.raises(OsedError, match="hysteresis"):
        get("capacity-limit").params({"limit_kw": 5, "hysteresis": 0.01, "margin": 0.05})
    with pytest.raises(OsedError, match="prices"):
        get("dynamic-tariff").params({"prices": [0.1]})


def _assets(n: int) -> list[AssetState]:
    out = []
    for i in range(n):
        kind, cls, value = [("thermostat", "Cooling_Zone_Air_Temperature_Setpoint", 74.0),
                            ("water_heater", "Domestic_Hot_Water_Temperature_Setpoint", 125.0),
                            ("ev_charger", "Current_Limit", 32.0)][i % 3]  # fmt: skip
        a = Asset(f"b{i}", f"urn:e{i}", f"E{i}", kind, f"urn:p{i}", f"P{i}", cls, None, 4.0, 6.0, 140.0)
        out.append(AssetState(a, 3.0, value))
    return out


def test_capacity_limit_curtails_fairly_with_hysteresis_and_staggered_release() -> None:
    fn = get("capacity-limit")
    p = fn.params({"limit_kw": 100, "confirm_steps": 2, "escalate_over": 0.5, "release_stagger_s": 60})
    assets = _assets(30)
    s1 = GridState(now=0, assets=assets, load_kw=110)
    first = fn.plan(s1, p)
    assert first.actions == [] and first.memory["over_steps"] == 1  # a spike is not a trend
    again = fn.plan(GridState(now=0, assets=assets, load_kw=110), p)
    assert again.actions == first.actions  # pure: same state, same plan
    second = fn.plan(GridState(now=60, assets=assets, load_kw=110, memory=first.memory), p)
    shed = -sum(a.expected_kw for a in second.actions)
    assert shed >= 110 - 100 * 0.98 and second.report["curtailed"] == len(second.actions)
    kinds = [a.asset.split("e")[-1] for a in second.actions]
    assert all(int(k) % 3 != 0 for k in kinds[:3])  # water heaters and EVs before thermostats
    for act in second.actions:
        state = next(s for s in assets if s.asset.id == act.asset)
        if state.asset.kind == "thermostat":
            assert act.value <= p.comfort_max_f
        if state.asset.kind == "ev_charger":
            assert act.value >= 32.0 * p.min_service  # minimum service
    # Within the band: nothing changes; well below: staggered, randomised releases.
    hold = fn.plan(GridState(now=120, assets=assets, load_kw=97, memory=second.memory), p)
    assert hold.actions == []
    low = fn.plan(GridState(now=180, assets=assets, load_kw=60, memory=second.memory), p)
    releases = [a for a in low.actions if a.value is None]
    assert releases and sorted(a.at_s for a in releases) != [0.0] * len(releases)
    assert max(a.at_s for a in releases) >= 60 * (len(releases) - 1)


def test_cold_load_pickup_groups_restoration_under_the_limit_and_ramps_setpoints() -> None:
    fn = get("cold-load-pickup")
    assets = [s for s in _assets(60) if s.asset.kind != "ev_charger"]
    plan = fn.plan(
        GridState(now=0, assets=assets), fn.params({"limit_kw": 120, "outage_s": 7200, "base_kw": 10})
    )
    r = plan.report
    assert r["groups"] > 1 and r["expected_peak_kw"] <= 120 and r["uncontrolled_peak_kw"] > 120
    ramps = [a for a in plan.actions if a.reason.endswith("(ramp)")]
    first = next(s for s in assets if s.asset.kind == "thermostat")
    steps = [a.value for a in ramps if a.asset == first.asset.id]
    assert steps == sorted(steps, reverse=True) and len(steps) == 3 and steps[-1] > first.value


def test_dynamic_tariff_shifts_load_to_cheap_hours_within_comfort() -> None:
    fn = get("dynamic-tariff")
    prices = [0.1] * 8 + [0.5] * 8
    a = Asset(
        "h", "urn:t", "T", "thermostat", "urn:tp", "SP", "Cooling_Zone_Air_Temperature_Setpoint", None, 3.5
    )
    b = Asset("h", "urn:b", "B", "battery", "urn:bp", "BSP", "Active_Power_Setpoint", None, 5.0)
    state = GridState(now=0, assets=[AssetState(a, 0, 74, {"zone_f": 74, "low": 72, "high": 76}),
                                     AssetState(b, 0, 0, {"soc_kwh": 5, "cap_kwh": 10})])  # fmt: skip
    plan = fn.plan(state, fn.params({"prices": prices, "outdoor_f": [92.0]}))
    sched = plan.report["schedules_kw"]
    cheap, dear = sum(sched["urn:t"][:8]), sum(sched["urn:t"][8:])
    assert cheap > dear  # pre-cooling while energy is cheap
    assert min(sched["urn:b"][:8]) >= -1e-6 and sum(sched["urn:b"][8:]) < 0  # charge cheap, discharge dear
    assert plan.report["saved"] > 0 and 72 <= plan.actions[0].value <= 76
    a_fit, b_fit = fit_zone([74, 74.6, 75.1, 74.4, 73.8], [90, 90, 90, 90, 90], [0, 0, 3, 3, 0])
    assert 0 < a_fit < 1 and b_fit > 0


def test_demand_response_picks_enough_flexibility_and_reports_it() -> None:
    fn = get("demand-response")
    plan = fn.plan(GridState(now=0, assets=_assets(30)), fn.params({"shed_kw": 20, "duration_s": 3600}))
    assert plan.report["expected_kw"] >= 20 and plan.report["short_kw"] == 0
    too_much = fn.plan(GridState(now=0, assets=_assets(3)), fn.params({"shed_kw": 500, "duration_s": 3600}))
    assert too_much.report["short_kw"] > 0 and too_much.report["assets"] == 3


def test_run_through_the_safety_layer_one_failing_building_does_not_stop_the_others(
    platform: Platform, tmp_path, peer
) -> None:
    home(platform, tmp_path, peer.host, "hq")
    home(platform, tmp_path, "127.0.0.1:1", "annex")  # its controller is unreachable
    load_topology(platform.store, topology_graph(data=TOPOLOGY + b"annex,building,Annex,T-17,\n"))
    platform.__dict__["safety"] = SafetyLayer(
        GraphResolver(platform.store), {"modbus": ModbusAdapter(timeout_s=0.5)}, tmp_path / "s.sqlite"
    )
    fn = get("demand-response")

    async def scenario() -> None:
        prepared = await prepare(platform, fn, {"shed_kw": 5, "duration_s": 600}, ["annex", "hq"], load_kw=20)
        assert "annex" in prepared.read_errors
        report = await execute(fn, prepared.plan, platform.safety, run_id="r1")
        assert "annex" in report.failures and report.written >= 1
        leases = platform.safety.store.leases(statuses=("active",))
        assert leases and {lease.owner for lease in leases} == {"gridfn:demand-response:r1"}
        assert all(lease.building == "hq" for lease in leases)
        assert peer.holding(12) != [1250] or peer.holding(10) != [740]  # something was shed
        await platform.safety.release_owner("gridfn:demand-response:r1", by="test")
        assert peer.holding(10) == [740] and peer.holding(12) == [1250]
        # A building that lacks what the function needs is refused with what is missing.
        bare = tmp_path / "bare.csv"
        bare.write_text("name,unit,writable\nTSTAT-9 Room Temp,°F,no\n", "utf-8")
        platform.import_points("bare", read_points(bare))
        with pytest.raises(OsedError, match="bare: no controllable asset"):
            await prepare(platform, get("capacity-limit"), {"limit_kw": 10}, ["bare"])
        await platform.safety.close()

    asyncio.run(scenario())


def test_cli_lists_checks_and_plans(tmp_path: Path, peer) -> None:
    from tests.test_cli import osed

    path = tmp_path / "hq.csv"
    plat_rows = tmp_path / "topo.csv"
    plat_rows.write_bytes(TOPOLOGY)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerow({"name": "TSTAT-1 Cooling Setpoint", "unit": "°F", "writable": "yes", "min": 60, "max": 90,
                    "modbus_unit": 1, "modbus_register": 10, "modbus_type": "holding", "modbus_datatype": "int16",
                    "modbus_scale": 0.1, "modbus_host": peer.host})  # fmt: skip
    assert osed("load", str(path), "--building", "hq", cwd=tmp_path).returncode == 0
    listed = osed("gridfn", "list", cwd=tmp_path).stdout
    assert "capacity-limit" in listed and "dynamic-tariff" in listed
    checked = osed("gridfn", "check", "capacity-limit", "--building", "hq", cwd=tmp_path)
    assert checked.returncode == 1 and "missing: not fed by a transformer" in checked.stdout
    assert osed("topology", "load", str(plat_rows), cwd=tmp_path).returncode == 0
    assert osed("gridfn", "check", "capacity-limit", "--building", "hq", cwd=tmp_path).returncode == 0
    planned = osed("gridfn", "plan", "demand-response", "--under", "T-17", "--param", "shed_kw=1",
                   "--param", "duration_s=600", "--load-kw", "10", cwd=tmp_path)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert "TSTAT-1" in planned.stdout or "urn:osed:hq/point" in planned.stdout
    assert json.loads(planned.stdout.strip().splitlines()[-1])["asked_kw"] == 1
    assert peer.holding(10) == [740]  # plan writes nothing
    bad = osed("gridfn", "plan", "capacity-limit", "--building", "hq", "--param", "limit_kw=-1", cwd=tmp_path)
    assert bad.returncode == 2 and "limit_kw" in bad.stderr


def test_small_simulation_holds_the_limit_without_comfort_violations() -> None:
    result = gridsim.capacity(40, minutes=90)
    assert result["assets"] >= 40 * 3
    assert result["max_over_limit_pct"] <= 5.0 and result["comfort_degree_hours"] == 0.0
    assert gridsim.decision_time(devices=3000)["decision_s_median"] < 1.0


def test_api_lists_checks_plans_and_runs(platform: Platform, tmp_path, peer) -> None:
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app

    home(platform, tmp_path, peer.host)
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        listed = {f["name"]: f for f in c.get("/gridfunctions").json()}
        assert "capacity-limit" in listed and "properties" in listed["capacity-limit"]["params"]
        assert "osed:writable true" in listed["dynamic-tariff"]["requirements"]
        missing = c.get("/gridfunctions/capacity-limit/check", params={"building": "hq"}).json()
        assert missing["bindable"] is False and "transformer" in missing["missing"][0]
        up = c.post("/topology", files={"file": ("topology.csv", TOPOLOGY, "text/csv")})
        assert up.status_code == 200 and up.json()["buildings"] == {"hq": ["T-17", "F-1"]}
        body = {"under": "T-17", "params": {"shed_kw": 1, "duration_s": 600}, "load_kw": 10}
        plan = c.post("/gridfunctions/demand-response/plan", json=body).json()
        assert plan["buildings"] == ["hq"] and plan["actions"] and peer.holding(12) == [1250]
        bad = c.post(
            "/gridfunctions/capacity-limit/run", json={"buildings": ["hq"], "params": {"limit_kw": -1}}
        )
        assert bad.status_code == 400 and "limit_kw" in bad.json()["detail"]
        started = c.post("/gridfunctions/demand-response/run", json=body)
        assert started.status_code == 202
        run_id = started.json()["run"]
        deadline = time.monotonic() + 20
        while (
            c.get(f"/gridfunctions/runs/{run_id}").json()["status"] == "running"
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        done = c.get(f"/gridfunctions/runs/{run_id}").json()
        assert done["status"] == "finished" and done["result"]["written"] >= 1
        leases = c.get("/edge/leases").json()
        assert leases and all(x["owner"] == f"gridfn:demand-response:{run_id}" for x in leases)
        stopped = c.delete(f"/gridfunctions/runs/{run_id}").json()
        assert len(stopped["released"]) == len(leases) and c.get("/edge/leases").json() == []
        assert peer.holding(12) == [1250] and peer.holding(13) == [320]


def test_cold_load_pickup_in_a_loop_restores_only_when_the_measured_load_leaves_room() -> None:
    fn = get("cold-load-pickup")
    assets = [AssetState(s.asset, 0.0, s.value) for s in _assets(30) if s.asset.kind != "ev_charger"]
    p = fn.params({"limit_kw": 60, "outage_s": 7200, "base_kw": 5, "spread_s": 120, "ramp_steps": 3,
                   "ramp_step_s": 60, "settle_s": 0})  # fmt: skip
    first = fn.plan(GridState(now=0, assets=assets, load_kw=5, loop=True), p)
    assert first.report["held"] == 20 and first.report["groups"] == 0
    assert len(first.actions) == 20 and all(a.value is not None and a.at_s == 0 for a in first.actions)
    sent: dict[str, list[Any]] = {}
    memory, now, load = first.memory, 60.0, 5.0
    while now < 6 * 3600:
        step = fn.plan(GridState(now=now, assets=assets, load_kw=load, memory=memory, loop=True), p)
        assert all(0 <= a.at_s < 60 for a in step.actions)  # only what is due before the next step
        if load > 50:
            assert step.report["new"] == 0  # no room measured: nobody else comes back
        for a in step.actions:
            sent.setdefault(a.asset, []).append(a.value)
        memory = step.memory
        # The restored ones settle to their normal draw; every third minute an overload.
        restored = sum(1 for v in sent.values() if v[-1] is None)
        load = 5 + 2.0 * restored if int(now / 60) % 3 else 58.0
        if step.report["done"]:
            break
        now += 60
    assert step.report["done"] and step.report["groups"] > 1
    assert set(sent) == {s.asset.id for s in assets} and all(v[-1] is None for v in sent.values())
    tstat = next(s for s in assets if s.asset.kind == "thermostat")
    ramp = sent[tstat.asset.id][:-1]
    hold = first.memory["held"][0][2] if first.memory["held"][0][0] == tstat.asset.id else None
    assert len(ramp) == 2 and ramp == sorted(ramp, reverse=True) and ramp[-1] > tstat.value
    assert hold is None or ramp[0] < hold


def test_event_run_replans_every_step_and_releases_when_stopped_or_over(
    platform: Platform, tmp_path, peer
) -> None:
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.test_cli import osed

    home(platform, tmp_path, peer.host)
    body = {"buildings": ["hq"], "params": {"shed_kw": 1, "duration_s": 600}, "load_kw": 10,
            "duration_s": 60, "step_s": 1}  # fmt: skip
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        started = c.post("/gridfunctions/demand-response/run", json=body)
        assert started.status_code == 202
        run_id = started.json()["run"]
        deadline = time.monotonic() + 20
        while (
            c.get(f"/gridfunctions/runs/{run_id}").json().get("steps", 0) < 3 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        status = c.get(f"/gridfunctions/runs/{run_id}").json()
        assert status["status"] == "running" and status["steps"] >= 3 and status["written"] >= 1
        assert status["report"]["achieved_kw"] == 0  # the load given stays 10 kW
        leases = c.get("/edge/leases").json()
        assert leases and all(x["owner"] == f"gridfn:demand-response:{run_id}" for x in leases)
        assert all(x["expires"] <= time.time() + 61 for x in leases)  # they end with the event, not in 600 s
        assert peer.holding(12) != [1250] or peer.holding(10) != [740]
        stopped = c.delete(f"/gridfunctions/runs/{run_id}")
        assert stopped.status_code == 200
        assert c.get("/edge/leases").json() == [] and peer.holding(12) == [1250] and peer.holding(10) == [740]
        assert c.get(f"/gridfunctions/runs/{run_id}").json()["status"] == "stopped"
    # From the CLI: an event that ends by itself releases everything at its end.
    assert osed("load", str(tmp_path / "hq.csv"), "--building", "hq", cwd=tmp_path).returncode == 0
    done = osed("gridfn", "run", "demand-response", "--building", "hq", "--param", "shed_kw=1",
                "--param", "duration_s=600", "--load-kw", "10", "--duration", "3s", "--step", "1s",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["steps"] >= 2 and result["released"] >= 1
    assert "step 1" in done.stderr
    assert peer.holding(12) == [1250] and peer.holding(10) == [740]
