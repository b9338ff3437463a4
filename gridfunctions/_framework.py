"""The grid-function framework: a function declares what it binds to (SPARQL), what must
exist (SHACL), its parameters (pydantic) and a pure ``plan(state) -> Plan``; running it goes
through the edge safety layer with leases that end with the event."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError
from rdflib import Graph

from core.errors import EdgeError, OsedError, SafetyRefused
from edge import SafetyLayer
from edge._base import as_number
from graphstore import GraphStore
from gridfunctions._assets import KINDS, Asset, find_assets, read_topology, topology_iri
from mapper import building_iri
from ontology import BRICK, OSED, Ontology

log = logging.getLogger("osed.gridfunctions")
GROUP = "osed.gridfunctions"


@dataclass
class AssetState:
    """An asset as the planner sees it now."""

    asset: Asset
    power_kw: float  # drawn now (measured, or estimated from rated power)
    value: float | None = None  # the control point's current value (setpoint, limit…)
    #: Extra per-asset context a function may use (zone temperature, state of charge…).
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class GridState:
    now: float
    assets: list[AssetState]
    #: Load at the constraint (transformer, feeder or building), kW.
    load_kw: float = 0.0
    forecast_kw: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    step_s: float = 60.0
    #: What the function returned as memory from its previous plan (hysteresis, rotation).
    memory: dict[str, Any] = field(default_factory=dict)
    #: True when a runner re-plans every ``step_s`` for the whole event (closed loop): a
    #: function then returns only what is due before the next step and keeps the rest in
    #: its memory. False for a one-shot run, which carries out the whole plan as scheduled.
    loop: bool = False


@dataclass(frozen=True)
class Action:
    """Set ``point`` to ``value`` (None: release the lease) ``at_s`` seconds from now."""

    building: str
    point: str
    asset: str
    value: float | bool | None
    reason: str
    expected_kw: float = 0.0  # load change expected (negative = less load)
    at_s: float = 0.0
    duration_s: float = 3600.0


@dataclass
class Plan:
    actions: list[Action]
    memory: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class GridFunction(ABC):
    """Subclass, set the class attributes, implement ``plan``; register the class under the
    entry-point group ``osed.gridfunctions`` of your package."""

    name: ClassVar[str]
    title: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    #: Asset kinds it acts on (keys of gridfunctions.KINDS).
    kinds: ClassVar[tuple[str, ...]]
    #: Lease priority of its writes (1..100, higher preempts lower).
    priority: ClassVar[int] = 50
    #: Requirements as (message, SPARQL graph pattern that must match for ``$this``, the
    #: building); turned into a SHACL shape. Class names written ``brick:X+`` mean X or any
    #: subclass.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    @abstractmethod
    def plan(self, state: GridState, params: Any) -> Plan:
        """Pure: the same state and parameters give the same plan."""

    def finish(self, state: GridState, params: Any) -> Plan:
        """The end of an event run in a loop: what to do before the run's remaining leases
        are released (a staggered release, say). By default nothing: every lease the run
        still holds is released at once."""
        return Plan(actions=[])

    # -- declared requirements --------------------------------------------------------------
    @classmethod
    def requirements(cls, index: Any) -> str:
        """The SPARQL the function binds to: its assets' writable points."""
        from gridfunctions._assets import asset_query

        return asset_query(index, cls.kinds)

    @classmethod
    def shape(cls) -> str:
        """The SHACL shape (Turtle) of what a building needs for this function."""
        parts = [
            "@prefix sh: <http://www.w3.org/ns/shacl#> .",
            f"<urn:osed:gridfn:{cls.name}:shape> a sh:NodeShape ; sh:targetClass <{OSED.Building}>",
        ]
        for message, pattern in (*_asset_requirement(cls.kinds), *cls.requires):
            select = f"SELECT $this WHERE {{ FILTER NOT EXISTS {{ {_expand(pattern)} }} }}"
            parts.append(f'  ; sh:sparql [ sh:message """{message}""" ; sh:select """{select}""" ]')
        return "\n".join(parts) + " .\n"

    def params(self, values: dict[str, Any]) -> Any:
        try:
            return self.Params(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            raise OsedError(f"{self.name}: parameter {where}: {first.get('msg')}") from None


def _asset_requirement(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    equipment = ", ".join(f"brick:{c}+" for k in kinds for c in KINDS[k].equipment)
    names = ", ".join(k.replace("_", " ") for k in kinds)
    return [
        (
            f"no controllable asset ({names}): needs a point with an adapter reference marked writable "
            "(osed:writable true) on such equipment",
            f"?p brick:isPointOf ?e ; ref:hasExternalReference ?r . ?r osed:writable true . "
            f"?e a ?c . FILTER(?c IN ({equipment}))",
        )
    ]


_PREFIXES = {
    "brick:": str(BRICK),
    "osed:": str(OSED),
    "ref:": "https://brickschema.org/schema/Brick/ref#",
    "rdfs:": "http://www.w3.org/2000/01/rdf-schema#",
}


def _expand(pattern: str) -> str:
    """Full IRIs for prefixed names; ``brick:X+`` becomes brick:X (the data graph carries the
    class closure, so superclass membership is already asserted)."""
    import re

    def full(m: re.Match[str]) -> str:
        return f"<{_PREFIXES[m.group(1)]}{m.group(2)}>"

    return re.sub(r"\b(brick:|osed:|ref:|rdfs:)([A-Za-z_][\w-]*)\+?", full, pattern)


def available() -> dict[str, type[GridFunction]]:
    """Grid functions registered under the entry-point group ``osed.gridfunctions``."""
    found: dict[str, type[GridFunction]] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party package must not hide the others
            log.warning("grid function %s cannot be loaded: %s", ep.name, exc)
            continue
        if isinstance(cls, type) and issubclass(cls, GridFunction):
            found[ep.name] = cls
    return found


def get(name: str) -> GridFunction:
    functions = available()
    if name not in functions:
        raise OsedError(f"no grid function '{name}': installed are {', '.join(functions) or 'none'}")
    return functions[name]()


# -- check ----------------------------------------------------------------------------------
@dataclass
class CheckResult:
    function: str
    building: str
    bindable: bool
    assets: dict[str, int]
    missing: list[str]


def check(
    fn: GridFunction, store: GraphStore, ontology: Ontology, building: str, base_iri: str = "urn:osed:"
) -> CheckResult:
    """Can ``fn`` run on ``building``? Which required points or relations are missing
    (from the SHACL report of the function's shape over the building and the topology)."""
    return bind(fn, store, ontology, building, base_iri)[0]


def bind(
    fn: GridFunction, store: GraphStore, ontology: Ontology, building: str, base_iri: str = "urn:osed:"
) -> tuple[CheckResult, list[Asset]]:
    """``check``, and the assets the function binds in the building."""
    iri = str(building_iri(base_iri, building))
    graphs = store.graphs()
    if iri not in graphs:
        raise OsedError(f"no building '{building}'")
    data = Graph()
    data += store.get_graph(iri)
    topo = topology_iri(base_iri)
    if topo in graphs:
        data += store.get_graph(topo)
    shapes = Graph().parse(data=fn.shape(), format="turtle")
    missing = ontology.validator.check(data, shapes)
    assets = find_assets(store, ontology.index, base_iri=base_iri, buildings=[building], kinds=fn.kinds)
    counts: dict[str, int] = {}
    for a in assets:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    return CheckResult(fn.name, building, not missing and bool(assets), counts, missing), assets


# -- state, plan, run -----------------------------------------------------------------------
async def read_state(
    assets: Sequence[Asset],
    read: Callable[[str, str], Any],
    *,
    now: float | None = None,
    concurrency: int = 32,
) -> tuple[list[AssetState], dict[str, str]]:
    """Current power and control value of each asset through ``read(building, point)``
    (the safety layer's read); failures are reported per building and the asset is
    estimated from its rated power."""
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, str] = {}

    async def one(a: Asset) -> AssetState:
        async with sem:
            value = power = None
            try:
                value = as_number(await read(a.building, a.point))
                if a.power_point:
                    power = as_number(await read(a.building, a.power_point))
            except (EdgeError, OsedError) as exc:
                errors.setdefault(a.building, str(exc))
            if power is None:
                power = a.rated_kw * KINDS[a.kind].duty
            return AssetState(a, float(power), value)

    states = await asyncio.gather(*(one(a) for a in assets))
    return list(states), errors


@dataclass
class RunReport:
    run: str
    function: str
    buildings: list[str]
    planned: int
    written: int
    dry_run: bool
    failures: dict[str, str]
    report: dict[str, Any]
    leases: list[str]


async def execute(
    fn: GridFunction,
    plan: Plan,
    safety: SafetyLayer,
    *,
    run_id: str,
    dry_run: bool | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> RunReport:
    """Carry out a plan through the safety layer: each write a lease owned by the run that
    ends with the event. A building whose adapter fails does not stop the others; its
    failure is reported. Scheduled actions (``at_s``) wait for their time."""
    owner = f"gridfn:{fn.name}:{run_id}"
    failures: dict[str, str] = {}
    leases: list[str] = []
    written = 0
    start = time.monotonic()
    for action in sorted(plan.actions, key=lambda a: (a.at_s, a.building, a.point)):
        if action.building in failures:
            continue
        delay = action.at_s - (time.monotonic() - start)
        if delay > 0:
            await sleep(delay)
        try:
            if action.value is None:
                for lease in safety.store.leases(point=action.point, statuses=("active", "reverting")):
                    if lease.owner == owner:
                        await safety.release(lease.id, by=owner, reason=action.reason)
                continue
            result = await safety.write(
                action.building,
                action.point,
                action.value,
                owner=owner,
                reason=action.reason,
                duration_s=action.duration_s,
                priority=fn.priority,
                owner_kind="function",
                dry_run=dry_run,
            )
            leases.append(result.lease.id)
            written += 1
        except (EdgeError, SafetyRefused, OsedError) as exc:
            failures[action.building] = f"{action.point}: {exc}"
            log.warning("%s: building %s failed: %s", owner, action.building, exc)
    return RunReport(
        run=run_id,
        function=fn.name,
        buildings=sorted({a.building for a in plan.actions}),
        planned=len(plan.actions),
        written=written,
        dry_run=bool(dry_run if dry_run is not None else safety.config.dry_run),
        failures=failures,
        report=plan.report,
        leases=leases,
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


__all__ = [
    "Action",
    "AssetState",
    "CheckResult",
    "GridFunction",
    "GridState",
    "Plan",
    "RunReport",
    "available",
    "check",
    "execute",
    "get",
    "new_run_id",
    "read_state",
    "read_topology",
]
