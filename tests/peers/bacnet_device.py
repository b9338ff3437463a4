"""A real BACnet/IP device (bacpypes3) on loopback, run in its own thread and event loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bacnet_device(device_id: int = 1001) -> Iterator[str]:
    """Yields the device's address ("127.0.0.1:port") while it serves."""
    from bacpypes3.app import Application
    from bacpypes3.local.analog import (
        AnalogInputObject,
        AnalogOutputObject,
        AnalogValueObject,
        AnalogValueObjectCmd,
    )
    from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject, BinaryValueObjectCmd
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject

    address = f"127.0.0.1:{free_udp_port()}"
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["app"] = Application.from_object_list(
                [
                    DeviceObject(
                        objectIdentifier=("device", device_id), objectName="ahu1-ctrl", vendorIdentifier=999
                    ),
                    NetworkPortObject(address, objectIdentifier=("network-port", 1), objectName="NP1"),
                    AnalogInputObject(
                        objectIdentifier=("analog-input", 1),
                        objectName="AHU-1.SA-T",
                        presentValue=55.0,
                        units="degrees-fahrenheit",
                        description="Supply air temperature",
                    ),
                    AnalogOutputObject(
                        objectIdentifier=("analog-output", 1),
                        objectName="AHU-1.CLG-VLV",
                        presentValue=0.0,
                        units="percent",
                        description="Cooling valve",
                    ),
                    AnalogValueObjectCmd(
                        objectIdentifier=("analog-value", 1),
                        objectName="AHU-1.SA-T-SP",
                        presentValue=55.0,
                        units="degrees-fahrenheit",
                        description="Supply air temperature setpoint",
                    ),
                    AnalogValueObject(
                        objectIdentifier=("analog-value", 2),
                        objectName="AHU-1.RUNTIME",
                        presentValue=10.0,
                        units="hours",
                    ),
                    BinaryInputObject(
                        objectIdentifier=("binary-input", 1),
                        objectName="AHU-1.SF-STS",
                        presentValue="inactive",
                    ),
                    BinaryOutputObject(
                        objectIdentifier=("binary-output", 1),
                        objectName="AHU-1.SF-CMD",
                        presentValue="inactive",
                    ),
                    BinaryValueObjectCmd(
                        objectIdentifier=("binary-value", 1),
                        objectName="AHU-1.OCC-MODE",
                        presentValue="active",
                    ),
                ]
            )
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield address
    finally:
        app = holder.get("app")
        if app is not None:
            loop.call_soon_threadsafe(app.close)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
