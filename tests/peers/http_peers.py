"""HTTP servers that answer exactly as EdgeX core-metadata v3 and Home Assistant's REST API
document (response envelopes, paging, error bodies, bearer auth). EdgeX and Home Assistant
cannot run here, so the discovery tests talk to these over real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from tests.conftest import free_port

EDGEX_PROFILES = {
    "evse-profile": {
        "name": "evse-profile",
        "manufacturer": "Acme",
        "deviceResources": [
            {
                "name": "ChargingPower",
                "description": "Charging power",
                "properties": {"valueType": "Float32", "readWrite": "R", "units": "kW"},
            },
            {
                "name": "CurrentLimit",
                "description": "Charging current limit",
                "properties": {
                    "valueType": "Float32",
                    "readWrite": "RW",
                    "units": "A",
                    "minimum": 6,
                    "maximum": 32,
                },
            },
            {
                "name": "Diagnostics",
                "isHidden": True,
                "properties": {"valueType": "String", "readWrite": "R"},
            },
        ],
        "deviceCommands": [],
    }
}


def edgex_app(devices: int = 3) -> FastAPI:
    app = FastAPI()
    all_devices = [
        {
            "id": f"00000000-0000-0000-0000-00000000000{i}",
            "name": f"evse-{i}",
            "description": "EV charger",
            "adminState": "UNLOCKED",
            "operatingState": "UP",
            "labels": ["evse", "garage"],
            "serviceName": "device-modbus",
            "profileName": "evse-profile",
            "protocols": {"modbus-tcp": {"Address": "127.0.0.1", "Port": "502", "UnitID": str(i)}},
        }
        for i in range(1, devices + 1)
    ]

    @app.get("/api/v3/device/all")
    def all_(offset: int = 0, limit: int = 20) -> dict[str, Any]:
        page = all_devices[offset:] if limit == -1 else all_devices[offset : offset + min(limit, 2)]
        return {"apiVersion": "v3", "statusCode": 200, "totalCount": len(all_devices), "devices": page}

    @app.get("/api/v3/deviceprofile/name/{name}", response_model=None)
    def profile(name: str) -> Any:
        if name not in EDGEX_PROFILES:
            return JSONResponse(
                {"apiVersion": "v3", "statusCode": 404, "message": f"device profile {name} does not exist"},
                status_code=404,
            )
        return {"apiVersion": "v3", "statusCode": 200, "profile": EDGEX_PROFILES[name]}

    return app


HA_TOKEN = "long-lived-access-token-for-tests"
HA_STATES = [
    {
        "entity_id": "climate.lobby",
        "state": "cool",
        "attributes": {
            "friendly_name": "Lobby",
            "current_temperature": 73,
            "temperature": 72,
            "min_temp": 60,
            "max_temp": 85,
            "hvac_modes": ["off", "heat", "cool"],
        },
    },
    {
        "entity_id": "water_heater.kitchen",
        "state": "eco",
        "attributes": {
            "friendly_name": "Kitchen Water Heater",
            "current_temperature": 118,
            "temperature": 120,
            "min_temp": 95,
            "max_temp": 140,
        },
    },
    {"entity_id": "switch.ev_charger", "state": "on", "attributes": {"friendly_name": "EV Charger"}},
    {
        "entity_id": "number.battery_power_limit",
        "state": "5.0",
        "attributes": {
            "friendly_name": "Battery Power Limit",
            "min": 0,
            "max": 10,
            "unit_of_measurement": "kW",
        },
    },
    {
        "entity_id": "sensor.main_meter_power",
        "state": "12.5",
        "attributes": {
            "friendly_name": "Main Meter Power",
            "unit_of_measurement": "kW",
            "device_class": "power",
        },
    },
    {"entity_id": "light.porch", "state": "off", "attributes": {"friendly_name": "Porch"}},
]


def homeassistant_app() -> FastAPI:
    app = FastAPI()

    def authorized(header: str | None) -> bool:
        return header == f"Bearer {HA_TOKEN}"

    @app.get("/api/config", response_model=None)
    def config(authorization: str | None = Header(default=None)) -> Any:
        if not authorized(authorization):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return {
            "location_name": "Test Home",
            "version": "2024.3.3",
            "time_zone": "America/Chicago",
            "unit_system": {
                "length": "mi",
                "mass": "lb",
                "temperature": "°F",
                "volume": "gal",
                "pressure": "psi",
                "wind_speed": "mph",
                "accumulated_precipitation": "in",
            },
        }

    @app.get("/api/states", response_model=None)
    def states(request: Request, authorization: str | None = Header(default=None)) -> Any:
        if not authorized(authorization):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return HA_STATES

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.025)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
