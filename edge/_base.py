"""The one interface every edge adapter implements, and the point it acts on."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import DeviceTimeout, DeviceUnreachable
from mapper import Address, RawPoint

Value = float | int | bool | str


@dataclass(frozen=True)
class PointTarget:
    """A point as the graph records it: where it is reached and what it may be set to."""

    building: str
    iri: str
    name: str
    address: Address
    writable: bool
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""

    @property
    def adapter(self) -> str:
        return self.address.adapter

    @property
    def device(self) -> str:
        """The device key an operator can lock as a whole."""
        a = self.address
        if a.adapter == "bacnet":
            return f"bacnet:{a.device_instance}"  # type: ignore[union-attr]
        if a.adapter == "modbus":
            return f"modbus:{a.host or ''}:{a.unit}"  # type: ignore[union-attr]
        if a.adapter == "edgex":
            return f"edgex:{a.device}"  # type: ignore[union-attr]
        if a.adapter == "homeassistant":
            return f"homeassistant:{a.entity_id}"  # type: ignore[union-attr]
        topic = a.command_topic or a.state_topic  # type: ignore[union-attr]
        return f"mqtt:{topic.rsplit('/', 1)[0]}"


class Adapter(ABC):
    """Read, write, release and discover the points of one protocol.

    ``has_priority_array``: the protocol keeps writers apart itself (BACnet), so a release
    relinquishes; otherwise the safety layer restores the value read before the first write.

    A failed ``write`` raises ``DeviceTimeout`` when the request may have reached the device
    without an answer (the safety layer then undoes it), any other ``EdgeError`` when it
    cannot have taken effect (refused, or never sent).
    """

    kind: str = ""
    has_priority_array: bool = False

    @abstractmethod
    async def read(self, target: PointTarget) -> Value: ...

    @abstractmethod
    async def write(self, target: PointTarget, value: Value, priority: int) -> None: ...

    async def release(self, target: PointTarget, priority: int, restore: Value | None) -> None:
        """Undo our write: relinquish (priority array) or write back ``restore``."""
        if restore is not None:
            await self.write(target, restore, priority)

    @abstractmethod
    async def discover(self) -> list[RawPoint]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Free connections."""


#: httpx errors raised before a request leaves: the device cannot have acted on it.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)


class LoopHttp:
    """One httpx client per event loop: an async client cannot move between loops (each CLI
    command and each test runs its own)."""

    def __init__(self, headers: dict[str, str], timeout_s: float) -> None:
        self.headers, self.timeout_s = headers, timeout_s
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers)
            self._loop = loop
        return self._http

    async def request(self, method: str, url: str, body: Any, *, device: str, point: str) -> httpx.Response:
        """The response, whatever its status; no answer or no connection as typed errors:
        ``DeviceUnreachable`` only when the request cannot have been sent."""
        try:
            return await self.client().request(method, url, json=body)
        except _NOT_SENT as exc:
            raise DeviceUnreachable(
                f"{method} {url}: {exc or 'no connection'}", device=device, point=point
            ) from None
        except httpx.TimeoutException:
            raise DeviceTimeout(f"{method} {url}: no answer", device=device, point=point) from None
        except httpx.TransportError as exc:  # sent, then the connection broke: no answer
            raise DeviceTimeout(f"{method} {url}: no answer ({exc})", device=device, point=point) from None
        except httpx.HTTPError as exc:
            raise DeviceUnreachable(f"{method} {url}: {exc}", device=device, point=point) from None

    async def close(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None


def as_number(value: Value) -> float | None:
    """A numeric reading of a value, or None for text that is not a number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    if text in ("on", "true", "active", "open"):
        return 1.0
    if text in ("off", "false", "inactive", "closed"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def as_bool(value: Value) -> bool:
    number = as_number(value)
    if number is None:
        raise ValueError(f"'{value}' is not an on/off value")
    return number != 0.0
