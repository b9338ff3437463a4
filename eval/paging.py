"""Paging benchmark: how long the review page waits for a page of points on a large building.

    python -m eval.paging [--points 10000] [--limit 100] [--repeats 15]

Builds a synthetic building through the Platform (the agent labels it, the Platform builds
its model and stores it in the embedded Oxigraph store on disk, as ``osed serve`` does;
``--memory`` for the in-memory store the tests use): AHUs and their VAVs, a chiller plant,
meters and thermostats, points with and without descriptions, units and object types, and
opaque controller codes the agent abstains on. It checks that paging under each sort reaches every point once,
then times the first, a middle and the last page under every sort (both orders) and every
filter the page offers, and prints a Markdown report (p50/p95 in milliseconds).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from api._service import Platform, PointFilter
from api.settings import Settings
from graphstore import OxigraphStore
from mapper import RawPoint
from ontology import Ontology

BUILDING = "paging"
SORTS = ("name", "confidence", "status", "class", "equipment")

# (point suffix, description, unit, object type) of the points a BMS lists per equipment.
_AHU = (
    ("SA-T", "Supply air temperature", "°F", "AI"),
    ("RA-T", "Return air temperature", "°F", "AI"),
    ("MA-T", "Mixed air temperature", "°F", "AI"),
    ("SA-T-SP", "Supply air temperature setpoint", "°F", "AV"),
    ("SF-STS", "Supply fan status", "", "BI"),
    ("SF-CMD", "Supply fan start/stop", "", "BO"),
    ("OA-DMPR", "Outside air damper command", "%", "AO"),
    ("SA-SP", "Supply duct static pressure", "inH2O", "AI"),
)
_VAV = (
    ("ZN-T", "Zone temperature", "°F", "AI"),
    ("ZN-T-CLG-SP", "Zone cooling setpoint", "°F", "AV"),
    ("DA-T", "Discharge air temperature", "°F", "AI"),
    ("AIRFLOW", "Discharge air flow", "cfm", "AI"),
    ("DMPR-POS", "Damper position command", "%", "AO"),
    ("RHT-VLV", "Reheat valve command", "%", "AO"),
    ("OCC", "Zone occupancy sensor", "", "BI"),
)
_PLANT = (
    ("CH-{n}.STS", "Chiller run status", "", "BI"),
    ("CH-{n}.CHWS-T", "Chilled water supply temperature", "°F", "AI"),
    ("CHWP-{n}.SPD", "Chilled water pump speed command", "%", "AO"),
    ("MTR-{n} Demand kW", "Electric meter peak demand", "kW", ""),
    ("TSTAT-{n} Room Temp", "Thermostat room temperature", "°F", ""),
    ("TSTAT-{n} Cooling Setpoint", "Thermostat cooling setpoint", "°F", ""),
)


def synthetic_points(count: int, seed: int = 0) -> list[RawPoint]:
    """``count`` points as a mixed BMS export lists them.

    About half carry a description, most a unit, some an object type; one in twelve is an
    opaque controller code (``QX-0042``, ``N2:17:AI3``) that the agent abstains on; a few
    names repeat (the same code on two controllers), so ties in every sort key exist.
    """
    rng = random.Random(seed)
    out: list[RawPoint] = []

    def add(name: str, description: str, unit: str, object_type: str) -> None:
        out.append(
            RawPoint(
                name=name,
                description=description if rng.random() < 0.5 else "",
                unit=unit if rng.random() < 0.8 else "",
                object_type=object_type if rng.random() < 0.6 else "",
            )
        )

    def opaque() -> None:
        code = rng.choice(("QX-{:04d}", "N2:{}:AI3", "ZZ{:05d}", "X{:03d}"))
        described = rng.random() < 0.3
        out.append(RawPoint(name=code.format(rng.randrange(2000)), description="spare" if described else ""))

    for ahu in range(1, count + 1):
        for suffix, description, unit, otype in _AHU:
            add(f"AHU-{ahu}.{suffix}", description, unit, otype)
        for vav in range(1, 13):
            for suffix, description, unit, otype in _VAV:
                if rng.random() < 0.08:
                    opaque()
                else:
                    add(f"AHU-{ahu}.VAV-{ahu}-{vav:02d}.{suffix}", description, unit, otype)
        for pattern, description, unit, otype in _PLANT:
            add(pattern.format(n=ahu), description, unit, otype)
        if len(out) >= count:
            break
    return out[:count]


@dataclass
class Built:
    platform: Platform
    labeled_s: float  # the agent labeling the points, the platform building the model
    stored_s: float  # writing the model into the store
    first_page_s: float  # the first page, which builds the point index from the stored model
    index_triples: int


def mixed_platform(data_dir: Path, points: int, *, memory: bool = False, seed: int = 0) -> Built:
    """A Platform holding the synthetic building, labeled offline (retrieval off).

    The model is stored as ``osed load MODEL.ttl`` stores one, past the platform and without
    the SHACL validation ``import_points`` adds (minutes at 10,000 points, and not measured
    here), so the first page builds the point index from the stored model."""
    settings = Settings(data_dir=data_dir)
    settings.agent.retrieval = False
    store = OxigraphStore(None, settings.store) if memory else None
    platform = Platform(settings, store=store, ontology=Ontology.load(settings.cache_dir))
    start = time.perf_counter()
    model = platform.model(BUILDING, platform.label(synthetic_points(points, seed), building=BUILDING))
    labeled = time.perf_counter()
    iri = platform.graph_iri(BUILDING)
    platform.store.replace_graph(iri, model)
    stored = time.perf_counter()
    platform.points(BUILDING, limit=100)
    first = time.perf_counter()
    return Built(
        platform,
        labeled - start,
        stored - labeled,
        first - stored,
        platform.store.count(platform.index_iri(iri)),
    )


@dataclass(frozen=True)
class Case:
    label: str
    sort: str
    descending: bool
    where: PointFilter


def cases() -> Iterator[Case]:
    for sort in SORTS:
        for descending in (False, True):
            yield Case(f"sort {sort} {'desc' if descending else 'asc'}", sort, descending, PointFilter())
    cls = "Zone_Air_Temperature_Sensor"
    filters = {
        "status abstained": PointFilter(status="abstained"),
        "status suggested": PointFilter(status="suggested"),
        "text 'zone'": PointFilter(q="zone"),
        f"class {cls}": PointFilter(brick_class=cls),
        "equipment AHU-1": PointFilter(equipment="AHU-1"),
        "confidence 0.5–0.9": PointFilter(min_confidence=0.5, max_confidence=0.9),
    }
    for label, where in filters.items():
        yield Case(f"filter {label}", "name", False, where)
    # A filter with another sort: the least sure suggestions first, text by class.
    yield Case(
        "filter status suggested, sort confidence asc", "confidence", False, filters["status suggested"]
    )
    yield Case("filter text 'zone', sort class desc", "class", True, filters["text 'zone'"])
    yield Case("filter confidence 0.5–0.9, sort equipment", "equipment", False, filters["confidence 0.5–0.9"])


def reach(platform: Platform, sort: str, descending: bool, limit: int) -> tuple[int, int, int]:
    """(total reported, rows paged through, distinct points among them)."""
    seen: list[str] = []
    total, offset = 0, 0
    while True:
        total, page = platform.points(BUILDING, offset=offset, limit=limit, sort=sort, descending=descending)
        seen.extend(r.iri for r in page)
        offset += limit
        if offset >= total or not page:
            return total, len(seen), len(set(seen))


def timed(platform: Platform, case: Case, offset: int, limit: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        platform.points(
            BUILDING, offset=offset, limit=limit, where=case.where, sort=case.sort, descending=case.descending
        )
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=100, help="page size (the review page asks 100)")
    parser.add_argument("--repeats", type=int, default=15, help="timed requests per page")
    parser.add_argument("--memory", action="store_true", help="in-memory store instead of on disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osed-paging-") as tmp:
        report(args, Path(tmp))


def report(args: argparse.Namespace, data_dir: Path) -> None:
    built = mixed_platform(data_dir, args.points, memory=args.memory)
    platform = built.platform
    summary = platform.store.query(
        "PREFIX osed: <https://w3id.org/osed/ns#> SELECT ?s (COUNT(?p) AS ?n) WHERE { GRAPH ?g { "
        "?p osed:reviewStatus ?s } } GROUP BY ?s ORDER BY ?s"
    )
    statuses = ", ".join(f"{r['s']} {r['n']}" for r in summary.rows)
    print(f"# Paging benchmark ({args.points:,} points, pages of {args.limit})\n")
    command = f"python -m eval.paging --points {args.points}" + (" --memory" if args.memory else "")
    print(f"`{command}` — generated by `make eval`.\n")
    where = "in memory" if args.memory else "on disk"
    print(
        f"A synthetic building ({statuses}) labeled by the agent (retrieval off) in "
        f"{built.labeled_s:.1f} s, its model stored in {built.stored_s:.1f} s on the embedded "
        f"Oxigraph store {where}. The first page built the point index ({built.index_triples:,} "
        f"triples) from the stored model in {built.first_page_s:.1f} s: what a server's first "
        "page of the building costs after a restart or an `osed load` of a Turtle model; the "
        "platform's own writes store the index with the model. Timings below are "
        "`Platform.points` (count, page and details: the work behind "
        f"`GET /buildings/{{id}}/points`), {args.repeats} requests per page after one warm-up, "
        "in milliseconds.\n"
    )
    print("## Every point reached once (pages of 1,000)\n")
    print("| sort | total | rows paged | distinct |\n|---|---:|---:|---:|")
    complete = True
    for sort in SORTS:
        for descending in (False, True):
            total, rows, distinct = reach(platform, sort, descending, 1000)
            complete = complete and total == rows == distinct == args.points
            print(f"| {sort} {'desc' if descending else 'asc'} | {total} | {rows} | {distinct} |")
    print("\n## Time per page (ms)\n")
    print("| request | matching | first p50 / p95 | middle p50 / p95 | last p50 / p95 |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for case in cases():
        total, _ = platform.points(BUILDING, limit=1, where=case.where, sort=case.sort)
        last = max(0, (total - 1) // args.limit * args.limit)
        cells = []
        for offset in (0, last // args.limit // 2 * args.limit, last):
            timed(platform, case, offset, args.limit, 1)  # warm-up
            times = timed(platform, case, offset, args.limit, args.repeats)
            worst = max(worst, p95(times))
            cells.append(f"{statistics.median(times):.0f} / {p95(times):.0f}")
        print(f"| {case.label} | {total} | {' | '.join(cells)} |")
    print(f"\nSlowest p95: {worst:.0f} ms. Every point reached once under every sort: {complete}.")
    platform.close()
    if not complete:
        sys.exit(1)


if __name__ == "__main__":
    main()
