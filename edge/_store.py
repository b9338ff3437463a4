"""Leases, overrides and the audit log in one SQLite file: survives crashes and restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge._base import Value

LeaseStatus = Literal["active", "released", "expired", "preempted", "failed", "reverting"]


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


class SafetyStore:
    def __init__(self, path: Path | None) -> None:
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
        self._exec(
            "INSERT OR REPLACE INTO leases (id, point, status, expires, body) VALUES (?, ?, ?, ?, ?)",
            (lease.id, lease.point, lease.status, lease.expires, json.dumps(asdict(lease))),
        )

    def lease(self, lease_id: str) -> Lease | None:
        rows = self._exec("SELECT body FROM leases WHERE id = ?", (lease_id,))
        return Lease(**json.loads(rows[0][0])) if rows else None

    def leases(self, *, point: str | None = None, statuses: tuple[str, ...] = ()) -> list[Lease]:
        sql, args = "SELECT body FROM leases WHERE 1=1", list[Any]()
        if point:
            sql += " AND point = ?"
            args.append(point)
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        rows = self._exec(sql + " ORDER BY expires", tuple(args))
        return [Lease(**json.loads(r[0])) for r in rows]

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
        self._exec(
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
