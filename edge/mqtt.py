"""MQTT (paho-mqtt 2.x) for gateways that speak it: commands are published to the point's
command topic, state is read from its state topic (retained messages, or the next one)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from core.errors import DeviceTimeout, DeviceUnreachable, EdgeError
from edge._base import Adapter, PointTarget, Value, as_number
from mapper import MQTTAddress, RawPoint


class MQTTAdapter(Adapter):
    kind = "mqtt"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        username: str = "",
        password: str = "",
        payload: str = "plain",
        timeout_s: float = 3.0,
        discovery_topic: str = "#",
    ) -> None:
        if payload not in ("plain", "json"):
            raise EdgeError(f"MQTT payload must be 'plain' or 'json', not '{payload}'")
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.payload = payload
        self.timeout_s = timeout_s
        self.discovery_topic = discovery_topic
        self._client: Any = None
        self._values: dict[str, tuple[float, str]] = {}
        self._cond = threading.Condition()
        self._subscribed: set[str] = set()

    def _connect(self) -> Any:
        if self._client is not None and self._client.is_connected():
            return self._client
        self._client = connect_mqtt(
            self.host,
            self.port,
            self.username,
            self.password,
            f"osed-{id(self):x}",
            self._on_message,
            self.timeout_s,
        )
        self._subscribed.clear()
        return self._client

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._cond:
            self._values[message.topic] = (time.monotonic(), message.payload.decode("utf-8", "replace"))
            self._cond.notify_all()

    def _read_sync(self, target: PointTarget) -> Value:
        address = _address(target)
        client = self._connect()
        topic = address.state_topic
        with self._cond:
            if topic not in self._subscribed:
                self._subscribed.add(topic)
                client.subscribe(topic, qos=1)
            ok = self._cond.wait_for(lambda: topic in self._values, timeout=self.timeout_s)
            if not ok:
                raise DeviceTimeout(
                    f"no state on '{topic}'", device=f"mqtt://{self.host}:{self.port}", point=target.name
                )
            return _decode(self._values[topic][1])

    def _write_sync(self, target: PointTarget, value: Value) -> None:
        address = _address(target)
        if not address.command_topic:
            raise EdgeError("the graph gives no command topic", point=target.name)
        client = self._connect()
        body = json.dumps({"value": value}) if self.payload == "json" else _encode(value)
        info = client.publish(address.command_topic, body, qos=1)
        try:
            info.wait_for_publish(timeout=self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeviceUnreachable(
                f"publish failed: {exc}", device=f"mqtt://{self.host}:{self.port}", point=target.name
            ) from exc
        if not info.is_published():
            raise DeviceTimeout("no PUBACK", device=f"mqtt://{self.host}:{self.port}", point=target.name)

    async def read(self, target: PointTarget) -> Value:
        return await asyncio.to_thread(self._read_sync, target)

    async def write(self, target: PointTarget, value: Value, priority: int) -> None:
        await asyncio.to_thread(self._write_sync, target, value)

    async def discover(self) -> list[RawPoint]:
        """Topics with a value seen on ``discovery_topic`` within the timeout (retained
        state first); a ``…/set`` sibling is taken as the command topic."""

        def run() -> list[RawPoint]:
            client = self._connect()
            client.subscribe(self.discovery_topic, qos=0)
            time.sleep(self.timeout_s)
            with self._cond:
                seen = dict(self._values)
            points = []
            for topic, (_t, payload) in sorted(seen.items()):
                if topic.endswith("/set") or as_number(_decode(payload)) is None:
                    continue
                command = f"{topic}/set" if f"{topic}/set" in seen else None
                points.append(
                    RawPoint(
                        name=topic,
                        writable=command is not None,
                        address=MQTTAddress(state_topic=topic, command_topic=command),
                    )
                )
            return points

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None


def connect_mqtt(
    host: str, port: int, username: str, password: str, client_id: str, on_message: Any, timeout_s: float
) -> Any:
    """A paho client with its network thread running and the broker's CONNACK received."""
    import paho.mqtt.client as mqtt

    where = f"mqtt://{host}:{port}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if username:
        client.username_pw_set(username, password or None)
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise DeviceUnreachable(f"cannot connect: {exc}", device=where) from exc
    client.loop_start()
    deadline = time.monotonic() + timeout_s
    while not client.is_connected():
        if time.monotonic() > deadline:
            client.loop_stop()
            raise DeviceTimeout("no CONNACK", device=where)
        time.sleep(0.01)
    return client


def _address(target: PointTarget) -> MQTTAddress:
    if not isinstance(target.address, MQTTAddress):
        raise EdgeError("not an MQTT point", point=target.name)
    return target.address


def _encode(value: Value) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def _decode(payload: str) -> Value:
    text = payload.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return text
        if isinstance(data, dict) and "value" in data:
            return data["value"]
        return text
    number = as_number(text)
    if text.upper() in ("ON", "OFF", "TRUE", "FALSE"):
        return number == 1.0
    return number if number is not None else text
