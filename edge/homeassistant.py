"""Home Assistant REST with a long-lived token: ``GET /api/states/{entity}`` reads (state or
one attribute), writes call the entity's domain service (climate/water_heater
set_temperature, switch/input_boolean/fan/light turn_on|turn_off, number/input_number
set_value). Temperatures are converted between the point's unit and the one ``/api/config``
says Home Assistant uses."""

from __future__ import annotations

import asyncio
from typing import Any

from core.errors import DeviceUnreachable, EdgeError, PointNotFound, WriteRefused
from edge._base import Adapter, LoopHttp, PointTarget, Value, as_bool, as_number
from mapper import HomeAssistantAddress, RawPoint, discover_homeassistant

_SWITCHES = {"switch", "input_boolean", "fan", "light"}
_NUMBERS = {"number", "input_number"}
_THERMO = {"climate", "water_heater"}
_FAHRENHEIT = {"°f", "degf", "f", "fahrenheit", "deg_f"}
_CELSIUS = {"°c", "degc", "c", "celsius", "deg_c"}


class HomeAssistantAdapter(Adapter):
    kind = "homeassistant"

    def __init__(self, url: str, token: str, *, timeout_s: float = 5.0) -> None:
        if not url or not token:
            raise EdgeError("Home Assistant needs edge.homeassistant_url and a long-lived token")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._http = LoopHttp(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout_s
        )
        self._temperature_unit: str | None = None

    async def _call(self, target: PointTarget, method: str, path: str, body: Any = None) -> Any:
        address = _address(target)
        response = await self._http.request(
            method, f"{self.url}{path}", body, device=address.entity_id, point=target.name
        )
        if response.status_code == 404:
            raise PointNotFound(f"Home Assistant 404 for {path}", device=address.entity_id, point=target.name)
        if response.status_code == 401:
            raise WriteRefused(
                "Home Assistant refused the token (401)", device=address.entity_id, point=target.name
            )
        if response.status_code >= 500:
            raise DeviceUnreachable(
                f"Home Assistant {response.status_code}", device=address.entity_id, point=target.name
            )
        if response.status_code >= 400:
            raise WriteRefused(
                f"Home Assistant {response.status_code}: {response.text[:200]}",
                device=address.entity_id,
                point=target.name,
            )
        return response.json() if response.content else None

    async def temperature_unit(self, target: PointTarget) -> str:
        if self._temperature_unit is None:
            config = await self._call(target, "GET", "/api/config")
            self._temperature_unit = str(((config or {}).get("unit_system") or {}).get("temperature", "°C"))
        return self._temperature_unit

    async def read(self, target: PointTarget) -> Value:
        address = _address(target)
        state = await self._call(target, "GET", f"/api/states/{address.entity_id}")
        raw = (
            (state.get("attributes") or {}).get(address.attribute)
            if address.attribute
            else state.get("state")
        )
        if raw is None or raw in ("unavailable", "unknown"):
            raise DeviceUnreachable(f"state is {raw!r}", device=address.entity_id, point=target.name)
        domain = address.entity_id.split(".", 1)[0]
        if isinstance(raw, str) and raw in ("on", "off"):
            return raw == "on"
        number = as_number(raw)
        if number is None:
            return str(raw)
        if domain in _THERMO and address.attribute in ("temperature", "current_temperature", None):
            return _convert(number, await self.temperature_unit(target), target.unit)
        return number

    async def write(self, target: PointTarget, value: Value, priority: int) -> None:
        address = _address(target)
        domain = address.entity_id.split(".", 1)[0]
        entity = address.entity_id
        if domain in _THERMO:
            ha_value = _convert(float(value), target.unit, await self.temperature_unit(target))
            await self._call(
                target,
                "POST",
                f"/api/services/{domain}/set_temperature",
                {"entity_id": entity, "temperature": ha_value},
            )
        elif domain in _SWITCHES:
            service = "turn_on" if as_bool(value) else "turn_off"
            await self._call(target, "POST", f"/api/services/{domain}/{service}", {"entity_id": entity})
        elif domain in _NUMBERS:
            await self._call(
                target,
                "POST",
                f"/api/services/{domain}/set_value",
                {"entity_id": entity, "value": float(value)},
            )
        else:
            raise WriteRefused(
                f"no write service for the '{domain}' domain", device=entity, point=target.name
            )

    async def discover(self) -> list[RawPoint]:
        return await asyncio.to_thread(discover_homeassistant, self.url, self.token)

    async def close(self) -> None:
        await self._http.close()


def _convert(value: float, from_unit: str, to_unit: str) -> float:
    a, b = from_unit.strip().lower(), to_unit.strip().lower()
    if a in _FAHRENHEIT and b in _CELSIUS:
        return round((value - 32) * 5 / 9, 2)
    if a in _CELSIUS and b in _FAHRENHEIT:
        return round(value * 9 / 5 + 32, 2)
    return value


def _address(target: PointTarget) -> HomeAssistantAddress:
    if not isinstance(target.address, HomeAssistantAddress):
        raise EdgeError("not a Home Assistant point", point=target.name)
    return target.address
