"""A real mosquitto broker on loopback (Debian package, started and stopped by the test) and
a small MQTT device: it publishes its state retained and applies what arrives on its command
topic, as gateways (Zigbee2MQTT, Shelly, EdgeX's message bus) do."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port


@contextmanager
def mosquitto(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    assert Path(binary).exists(), "Debian package mosquitto is required (.ci/run installs it)"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", "utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (
                    f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class MQTTDevice:
    """A device behind a gateway: ``{prefix}/{name}`` is its state (retained), ``…/set``
    changes it."""

    def __init__(self, port: int, prefix: str, values: dict[str, str]) -> None:
        import paho.mqtt.client as mqtt

        self.prefix = prefix
        self.values = dict(values)
        self.received: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{prefix}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/+/set", qos=1)
        for name, value in self.values.items():
            self.client.publish(f"{prefix}/{name}", value, qos=1, retain=True).wait_for_publish(5)

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        name = message.topic[len(self.prefix) + 1 : -len("/set")]
        payload = message.payload.decode()
        with self._lock:
            self.received.append((name, payload))
            self.values[name] = payload
        self.client.publish(f"{self.prefix}/{name}", payload, qos=1, retain=True)

    def value(self, name: str) -> str:
        with self._lock:
            return self.values[name]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class EdgeXCommandBus:
    """core-command's external MQTT interface as EdgeX documents it: requests on
    ``edgex/command/request/<device>/<command>/<get|set>`` (a MessageEnvelope), answers on
    ``edgex/command/response/<device>/<command>/<method>`` with the request's id, errorCode 0/1
    and the REST answer as payload. ``devices`` has the layout of ``edgex_command_app``."""

    def __init__(self, port: int, devices: dict[str, dict[str, Any]]) -> None:
        import paho.mqtt.client as mqtt

        self.devices = devices
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="core-command")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe("edgex/command/request/#", qos=1)
        assert done.wait(5)

    def _answer(
        self, device_name: str, command: str, method: str, envelope: dict[str, Any]
    ) -> tuple[int, Any]:
        device = self.devices.get(device_name)
        if device is None or command not in device["resources"]:
            return 1, {"apiVersion": "v3", "statusCode": 404, "message": f"{device_name}/{command} not found"}
        if device.get("adminState", "UNLOCKED") == "LOCKED":
            return 1, {"apiVersion": "v3", "statusCode": 423, "message": f"device {device_name} is LOCKED"}
        resource = device["resources"][command]
        if method == "get":
            reading = {"deviceName": device_name, "resourceName": command, "valueType": resource["valueType"],
                       "value": resource["value"], "origin": time.time_ns()}  # fmt: skip
            event = {
                "apiVersion": "v3",
                "deviceName": device_name,
                "sourceName": command,
                "readings": [reading],
            }
            return 0, {"apiVersion": "v3", "statusCode": 200, "event": event}
        payload = envelope.get("payload") or envelope.get("Payload") or {}
        for name, value in payload.items():
            if name not in device["resources"]:
                return 1, {"apiVersion": "v3", "statusCode": 404, "message": f"resource {name} not found"}
            device["resources"][name]["value"] = str(value)
        return 0, None

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        import json

        parts = message.topic.split("/")
        envelope = json.loads(message.payload)
        device_name, command, method = parts[3], parts[4], parts[5]
        code, payload = self._answer(device_name, command, method, envelope)
        answer = {
            "apiVersion": "v3",
            "receivedTopic": f"edgex/command/response/{device_name}/{command}/{method}",
            "correlationID": envelope.get("correlationID") or envelope.get("CorrelationID"),
            "requestID": envelope.get("requestId") or envelope.get("RequestId"),
            "errorCode": code,
            "payload": payload,
            "contentType": "application/json",
        }
        self.client.publish(answer["receivedTopic"], json.dumps(answer), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
