"""A real pymodbus TCP server on loopback, in its own thread and event loop, that can be
stopped and started again on the same port (a device that goes away mid-lease)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from tests.conftest import free_port


class ModbusPeer:
    def __init__(self, unit: int = 1, registers: int = 200) -> None:
        import warnings

        from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext

        warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)

        # pymodbus blocks are 1-based (a client's address N is block address N + 1).
        self.device = ModbusDeviceContext(
            hr=ModbusSequentialDataBlock(1, [0] * (registers + 1)),
            co=ModbusSequentialDataBlock(1, [False] * (registers + 1)),
            ir=ModbusSequentialDataBlock(1, [0] * (registers + 1)),
            di=ModbusSequentialDataBlock(1, [False] * (registers + 1)),
        )
        self.context = ModbusServerContext(devices={unit: self.device}, single=False)
        self.unit = unit
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from pymodbus.server import ModbusTcpServer

        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._server = ModbusTcpServer(self.context, address=("127.0.0.1", self.port))
                await self._server.serve_forever(background=True)
                ready.set()
                await self._server.serving

            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main())

        self._loop = loop
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "Modbus server did not start"

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
        fut.result(10)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = self._server = self._thread = None

    # -- what the device holds, asked over Modbus by a separate client ---------------------
    def _client(self) -> Any:
        from pymodbus.client import ModbusTcpClient

        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=3)
        assert client.connect(), "Modbus peer is not serving"
        return client

    def holding(self, address: int, count: int = 1) -> list[int]:
        client = self._client()
        try:
            return list(client.read_holding_registers(address, count=count, device_id=self.unit).registers)
        finally:
            client.close()

    def set_holding(self, address: int, values: list[int]) -> None:
        client = self._client()
        try:
            assert not client.write_registers(address, values, device_id=self.unit).isError()
        finally:
            client.close()

    def coil(self, address: int) -> bool:
        client = self._client()
        try:
            return bool(client.read_coils(address, count=1, device_id=self.unit).bits[0])
        finally:
            client.close()
