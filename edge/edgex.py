"""EdgeX Foundry core-command v3: ``GET /api/v3/device/name/{device}/{command}`` reads,
``PUT`` with a SettingRequest (resource -> value as text) writes; 404/423/503 map to typed
errors and values are converted by the reading's valueType.

The same commands also go over core-command's external MQTT message bus
(``transport="mqtt"``): a MessageEnvelope on ``edgex/command/request/<device>/<command>/<get|set>``,
the answer on ``edgex/command/response/<device>/<command>/<method>`` matched by request id."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from core.errors import DeviceLocked, DeviceTimeout, DeviceUnreachable, EdgeError, PointNotFound, WriteRefused
from edge._base import Adapter, LoopHttp, PointTarget, Value, as_bool
from mapper import EdgeXAddress, RawPoint, discover_edgex

_INTS = {"Uint8", "Uint16", "Uint32", "Uint64", "Int8", "Int16", "Int32", "Int64"}


class EdgeXAdapter(Adapter):
    kind = "edgex"

    def __init__(
        self,
        command_url: str,
        *,
        metadata_url: str = "",
        timeout_s: float = 5.0,
        token: str = "",
        bus: EdgeXMessageBus | None = None,
    ) -> None:
        self.bus = bus
        self.command_url = command_url.rstrip("/")
        self.metadata_url = metadata_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = LoopHttp({"Authorization": f"Bearer {token}"} if token else {}, timeout_s)
        self._value_types: dict[tuple[str, str], str] = {}

    def _url(self, address: EdgeXAddress) -> str:
        if not self.command_url:
            raise EdgeError("no EdgeX core-command URL configured (edge.edgex_command_url)")
        device, command = quote(address.device, safe=""), quote(address.resource, safe="")
        return f"{self.command_url}/api/v3/device/name/{device}/{command}"

    async def _request(self, target: PointTarget, method: str, body: dict[str, str] | None = None) -> Any:
        if self.bus is not None:
            return await asyncio.to_thread(self.bus.command, target, method, body)
        address = _address(target)
        url = self._url(address)
        response = await self._http.request(method, url, body, device=address.device, point=target.name)
        message = _message(response)
        status = response.status_code
        if status == 404:
            raise PointNotFound(f"EdgeX 404: {message}", device=address.device, point=target.name)
        if status == 423:
            raise DeviceLocked(
                f"EdgeX 423 (device locked or down): {message}", device=address.device, point=target.name
            )
        if status == 503:
            raise DeviceUnreachable(f"EdgeX 503: {message}", device=address.device, point=target.name)
        if status >= 400:
            raise WriteRefused(f"EdgeX {status}: {message}", device=address.device, point=target.name)
        return response.json() if response.content else {}

    async def read(self, target: PointTarget) -> Value:
        address = _address(target)
        data = await self._request(target, "GET")
        readings = (data.get("event") or {}).get("readings") or []
        for reading in readings:
            if reading.get("resourceName") == address.resource or len(readings) == 1:
                value_type = str(reading.get("valueType", "String"))
                self._value_types[(address.device, address.resource)] = value_type
                return from_edgex(str(reading.get("value", "")), value_type)
        raise PointNotFound(
            "the event has no reading for this resource", device=address.device, point=target.name
        )

    async def write(self, target: PointTarget, value: Value, priority: int) -> None:
        address = _address(target)
        value_type = self._value_types.get((address.device, address.resource))
        if value_type is None:
            await self.read(target)  # learn the valueType the device expects
            value_type = self._value_types.get((address.device, address.resource), "String")
        await self._request(target, "PUT", {address.resource: to_edgex(value, value_type)})

    async def discover(self) -> list[RawPoint]:
        if not self.metadata_url:
            raise EdgeError("EdgeX discovery reads core-metadata: set edge.edgex_metadata_url")
        return await asyncio.to_thread(discover_edgex, self.metadata_url)

    async def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
        await self._http.close()


def from_edgex(text: str, value_type: str) -> Value:
    if value_type == "Bool":
        return text.strip().lower() == "true"
    if value_type in _INTS:
        return int(float(text))
    if value_type in ("Float32", "Float64"):
        return float(text)
    return text


def to_edgex(value: Value, value_type: str) -> str:
    if value_type == "Bool":
        return "true" if as_bool(value) else "false"
    if value_type in _INTS:
        return str(round(float(value)))
    if value_type in ("Float32", "Float64"):
        return repr(float(value))
    return str(value)


def _address(target: PointTarget) -> EdgeXAddress:
    if not isinstance(target.address, EdgeXAddress):
        raise EdgeError("not an EdgeX point", point=target.name)
    return target.address


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]


class EdgeXMessageBus:
    """core-command over its external MQTT bus (EdgeX 3.x ``ExternalMQTT``)."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        request_prefix: str = "edgex/command/request",
        response_prefix: str = "edgex/command/response",
        username: str = "",
        password: str = "",
        timeout_s: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self.request_prefix = request_prefix.rstrip("/")
        self.response_prefix = response_prefix.rstrip("/")
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self._client: Any = None
        self._answers: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()

    def _connect(self) -> Any:
        if self._client is not None and self._client.is_connected():
            return self._client
        from edge.mqtt import connect_mqtt

        client = connect_mqtt(
            self.host, self.port, self.username, self.password, f"osed-edgex-{uuid.uuid4().hex[:8]}",
            self._on_message, self.timeout_s,
        )  # fmt: skip
        subscribed = threading.Event()
        client.on_subscribe = lambda *_a: subscribed.set()
        client.subscribe(f"{self.response_prefix}/#", qos=1)
        if not subscribed.wait(self.timeout_s):
            client.loop_stop()
            raise DeviceTimeout("EdgeX message bus: no SUBACK", device=f"mqtt://{self.host}:{self.port}")
        self._client = client
        return client

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        try:
            envelope = json.loads(message.payload)
        except ValueError:
            return
        request_id = str(envelope.get("requestID") or envelope.get("requestId") or "")
        with self._cond:
            self._answers[request_id] = envelope
            self._cond.notify_all()

    def command(self, target: PointTarget, method: str, body: dict[str, str] | None) -> Any:
        address = _address(target)
        client = self._connect()
        request_id = str(uuid.uuid4())
        verb = "get" if method == "GET" else "set"
        envelope: dict[str, Any] = {
            "apiVersion": "v3",
            "contentType": "application/json",
            "correlationID": str(uuid.uuid4()),
            "requestId": request_id,
        }
        if verb == "get":
            envelope["queryParams"] = {"ds-pushevent": "false", "ds-returnevent": "true"}
        else:
            envelope["payload"] = body or {}
        topic = f"{self.request_prefix}/{address.device}/{address.resource}/{verb}"
        client.publish(topic, json.dumps(envelope), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._answers, timeout=self.timeout_s):
                raise DeviceTimeout(
                    f"no answer on {self.response_prefix}/…", device=address.device, point=target.name
                )
            answer = self._answers.pop(request_id)
        payload = answer.get("payload")
        if int(answer.get("errorCode", 0) or 0) != 0:
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload or "")
            status = int(payload.get("statusCode", 0) or 0) if isinstance(payload, dict) else 0
            if status == 404:
                raise PointNotFound(f"EdgeX 404: {message}", device=address.device, point=target.name)
            if status == 423:
                raise DeviceLocked(f"EdgeX 423: {message}", device=address.device, point=target.name)
            raise WriteRefused(
                f"EdgeX refused the command: {message}", device=address.device, point=target.name
            )
        return payload or {}

    def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None
