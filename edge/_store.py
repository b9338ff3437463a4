"""Leases, overrides and the audit log in one SQLite file: survives crashes and restarts.

The lease table is also the write-ahead journal of device writes: a lease is stored as
``writing`` (with the value to restore) and committed before its protocol write, and its
outcome after. WAL with synchronous=FULL makes each commit durable before the call returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge._base import PointTarget, Value
from mapper import (
    Address,
    BACnetAddress,
    EdgeXAddress,
    HomeAssistantAddress,
    ModbusAddress,
    MQTTAddress,
)

#: ``writing``: the intent is journaled and the protocol write may or may not have reached
#: the device; no outcome is recorded yet.
LeaseStatus = Literal["writing", "active", "released", "expired", "preempted", "failed", "reverting"]


@dataclass
class Lease:
    """One write, owned, with a reason, a priority (higher wins) and an expiry."""

    id: str
    building: str
    point: str  # IRI
    name: str
    device: str
    adapter: str
    owner: str
    owner_kind: Literal["operator", "function"]
    reason: str
    priority: int
    requested: Value
    value: Value
    original: Value | None
    created: float
    expires: float
    status: LeaseStatus = "active"
    dry_run: bool = False
    error: str = ""
    ended: float | None = None
    notes: list[str] = field(default_factory=list)
    #: The point as written (address, unit): reverts and recovery need no graph, and still
    #: reach the device if the model changes or is not at hand (``osed edge-service``).
    target: PointTarget | None = None
    #: What undoing an interrupted write puts back: the value the point held before it (the
    #: previous holder's value when this lease preempts one); None with a priority array
    #: (relinquish our slot).
    restore: Value | None = None
    #: The process whose protocol write is in flight (status ``writing``); empty once an
    #: outcome is recorded, or when the write is known to be left without one.
    writer: str = ""


@dataclass
class Override:
    """An operator's lock on a point (IRI) or a whole device (device key) until a time."""

    id: str
    building: str
    target: str
    operator: str
    reason: str
    created: float
    until: float
    released: float | None = None


@dataclass
class AuditEntry:
    at: float
    actor: str
    action: str
    building: str
    point: str
    old: Value | None
    new: Value | None
    reason: str
    result: str
    detail: str = ""
    lease: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, point TEXT, status TEXT, expires REAL, body TEXT);
CREATE INDEX IF NOT EXISTS leases_point ON leases(point, status);
CREATE TABLE IF NOT EXISTS overrides (id TEXT PRIMARY KEY, target TEXT, until REAL, released REAL, body TEXT);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, point TEXT, actor TEXT,
                                  action TEXT, result TEXT, body TEXT);
"""


_ADDRESSES: dict[str, type[Address]] = {
    "bacnet": BACnetAddress,
    "edgex": EdgeXAddress,
    "homeassistant": HomeAssistantAddress,
    "modbus": ModbusAddress,
    "mqtt": MQTTAddress,
}


def _lease(body: str) -> Lease:
    data = json.loads(body)
    target = data.pop("target", None)
    lease = Lease(**data)
    if target is not None:
        address = dict(target.pop("address"))
        kind = address.pop("adapter")
        lease.target = PointTarget(**target, address=_ADDRESSES[kind](**address))
    return lease


class SafetyStore:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- leases -------------------------------------------------------------------------
    def save_lease(self, lease: Lease) -> None:
        with self._lock:
            self._put(lease)

    def _put(self, lease: Lease) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO leases (id, point, status, expires, body) VALUES (?, ?, ?, ?, ?)",
            (lease.id, lease.point, lease.status, lease.expires, json.dumps(asdict(lease))),
        )

    def journal(self, lease: Lease, holder: str | None) -> bool:
        """Commit a ``writing`` lease (the intent), unless the point changed hands since the
        caller looked: its holder is no longer ``holder`` (a lease id or None), or another
        write on it is in flight or awaiting undo. False when it did not.

        One IMMEDIATE transaction, so two processes cannot both journal a write on a point."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, status FROM leases WHERE point = ? AND status IN "
                    "('active', 'reverting', 'writing') ORDER BY expires",
                    (lease.point,),
                ).fetchall()
                holders = [r[0] for r in rows if r[1] != "writing"]
                if len(holders) != len(rows) or (holders[0] if holders else None) != holder:
                    self._db.execute("ROLLBACK")
                    return False
                self._put(lease)
                self._db.execute("COMMIT")
                return True
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def settle(self, lease: Lease, ended: Lease | None, entry: AuditEntry) -> None:
        """Record a write's outcome, the lease it ended (renewed or preempted) and its audit
        line together; the ended lease only if it still holds the point (another process
        may have reverted it meanwhile)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._put(lease)
                if ended is not None:
                    rows = self._db.execute("SELECT status FROM leases WHERE id = ?", (ended.id,)).fetchall()
                    if rows and rows[0][0] in ("active", "reverting"):
                        self._put(ended)
                self._append(entry)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def lease(self, lease_id: str) -> Lease | None:
        rows = self._exec("SELECT body FROM leases WHERE id = ?", (lease_id,))
        return _lease(rows[0][0]) if rows else None

    def leases(self, *, point: str | None = None, statuses: tuple[str, ...] = ()) -> list[Lease]:
        sql, args = "SELECT body FROM leases WHERE 1=1", list[Any]()
        if point:
            sql += " AND point = ?"
            args.append(point)
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        rows = self._exec(sql + " ORDER BY expires", tuple(args))
        return [_lease(r[0]) for r in rows]

    def next_expiry(self, after: float) -> float | None:
        """When the next active lease expires (after ``after``), if any."""
        rows = self._exec("SELECT MIN(expires) FROM leases WHERE status = 'active' AND expires > ?", (after,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def holder(self, point: str) -> Lease | None:
        """The lease that currently owns the point's value (active, or failing to revert)."""
        found = self.leases(point=point, statuses=("active", "reverting"))
        return found[0] if found else None

    # -- overrides ----------------------------------------------------------------------
    def save_override(self, override: Override) -> None:
        self._exec(
            "INSERT OR REPLACE INTO overrides (id, target, until, released, body) VALUES (?, ?, ?, ?, ?)",
            (override.id, override.target, override.until, override.released, json.dumps(asdict(override))),
        )

    def overrides(
        self, now: float, *, targets: tuple[str, ...] = (), include_ended: bool = False
    ) -> list[Override]:
        sql, args = "SELECT body FROM overrides WHERE 1=1", list[Any]()
        if not include_ended:
            sql += " AND until > ? AND released IS NULL"
            args.append(now)
        if targets:
            sql += f" AND target IN ({','.join('?' * len(targets))})"
            args.extend(targets)
        return [Override(**json.loads(r[0])) for r in self._exec(sql + " ORDER BY until", tuple(args))]

    def override(self, override_id: str) -> Override | None:
        rows = self._exec("SELECT body FROM overrides WHERE id = ?", (override_id,))
        return Override(**json.loads(rows[0][0])) if rows else None

    # -- audit --------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        with self._lock:
            self._append(entry)

    def _append(self, entry: AuditEntry) -> None:
        self._db.execute(
            "INSERT INTO audit (at, point, actor, action, result, body) VALUES (?, ?, ?, ?, ?, ?)",
            (entry.at, entry.point, entry.actor, entry.action, entry.result, json.dumps(asdict(entry))),
        )

    def audit_log(
        self,
        *,
        point: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        sql, args = "SELECT body FROM audit WHERE 1=1", list[Any]()
        if point:
            sql += " AND point = ?"
            args.append(point)
        if actor:
            sql += " AND actor = ?"
            args.append(actor)
        if since is not None:
            sql += " AND at >= ?"
            args.append(since)
        rows = self._exec(sql + " ORDER BY seq DESC LIMIT ?", (*args, int(limit)))
        return [AuditEntry(**json.loads(r[0])) for r in rows]
