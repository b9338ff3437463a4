"""BACnet/IP (bacpypes3): presentValue at a write priority; release relinquishes (Null)."""

from __future__ import annotations

import asyncio
from typing import Any

from core.errors import DeviceTimeout, DeviceUnreachable, EdgeError, PointNotFound, WriteRefused
from edge._base import Adapter, PointTarget, Value, as_bool
from mapper import BACnetAddress, RawPoint, discover_bacnet

#: Priorities 1-2 are manual life safety and automatic life safety: never ours.
LOWEST_ALLOWED_PRIORITY = 3


class BACnetAdapter(Adapter):
    kind = "bacnet"
    has_priority_array = True

    def __init__(
        self,
        local_address: str = "0.0.0.0:47808",
        *,
        priority: int = 8,
        local_device: int = 4194302,
        timeout_s: float = 3.0,
        discovery_address: str | None = None,
    ) -> None:
        check_priority(priority)
        self.local_address = local_address
        self.priority = priority
        self.local_device = local_device
        self.timeout_s = timeout_s
        self.discovery_address = discovery_address
        self._app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _application(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._app is not None and self._loop is not loop:
            self._app.close()  # bound to another event loop
            self._app = None
        self._loop = loop
        if self._app is None:
            from bacpypes3.app import Application
            from bacpypes3.local.device import DeviceObject
            from bacpypes3.local.networkport import NetworkPortObject

            try:
                self._app = Application.from_object_list(
                    [
                        DeviceObject(
                            objectIdentifier=("device", self.local_device),
                            objectName="osed-actuator",
                            vendorIdentifier=999,
                        ),
                        NetworkPortObject(
                            self.local_address, objectIdentifier=("network-port", 1), objectName="NP1"
                        ),
                    ]
                )
            except OSError as exc:
                raise DeviceUnreachable(f"cannot open BACnet/IP on {self.local_address}: {exc}") from exc
        return self._app

    async def _call(self, target: PointTarget, what: str, coro: Any) -> Any:
        from bacpypes3.apdu import AbortPDU, ErrorPDU, RejectPDU

        address = _address(target)
        device = f"bacnet:{address.device_instance}@{address.device_address}"
        try:
            return await asyncio.wait_for(coro, self.timeout_s)
        except TimeoutError:
            raise DeviceTimeout(f"no answer to {what}", device=device, point=target.name) from None
        except ErrorPDU as exc:  # bacpypes3 raises the APDUs themselves
            code = str(getattr(exc, "errorCode", "error"))
            if code in ("unknown-object", "unknown-property"):
                raise PointNotFound(f"{what}: {code}", device=device, point=target.name) from None
            raise WriteRefused(
                f"{what}: {getattr(exc, 'errorClass', '')} {code}", device=device, point=target.name
            ) from None
        except (RejectPDU, AbortPDU) as exc:
            reason = getattr(exc, "apduAbortRejectReason", "") or type(exc).__name__
            raise WriteRefused(f"{what}: {reason}", device=device, point=target.name) from None
        except OSError as exc:
            raise DeviceUnreachable(f"{what}: {exc}", device=device, point=target.name) from exc

    async def read(self, target: PointTarget) -> Value:
        address = _address(target)
        value = await self._call(
            target,
            "read present-value",
            self._application().read_property(address.device_address, _objid(address), "present-value"),
        )
        return _native(value)

    async def write(self, target: PointTarget, value: Value, priority: int) -> None:
        check_priority(priority)
        address = _address(target)
        await self._call(
            target,
            f"write present-value @{priority}",
            self._application().write_property(
                address.device_address,
                _objid(address),
                "present-value",
                _bacnet_value(address, value),
                priority=priority,
            ),
        )

    async def release(self, target: PointTarget, priority: int, restore: Value | None) -> None:
        """Write Null at our priority: the priority array falls back to the next writer."""
        from bacpypes3.primitivedata import Null

        check_priority(priority)
        address = _address(target)
        await self._call(
            target,
            f"relinquish @{priority}",
            self._application().write_property(
                address.device_address, _objid(address), "present-value", Null(()), priority=priority
            ),
        )

    async def priority_array(self, target: PointTarget) -> list[Value | None]:
        """The 16 slots of the object's priority array (None where relinquished)."""
        address = _address(target)
        array = await self._call(
            target,
            "read priority-array",
            self._application().read_property(address.device_address, _objid(address), "priority-array"),
        )
        slots = [_slot(pv) for pv in array]
        if address.object_type.startswith("binary"):
            return [None if v is None else bool(int(v)) for v in slots]
        return slots

    async def discover(self) -> list[RawPoint]:
        await self.close()  # discovery opens its own port
        return await asyncio.to_thread(
            discover_bacnet,
            self.discovery_address,
            local_address=self.local_address,
            timeout_s=self.timeout_s,
        )

    async def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def check_priority(priority: int) -> None:
    if not LOWEST_ALLOWED_PRIORITY <= priority <= 16:
        raise EdgeError(f"BACnet write priority {priority} is not allowed: use 3..16 (1-2 are life safety)")


def _address(target: PointTarget) -> BACnetAddress:
    address = target.address
    if not isinstance(address, BACnetAddress):
        raise EdgeError("not a BACnet point", point=target.name)
    if not address.device_address:
        raise EdgeError(
            "the graph gives no device address (IP[:port])",
            device=f"bacnet:{address.device_instance}",
            point=target.name,
        )
    return address


def _objid(address: BACnetAddress) -> str:
    return f"{address.object_type},{address.object_instance}"


def _bacnet_value(address: BACnetAddress, value: Value) -> Any:
    if address.object_type.startswith("binary"):
        return "active" if as_bool(value) else "inactive"
    if address.object_type.startswith("multi-state"):
        return int(float(value))
    return float(value)


def _native(value: Any) -> Value:
    text = str(value)
    if text in ("active", "inactive"):
        return text == "active"
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value
    try:
        return float(text)
    except ValueError:
        return text


def _slot(pv: Any) -> Value | None:
    """One PriorityValue choice: None for null, else its value."""
    for choice in (
        "null",
        "real",
        "enumerated",
        "unsigned",
        "boolean",
        "signed",
        "double",
        "characterString",
    ):
        got = getattr(pv, choice, None)
        if got is not None:
            return None if choice == "null" else _native(got)
    return None
