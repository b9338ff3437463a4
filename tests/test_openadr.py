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
    server = OpenADRServer(vtn_id="PLAINVTN", http_port=port, http_host="127.0.0.1",
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
