"""Plan and run a grid function for stored buildings: bind, check, read, plan, act."""

from __future__ import annotations

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
) -> Prepared:
    """Check every building (refusing with what is missing), bind the assets, read their
    state through the safety layer, and plan. Nothing is written."""
    import time

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
        now=now if now is not None else time.time(), assets=states, load_kw=load_kw, memory=memory or {}
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
