"""HTTP servers that answer exactly as EdgeX core-metadata v3, EdgeX core-command v3 and Home
Assistant's REST API document (response envelopes, paging, error bodies, bearer auth). EdgeX
and Home Assistant cannot run here, so the discovery and adapter tests talk to these over
real HTTP on loopback."""

from __future__ import annotations

import copy
import threading
import time
import uuid
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


def edgex_command_app(devices: dict[str, dict[str, dict[str, Any]]]) -> FastAPI:
    """EdgeX core-command v3 over ``devices``: name -> {"adminState": "LOCKED"|"UNLOCKED",
    "operatingState": "UP"|"DOWN", "resources": {resource: {"valueType": ..., "value": "text",
    "readWrite": "R"|"RW"}}} (mutated by PUTs, so tests read the device state back)."""
    app = FastAPI()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(
            {"apiVersion": "v3", "statusCode": status, "message": message}, status_code=status
        )

    @app.get("/api/v3/device/name/{name}/{command}", response_model=None)
    def get_command(name: str, command: str, ds_returnevent: str = "true") -> Any:
        device = devices.get(name)
        if device is None:
            return error(404, f"fail to query device by name {name}")
        resource = device["resources"].get(command)
        if resource is None:
            return error(404, f"command {command} not found in device {name}")
        if device.get("operatingState", "UP") == "DOWN":
            return error(423, f"device {name} OperatingState is DOWN")
        if device.get("adminState", "UNLOCKED") == "LOCKED":
            return error(423, f"device {name} AdminState is LOCKED")
        reading = {
            "id": str(uuid.uuid4()),
            "origin": time.time_ns(),
            "deviceName": name,
            "resourceName": command,
            "profileName": f"{name}-profile",
            "valueType": resource["valueType"],
            "value": resource["value"],
        }
        event = {
            "apiVersion": "v3",
            "id": str(uuid.uuid4()),
            "deviceName": name,
            "profileName": f"{name}-profile",
            "sourceName": command,
            "origin": time.time_ns(),
            "readings": [reading],
        }
        return {"apiVersion": "v3", "statusCode": 200, "event": event}

    @app.put("/api/v3/device/name/{name}/{command}", response_model=None)
    async def set_command(name: str, command: str, request: Request) -> Any:
        device = devices.get(name)
        if device is None:
            return error(404, f"fail to query device by name {name}")
        if device.get("adminState", "UNLOCKED") == "LOCKED":
            return error(423, f"device {name} AdminState is LOCKED")
        if device.get("operatingState", "UP") == "DOWN":
            return error(503, f"device service for {name} is unavailable")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "request body is not JSON")
        if not isinstance(body, dict) or not body:
            return error(400, "a SettingRequest is an object of resource name -> value")
        for resource_name, value in body.items():
            resource = device["resources"].get(resource_name)
            if resource is None:
                return error(404, f"device resource {resource_name} not found")
            if resource.get("readWrite", "RW") == "R":
                return error(400, f"device resource {resource_name} is read-only")
            if not isinstance(value, str):
                return error(400, f"value of {resource_name} must be a string")
        for resource_name, value in body.items():
            device["resources"][resource_name]["value"] = value
        return {"apiVersion": "v3", "statusCode": 200}

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

    states_now = {s["entity_id"]: s for s in copy.deepcopy(HA_STATES)}
    app.state.entities = states_now  # tests read what the services did

    @app.get("/api/states", response_model=None)
    def states(request: Request, authorization: str | None = Header(default=None)) -> Any:
        if not authorized(authorization):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return list(states_now.values())

    @app.get("/api/states/{entity_id}", response_model=None)
    def state(entity_id: str, authorization: str | None = Header(default=None)) -> Any:
        if not authorized(authorization):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        if entity_id not in states_now:
            return JSONResponse({"message": "Entity not found."}, status_code=404)
        return states_now[entity_id]

    @app.post("/api/services/{domain}/{service}", response_model=None)
    async def call_service(
        domain: str, service: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Any:
        if not authorized(authorization):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        data = await request.json() if await request.body() else {}
        entity = states_now.get(str(data.get("entity_id", "")))
        if entity is None or not entity["entity_id"].startswith(domain + "."):
            return JSONResponse({"message": f"Service {domain}.{service} not found."}, status_code=400)
        if service == "set_temperature" and domain in ("climate", "water_heater"):
            entity["attributes"]["temperature"] = data["temperature"]
        elif service in ("turn_on", "turn_off"):
            entity["state"] = "on" if service == "turn_on" else "off"
        elif service == "set_value" and domain in ("number", "input_number"):
            entity["state"] = str(data["value"])
        else:
            return JSONResponse({"message": f"Service {domain}.{service} not found."}, status_code=400)
        return [entity]  # the states that changed

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
