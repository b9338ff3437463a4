"""The safety layer every write passes: capability, limits, write-ahead journal, leases,
arbitration, overrides, dry-run and audit. There is no other path from OSED to a device.

Write-ahead: a write is committed to the store as a ``writing`` lease (point, owner, value
and what to restore) before its protocol write, and its outcome after. A ``writing`` lease
whose process is gone, or whose write got no answer, may have reached the device: the next
pass puts back what it recorded, audits that, and blocks the point until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import (
    DeviceTimeout,
    EdgeError,
    LeaseConflict,
    NotWritable,
    OsedError,
    OutOfLimits,
    PointLocked,
    SafetyRefused,
)
from edge._base import Adapter, PointTarget, Value, as_number
from edge._process import ProcessMark, exclusive
from edge._store import AuditEntry, Lease, Override, SafetyStore

log = logging.getLogger("osed.edge")

Resolver = Callable[[str, str], PointTarget]
#: Protocols whose points take numbers (or on/off) only; MQTT and EdgeX may carry text.
_NUMERIC_ONLY = frozenset({"bacnet", "modbus", "homeassistant"})
Notify = Callable[[Lease, str], None]
_UNDO_FAILED = "; undoing it failed, will retry: "


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
        db = self.store.path
        #: Our token on the intents we journal; other processes tell from it whether we run.
        self.mark = ProcessMark(db.with_suffix(".writers") if db is not None else None)
        self._pass_lock = db.with_suffix(".expiry-lock") if db is not None else None

    def resolve(self, building: str, point: str) -> PointTarget:
        """A point (raw name or IRI) as the graph records it."""
        return self._resolve(building, point)

    async def read(self, building: str, point: str) -> Value:
        """A point's present value (reading needs no lease)."""
        target = self._resolve(building, point)
        return await self._adapter(target.adapter).read(target)

    def _adapter(self, kind: str) -> Adapter:
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
            unsettled = self.store.leases(point=target.iri, statuses=("writing",))
            if unsettled:
                exc1 = LeaseConflict(
                    f"point {target.name} has a write in progress or being undone (lease "
                    f"{unsettled[0].id} of {unsettled[0].owner}); try again"
                )
                self._audit(owner, "write", building, target.iri, None, value, reason, "refused", str(exc1))
                raise exc1
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
            adapter = self._adapter(target.adapter)
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
                target=target,
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
            ended = self._end(holder, lease) if holder is not None else None
            if not dry:
                # Undoing this write, if its outcome is lost, puts back what the point held:
                # the holder's value (ours to keep), else the value read (or relinquish).
                lease.restore = holder.value if holder is not None else lease.original
                lease.status, lease.writer = "writing", self.mark.token
                if not self.store.journal(lease, holder.id if holder is not None else None):
                    exc3 = LeaseConflict(
                        f"point {target.name} changed hands or has a write in progress or being "
                        f"undone ({self._busy_text(target.iri)}); try again"
                    )
                    self._audit(
                        owner, "write", building, target.iri, current, value, reason, "refused", str(exc3)
                    )
                    raise exc3
                try:
                    await adapter.write(target, lease.value, self.config.bacnet_priority)
                except DeviceTimeout as exc:  # it may have reached the device: undo it
                    self._audit(
                        owner, "write", building, target.iri, current, lease.value, reason, "failed",
                        f"{exc}; the device may have taken it: undoing", lease.id,
                    )  # fmt: skip
                    await self._undo(lease, by="safety", why=f"no answer to the write: {exc}")
                    raise
                except EdgeError as exc:  # refused, or never reached the device
                    self._failed(lease, exc)
                    raise
                except BaseException:
                    # Cancelled or a bug mid-write: the outcome is unknown. Leave the intent
                    # without a writer, so that the next pass undoes it.
                    lease.writer, lease.error = "", "the write was interrupted in this process"
                    self.store.save_lease(lease)
                    raise
            lease.status, lease.writer = "active", ""
            result = "dry-run" if dry else "ok"
            detail = "; ".join(lease.notes)
            entry = self._entry(
                owner, "write", building, target.iri, current, lease.value, reason, result, detail, lease.id
            )
            self.store.settle(lease, ended, entry)
            preempted = ended if ended is not None and ended.status == "preempted" else None
            if preempted is not None:
                self._tell(preempted, f"preempted by {owner} (priority {prio}) on {target.name}")
            return WriteResult(lease=lease, preempted=preempted, notes=lease.notes)

    def _end(self, holder: Lease, lease: Lease) -> Lease:
        """The holder as the new lease leaves it: renewed (same owner) or preempted."""
        if holder.owner == lease.owner:
            holder.status, holder.ended = "released", lease.created
            holder.notes.append(f"renewed by lease {lease.id}")
        else:
            holder.status, holder.ended = "preempted", lease.created
            holder.notes.append(f"preempted by {lease.owner} (priority {lease.priority}, lease {lease.id})")
        return holder

    def _busy_text(self, point: str) -> str:
        found = self.store.leases(point=point, statuses=("writing", "active", "reverting"))
        return ", ".join(f"lease {f.id} of {f.owner}: {f.status}" for f in found) or "no lease now"

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
        lease.status, lease.error, lease.ended, lease.writer = "failed", str(exc), lease.created, ""
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
        """One pass: undo writes left without an outcome (``recover``), revert leases whose
        time is up, and retry reverts that failed before (a device that was down). Run by
        the services (``enforce_leases``) and at every start.

        One process at a time: while another holds the pass, this one does nothing."""
        with exclusive(self._pass_lock) as ours:
            if not ours:
                return []
            done = await self.recover()
            # A point with a write in flight or still to undo waits: its holder is
            # reverted after the write settles, in that order.
            busy = {lease.point for lease in self.store.leases(statuses=("writing",))}
            now = self.clock()
            for lease in self.store.leases(statuses=("active", "reverting")):
                if lease.point not in busy and (lease.status == "reverting" or lease.expires <= now):
                    done.append(
                        await self._revert(lease, by="expiry", reason="lease expired", final="expired")
                    )
            return done

    async def recover(self) -> list[Lease]:
        """Undo every journaled write whose outcome is unknown: its process ended between
        the intent and the outcome (killed, crashed, power lost), or it got no answer. The
        point gets back what the intent recorded (relinquish for a priority array), and the
        audit log says so; an undo that fails is retried on the next pass."""
        done = []
        writers = set()
        for lease in self.store.leases(statuses=("writing",)):
            writers.add(lease.writer)
            if self.mark.alive(lease.writer):
                continue
            async with self._locks[lease.point]:
                fresh = self.store.lease(lease.id)
                if fresh is None or fresh.status != "writing" or self.mark.alive(fresh.writer):
                    continue
                why = (
                    "the writing process ended before recording the outcome"
                    if fresh.writer
                    else fresh.error.partition(_UNDO_FAILED)[0] or "the write's outcome is unknown"
                )
                done.append(await self._undo(fresh, by="recovery", why=why))
        self.mark.sweep(writers)
        return done

    async def _undo(self, lease: Lease, *, by: str, why: str) -> Lease:
        """Put back what the point held before ``lease``'s write (the caller holds the
        point's lock). Success ends the lease ``failed``; failure keeps it ``writing``
        without a writer, for the next pass."""
        restored: Value = "relinquished" if lease.restore is None else lease.restore
        reason = f"undo a write with no recorded outcome ({lease.owner}: {lease.reason})"
        try:
            target = self._target(lease)
            adapter = self._adapter(lease.adapter)
            if lease.restore is not None:
                await adapter.write(target, lease.restore, self.config.bacnet_priority)
            elif adapter.has_priority_array:
                await adapter.release(target, self.config.bacnet_priority, None)
        except BaseException as exc:
            # Not undone: the next pass tries again (whoever runs it, hence no writer).
            lease.writer, lease.error = "", f"{why}{_UNDO_FAILED}{exc}"
            self.store.save_lease(lease)
            if not isinstance(exc, OsedError):
                raise
            self._audit(
                by, "revert", lease.building, lease.point, lease.value, restored, reason, "failed",
                f"{why}; {exc}", lease.id,
            )  # fmt: skip
            log.warning("undoing lease %s on %s failed, will retry: %s", lease.id, lease.name, exc)
            return lease
        lease.status, lease.writer, lease.ended = "failed", "", self.clock()
        lease.error = f"{why}; undone"
        self.store.save_lease(lease)
        self._audit(
            by, "revert", lease.building, lease.point, lease.value, restored, reason, "ok", why, lease.id
        )
        if by != lease.owner:
            self._tell(lease, f"write undone ({why}) on {lease.name}")
        return lease

    def _target(self, lease: Lease) -> PointTarget:
        """The point as the lease wrote it (leases from before the target was kept: the graph)."""
        return lease.target if lease.target is not None else self._resolve(lease.building, lease.point)

    async def enforce_leases(
        self,
        every_s: float,
        *,
        stop: asyncio.Event | None = None,
        report: Callable[[Lease], None] | None = None,
    ) -> None:
        """Own lease expiry until ``stop`` is set: a pass at once (what expired or was left
        mid-write while nothing ran), then at each known expiry, and at least every
        ``every_s`` to see leases other processes (``osed write``) add and to retry."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                for lease in await self.expire_due():
                    if report is not None:
                        report(lease)
            except Exception:  # the loop must outlive one bad pass; the error is logged
                log.exception("lease expiry pass failed")
            wait = every_s
            upcoming = self.store.next_expiry(self.clock())
            if upcoming is not None:
                wait = min(wait, upcoming - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(wait, 0.01))

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
                    target = self._target(lease)
                    adapter = self._adapter(lease.adapter)
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
                if target is not None and self._adapter(lease.adapter).has_priority_array
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
        self.store.audit(self._entry(actor, action, building, point, old, new, reason, result, detail, lease))

    def _entry(
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
    ) -> AuditEntry:
        return AuditEntry(
            self.clock(), actor, action, building, point, old, new, reason, result, detail, lease
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
        self.mark.close()


def utc_text(ts: float) -> str:
    """A timestamp as ISO 8601 UTC, for messages and listings."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


__all__ = ["PointLimit", "SafetyConfig", "SafetyLayer", "WriteResult"]
