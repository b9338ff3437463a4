"""The bundled demo building: ~300 points of a small office with AHUs, VAVs, a chiller
plant, a boiler, meters, thermostats, a water heater, a battery, EV chargers and PV, each
with the address an edge adapter would use (BACnet, Modbus, Home Assistant, EdgeX, MQTT)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mapper import RawPoint, read_points_csv

DEMO_BUILDING = "demo"


def demo_csv() -> Path:
    return Path(str(resources.files("api") / "data" / "demo_building.csv"))


def demo_points() -> list[RawPoint]:
    return read_points_csv(demo_csv())
