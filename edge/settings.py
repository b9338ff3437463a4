"""How the edge is reached: adapter endpoints, the safety layer's limits and dry-run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from core.errors import OsedError
from edge._base import Adapter
from edge._graph import GraphResolver
from edge._safety import PointLimit, SafetyConfig, SafetyLayer
from graphstore import GraphStore


class LimitSettings(BaseModel):
    minimum: float | None = None
    maximum: float | None = None
    max_rate_per_min: float | None = Field(default=None, gt=0)


class EdgeSettings(BaseModel):
    #: Run everything but the final protocol write (leases and audit are still kept).
    dry_run: bool = False
    #: Outside a point's limits: clamp the value, or refuse the write.
    limit_mode: Literal["clamp", "refuse"] = "clamp"
    #: Site limits by point IRI or raw name, over the graph's min/max.
    limits: dict[str, LimitSettings] = Field(default_factory=dict)
    max_lease_hours: float = Field(default=24.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)
    #: How often the services (``osed serve``, ``osed edge-service``) look for leases other
    #: processes added and retry failed reverts; a lease they know of is reverted at its
    #: expiry, not at the next look.
    expiry_check_s: float = Field(default=1.0, gt=0)
    bacnet_local_address: str = "0.0.0.0:47808"
    #: BACnet write priority: 8 by default, never 1-2 (life safety).
    bacnet_priority: int = Field(default=8, ge=3, le=16)
    modbus_host: str = ""
    modbus_port: int = Field(default=502, ge=1, le=65535)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str = ""
    mqtt_password: SecretStr = SecretStr("")
    mqtt_payload: Literal["plain", "json"] = "plain"
    edgex_command_url: str = ""
    #: How to reach core-command: its REST API, or its external MQTT message bus (the
    #: broker of mqtt_host/mqtt_port; request and response topic prefixes below).
    edgex_transport: Literal["rest", "mqtt"] = "rest"
    edgex_request_prefix: str = "edgex/command/request"
    edgex_response_prefix: str = "edgex/command/response"
    edgex_metadata_url: str = ""
    homeassistant_url: str = ""
    homeassistant_token: SecretStr = SecretStr("")

    def safety_config(self) -> SafetyConfig:
        return SafetyConfig(
            dry_run=self.dry_run,
            limit_mode=self.limit_mode,
            limits={k: PointLimit(v.minimum, v.maximum, v.max_rate_per_min) for k, v in self.limits.items()},
            bacnet_priority=self.bacnet_priority,
            max_lease_s=self.max_lease_hours * 3600,
        )


def adapter_factory(settings: EdgeSettings) -> Callable[[str], Adapter]:
    """Adapters built on first use, one per kind, from the settings."""
    made: dict[str, Adapter] = {}

    def get(kind: str) -> Adapter:
        if kind in made:
            return made[kind]
        t = settings.timeout_s
        adapter: Adapter
        if kind == "bacnet":
            from edge.bacnet import BACnetAdapter

            adapter = BACnetAdapter(
                settings.bacnet_local_address, priority=settings.bacnet_priority, timeout_s=t
            )
        elif kind == "modbus":
            from edge.modbus import ModbusAdapter

            adapter = ModbusAdapter(settings.modbus_host, default_port=settings.modbus_port, timeout_s=t)
        elif kind == "mqtt":
            from edge.mqtt import MQTTAdapter

            adapter = MQTTAdapter(
                settings.mqtt_host,
                settings.mqtt_port,
                username=settings.mqtt_username,
                password=settings.mqtt_password.get_secret_value(),
                payload=settings.mqtt_payload,
                timeout_s=t,
            )
        elif kind == "edgex":
            from edge.edgex import EdgeXAdapter, EdgeXMessageBus

            bus = None
            if settings.edgex_transport == "mqtt":
                bus = EdgeXMessageBus(
                    settings.mqtt_host,
                    settings.mqtt_port,
                    request_prefix=settings.edgex_request_prefix,
                    response_prefix=settings.edgex_response_prefix,
                    username=settings.mqtt_username,
                    password=settings.mqtt_password.get_secret_value(),
                    timeout_s=t,
                )
            adapter = EdgeXAdapter(
                settings.edgex_command_url, metadata_url=settings.edgex_metadata_url, timeout_s=t, bus=bus
            )
        elif kind == "homeassistant":
            from edge.homeassistant import HomeAssistantAdapter

            adapter = HomeAssistantAdapter(
                settings.homeassistant_url, settings.homeassistant_token.get_secret_value(), timeout_s=t
            )
        else:
            raise OsedError(f"unknown adapter '{kind}'")
        made[kind] = adapter
        return adapter

    get.made = made  # type: ignore[attr-defined]
    return get


def safety_layer(
    settings: EdgeSettings,
    store: GraphStore | Callable[[], GraphStore],
    base_iri: str,
    db: Path | None,
    *,
    keep_store_open: bool = True,
) -> SafetyLayer:
    """The safety layer over the stored graph; ``store`` may be a function that opens it
    (see ``GraphResolver``)."""
    return SafetyLayer(
        GraphResolver(store, base_iri, keep_open=keep_store_open),
        adapter_factory(settings),
        db,
        settings.safety_config(),
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise OsedError(f"'{text}' is not a duration: use e.g. 90s, 10m, 2h")
    unit = (match.group(2) or "s").lower()[0]
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
