"""Plan and run a grid function for stored buildings: bind, check, read, plan, act."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import EdgeError, OsedError
from edge._base import as_number
from gridfunctions._assets import Asset, read_topology
from gridfunctions._framework import (
    GridFunction,
    GridState,
    Plan,
    RunReport,
    bind,
    execute,
    new_run_id,
    read_state,
)
from ontology import sparql_prefixes

if TYPE_CHECKING:
    from api._service import Platform


log = logging.getLogger("osed.gridfunctions")


@dataclass
class Prepared:
    buildings: list[str]
    state: GridState
    plan: Plan
    read_errors: dict[str, str] = field(default_factory=dict)


def select_buildings(platform: Platform, buildings: list[str], under: str | None) -> list[str]:
    """The buildings named, plus every building under a transformer or feeder."""
    chosen = list(buildings)
    if under:
        topo = read_topology(platform.store, platform.settings.base_iri)
        if under not in topo.transformers and under not in topo.feeders:
            raise OsedError(f"no transformer or feeder '{under}' in the grid topology")
        chosen += topo.buildings_under(under)
    if not chosen:
        raise OsedError("name at least one building (--building) or a transformer/feeder (--under)")
    return sorted(set(chosen))


async def prepare(
    platform: Platform,
    fn: GridFunction,
    params: dict[str, Any],
    buildings: list[str],
    *,
    load_kw: float | None = None,
    memory: dict[str, Any] | None = None,
    now: float | None = None,
    loop: bool = False,
    step_s: float = 60.0,
) -> Prepared:
    """Check every building (refusing with what is missing), bind the assets, read their
    state through the safety layer, and plan. Nothing is written."""
    parsed = fn.params(params)
    refusals = []
    assets: list[Asset] = []
    for b in buildings:
        result, bound = bind(fn, platform.store, platform.ontology, b, platform.settings.base_iri)
        if not result.bindable:
            missing = "; ".join(result.missing) or "no controllable asset"
            refusals.append(f"{b}: {missing}")
        assets += bound
    if refusals:
        raise OsedError(f"{fn.name} cannot run on " + " | ".join(refusals))
    safety = platform.safety
    states, errors = await read_state(assets, safety.read)
    if load_kw is None:
        load_kw, meter_errors = await measure_load(platform, buildings)
        for b, e in meter_errors.items():
            errors.setdefault(b, e)
        if load_kw is None:
            load_kw = sum(s.power_kw for s in states)
    state = GridState(
        now=now if now is not None else time.time(),
        assets=states,
        load_kw=load_kw,
        memory=memory or {},
        loop=loop,
        step_s=step_s,
    )
    return Prepared(buildings, state, fn.plan(state, parsed), errors)


async def measure_load(platform: Platform, buildings: list[str]) -> tuple[float | None, dict[str, str]]:
    """Sum of each building's main meter power (the meter labelled main/building first),
    or None when a building has no meter that answers."""
    from gridfunctions._assets import _descendants
    from mapper import building_iri

    index = platform.ontology.index
    meters = ", ".join(f"brick:{c}" for c in _descendants(index, ("Electrical_Meter",)))
    sensors = ", ".join(f"brick:{c}" for c in _descendants(index, ("Power_Sensor",)))
    total = 0.0
    errors: dict[str, str] = {}
    for b in buildings:
        iri = building_iri(platform.settings.base_iri, b)
        rows = platform.store.query(
            sparql_prefixes()
            + f"""SELECT ?p ?label WHERE {{ GRAPH <{iri}> {{
                ?m a ?mc ; rdfs:label ?label . ?p brick:isPointOf ?m ; a ?pc ; osed:rawName ?n .
                FILTER(?mc IN ({meters}))
                FILTER(?pc IN ({sensors}))
            }} }} ORDER BY ?label ?n""",
        ).rows
        if not rows:
            return None, errors
        rows.sort(
            key=lambda r: (
                not any(w in str(r["label"]).lower() for w in ("main", "building")),
                str(r["label"]),
            )
        )
        try:
            value = as_number(await platform.safety.read(b, str(rows[0]["p"])))
        except (EdgeError, OsedError) as exc:
            errors[b] = str(exc)
            return None, errors
        if value is None:
            return None, errors
        total += value
    return total, errors


@dataclass
class EventRun:
    """A grid function run in a loop for an event: re-planned every ``step_s`` on what is
    measured, until ``end`` (a Unix time) or until stopped."""

    run_id: str
    function: str
    buildings: list[str]
    end: float
    status: str = "running"  # running, finished, stopped, failed
    steps: int = 0
    written: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    last_report: dict[str, Any] = field(default_factory=dict)
    released: int = 0
    error: str | None = None


def shown(report: dict[str, Any]) -> dict[str, Any]:
    """A plan's report as the API and the CLI show it: without the per-asset schedules."""
    return {k: v for k, v in report.items() if k != "schedules_kw"}


def event_progress(state: EventRun) -> dict[str, Any]:
    """An event run's status as the API and the CLI show it."""
    out = {k: v for k, v in dataclasses.asdict(state).items() if k != "last_report"}
    out["report"] = shown(state.last_report)
    return out


async def run_event(
    platform: Platform,
    fn: GridFunction,
    params: dict[str, Any] | Callable[[float], dict[str, Any]],
    buildings: list[str],
    *,
    duration_s: float,
    step_s: float = 60.0,
    stop: asyncio.Event | None = None,
    dry_run: bool | None = None,
    run_id: str | None = None,
    load_kw: float | None = None,
    on_step: Callable[[EventRun], Any] | None = None,
) -> EventRun:
    """Run ``fn`` for an event: every ``step_s`` read the assets and the load, plan with the
    function's memory (``GridState.loop``), and carry out what is due before the next step,
    with leases that end when the event ends. At the end (or when ``stop`` is set) the
    function's ``finish`` plan is carried out and every lease the run still holds is
    released. A building whose adapter fails is reported and the others go on. ``params``
    may be a function of the time (an OpenADR event whose intervals change the ask)."""
    if duration_s <= 0 or step_s <= 0:
        raise OsedError("an event run needs a positive duration and step")
    stop = stop or asyncio.Event()

    def current() -> dict[str, Any]:
        return params(time.time()) if callable(params) else params

    parsed = fn.params(current())
    run_id = run_id or new_run_id()
    owner = f"gridfn:{fn.name}:{run_id}"
    end = time.time() + duration_s
    state = EventRun(run_id, fn.name, list(buildings), end)
    memory: dict[str, Any] = {}
    try:
        while not stop.is_set() and time.time() < end:
            began = time.monotonic()
            now_params = current()
            parsed = fn.params(now_params)
            prepared = await prepare(
                platform, fn, now_params, buildings, load_kw=load_kw, memory=memory, loop=True, step_s=step_s
            )
            memory = prepared.plan.memory
            left = max(1.0, end - time.time())
            due = [
                dataclasses.replace(a, duration_s=min(a.duration_s, left - a.at_s) if a.at_s < left else 1.0)
                for a in prepared.plan.actions
                if a.at_s < step_s
            ]
            report = await execute(
                fn, Plan(due, memory, prepared.plan.report), platform.safety, run_id=run_id, dry_run=dry_run
            )
            state.steps += 1
            state.written += report.written
            state.failures.update(report.failures)
            for b, e in prepared.read_errors.items():
                state.failures.setdefault(b, f"read: {e}")
            state.last_report = prepared.plan.report
            if on_step is not None:
                on_step(state)
            wait = min(step_s - (time.monotonic() - began), end - time.time())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        state.status = "stopped" if stop.is_set() else "finished"
    except OsedError as exc:
        state.status, state.error = "failed", str(exc)
        log.warning("%s: %s", owner, exc)
    finally:
        state.released = await _finish(platform, fn, parsed, buildings, memory, owner, run_id, dry_run)
    return state


async def _finish(
    platform: Platform,
    fn: GridFunction,
    parsed: Any,
    buildings: list[str],
    memory: dict[str, Any],
    owner: str,
    run_id: str,
    dry_run: bool | None,
) -> int:
    """The function's own end (a staggered release), then every lease still held."""
    if memory:
        try:
            assets = [
                a
                for b in buildings
                for a in bind(fn, platform.store, platform.ontology, b, platform.settings.base_iri)[1]
            ]
            states, _errors = await read_state(assets, platform.safety.read)
            plan = fn.finish(GridState(now=time.time(), assets=states, memory=memory, loop=True), parsed)
            await execute(fn, plan, platform.safety, run_id=run_id, dry_run=dry_run)
        except (OsedError, EdgeError) as exc:
            log.warning("%s: finishing failed, releasing everything: %s", owner, exc)
    released = await platform.safety.release_owner(owner, by=owner, reason="event over")
    return len(released)


async def run(
    platform: Platform,
    fn: GridFunction,
    params: dict[str, Any],
    buildings: list[str],
    *,
    load_kw: float | None = None,
    dry_run: bool | None = None,
    run_id: str | None = None,
) -> tuple[Prepared, RunReport]:
    prepared = await prepare(platform, fn, params, buildings, load_kw=load_kw)
    report = await execute(fn, prepared.plan, platform.safety, run_id=run_id or new_run_id(), dry_run=dry_run)
    for b, e in prepared.read_errors.items():
        report.failures.setdefault(b, f"read: {e}")
    return prepared, report
