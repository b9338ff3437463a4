"""Nothing left on a device: the write-ahead journal of device writes and the service that
owns lease expiry, against real peers (a pymodbus server behind a proxy that acknowledges
writes slowly, a bacpypes3 device) and real processes (``osed write`` killed with SIGKILL
between the protocol write and its acknowledgement, ``osed edge-service``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api._service import Platform
from api.settings import Settings
from core.errors import DeviceTimeout, LeaseConflict
from edge import GraphResolver, Lease, PointTarget, SafetyLayer, SafetyStore
from edge.bacnet import BACnetAdapter
from edge.modbus import ModbusAdapter
from ontology import Ontology
from tests.peers.bacnet_device import bacnet_device, free_udp_port
from tests.peers.modbus_server import ModbusPeer
from tests.peers.modbus_slow_ack import SlowAckProxy
from tests.test_edge import load_building


@pytest.fixture
def modbus() -> Iterator[ModbusPeer]:
    peer = ModbusPeer(unit=3)
    peer.start()
    yield peer
    peer.stop()


def _setpoints(direct: str, slow: str) -> list[dict[str, Any]]:
    """Two setpoints on one Modbus controller: one reached directly, one through the
    slow-acknowledging proxy."""
    common = {"modbus_unit": 3, "modbus_type": "holding", "modbus_datatype": "int16", "modbus_scale": 0.1}
    return [
        {"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "min": 50, "max": 65,
         "modbus_register": 10, "modbus_host": direct, **common},
        {"name": "AHU-1.ZN-T-SP", "unit": "°F", "writable": "yes", "min": 60, "max": 85,
         "modbus_register": 14, "modbus_host": slow, **common},
    ]  # fmt: skip


def _stored_building(tmp_path: Path, ontology: Ontology, rows: list[dict[str, Any]]) -> Settings:
    """The building in an on-disk store under tmp_path/var, closed again for the processes."""
    settings = Settings(data_dir=tmp_path / "var")
    settings.agent.retrieval = False
    platform = Platform(settings, ontology=ontology)
    try:
        load_building(platform, tmp_path, rows)
    finally:
        platform.close()
    return settings


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "OSED_DATA_DIR": str(tmp_path / "var"),
        "OSED_AGENT__RETRIEVAL": "false",
        **extra,
    }


def _start(tmp_path: Path, *args: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args], cwd=tmp_path, env=env, text=True, **kwargs
    )


def _osed(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _leases(settings: Settings, *statuses: str) -> list[Lease]:
    store = SafetyStore(settings.safety_db())
    try:
        return store.leases(statuses=statuses)
    finally:
        store.close()


def _last_audit(settings: Settings) -> Any:
    store = SafetyStore(settings.safety_db())
    try:
        return store.audit_log(limit=1)[0]
    finally:
        store.close()


def _wait_for(check: Any, timeout_s: float, what: str) -> float:
    """Poll until ``check()``; the time.time() it first held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the journal, in a process that is killed -------------------------------------------------
def test_a_write_killed_before_the_device_acknowledges_it_is_undone_at_the_next_start(
    tmp_path: Path, ontology: Ontology, modbus: ModbusPeer
) -> None:
    proxy = SlowAckProxy(modbus.port, hold=1, delay_s=None)
    proxy.start()
    try:
        settings = _stored_building(tmp_path, ontology, _setpoints(modbus.host, proxy.host))
        modbus.set_holding(14, [720])  # 72.0 °F before anyone writes
        writer = _start(
            tmp_path,
            *("write", "AHU-1.ZN-T-SP", "70", "--building", "hq", "--for", "10m", "--reason", "pre-cool"),
            env=_env(tmp_path, OSED_EDGE__TIMEOUT_S="30"),  # it waits for the answer, not us
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proxy.held.wait(60), "the write never reached the device"
            # The device has the value; its answer is held back; the writer waits for it.
            assert modbus.holding(14) == [700] and proxy.writes_acknowledged == 0
            [intent] = _leases(settings, "writing")  # committed before the protocol write
            assert (intent.name, intent.value, intent.restore, intent.owner) == (
                "AHU-1.ZN-T-SP", 70, 72.0, "operator:cli"
            )  # fmt: skip
            assert intent.writer.startswith(f"{writer.pid}.")
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.communicate()
        proxy.let_go()
        assert modbus.holding(14) == [700]  # nothing runs, nothing put it back yet

        started = _osed(tmp_path, "leases", env=_env(tmp_path))  # the next start of OSED
        assert started.returncode == 0, started.stderr
        assert (
            f"lease {intent.id} on AHU-1.ZN-T-SP: write without a recorded outcome undone" in started.stderr
        )
        assert modbus.holding(14) == [720]  # the value read before the write is back
        assert intent.id not in started.stdout  # it holds nothing
        [lease] = _leases(settings)
        assert lease.status == "failed" and "ended before recording the outcome" in lease.error
        entry = _last_audit(settings)
        assert (entry.actor, entry.action, entry.old, entry.new, entry.result, entry.lease) == (
            "recovery", "revert", 70, 72.0, "ok", intent.id
        )  # fmt: skip
        assert "pre-cool" in entry.reason
    finally:
        proxy.stop()


# -- the service that owns expiry ---------------------------------------------------------------
def test_edge_service_reverts_a_cli_lease_at_expiry_and_undoes_a_killed_write(
    tmp_path: Path, ontology: Ontology, modbus: ModbusPeer
) -> None:
    proxy = SlowAckProxy(modbus.port, hold=1, delay_s=None)
    proxy.start()
    log = tmp_path / "edge-service.log"
    try:
        settings = _stored_building(tmp_path, ontology, _setpoints(modbus.host, proxy.host))
        modbus.set_holding(10, [550])
        modbus.set_holding(14, [720])
        with log.open("w") as sink:
            service = _start(tmp_path, "edge-service", env=_env(tmp_path), stderr=sink)
        try:
            _wait_for(lambda: "looked at every 1s" in log.read_text(), 60, "the edge service to start")

            # 1. A lease from `osed write`, whose process exits at once, ends on time.
            out = _osed(
                tmp_path,
                *("write", "AHU-1.SA-T-SP", "60", "--building", "hq", "--for", "2s", "--reason", "peak"),
                env=_env(tmp_path),
            )
            assert out.returncode == 0, out.stderr
            [lease] = _leases(settings, "active")
            seen_written = time.time()
            assert modbus.holding(10) == [600] and seen_written < lease.expires
            while modbus.holding(10) == [600]:
                seen_written = time.time()
                assert seen_written < lease.expires + 3, "the lease was not reverted"
                time.sleep(0.02)
            back_at = time.time()
            assert modbus.holding(10) == [550]
            assert seen_written >= lease.expires - 0.1  # held for its whole lease, not less
            assert back_at - lease.expires < 1.0  # and back within a second of expiry
            _wait_for(lambda: _last_audit(settings).action == "revert", 2, "the revert's audit line")
            entry = _last_audit(settings)
            assert (entry.actor, entry.action, entry.old, entry.new, entry.lease) == (
                "expiry", "revert", 60, 55.0, lease.id
            )  # fmt: skip

            # 2. A writer killed between its protocol write and the acknowledgement.
            writer = _start(
                tmp_path,
                *("write", "AHU-1.ZN-T-SP", "70", "--building", "hq", "--for", "10m", "--reason", "shed"),
                env=_env(tmp_path, OSED_EDGE__TIMEOUT_S="30"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert proxy.held.wait(60), "the write never reached the device"
            assert modbus.holding(14) == [700]
            time.sleep(1.3)  # more than one look of the service: a live writer is left alone
            assert modbus.holding(14) == [700] and [x.status for x in _leases(settings, "writing")] == [
                "writing"
            ]
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL
            killed_at = time.time()
            proxy.let_go()
            restored_at = _wait_for(lambda: modbus.holding(14) == [720], 5, "the killed write to be undone")
            assert restored_at - killed_at < 2.0
            _wait_for(lambda: _last_audit(settings).actor == "recovery", 2, "the undo's audit line")
            entry = _last_audit(settings)
            assert (entry.actor, entry.action, entry.old, entry.new, entry.result) == (
                "recovery", "revert", 70, 72.0, "ok"
            )  # fmt: skip
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(20)
        assert code == 0
        text = log.read_text()
        assert f"lease {lease.id} on AHU-1.SA-T-SP had expired: reverted" in text
        assert "AHU-1.ZN-T-SP: write without a recorded outcome undone" in text
        assert "osed edge-service: stopped" in text
    finally:
        proxy.stop()


# -- the journal in one process, against the slow device ------------------------------------------
@pytest.fixture
def slow_plant(
    platform: Platform, tmp_path: Path, modbus: ModbusPeer
) -> Iterator[tuple[SafetyLayer, ModbusPeer, SlowAckProxy]]:
    """The setpoint AHU-1.ZN-T-SP behind the slow proxy (nothing held until ``hold()``)."""
    proxy = SlowAckProxy(modbus.port, hold=0, delay_s=None)
    proxy.start()
    load_building(platform, tmp_path, _setpoints(modbus.host, proxy.host))
    modbus.set_holding(10, [550])
    modbus.set_holding(14, [720])
    layer = _layer(platform, tmp_path, timeout_s=0.5)
    yield layer, modbus, proxy
    asyncio.run(layer.close())
    proxy.let_go()
    proxy.stop()


def _layer(platform: Platform, tmp_path: Path, timeout_s: float = 1.0) -> SafetyLayer:
    return SafetyLayer(
        GraphResolver(platform.store),
        {"modbus": ModbusAdapter(timeout_s=timeout_s)},
        tmp_path / "safety.sqlite",
    )


def test_the_intent_is_committed_before_the_protocol_write(
    platform: Platform, tmp_path: Path, modbus: ModbusPeer
) -> None:
    load_building(platform, tmp_path, _setpoints(modbus.host, modbus.host))
    modbus.set_holding(10, [550])
    db = tmp_path / "safety.sqlite"
    seen: list[list[Lease]] = []

    class Watching(ModbusAdapter):
        async def write(self, target: PointTarget, value: Any, priority: int) -> None:
            other = SafetyStore(db)  # what another process would see, at the protocol write
            seen.append(other.leases(statuses=("writing",)))
            other.close()
            await super().write(target, value, priority)

    layer = SafetyLayer(GraphResolver(platform.store), {"modbus": Watching(timeout_s=1.0)}, db)
    result = asyncio.run(layer.write("hq", "AHU-1.SA-T-SP", 60, owner="cap", reason="t", duration_s=60))
    [[intent]] = seen
    assert (intent.id, intent.value, intent.restore) == (result.lease.id, 60, 55.0)
    assert intent.writer == layer.mark.token
    assert intent.target is not None and intent.target.address.register == 10  # type: ignore[union-attr]
    done = layer.store.lease(result.lease.id)
    assert done is not None and (done.status, done.writer) == ("active", "") and modbus.holding(10) == [600]
    asyncio.run(layer.close())


def test_a_write_with_no_answer_is_undone_at_once(slow_plant) -> None:
    layer, modbus, proxy = slow_plant
    proxy.delay_s = 2.5  # answers after the adapter (timeout 0.5 s) has given up
    proxy.hold(1)
    with pytest.raises(DeviceTimeout):
        asyncio.run(layer.write("hq", "AHU-1.ZN-T-SP", 70, owner="cap", reason="t", duration_s=60))
    assert proxy.held.is_set() and modbus.holding(14) == [720]  # it arrived, and was undone
    [lease] = layer.store.leases()
    assert lease.status == "failed" and "no answer to the write" in lease.error
    log = [(e.actor, e.action, e.result) for e in reversed(layer.store.audit_log())]
    assert log == [("cap", "write", "failed"), ("safety", "revert", "ok")]


def test_a_live_writer_is_left_alone_an_interrupted_one_undone_and_retried_until_the_device_is_back(
    slow_plant, platform: Platform, tmp_path: Path
) -> None:
    layer, modbus, proxy = slow_plant
    other = _layer(platform, tmp_path)  # a second process on the same lease store, as it were
    proxy.hold(1)

    async def scenario() -> None:
        writing = asyncio.create_task(
            layer.write("hq", "AHU-1.ZN-T-SP", 70, owner="tariff", reason="t", duration_s=60)
        )
        assert await asyncio.to_thread(proxy.held.wait, 10)
        assert modbus.holding(14) == [700]
        assert await other.expire_due() == []  # its writer runs: not ours to undo
        with pytest.raises(LeaseConflict, match="write in progress"):
            await other.write("hq", "AHU-1.ZN-T-SP", 80, owner="dr", reason="t", duration_s=60, priority=99)
        assert modbus.holding(14) == [700]
        writing.cancel()  # the write ends with no outcome
        with pytest.raises(asyncio.CancelledError):
            await writing

    asyncio.run(scenario())
    [orphan] = other.store.leases(statuses=("writing",))
    assert orphan.writer == ""
    modbus.stop()  # and the device is away when the next pass comes
    [pending] = asyncio.run(other.expire_due())
    assert pending.status == "writing" and "undoing it failed" in pending.error
    with pytest.raises(LeaseConflict):  # nobody takes the point meanwhile
        asyncio.run(
            other.write("hq", "AHU-1.ZN-T-SP", 80, owner="dr", reason="t", duration_s=60, priority=99)
        )
    modbus.start()  # same port; the restarted device lost its registers
    [done] = asyncio.run(other.expire_due())
    assert (done.id, done.status) == (orphan.id, "failed") and modbus.holding(14) == [720]
    results = [(e.actor, e.action, e.result) for e in reversed(other.store.audit_log(point=done.point))]
    assert results == [("dr", "write", "refused"), ("recovery", "revert", "failed"),
                       ("dr", "write", "refused"), ("recovery", "revert", "ok")]  # fmt: skip
    asyncio.run(other.close())


def test_an_interrupted_preemption_gives_the_point_back_to_its_holder(slow_plant) -> None:
    layer, modbus, proxy = slow_plant
    first = asyncio.run(
        layer.write("hq", "AHU-1.ZN-T-SP", 75, owner="tariff", reason="a", duration_s=600, priority=40)
    ).lease
    proxy.hold(1)

    async def interrupted() -> None:
        task = asyncio.create_task(
            layer.write("hq", "AHU-1.ZN-T-SP", 80, owner="dr", reason="b", duration_s=600, priority=70)
        )
        assert await asyncio.to_thread(proxy.held.wait, 10)
        assert modbus.holding(14) == [800]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proxy.let_go()
        [undone] = await layer.expire_due()
        assert undone.restore == 75 and undone.status == "failed"

    asyncio.run(interrupted())
    assert modbus.holding(14) == [750]  # the holder's value, not the one before it
    holder = layer.store.lease(first.id)
    assert holder is not None and holder.status == "active"  # still holds the point
    asyncio.run(layer.release(first.id, by="tariff"))
    assert modbus.holding(14) == [720]


def test_an_interrupted_bacnet_write_is_relinquished_at_its_priority(
    platform: Platform, tmp_path: Path
) -> None:
    with bacnet_device() as address:
        load_building(
            platform, tmp_path,
            [{"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "min": 50, "max": 65,
              "bacnet_device": 1001, "bacnet_object": "analog-value,1", "bacnet_address": address}],
        )  # fmt: skip
        adapter = BACnetAdapter(f"127.0.0.1:{free_udp_port()}", timeout_s=2.0)
        layer = SafetyLayer(GraphResolver(platform.store), {"bacnet": adapter}, tmp_path / "safety.sqlite")

        async def scenario() -> None:
            target = layer.resolve("hq", "AHU-1.SA-T-SP")
            # What a process killed after its protocol write leaves: a journaled intent whose
            # writer is gone (no live lock behind its token), and the value at priority 8.
            now = time.time()
            intent = Lease(
                id="killed0write", building="hq", point=target.iri, name=target.name, device=target.device,
                adapter="bacnet", owner="dr-run-9", owner_kind="function", reason="shed", priority=50,
                requested=61.0, value=61.0, original=None, created=now, expires=now + 600,
                status="writing", target=target, restore=None, writer="4242.deadbeef",
            )  # fmt: skip
            assert layer.store.journal(intent, None)
            await adapter.write(target, 61.0, 8)
            assert (await adapter.priority_array(target))[7] == 61.0
            [done] = await layer.expire_due()
            assert done.status == "failed"
            assert await adapter.priority_array(target) == [None] * 16
            entry = layer.store.audit_log(limit=1)[0]
            assert (entry.actor, entry.action, entry.new, entry.result) == (
                "recovery", "revert", "relinquished", "ok"
            )  # fmt: skip
            await layer.close()

        asyncio.run(scenario())
