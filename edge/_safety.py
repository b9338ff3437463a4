"""The safety layer every write passes: capability, limits, leases, arbitration, overrides,
dry-run and audit. There is no other path from OSED to a device."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import (
    EdgeError,
    LeaseConflict,
    NotWritable,
    OsedError,
    OutOfLimits,
    PointLocked,
    SafetyRefused,
)
from edge._base import Adapter, PointTarget, Value, as_number
from edge._store import AuditEntry, Lease, Override, SafetyStore

log = logging.getLogger("osed.edge")

Resolver = Callable[[str, str], PointTarget]
#: Protocols whose points take numbers (or on/off) only; MQTT and EdgeX may carry text.
_NUMERIC_ONLY = frozenset({"bacnet", "modbus", "homeassistant"})
Notify = Callable[[Lease, str], None]


@dataclass(frozen=True)
class PointLimit:
    """Site limits for one point (by IRI or raw name), over the graph's min/max."""

    minimum: float | None = None
    maximum: float | None = None
    #: Largest change per minute from the point's current value (setpoint ramping).
    max_rate_per_min: float | None = None


@dataclass
class SafetyConfig:
    dry_run: bool = False
    limit_mode: str = "clamp"  # clamp | refuse
    limits: dict[str, PointLimit] = field(default_factory=dict)
    #: BACnet priority-array slot our writes use (3..16; 8 = manual operator by convention).
    bacnet_priority: int = 8
    max_lease_s: float = 24 * 3600
    #: Lease priorities: 1..100, higher preempts lower; operators default to 90.
    operator_priority: int = 90


@dataclass
class WriteResult:
    lease: Lease
    preempted: Lease | None = None
    notes: list[str] = field(default_factory=list)


class SafetyLayer:
    """Owns every write. ``adapters`` maps adapter kind to an adapter (or a factory)."""

    def __init__(
        self,
        resolve: Resolver,
        adapters: dict[str, Adapter] | Callable[[str], Adapter],
        store: SafetyStore | Path | None,
        config: SafetyConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
    ) -> None:
        self._resolve = resolve
        self._adapters = adapters
        self.store = store if isinstance(store, SafetyStore) else SafetyStore(store)
        self.config = config or SafetyConfig()
        self.clock = clock
        self.notify = notify
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.notifications: list[tuple[str, str, str]] = []  # (lease id, owner, message)

    def resolve(self, building: str, point: str) -> PointTarget:
        """A point (raw name or IRI) as the graph records it."""
        return self._resolve(building, point)

    async def read(self, building: str, point: str) -> Value:
        """A point's present value (reading needs no lease)."""
        target = self._resolve(building, point)
        return await self.adapter(target.adapter).read(target)

    def adapter(self, kind: str) -> Adapter:
        if callable(self._adapters):
            return self._adapters(kind)
        adapter = self._adapters.get(kind)
        if adapter is None:
            raise NotWritable(f"no '{kind}' adapter is configured")
        return adapter

    # -- writing ------------------------------------------------------------------------
    async def write(
        self,
        building: str,
        point: str,
        value: Value,
        *,
        owner: str,
        reason: str,
        duration_s: float,
        priority: int | None = None,
        owner_kind: str = "function",
        dry_run: bool | None = None,
    ) -> WriteResult:
        """Write ``value`` to a point for ``duration_s`` seconds, as a lease.

        Refused (``SafetyRefused``) when the graph does not make the point writable, an
        operator holds it, the value is out of limits in 'refuse' mode, or another owner
        holds it with an equal or higher priority. A device failure raises ``EdgeError``;
        the failed lease is kept for the record and nothing else changes.
        """
        if owner_kind not in ("operator", "function"):
            raise OsedError(f"owner kind must be 'operator' or 'function', not '{owner_kind}'")
        if not reason.strip():
            raise OsedError("a write needs a reason")
        if not 0 < duration_s <= self.config.max_lease_s:
            raise OsedError(f"a lease lasts more than 0 s and at most {self.config.max_lease_s:g} s")
        prio = (
            priority
            if priority is not None
            else (self.config.operator_priority if owner_kind == "operator" else 50)
        )
        if not 1 <= prio <= 100:
            raise OsedError(f"lease priority {prio} is outside 1..100")
        dry = self.config.dry_run if dry_run is None else dry_run
        now = self.clock()
        try:
            target = self._resolve(building, point)
        except OsedError as exc:
            self._audit(owner, "write", building, point, None, value, reason, "refused", str(exc))
            raise
        async with self._locks[target.iri]:
            try:
                self._check_capability(target)
                self._check_overrides(target, owner_kind, now)
            except SafetyRefused as exc:
                self._audit(owner, "write", building, target.iri, None, value, reason, "refused", str(exc))
                raise
            holder = self.store.holder(target.iri)
            if holder is not None and holder.owner != owner and prio <= holder.priority:
                exc2 = LeaseConflict(
                    f"point {target.name} is held by {holder.owner} (priority {holder.priority}, "
                    f"lease {holder.id}, until {utc_text(holder.expires)}); "
                    f"priority {prio} does not preempt it"
                )
                self._audit(
                    owner,
                    "write",
                    building,
                    target.iri,
                    holder.value,
                    value,
                    reason,
                    "refused",
                    str(exc2),
                )
                raise exc2
            adapter = self.adapter(target.adapter)
            lease = Lease(
                id=uuid.uuid4().hex[:12],
                building=building,
                point=target.iri,
                name=target.name,
                device=target.device,
                adapter=target.adapter,
                owner=owner,
                owner_kind=owner_kind,  # type: ignore[arg-type]
                reason=reason,
                priority=prio,
                requested=value,
                value=value,
                original=None,
                created=now,
                expires=now + duration_s,
                dry_run=dry,
            )
            # What the point holds now: the value to return to (no priority array), the
            # audit's old value, and the base of rate limits.
            if holder is not None:
                lease.original, current = holder.original, holder.value
            else:
                try:
                    current = await adapter.read(target)
                except EdgeError as exc:
                    if not adapter.has_priority_array:
                        self._failed(lease, exc)
                        raise
                    current = None  # relinquish does not need it
                lease.original = None if adapter.has_priority_array else current
            try:
                lease.value = self._limit(target, value, current, holder, now, lease.notes)
            except SafetyRefused as exc:
                self._audit(owner, "write", building, target.iri, current, value, reason, "refused", str(exc))
                raise
            if not dry:
                try:
                    await adapter.write(target, lease.value, self.config.bacnet_priority)
                except EdgeError as exc:
                    self._failed(lease, exc)
                    raise
            preempted = None
            if holder is not None:
                if holder.owner == owner:
                    holder.status, holder.ended = "released", now
                    holder.notes.append(f"renewed by lease {lease.id}")
                else:
                    holder.status, holder.ended = "preempted", now
                    holder.notes.append(f"preempted by {owner} (priority {prio}, lease {lease.id})")
                    preempted = holder
                self.store.save_lease(holder)
            self.store.save_lease(lease)
            result = "dry-run" if dry else "ok"
            detail = "; ".join(lease.notes)
            self._audit(
                owner, "write", building, target.iri, current, lease.value, reason, result, detail, lease.id
            )
            if preempted is not None:
                self._tell(preempted, f"preempted by {owner} (priority {prio}) on {target.name}")
            return WriteResult(lease=lease, preempted=preempted, notes=lease.notes)

    def _check_capability(self, target: PointTarget) -> None:
        if not target.writable:
            raise NotWritable(f"point {target.name}: the graph does not record it as writable")

    def _check_overrides(self, target: PointTarget, owner_kind: str, now: float) -> None:
        if owner_kind == "operator":
            return
        held = self.store.overrides(now, targets=(target.iri, target.device))
        if held:
            o = held[0]
            raise PointLocked(
                f"point {target.name} is locked by operator {o.operator} "
                f"until {utc_text(o.until)} ({o.reason})"
            )

    def _limit(
        self,
        target: PointTarget,
        value: Value,
        current: Value | None,
        holder: Lease | None,
        now: float,
        notes: list[str],
    ) -> Value:
        number = as_number(value)
        if number is None and target.adapter in _NUMERIC_ONLY:
            raise SafetyRefused(f"point {target.name}: '{str(value)[:40]}' is not a number or on/off value")
        if number is None or isinstance(value, bool):
            return value
        site = self.config.limits.get(target.iri) or self.config.limits.get(target.name) or PointLimit()
        lo = site.minimum if site.minimum is not None else target.minimum
        hi = site.maximum if site.maximum is not None else target.maximum
        out = float(number)
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            if self.config.limit_mode == "refuse":
                span = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
                raise OutOfLimits(f"point {target.name}: {out:g} is outside {span}")
            clamped = min(max(out, lo if lo is not None else out), hi if hi is not None else out)
            notes.append(f"clamped {out:g} to {clamped:g} (limits {lo}..{hi})")
            out = clamped
        base = as_number(current) if current is not None else None
        if site.max_rate_per_min and base is not None:
            minutes = max(1.0, (now - holder.created) / 60.0) if holder is not None else 1.0
            step = site.max_rate_per_min * minutes
            if abs(out - base) > step:
                limited = base + step if out > base else base - step
                if self.config.limit_mode == "refuse":
                    raise OutOfLimits(
                        f"point {target.name}: a change of {out - base:+g} exceeds {step:g} allowed now"
                    )
                notes.append(f"rate-limited {out:g} to {limited:g} ({site.max_rate_per_min:g}/min)")
                out = limited
        return int(out) if isinstance(value, int) and out.is_integer() else out

    def _failed(self, lease: Lease, exc: EdgeError) -> None:
        """Keep a lease the device refused, for the record; nothing else changes."""
        lease.status, lease.error, lease.ended = "failed", str(exc), lease.created
        self.store.save_lease(lease)
        self._audit(
            lease.owner, "write", lease.building, lease.point, lease.original, lease.value, lease.reason,
            "failed", str(exc), lease.id,
        )  # fmt: skip

    # -- releasing ----------------------------------------------------------------------
    async def release(self, lease_id: str, *, by: str, reason: str = "released") -> Lease:
        """End a lease now and return the point to what it was."""
        lease = self.store.lease(lease_id)
        if lease is None:
            raise OsedError(f"no lease '{lease_id}'")
        if lease.status not in ("active", "reverting"):
            raise OsedError(f"lease {lease_id} is already {lease.status}")
        return await self._revert(lease, by=by, reason=reason, final="released")

    async def release_owner(self, owner: str, *, by: str, reason: str = "released") -> list[Lease]:
        """End every lease an owner holds (a grid-function run that ends or is cancelled)."""
        out = []
        for lease in self.store.leases(statuses=("active",)):
            if lease.owner == owner:
                out.append(await self._revert(lease, by=by, reason=reason, final="released"))
        return out

    async def expire_due(self) -> list[Lease]:
        """Revert leases whose time is up, and retry reverts that failed before (a device
        that was down). Run periodically by the server, and at every start."""
        now = self.clock()
        done = []
        for lease in self.store.leases(statuses=("active", "reverting")):
            if lease.status == "reverting" or lease.expires <= now:
                done.append(await self._revert(lease, by="expiry", reason="lease expired", final="expired"))
        return done

    async def _revert(self, lease: Lease, *, by: str, reason: str, final: str) -> Lease:
        async with self._locks[lease.point]:
            fresh = self.store.lease(lease.id)
            if fresh is None or fresh.status not in ("active", "reverting"):
                return fresh or lease
            lease = fresh
            now = self.clock()
            target: PointTarget | None = None
            try:
                if not lease.dry_run:
                    target = self._resolve(lease.building, lease.point)
                    adapter = self.adapter(lease.adapter)
                    await adapter.release(target, self.config.bacnet_priority, lease.original)
            except (EdgeError, OsedError) as exc:
                lease.status, lease.error = "reverting", str(exc)
                self.store.save_lease(lease)
                self._audit(
                    by,
                    "revert",
                    lease.building,
                    lease.point,
                    lease.value,
                    lease.original,
                    reason,
                    "failed",
                    str(exc),
                    lease.id,
                )
                log.warning("revert of lease %s on %s failed, will retry: %s", lease.id, lease.name, exc)
                return lease
            lease.status = final  # type: ignore[assignment]
            lease.ended, lease.error = now, ""
            self.store.save_lease(lease)
            restored = (
                "relinquished"
                if target is not None and self.adapter(lease.adapter).has_priority_array
                else lease.original
            )
            self._audit(
                by,
                "revert",
                lease.building,
                lease.point,
                lease.value,
                restored,
                reason,
                "dry-run" if lease.dry_run else "ok",
                "",
                lease.id,
            )
            if by != lease.owner:
                self._tell(lease, f"lease ended ({reason}) by {by}")
            return lease

    # -- overrides ----------------------------------------------------------------------
    def lock(self, building: str, target: str, *, operator: str, reason: str, duration_s: float) -> Override:
        """Lock a point (IRI or raw name) or a device (device key, e.g. ``bacnet:1001``)."""
        if duration_s <= 0:
            raise OsedError("a lock lasts more than 0 s")
        key = target
        if target.split(":", 1)[0] not in ("bacnet", "modbus", "edgex", "homeassistant", "mqtt"):
            key = self._resolve(building, target).iri
        now = self.clock()
        override = Override(
            id=uuid.uuid4().hex[:12],
            building=building,
            target=key,
            operator=operator,
            reason=reason,
            created=now,
            until=now + duration_s,
        )
        self.store.save_override(override)
        self._audit(
            operator, "lock", building, key, None, None, reason, "ok", f"until {utc_text(override.until)}"
        )
        return override

    def unlock(self, override_id: str, *, by: str) -> Override:
        override = self.store.override(override_id)
        if override is None:
            raise OsedError(f"no override '{override_id}'")
        override.released = self.clock()
        self.store.save_override(override)
        self._audit(by, "unlock", override.building, override.target, None, None, "unlock", "ok", "")
        return override

    # -- records ------------------------------------------------------------------------
    def _audit(
        self,
        actor: str,
        action: str,
        building: str,
        point: str,
        old: Value | None,
        new: Value | None,
        reason: str,
        result: str,
        detail: str = "",
        lease: str = "",
    ) -> None:
        self.store.audit(
            AuditEntry(self.clock(), actor, action, building, point, old, new, reason, result, detail, lease)
        )

    def _tell(self, lease: Lease, message: str) -> None:
        self.notifications.append((lease.id, lease.owner, message))
        if self.notify is not None:
            try:
                self.notify(lease, message)
            except Exception:
                log.exception("notifying %s failed", lease.owner)

    async def close(self) -> None:
        closers: list[Awaitable[None]] = []
        if isinstance(self._adapters, dict):
            closers = [a.close() for a in self._adapters.values()]
        await asyncio.gather(*closers, return_exceptions=True)
        self.store.close()


def utc_text(ts: float) -> str:
    """A timestamp as ISO 8601 UTC, for messages and listings."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


__all__ = ["PointLimit", "SafetyConfig", "SafetyLayer", "WriteResult"]
