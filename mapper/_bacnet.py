"""BACnet/IP discovery with bacpypes3: Who-Is, then each device's object list and, per object,
its name, description, units and whether it is commandable (has a priority array)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.errors import IngestError
from mapper._records import BACnetAddress, RawPoint, SourceRef

log = logging.getLogger(__name__)

#: Object types that carry point values; the rest (device, network-port, schedule...) are not points.
POINT_TYPES = {
    "analog-input",
    "analog-output",
    "analog-value",
    "binary-input",
    "binary-output",
    "binary-value",
    "multi-state-input",
    "multi-state-output",
    "multi-state-value",
    "accumulator",
    "integer-value",
    "large-analog-value",
    "positive-integer-value",
}
_ALWAYS_COMMANDABLE = {"analog-output", "binary-output", "multi-state-output"}


def discover_bacnet(
    address: str | None = None,
    *,
    device: int | None = None,
    local_address: str = "0.0.0.0:47808",
    local_device: int = 4194301,
    timeout_s: float = 5.0,
    warnings: list[str] | None = None,
) -> list[RawPoint]:
    """Points of the BACnet devices that answer Who-Is (at ``address``, or broadcast).

    A device or object that stops answering part way yields the points already read; what
    was missed is logged and appended to ``warnings``."""
    try:
        return asyncio.run(
            _discover(address, device, local_address, local_device, timeout_s, warnings),
        )
    except OSError as exc:
        raise IngestError(f"cannot open BACnet/IP on {local_address}: {exc}", source="bacnet") from exc


async def _discover(
    address: str | None,
    device: int | None,
    local_address: str,
    local_device: int,
    timeout_s: float,
    warnings: list[str] | None,
) -> list[RawPoint]:
    from bacpypes3.app import Application
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject
    from bacpypes3.pdu import Address

    app = Application.from_object_list(
        [
            DeviceObject(
                objectIdentifier=("device", local_device), objectName="osed-discovery", vendorIdentifier=999
            ),
            NetworkPortObject(local_address, objectIdentifier=("network-port", 1), objectName="NP1"),
        ]
    )
    source = f"bacnet:{address or 'broadcast'}"
    try:
        target = Address(address) if address else None
        low = high = device
        i_ams = await app.who_is(low, high, target, timeout=timeout_s)
        if not i_ams:
            raise IngestError("no device answered Who-Is", source=source)
        points: list[RawPoint] = []
        for i_am in i_ams:
            device_id = int(i_am.iAmDeviceIdentifier[1])
            try:
                points.extend(await _device_points(app, i_am.pduSource, device_id, timeout_s, warnings))
            except IngestError as exc:
                _warn(
                    warnings, f"device {device_id} at {i_am.pduSource}: {exc.reason}; its points were skipped"
                )
        return points
    finally:
        app.close()


async def _read(app: Any, addr: Any, objid: Any, prop: str, timeout_s: float) -> Any:
    """A property's value, or None when the object does not have it."""
    # bacpypes3 raises the Error/Reject/Abort APDU itself (not an Exception subclass).
    from bacpypes3.apdu import AbortPDU, ErrorPDU, RejectPDU

    try:
        return await asyncio.wait_for(app.read_property(addr, objid, prop), timeout_s)
    except (ErrorPDU, RejectPDU, AbortPDU):
        return None
    except TimeoutError:
        raise IngestError(f"no answer reading {objid} {prop}", source=f"bacnet:{addr}") from None


def _warn(warnings: list[str] | None, message: str) -> None:
    log.warning("BACnet discovery: %s", message)
    if warnings is not None:
        warnings.append(message)


async def _device_points(
    app: Any, addr: Any, device_id: int, timeout_s: float, warnings: list[str] | None
) -> list[RawPoint]:
    from bacpypes3.primitivedata import ObjectIdentifier

    device_oid = ObjectIdentifier(("device", device_id))
    objects = await _read(app, addr, device_oid, "object-list", timeout_s)
    if objects is None:
        # Devices that cannot send the whole list at once: element by element.
        count = await _read(app, addr, device_oid, "object-list", timeout_s)
        objects = []
        for i in range(1, int(count or 0) + 1):
            objects.append(
                await asyncio.wait_for(app.read_property(addr, device_oid, "object-list", i), timeout_s)
            )
    points = []
    for oid in objects:
        obj_type = str(oid[0])
        if obj_type not in POINT_TYPES:
            continue
        try:
            name = await _read(app, addr, oid, "object-name", timeout_s)
            description = await _read(app, addr, oid, "description", timeout_s)
            units = await _read(app, addr, oid, "units", timeout_s)
            commandable = obj_type in _ALWAYS_COMMANDABLE or (
                await _read(app, addr, oid, "priority-array", timeout_s) is not None
            )
        except IngestError as exc:
            _warn(warnings, f"device {device_id}: {oid} skipped: {exc.reason}")
            continue
        unit = str(units) if units is not None else ""
        points.append(
            RawPoint(
                name=str(name) if name is not None else f"{obj_type},{oid[1]}",
                description=str(description or ""),
                unit="" if unit == "no-units" else unit,
                object_type=obj_type,
                writable=commandable,
                source=SourceRef(f"bacnet:{addr} device {device_id}"),
                address=BACnetAddress(
                    device_instance=device_id,
                    object_type=obj_type,
                    object_instance=int(oid[1]),
                    device_address=str(addr),
                ),
            )
        )
    return points
