"""Edge adapters against real peers on loopback (a bacpypes3 device, a pymodbus server,
mosquitto) and HTTP servers that follow EdgeX core-command v3 and Home Assistant's REST API
exactly (those two cannot run here), and every safety rule against a real peer."""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api._service import Platform
from core.errors import (
    DeviceLocked,
    EdgeError,
    LeaseConflict,
    NotWritable,
    OsedError,
    OutOfLimits,
    PointLocked,
    PointNotFound,
)
from edge import GraphResolver, PointLimit, SafetyConfig, SafetyLayer
from edge.bacnet import BACnetAdapter
from edge.edgex import EdgeXAdapter
from edge.homeassistant import HomeAssistantAdapter
from edge.modbus import ModbusAdapter
from edge.mqtt import MQTTAdapter
from mapper import read_points
from tests.peers.bacnet_device import bacnet_device, free_udp_port
from tests.peers.http_peers import HA_TOKEN, edgex_command_app, homeassistant_app, serve
from tests.peers.modbus_server import ModbusPeer
from tests.peers.mqtt_broker import MQTTDevice, mosquitto

COLUMNS = [
    "name", "unit", "writable", "min", "max", "bacnet_device", "bacnet_object", "bacnet_address",
    "modbus_unit", "modbus_register", "modbus_type", "modbus_datatype", "modbus_scale", "modbus_host",
    "modbus_word_order", "mqtt_topic", "mqtt_command_topic", "edgex_device", "edgex_resource",
    "ha_entity", "ha_attribute",
]  # fmt: skip


def load_building(platform: Platform, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "points.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    platform.import_points("hq", read_points(path))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def modbus() -> Iterator[ModbusPeer]:
    peer = ModbusPeer(unit=3)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def plant(
    platform: Platform, tmp_path: Path, modbus: ModbusPeer
) -> Iterator[tuple[SafetyLayer, ModbusPeer, Clock]]:
    """A building whose AHU controller is a real Modbus device, and a safety layer on it."""
    common = {"modbus_unit": 3, "modbus_host": modbus.host, "modbus_type": "holding"}
    load_building(
        platform,
        tmp_path,
        [
            {"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "min": 50, "max": 65,
             "modbus_register": 10, "modbus_datatype": "int16", "modbus_scale": 0.1, **common},
            {"name": "AHU-1.SA-T", "unit": "°F", "writable": "no",
             "modbus_register": 12, "modbus_datatype": "int16", "modbus_scale": 0.1, **common},
            {"name": "AHU-1.SF-CMD", "writable": "yes", "modbus_register": 5, "modbus_type": "coil",
             "modbus_datatype": "bool", "modbus_unit": 3, "modbus_host": modbus.host},
            {"name": "AHU-1.ZN-T-SP", "unit": "°F", "writable": "yes", "min": 60, "max": 85,
             "modbus_register": 14, "modbus_datatype": "int16", "modbus_scale": 0.1, **common},
        ],
    )  # fmt: skip
    modbus.set_holding(10, [550])  # 55.0 °F before anyone writes
    modbus.set_holding(14, [720])
    clock = Clock()
    layer = SafetyLayer(
        GraphResolver(platform.store), {"modbus": ModbusAdapter(timeout_s=1.0)}, tmp_path / "safety.sqlite",
        SafetyConfig(), clock=clock,
    )  # fmt: skip
    yield layer, modbus, clock
    asyncio.run(layer.close())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def eventually(check: Any, timeout_s: float = 5.0) -> None:
    """MQTT delivers after the broker acknowledges: wait for the device to have it."""
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


# -- adapters ---------------------------------------------------------------------------------
def test_bacnet_write_at_priority_8_and_release_relinquishes(platform: Platform, tmp_path: Path) -> None:
    with bacnet_device() as address:
        load_building(
            platform, tmp_path,
            [{"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "min": 50, "max": 65,
              "bacnet_device": 1001, "bacnet_object": "analog-value,1", "bacnet_address": address},
             {"name": "AHU-1.OCC-MODE", "writable": "yes", "bacnet_device": 1001,
              "bacnet_object": "binary-value,1", "bacnet_address": address}],
        )  # fmt: skip
        adapter = BACnetAdapter(f"127.0.0.1:{free_udp_port()}", timeout_s=2.0)
        layer = SafetyLayer(
            GraphResolver(platform.store), {"bacnet": adapter}, None, SafetyConfig(bacnet_priority=8)
        )

        async def scenario() -> None:
            sp = layer.resolve("hq", "AHU-1.SA-T-SP")
            assert await adapter.priority_array(sp) == [None] * 16
            result = await layer.write(
                "hq", "AHU-1.SA-T-SP", 60.5, owner="dr-run-1", reason="shed", duration_s=600
            )
            slots = await adapter.priority_array(sp)
            assert slots[7] == 60.5 and [s for i, s in enumerate(slots) if i != 7] == [None] * 15
            assert await adapter.read(sp) == 60.5
            await layer.release(result.lease.id, by="dr-run-1")
            assert await adapter.priority_array(sp) == [None] * 16
            assert await adapter.read(sp) == 55.0  # back to the relinquish default
            occ = layer.resolve("hq", "AHU-1.OCC-MODE")
            await layer.write(
                "hq", "AHU-1.OCC-MODE", False, owner="dr-run-1", reason="unoccupied", duration_s=60
            )
            assert (await adapter.priority_array(occ))[7] is False and await adapter.read(occ) is False
            with pytest.raises(EdgeError, match="1-2 are life safety"):
                await adapter.write(sp, 50.0, 1)
            # A write the device refuses (a BACnet error: no such object) is a typed error
            # naming device and point.
            from edge import PointTarget
            from mapper import BACnetAddress

            ghost = BACnetAddress(1001, "analog-value", 99, device_address=address)
            with pytest.raises(PointNotFound, match=r"AHU-1\.GHOST.*unknown-object") as refused:
                await adapter.write(PointTarget("hq", "urn:x", "AHU-1.GHOST", ghost, True), 10.0, 8)
            assert refused.value.device.startswith("bacnet:1001")
            await layer.close()

        run(scenario())


def test_modbus_data_types_word_order_and_scale(modbus: ModbusPeer) -> None:
    from edge import PointTarget
    from mapper import ModbusAddress

    def target(register: int, kind: str, dtype: str, scale: float = 1.0, order: str = "big") -> PointTarget:
        return PointTarget("hq", f"urn:p{register}", f"R{register}",
                           ModbusAddress(3, register, kind, dtype, scale, order, host=modbus.host), True)  # fmt: skip

    async def scenario() -> None:
        a = ModbusAdapter(timeout_s=1.0)
        i16 = target(20, "holding", "int16", 0.1)
        await a.write(i16, -12.5, 8)
        assert modbus.holding(20) == [0x10000 - 125] and await a.read(i16) == -12.5
        u16 = target(21, "holding", "uint16")
        await a.write(u16, 60000, 8)
        assert modbus.holding(21) == [60000] and await a.read(u16) == 60000
        i32 = target(30, "holding", "int32")
        await a.write(i32, -100_000, 8)
        assert modbus.holding(30, 2) == [0xFFFE, 0x7960] and await a.read(i32) == -100_000
        big = target(40, "holding", "float32")
        little = target(42, "holding", "float32", order="little")
        await a.write(big, 12.25, 8)
        await a.write(little, 12.25, 8)
        assert modbus.holding(40, 2) == [0x4144, 0x0000]
        assert modbus.holding(42, 2) == [0x0000, 0x4144]
        assert await a.read(big) == 12.25 and await a.read(little) == 12.25
        coil = target(7, "coil", "bool")
        await a.write(coil, True, 8)
        assert modbus.coil(7) is True and await a.read(coil) is True
        with pytest.raises(EdgeError, match="read-only"):
            await a.write(target(3, "input", "uint16"), 1, 8)
        await a.close()

    run(scenario())


def test_mqtt_commands_and_state_through_mosquitto(platform: Platform, tmp_path: Path) -> None:
    with mosquitto(tmp_path) as port:
        device = MQTTDevice(port, "site/tstat1", {"setpoint": "72", "fan": "OFF"})
        try:
            load_building(
                platform, tmp_path,
                [{"name": "TSTAT-1.SP", "unit": "°F", "writable": "yes", "min": 60, "max": 80,
                  "mqtt_topic": "site/tstat1/setpoint", "mqtt_command_topic": "site/tstat1/setpoint/set"},
                 {"name": "TSTAT-1.FAN", "writable": "yes", "mqtt_topic": "site/tstat1/fan",
                  "mqtt_command_topic": "site/tstat1/fan/set"}],
            )  # fmt: skip
            adapter = MQTTAdapter("127.0.0.1", port, timeout_s=3.0)
            layer = SafetyLayer(GraphResolver(platform.store), {"mqtt": adapter}, None)

            async def scenario() -> None:
                lease = (
                    await layer.write(
                        "hq", "TSTAT-1.SP", 76, owner="tariff", reason="pre-cool", duration_s=60
                    )
                ).lease
                assert lease.original == 72.0  # read from the retained state before writing
                await eventually(lambda: device.received[-1:] == [("setpoint", "76")])
                await layer.write(
                    "hq", "TSTAT-1.FAN", True, owner="tariff", reason="circulate", duration_s=60
                )
                await eventually(lambda: device.value("fan") == "ON")
                await layer.release(lease.id, by="tariff")
                await eventually(lambda: device.received[-1:] == [("setpoint", "72.0")])
                for _ in range(50):  # the state topic follows
                    if await adapter.read(layer.resolve("hq", "TSTAT-1.SP")) == 72.0:
                        break
                    await asyncio.sleep(0.05)
                assert await adapter.read(layer.resolve("hq", "TSTAT-1.SP")) == 72.0
                found = await MQTTAdapter(
                    "127.0.0.1", port, timeout_s=0.5, discovery_topic="site/#"
                ).discover()
                assert {p.name for p in found} >= {"site/tstat1/setpoint"}
                await layer.close()

            run(scenario())
        finally:
            device.close()


def test_edgex_core_command_read_write_and_typed_errors(platform: Platform, tmp_path: Path) -> None:
    devices: dict[str, dict[str, Any]] = {
        "evse-1": {"adminState": "UNLOCKED", "resources": {
            "CurrentLimit": {"valueType": "Float32", "value": "32", "readWrite": "RW"},
            "Enabled": {"valueType": "Bool", "value": "true", "readWrite": "RW"},
            "Power": {"valueType": "Float32", "value": "7.2", "readWrite": "R"}}},
        "evse-2": {"adminState": "LOCKED", "resources": {
            "CurrentLimit": {"valueType": "Int32", "value": "16", "readWrite": "RW"}}},
    }  # fmt: skip
    with serve(edgex_command_app(devices)) as url:
        load_building(
            platform, tmp_path,
            [{"name": "EVSE-1 current limit", "unit": "A", "writable": "yes", "min": 6, "max": 32,
              "edgex_device": "evse-1", "edgex_resource": "CurrentLimit"},
             {"name": "EVSE-1 enabled", "writable": "yes", "edgex_device": "evse-1", "edgex_resource": "Enabled"},
             {"name": "EVSE-2 current limit", "unit": "A", "writable": "yes",
              "edgex_device": "evse-2", "edgex_resource": "CurrentLimit"},
             {"name": "EVSE-9 current limit", "unit": "A", "writable": "yes",
              "edgex_device": "evse-9", "edgex_resource": "CurrentLimit"}],
        )  # fmt: skip
        adapter = EdgeXAdapter(url, timeout_s=2.0)
        layer = SafetyLayer(GraphResolver(platform.store), {"edgex": adapter}, None)

        async def scenario() -> None:
            assert await adapter.read(layer.resolve("hq", "EVSE-1 current limit")) == 32.0
            assert await adapter.read(layer.resolve("hq", "EVSE-1 enabled")) is True
            lease = (
                await layer.write("hq", "EVSE-1 current limit", 12, owner="cap", reason="t-17", duration_s=60)
            ).lease
            assert devices["evse-1"]["resources"]["CurrentLimit"]["value"] == "12.0"
            await layer.write("hq", "EVSE-1 enabled", False, owner="cap", reason="t-17", duration_s=60)
            assert devices["evse-1"]["resources"]["Enabled"]["value"] == "false"
            await layer.release(lease.id, by="cap")
            assert devices["evse-1"]["resources"]["CurrentLimit"]["value"] == "32.0"
            with pytest.raises(DeviceLocked, match="evse-2") as locked:
                await layer.write("hq", "EVSE-2 current limit", 10, owner="cap", reason="t-17", duration_s=60)
            assert locked.value.point == "EVSE-2 current limit"
            with pytest.raises(PointNotFound, match="evse-9"):
                await layer.write("hq", "EVSE-9 current limit", 10, owner="cap", reason="t-17", duration_s=60)
            failed = layer.store.leases(statuses=("failed",))
            assert {f.name for f in failed} == {"EVSE-2 current limit", "EVSE-9 current limit"}
            assert (
                all(f.error for f in failed)
                and layer.store.leases(statuses=("active",))[0].name == "EVSE-1 enabled"
            )
            assert devices["evse-2"]["resources"]["CurrentLimit"]["value"] == "16"  # nothing partial
            await layer.close()

        run(scenario())


def test_edgex_commands_over_the_message_bus(platform: Platform, tmp_path: Path) -> None:
    from edge.edgex import EdgeXMessageBus
    from tests.peers.mqtt_broker import EdgeXCommandBus

    devices: dict[str, dict[str, Any]] = {
        "hvac-1": {"resources": {"Setpoint": {"valueType": "Float32", "value": "21.5"}}},
        "hvac-2": {
            "adminState": "LOCKED",
            "resources": {"Setpoint": {"valueType": "Float32", "value": "20"}},
        },
    }
    with mosquitto(tmp_path) as port:
        core_command = EdgeXCommandBus(port, devices)
        try:
            load_building(
                platform, tmp_path,
                [{"name": "HVAC-1 setpoint", "unit": "°C", "writable": "yes", "edgex_device": "hvac-1",
                  "edgex_resource": "Setpoint"},
                 {"name": "HVAC-2 setpoint", "unit": "°C", "writable": "yes", "edgex_device": "hvac-2",
                  "edgex_resource": "Setpoint"}],
            )  # fmt: skip
            adapter = EdgeXAdapter("", bus=EdgeXMessageBus("127.0.0.1", port, timeout_s=3.0))
            layer = SafetyLayer(GraphResolver(platform.store), {"edgex": adapter}, None)

            async def scenario() -> None:
                lease = (
                    await layer.write("hq", "HVAC-1 setpoint", 24, owner="dr", reason="shed", duration_s=60)
                ).lease
                assert (
                    lease.original == 21.5 and devices["hvac-1"]["resources"]["Setpoint"]["value"] == "24.0"
                )
                await layer.release(lease.id, by="dr")
                assert devices["hvac-1"]["resources"]["Setpoint"]["value"] == "21.5"
                with pytest.raises(DeviceLocked, match="hvac-2"):
                    await layer.write("hq", "HVAC-2 setpoint", 24, owner="dr", reason="shed", duration_s=60)
                await layer.close()

            run(scenario())
        finally:
            core_command.close()


def test_homeassistant_services_and_temperature_units(platform: Platform, tmp_path: Path) -> None:
    app = homeassistant_app()
    entities = app.state.entities
    with serve(app) as url:
        load_building(
            platform, tmp_path,
            [{"name": "Lobby setpoint", "unit": "°C", "writable": "yes", "min": 16, "max": 28,
              "ha_entity": "climate.lobby", "ha_attribute": "temperature"},
             {"name": "Kitchen water heater", "unit": "°F", "writable": "yes", "min": 100, "max": 140,
              "ha_entity": "water_heater.kitchen", "ha_attribute": "temperature"},
             {"name": "EV charger", "writable": "yes", "ha_entity": "switch.ev_charger"},
             {"name": "Battery limit", "unit": "kW", "writable": "yes", "min": 0, "max": 10,
              "ha_entity": "number.battery_power_limit"}],
        )  # fmt: skip
        adapter = HomeAssistantAdapter(url, HA_TOKEN, timeout_s=2.0)
        layer = SafetyLayer(GraphResolver(platform.store), {"homeassistant": adapter}, None)

        async def scenario() -> None:
            lobby = (
                await layer.write("hq", "Lobby setpoint", 24, owner="dr", reason="shed", duration_s=60)
            ).lease
            assert lobby.original == pytest.approx(22.22, abs=0.01)  # HA says 72 °F
            assert entities["climate.lobby"]["attributes"]["temperature"] == pytest.approx(75.2)
            await layer.write("hq", "Kitchen water heater", 110, owner="dr", reason="shed", duration_s=60)
            assert entities["water_heater.kitchen"]["attributes"]["temperature"] == 110
            await layer.write("hq", "EV charger", False, owner="dr", reason="shed", duration_s=60)
            assert entities["switch.ev_charger"]["state"] == "off"
            await layer.write("hq", "Battery limit", 2.5, owner="dr", reason="shed", duration_s=60)
            assert entities["number.battery_power_limit"]["state"] == "2.5"
            await layer.release_owner("dr", by="dr")
            assert entities["climate.lobby"]["attributes"]["temperature"] == pytest.approx(72.0, abs=0.02)
            assert entities["water_heater.kitchen"]["attributes"]["temperature"] == 120
            assert entities["switch.ev_charger"]["state"] == "on"
            assert entities["number.battery_power_limit"]["state"] == "5.0"
            await layer.close()

        run(scenario())


# -- the safety rules, against the Modbus device -----------------------------------------------
def test_capability_only_points_the_graph_makes_writable(plant) -> None:
    layer, modbus, _clock = plant
    modbus.set_holding(12, [701])
    with pytest.raises(NotWritable, match=r"AHU-1\.SA-T"):
        run(layer.write("hq", "AHU-1.SA-T", 40, owner="cap", reason="test", duration_s=60))
    assert modbus.holding(12) == [701]
    entry = layer.store.audit_log(limit=1)[0]
    assert (entry.actor, entry.action, entry.result) == ("cap", "write", "refused")
    with pytest.raises(OsedError, match=r"no point .AHU-9\.XX."):
        run(layer.write("hq", "AHU-9.XX", 40, owner="cap", reason="test", duration_s=60))


def test_limits_clamp_refuse_and_rate(plant) -> None:
    layer, modbus, _clock = plant
    result = run(layer.write("hq", "AHU-1.SA-T-SP", 90, owner="cap", reason="test", duration_s=60))
    assert result.lease.value == 65.0 and "clamped 90 to 65" in result.notes[0]
    assert modbus.holding(10) == [650]
    run(layer.release(result.lease.id, by="cap"))
    layer.config.limit_mode = "refuse"
    with pytest.raises(OutOfLimits, match=r"outside 50\.0\.\.65\.0"):
        run(layer.write("hq", "AHU-1.SA-T-SP", 20, owner="cap", reason="test", duration_s=60))
    assert modbus.holding(10) == [550]
    # Site limits narrow the graph's, and a ramp limit keeps steps small.
    layer.config.limit_mode = "clamp"
    layer.config.limits = {"AHU-1.ZN-T-SP": PointLimit(minimum=68, maximum=78, max_rate_per_min=2.0)}
    step = run(layer.write("hq", "AHU-1.ZN-T-SP", 77, owner="cap", reason="test", duration_s=60))
    assert step.lease.value == 74.0 and "rate-limited" in step.notes[0]
    assert modbus.holding(14) == [740]


def test_lease_release_and_expiry_restore_the_value_read_before(plant) -> None:
    layer, modbus, clock = plant
    lease = run(layer.write("hq", "AHU-1.SA-T-SP", 60, owner="cap", reason="test", duration_s=300)).lease
    assert (lease.original, modbus.holding(10)) == (55.0, [600])
    assert run(layer.expire_due()) == []  # not yet
    clock.now += 301
    [done] = run(layer.expire_due())
    assert (done.id, done.status) == (lease.id, "expired")
    assert modbus.holding(10) == [550]
    fan = run(layer.write("hq", "AHU-1.SF-CMD", True, owner="cap", reason="test", duration_s=300)).lease
    assert modbus.coil(5) is True
    run(layer.release(fan.id, by="cap"))
    assert modbus.coil(5) is False and layer.store.lease(fan.id).status == "released"


def test_arbitration_preempts_by_priority_and_refuses_equals(plant) -> None:
    layer, modbus, _clock = plant
    first = run(
        layer.write("hq", "AHU-1.SA-T-SP", 60, owner="tariff", reason="a", duration_s=600, priority=40)
    ).lease
    with pytest.raises(LeaseConflict, match="held by tariff"):
        run(layer.write("hq", "AHU-1.SA-T-SP", 62, owner="capacity", reason="b", duration_s=600, priority=40))
    assert modbus.holding(10) == [600]
    second = run(
        layer.write("hq", "AHU-1.SA-T-SP", 63, owner="dr-event", reason="c", duration_s=600, priority=70)
    )
    assert second.preempted is not None and second.preempted.id == first.id
    assert layer.store.lease(first.id).status == "preempted"
    assert layer.notifications[-1][:2] == (first.id, "tariff")  # the preempted owner is told
    assert second.lease.original == 55.0 and modbus.holding(10) == [630]
    run(layer.release(second.lease.id, by="dr-event"))
    assert modbus.holding(10) == [550]  # back to before either wrote


def test_operator_override_locks_a_point_or_a_device(plant) -> None:
    layer, modbus, clock = plant
    lock = layer.lock(
        "hq", "modbus:" + modbus.host + ":3", operator="op-anna", reason="maintenance", duration_s=3600
    )
    with pytest.raises(PointLocked, match="op-anna"):
        run(layer.write("hq", "AHU-1.ZN-T-SP", 70, owner="tariff", reason="x", duration_s=60))
    assert modbus.holding(14) == [720]
    op = run(
        layer.write(
            "hq", "AHU-1.ZN-T-SP", 70, owner="op-anna", owner_kind="operator", reason="test", duration_s=60
        )
    )
    assert modbus.holding(14) == [700]
    run(layer.release(op.lease.id, by="op-anna"))
    layer.unlock(lock.id, by="op-anna")
    point_lock = layer.lock("hq", "AHU-1.SA-T-SP", operator="op-ben", reason="tuning", duration_s=60)
    with pytest.raises(PointLocked):
        run(layer.write("hq", "AHU-1.SA-T-SP", 60, owner="tariff", reason="x", duration_s=60))
    run(
        layer.write("hq", "AHU-1.ZN-T-SP", 71, owner="tariff", reason="x", duration_s=60)
    )  # other points free
    clock.now += 61  # the lock ends on its own
    assert point_lock.until < clock.now
    run(layer.write("hq", "AHU-1.SA-T-SP", 60, owner="tariff", reason="x", duration_s=60))
    assert modbus.holding(10) == [600]


def test_dry_run_does_everything_but_the_write_and_audit_says_so(plant) -> None:
    layer, modbus, _clock = plant
    result = run(
        layer.write("hq", "AHU-1.SA-T-SP", 61, owner="cap", reason="rehearsal", duration_s=60, dry_run=True)
    )
    assert result.lease.dry_run and result.lease.status == "active" and modbus.holding(10) == [550]
    run(layer.release(result.lease.id, by="cap"))
    log = layer.store.audit_log(point=result.lease.point)
    assert [(e.action, e.result) for e in reversed(log)] == [("write", "dry-run"), ("revert", "dry-run")]
    write = log[-1]
    assert (write.actor, write.old, write.new, write.reason) == ("cap", 55.0, 61, "rehearsal")


def test_device_down_mid_lease_reverts_when_it_is_back(plant) -> None:
    layer, modbus, clock = plant
    lease = run(layer.write("hq", "AHU-1.SA-T-SP", 62, owner="cap", reason="test", duration_s=60)).lease
    modbus.stop()
    clock.now += 61
    [pending] = run(layer.expire_due())
    assert pending.status == "reverting" and "AHU-1.SA-T-SP" in pending.error
    with pytest.raises(LeaseConflict):  # nobody else takes the point meanwhile
        run(layer.write("hq", "AHU-1.SA-T-SP", 58, owner="other", reason="x", duration_s=60, priority=40))
    modbus.start()  # same port; the restarted device lost its registers
    [done] = run(layer.expire_due())
    assert (done.id, done.status) == (lease.id, "expired") and modbus.holding(10) == [550]
    results = [(e.action, e.result) for e in reversed(layer.store.audit_log(point=lease.point))]
    assert results[:3] == [("write", "ok"), ("revert", "failed"), ("write", "refused")]
    assert results[-1] == ("revert", "ok")


def test_leases_survive_a_restart_and_expired_ones_revert_at_startup(
    plant, platform: Platform, tmp_path: Path
) -> None:
    layer, modbus, clock = plant
    lease = run(layer.write("hq", "AHU-1.SA-T-SP", 64, owner="cap", reason="test", duration_s=60)).lease
    layer.store.close()  # the process dies: no release, no expiry
    clock.now += 120
    again = SafetyLayer(
        GraphResolver(platform.store), {"modbus": ModbusAdapter(timeout_s=1.0)}, tmp_path / "safety.sqlite",
        clock=clock,
    )  # fmt: skip
    assert again.store.lease(lease.id).status == "active" and modbus.holding(10) == [640]
    [done] = run(again.expire_due())  # what the server and every CLI command do first
    assert done.status == "expired" and modbus.holding(10) == [550]
    run(again.close())


# -- the CLI and the API -----------------------------------------------------------------------
def _csv(tmp_path: Path, modbus: ModbusPeer) -> Path:
    path = tmp_path / "ahu.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow({"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "min": 50, "max": 65,
                         "modbus_unit": 3, "modbus_register": 10, "modbus_type": "holding",
                         "modbus_datatype": "int16", "modbus_scale": 0.1, "modbus_host": modbus.host})  # fmt: skip
    return path


def test_cli_write_release_and_revert_after_a_process_restart(tmp_path: Path, modbus: ModbusPeer) -> None:
    import time

    from tests.test_cli import osed

    assert osed("load", str(_csv(tmp_path, modbus)), "--building", "hq", cwd=tmp_path).returncode == 0
    modbus.set_holding(10, [550])
    out = osed(
        "write", "AHU-1.SA-T-SP", "70", "--building", "hq", "--for", "12s", "--reason", "test", cwd=tmp_path
    )
    # The lease began inside the command, before it returned (its start-up can take seconds
    # on a loaded machine): it has surely expired 12.5 s after the command ended.
    started = time.monotonic()
    assert out.returncode == 0, out.stderr
    assert "clamped 70 to 65" in out.stderr and modbus.holding(10) == [650]
    lease_id = out.stdout.split("\t")[0]
    # The writing process has exited; the lease lives on in the safety store.
    listed = osed("leases", cwd=tmp_path)
    assert lease_id in listed.stdout and modbus.holding(10) == [650]
    time.sleep(max(0.0, started + 12.5 - time.monotonic()))
    restarted = osed("leases", cwd=tmp_path)  # any start reverts what expired meanwhile
    assert f"lease {lease_id} on AHU-1.SA-T-SP had expired: reverted" in restarted.stderr
    assert modbus.holding(10) == [550] and lease_id not in restarted.stdout
    again = osed(
        "write", "AHU-1.SA-T-SP", "60", "--building", "hq", "--for", "10m", "--reason", "t", cwd=tmp_path
    )
    assert modbus.holding(10) == [600]
    released = osed("release", again.stdout.split("\t")[0], cwd=tmp_path)
    assert released.returncode == 0 and "released" in released.stdout and modbus.holding(10) == [550]
    log = osed("audit", cwd=tmp_path).stdout.splitlines()
    assert [line.split("\t")[2] for line in log[:4]] == ["revert", "write", "revert", "write"]
    locked = osed(
        "lock", "AHU-1.SA-T-SP", "--building", "hq", "--for", "1h", "--reason", "maint", cwd=tmp_path
    )
    assert locked.returncode == 0 and "locked" in locked.stdout
    bad = osed("write", "NOPE", "1", "--building", "hq", "--reason", "t", cwd=tmp_path)
    assert bad.returncode == 2 and "no point 'NOPE'" in bad.stderr


def test_api_leases_overrides_audit_and_expiry_in_the_server(
    platform: Platform, tmp_path: Path, modbus
) -> None:
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app

    platform.import_points("hq", read_points(_csv(tmp_path, modbus)))
    modbus.set_holding(10, [550])
    platform.settings.api.tokens = {"op-token": "operator", "view-token": "viewer"}
    platform.settings.api.anonymous_role = ""
    platform.settings.edge.expiry_check_s = 0.1
    op, viewer = {"Authorization": "Bearer op-token"}, {"Authorization": "Bearer view-token"}
    body = {"building": "hq", "point": "AHU-1.SA-T-SP", "value": 60, "duration_s": 600, "reason": "test"}
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        assert c.post("/edge/leases", json=body, headers=viewer).status_code == 403
        made = c.post("/edge/leases", json=body, headers=op)
        assert made.status_code == 201 and modbus.holding(10) == [600]
        lease = made.json()["lease"]
        assert [x["id"] for x in c.get("/edge/leases", headers=viewer).json()] == [lease["id"]]
        assert c.delete(f"/edge/leases/{lease['id']}", headers=op).json()["status"] == "released"
        assert modbus.holding(10) == [550]
        lock = c.post("/edge/overrides", json={"building": "hq", "target": "AHU-1.SA-T-SP", "duration_s": 60,
                                                "reason": "maint"}, headers=op)  # fmt: skip
        assert (
            lock.status_code == 201
            and c.get("/edge/overrides", headers=viewer).json()[0]["id"] == lock.json()["id"]
        )
        c.delete(f"/edge/overrides/{lock.json()['id']}", headers=op)
        refused = c.post("/edge/leases", json={**body, "value": "warm"}, headers=op)
        assert refused.status_code == 409 and "not a number" in refused.json()["detail"]
        short = c.post("/edge/leases", json={**body, "duration_s": 0.3}, headers=op)
        assert short.status_code == 201 and modbus.holding(10) == [600]
        deadline = time.monotonic() + 10
        while modbus.holding(10) != [550] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert modbus.holding(10) == [550]  # the server reverted it on expiry
        audit = c.get("/edge/audit", headers=viewer).json()
        assert audit[0]["action"] == "revert" and audit[0]["actor"] == "expiry"
        assert (audit[0]["old"], audit[0]["new"], audit[0]["result"]) == (60, 55.0, "ok")
        fingerprint = hashlib.sha256(b"op-token").hexdigest()[:10]
        assert (audit[1]["action"], audit[1]["reason"], audit[1]["actor"]) == (
            "write",
            "test",
            f"token:{fingerprint}",
        )


def test_cli_write_and_release_through_every_adapter(tmp_path: Path) -> None:
    """``osed write`` / ``osed release`` against BACnet, MQTT, EdgeX and Home Assistant peers
    (Modbus: the test above), with the adapters configured the way a site would."""
    import os

    from tests.test_cli import osed

    edgex_devices = {"evse-1": {"resources": {"CurrentLimit": {"valueType": "Float32", "value": "32"}}}}
    ha = homeassistant_app()
    with (
        bacnet_device() as bacnet_addr,
        mosquitto(tmp_path) as mqtt_port,
        serve(edgex_command_app(edgex_devices)) as edgex_url,
        serve(ha) as ha_url,
    ):
        device = MQTTDevice(mqtt_port, "site/wh1", {"setpoint": "120"})
        try:
            path = tmp_path / "site.csv"
            with path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows([
                    {"name": "AHU-1.SA-T-SP", "unit": "°F", "writable": "yes", "bacnet_device": 1001,
                     "bacnet_object": "analog-value,1", "bacnet_address": bacnet_addr},
                    {"name": "WH-1.SP", "unit": "°F", "writable": "yes", "mqtt_topic": "site/wh1/setpoint",
                     "mqtt_command_topic": "site/wh1/setpoint/set"},
                    {"name": "EVSE-1.LIMIT", "unit": "A", "writable": "yes", "edgex_device": "evse-1",
                     "edgex_resource": "CurrentLimit"},
                    {"name": "EV charger", "writable": "yes", "ha_entity": "switch.ev_charger"},
                ])  # fmt: skip
            env = {
                "OSED_EDGE__BACNET_LOCAL_ADDRESS": f"127.0.0.1:{free_udp_port()}",
                "OSED_EDGE__MQTT_PORT": str(mqtt_port),
                "OSED_EDGE__EDGEX_COMMAND_URL": edgex_url,
                "OSED_EDGE__HOMEASSISTANT_URL": ha_url,
                "OSED_EDGE__HOMEASSISTANT_TOKEN": HA_TOKEN,
            }
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                assert osed("load", str(path), "--building", "site", cwd=tmp_path).returncode == 0
                from edge import PointTarget
                from mapper import BACnetAddress

                sp = PointTarget("site", "urn:sp", "AHU-1.SA-T-SP",
                                 BACnetAddress(1001, "analog-value", 1, device_address=bacnet_addr), True)  # fmt: skip

                def slot8() -> str:
                    async def read() -> Any:
                        probe = BACnetAdapter(f"127.0.0.1:{free_udp_port()}", timeout_s=2.0)
                        try:
                            return (await probe.priority_array(sp))[7]
                        finally:
                            await probe.close()

                    return str(run(read()))

                checks = {
                    "AHU-1.SA-T-SP": ("61", slot8),
                    "WH-1.SP": ("110", lambda: device.value("setpoint")),
                    "EVSE-1.LIMIT": (
                        "10",
                        lambda: edgex_devices["evse-1"]["resources"]["CurrentLimit"]["value"],
                    ),
                    "EV charger": ("off", lambda: ha.state.entities["switch.ev_charger"]["state"]),
                }
                written = {
                    "AHU-1.SA-T-SP": "61.0",
                    "WH-1.SP": "110",
                    "EVSE-1.LIMIT": "10.0",
                    "EV charger": "off",
                }
                restored = {
                    "AHU-1.SA-T-SP": "None",
                    "WH-1.SP": "120.0",
                    "EVSE-1.LIMIT": "32.0",
                    "EV charger": "on",
                }
                for name, (value, state) in checks.items():
                    out = osed(
                        "write",
                        name,
                        value,
                        "--building",
                        "site",
                        "--for",
                        "10m",
                        "--reason",
                        "cli",
                        cwd=tmp_path,
                    )
                    assert out.returncode == 0, out.stderr
                    _wait_for(lambda state=state, name=name: state() == written[name])
                    back = osed("release", name, "--building", "site", cwd=tmp_path)
                    assert back.returncode == 0 and "released" in back.stdout, back.stderr
                    _wait_for(lambda state=state, name=name: state() == restored[name])
                log = [line.split("\t") for line in osed("audit", cwd=tmp_path).stdout.splitlines()]
                assert sum(1 for e in log if e[2] == "write" and e[5] == "ok") == 4
                assert sum(1 for e in log if e[2] == "revert" and e[5] == "ok") == 4
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        finally:
            device.close()


def _wait_for(check: Any, timeout_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert check()
