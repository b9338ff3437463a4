"""A Modbus device that acknowledges writes slowly: a TCP proxy in front of a real pymodbus
server (``ModbusPeer``) that passes requests through at once, so the register changes, but
holds back the answer to each write (function codes 5, 6, 15, 16) until it is let go.

That is the window the safety layer's journal is for: the device has the value, the writer
does not know yet. The test kills the writer inside it (``held`` tells when it is open)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.conftest import free_port

_WRITE_CODES = frozenset({0x05, 0x06, 0x0F, 0x10})


class SlowAckProxy:
    """``hold`` answers to writes are held back (the first ones): for ``delay_s`` seconds
    each, or, with ``delay_s=None``, until ``let_go()``. Later writes are answered at once."""

    def __init__(self, upstream_port: int, *, hold: int = 1, delay_s: float | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.delay_s = delay_s
        #: Set while a write's answer is being held (the device has applied the write).
        self.held = threading.Event()
        self.writes_acknowledged = 0
        self._holds_left = hold
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._release = asyncio.Event()
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
                ready.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._server.serve_forever()
                # Closed (stop()): end the connections, answers still held included.
                rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in rest:
                    task.cancel()
                await asyncio.gather(*rest, return_exceptions=True)

            loop.run_until_complete(main())

        self._loop = loop
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "slow-ack proxy did not start"

    def let_go(self) -> None:
        """Send the answers held so far, and answer every write at once from now on."""

        def release() -> None:
            self._holds_left = 0
            assert self._release is not None
            self._release.set()

        assert self._loop is not None
        self._loop.call_soon_threadsafe(release)

    def hold(self, count: int = 1) -> None:
        """Hold back the answers to the next ``count`` writes."""
        done = threading.Event()

        def arm() -> None:
            self._holds_left = count
            self._release = asyncio.Event()
            self.held.clear()
            done.set()

        assert self._loop is not None
        self._loop.call_soon_threadsafe(arm)
        assert done.wait(5)

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def requests() -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while data := await reader.read(4096):
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def answers() -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while True:
                    header = await up_reader.readexactly(7)  # MBAP: tid, pid, length, unit
                    length = int.from_bytes(header[4:6], "big")
                    pdu = await up_reader.readexactly(length - 1)
                    if pdu[0] in _WRITE_CODES:
                        if self._holds_left > 0:
                            self._holds_left -= 1
                            release = self._release
                            self.held.set()
                            if self.delay_s is not None:
                                await asyncio.sleep(self.delay_s)
                            elif release is not None:
                                await release.wait()
                        self.writes_acknowledged += 1
                    writer.write(header + pdu)
                    await writer.drain()
            writer.close()

        await asyncio.gather(requests(), answers())
