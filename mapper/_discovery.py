"""Live discovery over HTTP: EdgeX Foundry core-metadata v3 and Home Assistant's REST API.

Each returns RawPoints whose address lets ``edge/`` reach the point later: an EdgeX device
and resource, or a Home Assistant entity (and attribute). HTTP errors name the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from core.errors import IngestError
from mapper._records import EdgeXAddress, HomeAssistantAddress, RawPoint, SourceRef

_PAGE = 100


def _get(client: httpx.Client, url: str, **params: Any) -> Any:
    try:
        response = client.get(url, params=params or None)
    except httpx.HTTPError as exc:
        raise IngestError(f"cannot reach {url}: {exc}", source=url) from exc
    if response.status_code == 401:
        raise IngestError("401 unauthorized: check the access token", source=url)
    if not response.is_success:
        try:
            message = response.json().get("message", "")
        except ValueError:
            message = response.text[:200]
        raise IngestError(f"HTTP {response.status_code}: {message}".strip(), source=url)
    try:
        return response.json()
    except ValueError as exc:
        raise IngestError(f"response is not JSON: {exc}", source=url) from exc


# -- EdgeX Foundry core-metadata v3 -------------------------------------------------------------
def discover_edgex(
    base_url: str, *, client: httpx.Client | None = None, timeout_s: float = 15.0
) -> list[RawPoint]:
    """One point per (device, visible device resource) known to core-metadata."""
    base = base_url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=timeout_s)
    try:
        profiles: dict[str, dict[str, Any]] = {}
        points: list[RawPoint] = []
        for device in _edgex_devices(http, base):
            name = str(device.get("name", ""))
            profile_name = str(device.get("profileName", ""))
            if not name or not profile_name:
                continue
            if profile_name not in profiles:
                url = f"{base}/api/v3/deviceprofile/name/{quote(profile_name, safe='')}"
                profiles[profile_name] = _get(http, url).get("profile") or {}
            profile = profiles[profile_name]
            for resource in profile.get("deviceResources") or []:
                if resource.get("isHidden"):
                    continue
                props = resource.get("properties") or {}
                rw = str(props.get("readWrite", "R")).upper()
                value_type = str(props.get("valueType", ""))
                points.append(
                    RawPoint(
                        name=f"{name}.{resource.get('name', '')}",
                        description=str(resource.get("description") or device.get("description") or ""),
                        unit=str(props.get("units") or ""),
                        object_type=value_type,
                        tags=tuple(str(label) for label in device.get("labels") or ()),
                        writable="W" in rw,
                        minimum=_num(props.get("minimum")),
                        maximum=_num(props.get("maximum")),
                        source=SourceRef(f"edgex:{base}"),
                        address=EdgeXAddress(device=name, resource=str(resource.get("name", ""))),
                    )
                )
        return points
    finally:
        if own:
            http.close()


def _edgex_devices(http: httpx.Client, base: str) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = _get(http, f"{base}/api/v3/device/all", offset=offset, limit=_PAGE)
        devices = page.get("devices") or []
        yield from devices
        offset += len(devices)
        if not devices or offset >= int(page.get("totalCount", 0)):
            return


def _num(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# -- Home Assistant REST ------------------------------------------------------------------------
#: (attribute or None for the state, point suffix, writable, description) per domain.
_HA_POINTS: dict[str, list[tuple[str | None, str, bool, str]]] = {
    "climate": [
        ("current_temperature", "Room Temperature", False, "room temperature measured by the thermostat"),
        ("temperature", "Temperature Setpoint", True, "thermostat temperature setpoint"),
        ("target_temp_high", "Cooling Setpoint", True, "thermostat cooling setpoint"),
        ("target_temp_low", "Heating Setpoint", True, "thermostat heating setpoint"),
        ("current_humidity", "Room Humidity", False, "room humidity measured by the thermostat"),
    ],
    "water_heater": [
        ("current_temperature", "Tank Temperature", False, "water heater tank temperature"),
        ("temperature", "Temperature Setpoint", True, "water heater temperature setpoint"),
    ],
    "switch": [(None, "On Off Command", True, "switch on/off command")],
    "number": [(None, "Setpoint", True, "adjustable value")],
    "sensor": [(None, "", False, "sensor reading")],
    "binary_sensor": [(None, "Status", False, "binary status")],
}


def discover_homeassistant(
    base_url: str, token: str, *, client: httpx.Client | None = None, timeout_s: float = 15.0
) -> list[RawPoint]:
    """Points of climate, water_heater, switch, number, sensor and binary_sensor entities.

    Temperatures without their own unit take the instance's unit system (/api/config).
    """
    base = base_url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=timeout_s)
    http.headers["Authorization"] = f"Bearer {token}"
    try:
        config = _get(http, f"{base}/api/config")
        temperature_unit = str((config.get("unit_system") or {}).get("temperature", ""))
        states = _get(http, f"{base}/api/states")
        if not isinstance(states, list):
            raise IngestError("/api/states did not return a list", source=f"{base}/api/states")
        points = []
        for entity in states:
            entity_id = str(entity.get("entity_id", ""))
            domain = entity_id.split(".", 1)[0]
            attrs = entity.get("attributes") or {}
            friendly = str(attrs.get("friendly_name") or entity_id)
            for attribute, suffix, writable, what in _HA_POINTS.get(domain, []):
                if attribute is not None and attribute not in attrs:
                    continue
                unit = str(attrs.get("unit_of_measurement") or "")
                if attribute is not None and ("temp" in attribute):
                    unit = temperature_unit
                elif domain in ("climate", "water_heater") and "humidity" in (attribute or ""):
                    unit = "%"
                device_class = str(attrs.get("device_class") or "")
                minimum = maximum = None
                if writable and domain in ("climate", "water_heater"):
                    minimum, maximum = _num(attrs.get("min_temp")), _num(attrs.get("max_temp"))
                elif domain == "number":
                    minimum, maximum = _num(attrs.get("min")), _num(attrs.get("max"))
                points.append(
                    RawPoint(
                        name=f"{friendly} {suffix}".strip() if suffix else friendly,
                        description=" ".join(x for x in (what, device_class) if x),
                        unit=unit,
                        object_type=domain,
                        tags=(domain, device_class) if device_class else (domain,),
                        writable=writable,
                        minimum=minimum,
                        maximum=maximum,
                        source=SourceRef(f"homeassistant:{base}"),
                        address=HomeAssistantAddress(entity_id=entity_id, attribute=attribute),
                    )
                )
        return points
    finally:
        if own:
            http.close()
