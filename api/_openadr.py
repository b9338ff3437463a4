"""Coordinator API for the OpenADR VTN (``osed vtn``): register VENs, create, modify and
cancel events for one VEN, a group or all, and read the opt responses and reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from edge.openadr.vtn import Vtn


class VenIn(BaseModel):
    ven_name: str = Field(min_length=1, max_length=100)
    ven_id: str | None = Field(default=None, max_length=100)
    groups: list[str] = Field(default_factory=list)
    fingerprint: str | None = None


class IntervalIn(BaseModel):
    duration_s: float = Field(gt=0, le=7 * 86400)
    value: float


class EventIn(BaseModel):
    ven_ids: list[str] = Field(default_factory=list)
    group: str | None = None
    all: bool = Field(default=False, description="every registered VEN")
    signal_name: str = Field(description="SIMPLE, ELECTRICITY_PRICE, LOAD_DISPATCH, LOAD_CONTROL, …")
    signal_type: str = Field(description="level, price, setpoint, delta, x-loadControlCapacity, …")
    start: datetime | None = Field(default=None, description="default: now")
    intervals: list[IntervalIn] = Field(min_length=1, max_length=288)
    market_context: str = "oadr://osed"
    priority: int = Field(default=0, ge=0, le=1000)


class EventChangeIn(BaseModel):
    start: datetime | None = None
    intervals: list[IntervalIn] = Field(min_length=1, max_length=288)


@contextmanager
def _found(what: str, key: str) -> Iterator[None]:
    """A lookup by id that fails with KeyError answers 404."""
    try:
        yield
    except KeyError:
        raise HTTPException(404, f"no {what} '{key}'") from None


def _intervals(start: datetime | None, intervals: list[IntervalIn]) -> list[tuple[datetime, float, float]]:
    at = start or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    out = []
    for iv in intervals:
        out.append((at, iv.duration_s, iv.value))
        at = at + timedelta(seconds=iv.duration_s)
    return out


def add_routes(app: FastAPI, vtn: Vtn | None, need: Any) -> None:
    def the_vtn() -> Vtn:
        if vtn is None:
            raise HTTPException(404, "no VTN runs in this server: start the coordinator with `osed vtn`")
        return vtn

    @app.get("/openadr/vens", tags=["openadr"], dependencies=[need("viewer")])
    def list_vens() -> list[dict[str, Any]]:
        return [asdict(v) for v in the_vtn().vens.values()]

    @app.post("/openadr/vens", status_code=201, tags=["openadr"], dependencies=[need("operator")])
    def add_ven(body: VenIn) -> dict[str, Any]:
        """Provision a VEN (its name, the ven_id it will get, its groups) before it registers."""
        return asdict(the_vtn().add_ven(body.ven_name, ven_id=body.ven_id, groups=body.groups,
                                        fingerprint=body.fingerprint))  # fmt: skip

    @app.delete("/openadr/vens/{ven_id}", tags=["openadr"], dependencies=[need("operator")])
    def remove_ven(ven_id: str) -> dict[str, str]:
        with _found("VEN", ven_id):
            the_vtn().remove_ven(ven_id)
        return {"removed": ven_id}

    @app.post("/openadr/events", status_code=201, tags=["openadr"], dependencies=[need("operator")])
    def create_event(body: EventIn) -> dict[str, Any]:
        """Send an event to the VENs named, a group, or all; they get it at their next poll."""
        v = the_vtn()
        targets = v.targets(body.ven_ids, body.group, body.all)
        intervals = _intervals(body.start, body.intervals)
        record = v.create_event(
            targets,
            body.signal_name,
            body.signal_type,
            intervals,
            market_context=body.market_context,
            priority=body.priority,
        )
        return asdict(record)

    @app.get("/openadr/events", tags=["openadr"], dependencies=[need("viewer")])
    def list_events() -> list[dict[str, Any]]:
        return [asdict(e) for e in the_vtn().events.values()]

    @app.get("/openadr/events/{event_id}", tags=["openadr"], dependencies=[need("viewer")])
    def get_event(event_id: str) -> dict[str, Any]:
        """The event with each target's opt response and delivery time."""
        with _found("event", event_id):
            return asdict(the_vtn().event(event_id))

    @app.patch("/openadr/events/{event_id}", tags=["openadr"], dependencies=[need("operator")])
    def modify_event(event_id: str, body: EventChangeIn) -> dict[str, Any]:
        """New intervals (modification number + 1); VENs answer again."""
        with _found("event", event_id):
            return asdict(the_vtn().modify_event(event_id, _intervals(body.start, body.intervals)))

    @app.delete("/openadr/events/{event_id}", tags=["openadr"], dependencies=[need("operator")])
    def cancel_event(event_id: str) -> dict[str, Any]:
        with _found("event", event_id):
            return asdict(the_vtn().cancel_event(event_id))

    @app.get("/openadr/reports", tags=["openadr"], dependencies=[need("viewer")])
    def reports(ven_id: str | None = None, last: int = 100) -> dict[str, dict[str, list[tuple[str, float]]]]:
        """Report values received, per VEN and measurement (latest ``last``)."""
        v = the_vtn()
        chosen = {ven_id: v.reports.get(ven_id, {})} if ven_id else v.reports
        return {ven: {m: list(series)[-last:] for m, series in by.items()} for ven, by in chosen.items()}
