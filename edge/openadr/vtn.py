"""The coordinator side of OpenADR 2.0b: an openleadr VTN with a registry of VENs (kept in
``<data_dir>/openadr/vens.json``), events for one VEN, a group or all of them (create,
modify, cancel), and what came back (opt responses, reports, delivery times). The REST API
(``/openadr/...`` in api/app.py) drives it."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from openleadr import OpenADRServer, enums, objects, utils

from core.errors import OsedError
from edge.openadr.settings import OpenADRSettings
from edge.openadr.ven import message_type

log = logging.getLogger("osed.openadr.vtn")
_NAME = re.compile(r"^[\w.:-]{1,100}$")
_VEN_ID = re.compile(rb"<(?:\w+:)?venID>([^<]{1,200})</")
#: The VEN whose request is being served (set by the exchange log, read on delivery).
_current_ven: contextvars.ContextVar[str] = contextvars.ContextVar("osed_openadr_ven", default="")


@dataclass
class VenRecord:
    ven_id: str
    ven_name: str
    registration_id: str | None = None
    groups: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    registered_at: str | None = None
    last_seen: float | None = None


@dataclass
class EventRecord:
    event_id: str
    signal_name: str
    signal_type: str
    targets: list[str]
    intervals: list[dict[str, Any]]  # start (ISO), duration_s, value
    created: float
    modification: int = 0
    status: str = "active"  # active, cancelled
    opts: dict[str, str] = field(default_factory=dict)
    delivered: dict[str, float] = field(default_factory=dict)


class Vtn:
    def __init__(self, settings: OpenADRSettings, data_dir: Path, *, port: int | None = None) -> None:
        self.settings = settings
        self.path = Path(data_dir) / "openadr" / "vens.json"
        self.vens: dict[str, VenRecord] = {}
        self.events: dict[str, EventRecord] = {}
        self.reports: dict[str, dict[str, deque[tuple[str, float]]]] = {}
        self._lock = threading.Lock()
        self._load()
        s = settings
        self.port = port or s.vtn_port
        self.server = OpenADRServer(
            vtn_id=s.vtn_id,
            http_port=self.port,
            http_host=s.vtn_host,
            requested_poll_freq=timedelta(seconds=s.vtn_poll_s),
            cert=str(s.cert) if s.cert else None,
            key=str(s.key) if s.key else None,
            passphrase=s.passphrase,
            show_fingerprint=False,
            ven_lookup=self._lookup,
        )
        self.server.add_handler("on_create_party_registration", self._on_register)
        self.server.add_handler("on_register_report", self._on_register_report)
        self.server.app.middlewares.append(_exchange_log)

    @property
    def url(self) -> str:
        return f"http://{self.settings.vtn_host}:{self.port}/OpenADR2/Simple/2.0b"

    async def start(self) -> None:
        await self.server.run()
        log.info("VTN %s listening at %s", self.settings.vtn_id, self.url)

    async def stop(self) -> None:
        await self.server.stop()

    # -- VEN registry ---------------------------------------------------------------------
    def _load(self) -> None:
        if self.path.exists():
            try:
                rows = json.loads(self.path.read_text("utf-8"))
                self.vens = {r["ven_id"]: VenRecord(**r) for r in rows}
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise OsedError(f"{self.path}: cannot read the VEN registry: {exc}") from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(v) for v in self.vens.values()], indent=1), "utf-8")
        tmp.replace(self.path)

    def add_ven(
        self,
        ven_name: str,
        *,
        ven_id: str | None = None,
        groups: list[str] | None = None,
        fingerprint: str | None = None,
    ) -> VenRecord:
        """Provision a VEN before it registers (its name, the id it will get, its groups)."""
        for value, what in (
            (ven_name, "ven_name"),
            (ven_id or "x", "ven_id"),
            *((g, "group") for g in groups or []),
        ):
            if not _NAME.match(value):
                raise OsedError(f"{what} '{value}': use letters, digits, '.', ':', '_' or '-' (at most 100)")
        with self._lock:
            existing = self._by_name(ven_name)
            record = existing or VenRecord(ven_id or f"ven-{secrets.token_hex(4)}", ven_name)
            if ven_id and existing and existing.ven_id != ven_id:
                raise OsedError(f"VEN '{ven_name}' already has ven_id {existing.ven_id}")
            record.groups = sorted(set(groups or record.groups))
            record.fingerprint = fingerprint or record.fingerprint
            self.vens[record.ven_id] = record
            self._save()
        return record

    def remove_ven(self, ven_id: str) -> None:
        with self._lock:
            if ven_id not in self.vens:
                raise KeyError(ven_id)
            del self.vens[ven_id]
            self._save()

    def _by_name(self, name: str) -> VenRecord | None:
        return next((v for v in self.vens.values() if v.ven_name == name), None)

    def _lookup(self, ven_id: str) -> dict[str, Any]:
        v = self.vens.get(ven_id)
        if v is None or v.registration_id is None:
            return {}
        v.last_seen = time.time()
        return {"ven_id": v.ven_id, "ven_name": v.ven_name, "registration_id": v.registration_id,
                "fingerprint": v.fingerprint}  # fmt: skip

    async def _on_register(self, info: dict[str, Any]) -> tuple[str, str] | bool:
        name = str(info.get("ven_name") or "")
        if not _NAME.match(name):
            log.warning("registration refused: bad VEN name %r", name)
            return False
        with self._lock:
            record = self._by_name(name)
            if record is None:
                record = VenRecord(str(info.get("ven_id") or f"ven-{secrets.token_hex(4)}"), name)
                self.vens[record.ven_id] = record
            record.registration_id = record.registration_id or f"reg-{secrets.token_hex(6)}"
            record.registered_at = datetime.now(UTC).isoformat(timespec="seconds")
            record.last_seen = time.time()
            self._save()
        log.info("VEN %s registered as %s", name, record.ven_id)
        return record.ven_id, record.registration_id

    async def _on_register_report(
        self, ven_id: str, resource_id: str, measurement: str, unit: str, scale: str,
        min_sampling_interval: timedelta, max_sampling_interval: timedelta,
    ) -> tuple[Any, timedelta]:  # fmt: skip
        want = timedelta(seconds=self.settings.vtn_report_s)
        sampling = min(max(want, min_sampling_interval), max_sampling_interval)
        series = self.reports.setdefault(ven_id, {}).setdefault(measurement, deque(maxlen=1000))

        def received(values: list[tuple[datetime, float]]) -> None:
            for at, value in values:
                series.append((at.isoformat(timespec="seconds"), float(value)))
            if ven_id in self.vens:
                self.vens[ven_id].last_seen = time.time()

        return received, sampling

    # -- events ---------------------------------------------------------------------------
    def targets(
        self, ven_ids: list[str] | None = None, group: str | None = None, all_vens: bool = False
    ) -> list[str]:
        if all_vens:
            chosen = [v.ven_id for v in self.vens.values() if v.registration_id]
        elif group:
            chosen = [v.ven_id for v in self.vens.values() if group in v.groups]
        else:
            chosen = list(ven_ids or [])
        unknown = [v for v in chosen if v not in self.vens]
        if unknown:
            raise OsedError(f"unknown VEN(s): {', '.join(unknown)}")
        if not chosen:
            raise OsedError("no VEN to send the event to (give ven_ids, a group with members, or all)")
        return sorted(set(chosen))

    def create_event(
        self,
        targets: list[str],
        signal_name: str,
        signal_type: str,
        intervals: list[tuple[datetime, float, float]],
        *,
        market_context: str = "oadr://osed",
        priority: int = 0,
    ) -> EventRecord:
        """One event (same id) for each target VEN; ``intervals`` as (start, seconds, value)."""
        self._check_signal(signal_name, signal_type, intervals)
        event_id = f"evt-{secrets.token_hex(6)}"
        record = EventRecord(
            event_id, signal_name, signal_type, targets, _interval_rows(intervals), time.time()
        )
        self.events[event_id] = record
        for ven_id in targets:
            ivs = [
                {"dtstart": s, "duration": timedelta(seconds=d), "signal_payload": v} for s, d, v in intervals
            ]
            self.server.add_event(
                ven_id=ven_id,
                signal_name=signal_name,
                signal_type=signal_type,
                intervals=ivs,
                event_id=event_id,
                callback=self._opted,
                delivery_callback=self._delivered(event_id),
                market_context=market_context,
            )
            event = utils.find_by(self.server.events[ven_id], "event_descriptor.event_id", event_id)
            utils.setmember(event, "event_descriptor.priority", priority)
        log.info("event %s (%s/%s) created for %d VEN(s)", event_id, signal_name, signal_type, len(targets))
        return record

    def modify_event(self, event_id: str, intervals: list[tuple[datetime, float, float]]) -> EventRecord:
        record = self.event(event_id)
        if record.status != "active":
            raise OsedError(f"event {event_id} is {record.status}")
        self._check_signal(record.signal_name, record.signal_type, intervals)
        for ven_id in record.targets:
            event = utils.find_by(self.server.events.get(ven_id, []), "event_descriptor.event_id", event_id)
            if event is None:
                continue
            ivs = [objects.Interval(dtstart=s, duration=timedelta(seconds=d), signal_payload=v, uid=i)
                   for i, (s, d, v) in enumerate(intervals)]  # fmt: skip
            signal = objects.EventSignal(
                intervals=ivs,
                signal_name=record.signal_name,
                signal_type=record.signal_type,
                signal_id=utils.generate_id(),
            )
            utils.setmember(event, "event_signals", [signal])
            utils.setmember(event, "active_period", utils.get_active_period_from_intervals(ivs, False))
            utils.increment_event_modification_number(event)
            self.server.events_updated[ven_id] = True
        record.modification += 1
        record.intervals = _interval_rows(intervals)
        record.opts.clear()
        log.info("event %s modified (modification %d)", event_id, record.modification)
        return record

    def cancel_event(self, event_id: str) -> EventRecord:
        record = self.event(event_id)
        for ven_id in record.targets:
            self.server.cancel_event(ven_id, event_id)
        record.status = "cancelled"
        record.modification += 1
        log.info("event %s cancelled", event_id)
        return record

    def event(self, event_id: str) -> EventRecord:
        if event_id not in self.events:
            raise KeyError(event_id)
        return self.events[event_id]

    @staticmethod
    def _check_signal(name: str, type_: str, intervals: list[tuple[datetime, float, float]]) -> None:
        if name not in enums.SIGNAL_NAME.values and not name.startswith("x-"):
            raise OsedError(f"signal_name '{name}': one of {', '.join(enums.SIGNAL_NAME.values)} or x-…")
        if type_ not in enums.SIGNAL_TYPE.values:
            raise OsedError(f"signal_type '{type_}': one of {', '.join(enums.SIGNAL_TYPE.values)}")
        if not intervals:
            raise OsedError("an event needs at least one interval")
        for i, (_s, seconds, _v) in enumerate(intervals):
            if seconds <= 0:
                raise OsedError(f"interval {i}: duration_s must be positive")

    def _opted(self, ven_id: str, event_id: str, opt_type: str) -> None:
        record = self.events.get(event_id)
        if record is not None:
            record.opts[ven_id] = opt_type
            # openleadr keeps one callback per event id and drops it after the first answer;
            # every target answers (again after a modification), so put it back.
            self.server.event_callbacks[event_id] = (None, self._opted)
        log.info("VEN %s: %s for event %s", ven_id, opt_type, event_id)

    def _delivered(self, event_id: str) -> Any:
        """openleadr keys delivery callbacks by event only; the VEN is the one whose poll
        is being answered."""

        def done() -> None:
            record = self.events.get(event_id)
            ven_id = _current_ven.get()
            if record is not None and ven_id:
                record.delivered.setdefault(ven_id, time.time())

        return done


def _interval_rows(intervals: list[tuple[datetime, float, float]]) -> list[dict[str, Any]]:
    return [{"start": s.isoformat(timespec="seconds"), "duration_s": d, "value": v} for s, d, v in intervals]


@web.middleware
async def _exchange_log(request: web.Request, handler: Any) -> web.StreamResponse:
    body = await request.read()
    found = _VEN_ID.search(body[:20000])
    _current_ven.set(found.group(1).decode(errors="replace") if found else "")
    response = await handler(request)
    sent = getattr(response, "body", b"") or b""
    log.info(
        "%s %s: VEN -> VTN %s; VTN -> VEN %s",
        request.remote,
        request.path.rsplit("/", 1)[-1],
        message_type(body),
        message_type(sent if isinstance(sent, bytes) else b""),
    )
    return response
