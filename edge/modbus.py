"""Modbus TCP (pymodbus): holding registers and coils; int16/uint16/int32/uint32/float32,
word order and scale as the graph records them; one connection per host."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from core.errors import DeviceTimeout, DeviceUnreachable, EdgeError, WriteRefused
from edge._base import Adapter, PointTarget, Value, as_bool
from mapper import ModbusAddress, RawPoint

_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bool": 1}


class ModbusAdapter(Adapter):
    kind = "modbus"

    def __init__(self, default_host: str = "", *, default_port: int = 502, timeout_s: float = 3.0) -> None:
        self.default_host = default_host
        self.default_port = default_port
        self.timeout_s = timeout_s
        self._clients: dict[tuple[str, int], Any] = {}
        self._loops: dict[tuple[str, int], asyncio.AbstractEventLoop] = {}
        self._locks: dict[tuple[tuple[str, int], int], asyncio.Lock] = {}

    def _where(self, address: ModbusAddress) -> tuple[str, int]:
        text = address.host or self.default_host
        if not text:
            raise EdgeError("no Modbus host in the graph or the settings")
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
        return host, int(port) if port else self.default_port

    async def _client(self, target: PointTarget) -> Any:
        from pymodbus.client import AsyncModbusTcpClient

        address = _address(target)
        host, port = self._where(address)
        loop = asyncio.get_running_loop()
        key = (host, port)
        lock = self._locks.get((key, id(loop)))
        if lock is None:
            lock = self._locks[(key, id(loop))] = asyncio.Lock()
        async with lock:  # concurrent reads share one connection per device
            client = self._clients.get(key)
            if client is not None and self._loops.get(key) is not loop:
                _drop(client)  # made in another event loop (another CLI command or test)
                client = None
            if client is None or not client.connected:
                self._loops[key] = loop
                client = AsyncModbusTcpClient(
                    host, port=port, timeout=self.timeout_s, retries=1, reconnect_delay=0
                )
                self._clients[key] = client
                try:
                    ok = await asyncio.wait_for(client.connect(), self.timeout_s + 1)
                except (TimeoutError, OSError):
                    ok = False
                if not ok:
                    _drop(client)
                    self._clients.pop(key, None)
                    raise DeviceUnreachable(
                        "no Modbus TCP connection", device=f"{host}:{port}", point=target.name
                    )
        return client

    async def _do(self, target: PointTarget, what: str, call: Any) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusException

        address = _address(target)
        device = f"{address.host or self.default_host}/unit {address.unit}"
        try:
            response = await asyncio.wait_for(call, self.timeout_s + 1)
        except TimeoutError:
            raise DeviceTimeout(f"no answer to {what}", device=device, point=target.name) from None
        except ConnectionException as exc:  # lost with the request out: it may have arrived
            self._forget(address)
            raise DeviceTimeout(f"{what}: no answer ({exc})", device=device, point=target.name) from None
        except ModbusException as exc:
            self._forget(address)
            raise DeviceTimeout(f"{what}: {exc}", device=device, point=target.name) from None
        if response.isError():
            raise WriteRefused(f"{what}: Modbus exception {response}", device=device, point=target.name)
        return response

    def _forget(self, address: ModbusAddress) -> None:
        key = self._where(address)
        client = self._clients.pop(key, None)
        if client is not None:
            _drop(client)

    async def read(self, target: PointTarget) -> Value:
        address = _address(target)
        client = await self._client(target)
        kind = address.register_type
        if kind in ("coil", "discrete"):
            call = client.read_coils if kind == "coil" else client.read_discrete_inputs
            response = await self._do(
                target,
                f"read {kind} {address.register}",
                call(address.register, count=1, device_id=address.unit),
            )
            return bool(response.bits[0])
        call = client.read_holding_registers if kind == "holding" else client.read_input_registers
        count = _WIDTH.get(address.data_type, 1)
        response = await self._do(
            target,
            f"read {kind} {address.register}",
            call(address.register, count=count, device_id=address.unit),
        )
        raw = client.convert_from_registers(
            response.registers, _datatype(client, address), word_order=_order(address)
        )
        return round(float(raw) * address.scale, 6)

    async def write(self, target: PointTarget, value: Value, priority: int) -> None:
        address = _address(target)
        client = await self._client(target)
        if address.register_type == "coil":
            await self._do(
                target,
                f"write coil {address.register}",
                client.write_coil(address.register, as_bool(value), device_id=address.unit),
            )
            return
        if address.register_type != "holding":
            raise WriteRefused(f"{address.register_type} registers are read-only", point=target.name)
        raw = float(value) / (address.scale or 1.0)
        datatype = _datatype(client, address)
        number: int | float = raw if address.data_type == "float32" else round(raw)
        registers = client.convert_to_registers(number, datatype, word_order=_order(address))
        await self._do(
            target,
            f"write holding {address.register}",
            client.write_registers(address.register, registers, device_id=address.unit),
        )

    async def discover(self) -> list[RawPoint]:
        raise EdgeError("Modbus has no discovery: import the register map (CSV with modbus_* columns)")

    async def close(self) -> None:
        for client in self._clients.values():
            _drop(client)
        self._clients.clear()


def _drop(client: Any) -> None:
    """Close a client; one whose event loop has ended can only be let go."""
    with contextlib.suppress(RuntimeError):
        client.close()


def _address(target: PointTarget) -> ModbusAddress:
    if not isinstance(target.address, ModbusAddress):
        raise EdgeError("not a Modbus point", point=target.name)
    return target.address


def _datatype(client: Any, address: ModbusAddress) -> Any:
    name = {"bool": "uint16"}.get(address.data_type, address.data_type).upper()
    return client.DATATYPE[name]


def _order(address: ModbusAddress) -> Any:
    return "little" if address.word_order.lower() == "little" else "big"
