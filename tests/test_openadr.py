"""OpenADR 2.0b on loopback, both sides real: our VEN against a plain openleadr VTN, our VTN
against a plain openleadr VEN, and our VEN against our VTN end to end. Writes go through the
safety layer to a real Modbus peer (pymodbus server)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openleadr import OpenADRServer

from api._service import Platform
from edge.openadr.signals import load_table, translate
from edge.openadr.ven import Ven
from tests.conftest import free_port
from tests.test_gridfunctions import home, peer  # noqa: F401 - the Modbus peer fixture

logging.getLogger("openleadr").setLevel(logging.ERROR)


async def until(check: Callable[[], Any], timeout_s: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def plain_vtn(port: int, opts: dict[str, str], reports: list[tuple[str, float]]) -> OpenADRServer:
    def ven_lookup(ven_id: str) -> dict[str, str]:
        # openleadr keeps the lookup on a class: every VTN in a process needs its own.
        known = {"ven_id": "ven-hq", "ven_name": "hq-ven", "registration_id": "reg-hq"}
        return known if ven_id == "ven-hq" else {}

    server = OpenADRServer(vtn_id="PLAINVTN", http_port=port, http_host="127.0.0.1", ven_lookup=ven_lookup,
                           requested_poll_freq=timedelta(seconds=1), show_fingerprint=False)  # fmt: skip

    async def on_create_party_registration(registration_info: dict[str, Any]) -> tuple[str, str]:
        return "ven-hq", "reg-hq"

    async def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
                                 max_sampling_interval):  # fmt: skip
        def got(values: list[tuple[datetime, float]]) -> None:
            reports.extend((measurement, v) for _dt, v in values)

        return got, timedelta(seconds=1)

    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler("on_register_report", on_register_report)
    server.opts = opts  # type: ignore[attr-defined]
    return server


def simple_event(server: OpenADRServer, opts: dict[str, str], level: float, seconds: int, name: str = "SIMPLE",
                 type_: str = "level") -> str:  # fmt: skip
    def opted(ven_id: str, event_id: str, opt_type: str) -> None:
        opts[event_id] = opt_type

    return server.add_event(
        ven_id="ven-hq", signal_name=name, signal_type=type_,
        intervals=[{"dtstart": datetime.now(UTC), "duration": timedelta(seconds=seconds), "signal_payload": level}],
        callback=opted,
    )  # fmt: skip


def test_signal_table_translates_events_and_refuses_what_it_cannot_run(tmp_path) -> None:
    rules = load_table()
    now = datetime.now(UTC)
    event = {"event_descriptor": {"event_id": "e1", "modification_number": 2},
             "active_period": {"dtstart": now, "duration": timedelta(hours=1)},
             "event_signals": [{"signal_name": "ELECTRICITY_PRICE", "signal_type": "price", "intervals": [
                 {"uid": 0, "duration": timedelta(minutes=30), "signal_payload": 0.1},
                 {"uid": 1, "duration": timedelta(minutes=15), "signal_payload": 0.4},
                 {"uid": 2, "duration": timedelta(minutes=15), "signal_payload": 0.2}]}]}  # fmt: skip
    tr = translate(event, rules)
    assert (
        tr.rule.function == "dynamic-tariff" and tr.modification == 2 and tr.end == now + timedelta(hours=1)
    )
    assert tr.params_at(now)["prices"] == [0.1, 0.1, 0.4, 0.2] and tr.params_at(now)["step_s"] == 900
    assert tr.params_at(now + timedelta(minutes=31))["prices"] == [0.4, 0.2]
    event["event_signals"][0].update(signal_name="SIMPLE", signal_type="level")
    for iv, level in zip(event["event_signals"][0]["intervals"], (1, 3, 0), strict=True):
        iv["signal_payload"] = level
    simple = translate(event, rules)
    assert simple.params_at(now)["shed_share"] == 0.33 and simple.params_at(now)["duration_s"] == 3600
    assert simple.params_at(now + timedelta(minutes=40))["shed_share"] == 1.0
    assert simple.params_at(now + timedelta(minutes=50))["shed_share"] == 0.0
    with pytest.raises(Exception, match="not in the signal table"):
        event["event_signals"][0].update(signal_name="BID_LOAD", signal_type="setpoint")
        translate(event, rules)
    with pytest.raises(Exception, match="malformed event"):
        translate({"nothing": 1}, rules)
    bad = tmp_path / "table.json"
    bad.write_text('[{"signal": "SIMPLE", "function": "demand-response", "param": "nope"}]', "utf-8")
    with pytest.raises(Exception, match=r"table\.json: entry 1: field 'param'"):
        load_table(bad)


def test_our_ven_against_a_plain_openleadr_vtn(platform: Platform, tmp_path, peer) -> None:  # noqa: F811
    home(platform, tmp_path, peer.host)
    platform.settings.openadr.report_min_s = 1.0
    port = free_port()
    opts: dict[str, str] = {}
    reports: list[tuple[str, float]] = []

    async def scenario() -> None:
        ven = Ven(platform, vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", ven_name="hq-ven",
                  buildings=["hq"])  # fmt: skip
        stop = asyncio.Event()
        ven_task = asyncio.create_task(ven.run(stop))
        # The VTN is down at first: the VEN retries with backoff, then registers.
        await asyncio.sleep(1.5)
        assert not ven.registered.is_set()
        server = plain_vtn(port, opts, reports)
        await server.run()
        try:
            await asyncio.wait_for(ven.registered.wait(), 20)
            event_id = simple_event(server, opts, level=2, seconds=60)
            await until(lambda: opts.get(event_id), what="the opt response")
            assert opts[event_id] == "optIn"
            leases = await until(lambda: platform.safety.store.leases(statuses=("active",)), what="leases")
            assert {x.owner for x in leases} == {f"gridfn:demand-response:oadr-{event_id}-0"}
            assert all(x.expires <= time.time() + 61 for x in leases)  # they end with the event
            assert peer.holding(12) != [1250] or peer.holding(10) != [740] or peer.holding(13) != [320]
            # Telemetry and flexibility come back as reports.
            await until(
                lambda: {m for m, _v in reports} >= {"RealPower", "availableFlexibility"}, what="reports"
            )
            assert any(m == "availableFlexibility" and v > 0 for m, v in reports)
            # Cancelling the event releases the leases at once.
            server.cancel_event("ven-hq", event_id)
            await until(lambda: not platform.safety.store.leases(statuses=("active",)), what="release")
            assert peer.holding(10) == [740] and peer.holding(12) == [1250] and peer.holding(13) == [320]
            assert ven.events[event_id].status == "cancelled"
            # A signal the table does not know is opted out with a reason.
            other = simple_event(server, opts, level=5.0, seconds=60, name="BID_LOAD", type_="setpoint")
            await until(lambda: opts.get(other), what="the opt-out")
            assert opts[other] == "optOut" and "not in the signal table" in ven.events[other].reason
            # Malformed payloads never crash the VEN.
            assert await ven.on_event({"event_descriptor": None}) == "optOut"
            assert (
                await ven.on_event({"event_descriptor": {"event_id": "x"}, "event_signals": [{}]}) == "optOut"
            )
        finally:
            stop.set()
            await ven_task
            await server.stop()

    asyncio.run(scenario())


def test_our_vtn_against_a_plain_openleadr_ven_and_our_ven_end_to_end(
    platform: Platform,
    tmp_path,
    peer,  # noqa: F811
) -> None:
    from fastapi.testclient import TestClient
    from openleadr import OpenADRClient

    from api.app import create_app
    from edge.openadr.vtn import Vtn

    home(platform, tmp_path, peer.host)
    s = platform.settings.openadr
    s.vtn_poll_s = s.vtn_report_s = s.report_min_s = 1.0
    vtn = Vtn(s, tmp_path / "var", port=free_port())
    received: list[tuple[str, str, str]] = []

    def on_event(event: dict[str, Any]) -> str:
        d = event["event_descriptor"]
        received.append((d["event_id"], d["event_status"], event["event_signals"][0]["signal_name"]))
        return "optIn"

    async def on_update_event(event: dict[str, Any]) -> str:
        return on_event(event)

    async def scenario(c: TestClient) -> None:
        async def call(method: str, url: str, **kw: Any) -> Any:
            return await asyncio.to_thread(getattr(c, method), url, **kw)

        provisioned = await call("post", "/openadr/vens", json={"ven_name": "plain-ven", "groups": ["north"]})
        assert provisioned.status_code == 201
        plain_id = provisioned.json()["ven_id"]
        plain = OpenADRClient(ven_name="plain-ven", vtn_url=vtn.url, show_fingerprint=False)
        plain.on_event, plain.on_update_event = on_event, on_update_event
        plain.add_report(callback=lambda: 42.0, resource_id="meter-1", measurement="power_real",
                         sampling_rate=timedelta(seconds=1), report_duration=timedelta(hours=1))  # fmt: skip
        await plain.run()
        ours = Ven(platform, vtn_url=vtn.url, ven_name="hq-ven", buildings=["hq"])
        stop = asyncio.Event()
        ours_task = asyncio.create_task(ours.run(stop))
        try:
            assert plain.ven_id == plain_id  # the VTN gave the provisioned id
            await asyncio.wait_for(ours.registered.wait(), 20)
            vens = (await call("get", "/openadr/vens")).json()
            assert {v["ven_name"] for v in vens if v["registration_id"]} == {"plain-ven", "hq-ven"}
            # Bad input is refused with what is wrong.
            bad = await call("post", "/openadr/events", json={"ven_ids": ["nobody"], "signal_name": "SIMPLE",
                             "signal_type": "level", "intervals": [{"duration_s": 60, "value": 1}]})  # fmt: skip
            assert bad.status_code == 400 and "nobody" in bad.json()["detail"]
            # An event for a group reaches the plain VEN, which opts in; its reports arrive.
            body = {"group": "north", "signal_name": "SIMPLE", "signal_type": "level",
                    "intervals": [{"duration_s": 120, "value": 1}]}  # fmt: skip
            created = await call("post", "/openadr/events", json=body)
            assert created.status_code == 201, created.text
            north = created.json()["event_id"]
            assert created.json()["targets"] == [plain_id]

            async def event(event_id: str) -> dict[str, Any]:
                return (await call("get", f"/openadr/events/{event_id}")).json()

            await until(lambda: received, what="the plain VEN's event")
            got = await until_async(lambda: event(north), lambda e: e["opts"].get(plain_id) == "optIn")
            assert plain_id in got["delivered"]
            reports = await until_async(lambda: call("get", "/openadr/reports", params={"ven_id": plain_id}),
                                        lambda r: r.json().get(plain_id))  # fmt: skip
            assert 42.0 in [v for series in reports.json()[plain_id].values() for _t, v in series]
            changed = await call(
                "patch", f"/openadr/events/{north}", json={"intervals": [{"duration_s": 60, "value": 2}]}
            )
            assert changed.status_code == 200 and changed.json()["modification"] == 1
            await until(lambda: len(received) >= 2, what="the modification")
            assert (await call("delete", f"/openadr/events/{north}")).json()["status"] == "cancelled"
            await until(lambda: any(r[1] == "cancelled" for r in received), what="the cancellation")
            # End to end: an event for all VENs makes our VEN plan and lease through the safety layer.
            body = {"all": True, "signal_name": "SIMPLE", "signal_type": "level",
                    "intervals": [{"duration_s": 120, "value": 2}]}  # fmt: skip
            everyone = (await call("post", "/openadr/events", json=body)).json()["event_id"]
            ours_id = ours.client.ven_id if ours.client else ""
            await until_async(lambda: event(everyone), lambda e: e["opts"].get(ours_id) == "optIn")
            leases = await until(lambda: platform.safety.store.leases(statuses=("active",)), what="leases")
            assert {x.owner for x in leases} == {f"gridfn:demand-response:oadr-{everyone}-0"}
            assert peer.holding(12) != [1250] or peer.holding(10) != [740] or peer.holding(13) != [320]
            flex = await until_async(lambda: call("get", "/openadr/reports", params={"ven_id": ours_id}),
                                     lambda r: "availableFlexibility" in r.json().get(ours_id, {}))  # fmt: skip
            assert flex.json()[ours_id]["RealPower"]
            await call("delete", f"/openadr/events/{everyone}")
            await until(lambda: not platform.safety.store.leases(statuses=("active",)), what="release")
            assert peer.holding(10) == [740] and peer.holding(12) == [1250] and peer.holding(13) == [320]
        finally:
            stop.set()
            await ours_task
            await plain.stop()

    with TestClient(create_app(platform.settings, platform=platform, vtn=vtn)) as c:
        asyncio.run(scenario(c))


async def until_async(get: Callable[[], Any], ok: Callable[[Any], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await get()
        if ok(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out; last: {value!r}")


def test_an_event_that_ends_while_the_vtn_is_gone_still_ends_and_releases(
    platform: Platform,
    tmp_path,
    peer,  # noqa: F811
) -> None:
    home(platform, tmp_path, peer.host)
    port = free_port()
    opts: dict[str, str] = {}

    async def scenario() -> None:
        server = plain_vtn(port, opts, [])
        await server.run()
        ven = Ven(platform, vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", ven_name="hq-ven",
                  buildings=["hq"])  # fmt: skip
        stop = asyncio.Event()
        ven_task = asyncio.create_task(ven.run(stop))
        try:
            await asyncio.wait_for(ven.registered.wait(), 20)
            event_id = simple_event(server, opts, level=3, seconds=6)
            await until(lambda: opts.get(event_id) == "optIn", what="the opt-in")
            await until(lambda: platform.safety.store.leases(statuses=("active",)), what="leases")
            await server.stop()  # the VTN drops mid-event
            await until(lambda: not platform.safety.store.leases(statuses=("active",)), timeout_s=30,
                        what="the release at the event's end")  # fmt: skip
            assert ven.events[event_id].status == "finished"
            assert peer.holding(10) == [740] and peer.holding(12) == [1250] and peer.holding(13) == [320]
            assert ven.client is not None and ven.client.failures >= 1  # polls failed and backed off
        finally:
            stop.set()
            await ven_task

    asyncio.run(scenario())
