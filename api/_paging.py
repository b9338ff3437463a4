"""The point table: which points match a filter, in which order, and one page of them.

A point is any subject with an ``osed:rawName`` in the building's graph. Every query here
yields one row per point, whatever the graph states twice (two equipment labels, two Brick
types, two descriptions): the value a point is sorted, counted and shown by is the least
(MIN) of what the graph states; a class, equipment or text filter holds when any stated
value matches.

Sorting happens in the store, on integers. Oxigraph compares long strings (names, class
IRIs) by reading them back from its dictionary at every comparison, so sorting 10,000 names
took half a second on disk. Each building therefore has a *point index* beside its model,
``<building graph>/index``: for every point and sort, a number unique to the point
(:func:`index_graph`; ties broken by name then IRI, so the order is total and pages neither
repeat nor skip a point), which the status and confidence filters and the summary also
read. The platform writes it in the same transaction as the model, and rebuilds it from
the model when the model was written some other way (see ``Platform.point_index``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal as TypeLiteral

from pydantic import BaseModel, Field
from rdflib import RDF, RDFS, Graph, Literal, URIRef

from ontology import BRICK, OSED, is_sparql_iri, sparql_prefixes, sparql_string

SORTS = ("name", "confidence", "status", "class", "equipment")


class PointRow(BaseModel):
    iri: str
    name: str
    description: str | None = None
    unit: str | None = None
    object_type: str | None = None
    brick_class: str | None = None
    suggested_class: str | None = None
    confidence: float | None = None
    status: str
    reason: str | None = None
    alternatives: list[str] = []
    equipment: str | None = None


class PointFilter(BaseModel):
    """Which points: every field optional, all given ones must hold."""

    status: TypeLiteral["suggested", "confirmed", "corrected", "rejected", "abstained"] | None = None
    q: str | None = Field(default=None, max_length=200, description="text in the raw name or description")
    brick_class: str | None = Field(default=None, max_length=200, description="class name (exact)")
    equipment: str | None = Field(default=None, max_length=200, description="equipment label (exact)")
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    max_confidence: float | None = Field(default=None, ge=0, le=1)
    point: str | None = Field(default=None, max_length=2000, description="one point, by IRI")


def safe_iris(iris: Sequence[str]) -> list[str]:
    """The IRIs that can be written between ``<>`` in a query (others match no point)."""
    return [i for i in iris if is_sparql_iri(i)]


@dataclass(frozen=True)
class PointKeys:
    """What a point is sorted by: the least value the graph states for each key."""

    iri: str
    name: str
    status: str
    brick_class: str  # the class IRI other than brick:Point, "" when none
    confidence: float | None
    equipment: str  # the equipment's label, "" when none


#: Review statuses in sort order; any other status a foreign model states sorts after them.
STATUSES = ("abstained", "confirmed", "corrected", "rejected", "suggested")
_OTHER_STATUS = len(STATUSES)
#: Point counts stay below 10**7: a name rank scaled by these stays below the key's unit.
_STATUS_TIE = Decimal("1e-7")
_CONFIDENCE_TIE = Decimal("1e-13")
_CONFIDENCE_STEP = Decimal("0.000001")

_PREDICATES = {
    "name": OSED.nameRank,
    "confidence": OSED.confidenceKey,
    "status": OSED.statusKey,
    "class": OSED.classRank,
    "equipment": OSED.equipmentRank,
}


def sort_predicate(sort: str) -> URIRef:
    return _PREDICATES[sort]


def status_code(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else _OTHER_STATUS


def index_graph(keys: Iterable[PointKeys]) -> Graph:
    """The point index: each point's sort key under every sort, a number unique to it.

    ``osed:nameRank`` is its rank by name, then IRI; ``osed:classRank`` and
    ``osed:equipmentRank`` its rank by class or equipment label, then name; ``osed:statusKey``
    is the status's place in :data:`STATUSES` plus the name rank / 10**7, and
    ``osed:confidenceKey`` the confidence (six decimals, -1 when none) plus the name rank /
    10**13, so those two also answer the status and confidence filters and the summary.
    """
    points = sorted(keys, key=lambda k: (k.name, k.iri))
    nodes = [URIRef(k.iri) for k in points]
    numbers = [Literal(rank) for rank in range(len(points))]
    triples: list[tuple[URIRef, URIRef, Literal]] = [
        (node, OSED.nameRank, numbers[rank]) for rank, node in enumerate(nodes)
    ]
    for predicate, value in ((OSED.classRank, "brick_class"), (OSED.equipmentRank, "equipment")):
        ranked = sorted(range(len(points)), key=lambda i: (getattr(points[i], value), i))
        triples.extend((nodes[i], predicate, numbers[rank]) for rank, i in enumerate(ranked))
    for rank, (node, k) in enumerate(zip(nodes, points, strict=True)):
        triples.append((node, OSED.statusKey, Literal(status_code(k.status) + rank * _STATUS_TIE)))
        triples.append(
            (node, OSED.confidenceKey, Literal(_confidence(k.confidence) + rank * _CONFIDENCE_TIE))
        )
    graph = Graph()
    graph.addN((s, p, o, graph) for s, p, o in triples)
    return graph


def _confidence(value: float | None) -> Decimal:
    return Decimal(-1) if value is None else Decimal(f"{value:.6f}")


def keys_in(model: Graph) -> list[PointKeys]:
    """The sort keys of every point of a building model, as :func:`keys_queries` read them
    from the store."""
    brick, point_class = str(BRICK), str(BRICK.Point)
    out = []
    for point in set(model.subjects(OSED.rawName, None)):
        classes = [str(c) for c in model.objects(point, RDF.type) if str(c).startswith(brick)]
        labels = [str(x) for e in model.objects(point, BRICK.isPointOf) for x in model.objects(e, RDFS.label)]
        confidences = [float(str(c)) for c in model.objects(point, OSED.confidence)]
        out.append(
            PointKeys(
                iri=str(point),
                name=min(str(n) for n in model.objects(point, OSED.rawName)),
                status=min((str(s) for s in model.objects(point, OSED.reviewStatus)), default="suggested"),
                brick_class=min((c for c in classes if c != point_class), default=""),
                confidence=min(confidences, default=None),
                equipment=min(labels, default=""),
            )
        )
    return out


def keys_queries(graph: str) -> dict[str, str]:
    """Queries reading every point's sort keys from the store, one simple scan each (one
    grouped query over all of them took seconds on a 10,000-point building)."""
    patterns = {
        "name": "?p osed:rawName ?v",
        "status": "?p osed:rawName ?n ; osed:reviewStatus ?v",
        "class": "?p osed:rawName ?n ; a ?v . FILTER(STRSTARTS(STR(?v), STR(brick:)) && ?v != brick:Point)",
        "confidence": "?p osed:rawName ?n ; osed:confidence ?v",
        "equipment": "?p osed:rawName ?n ; brick:isPointOf ?e . ?e rdfs:label ?v",
    }
    return {
        key: sparql_prefixes()
        + f"SELECT ?p (MIN(?v) AS ?value) WHERE {{ GRAPH <{graph}> {{ {pattern} }} }} GROUP BY ?p"
        for key, pattern in patterns.items()
    }


def keys_from_rows(rows: Mapping[str, Iterable[Mapping[str, object]]]) -> list[PointKeys]:
    """Sort keys from the rows of :func:`keys_queries`, by key."""
    values = {key: {str(r["p"]): r["value"] for r in found} for key, found in rows.items()}
    status, cls, conf, equip = (values[k] for k in ("status", "class", "confidence", "equipment"))
    return [
        PointKeys(
            iri=iri,
            name=str(name),
            status=str(status.get(iri, "suggested")),
            brick_class=str(cls.get(iri, "")),
            confidence=float(str(conf[iri])) if iri in conf else None,
            equipment=str(equip.get(iri, "")),
        )
        for iri, name in values["name"].items()
    ]


@dataclass(frozen=True)
class Filters:
    """What a filter asks of ``?p``: a subquery over the building's model (class, equipment,
    text, IRIs; "" when none of those is asked) and tests of index keys (status,
    confidence: the sort they belong to, and a condition on ``?key``)."""

    subquery: str
    keys: tuple[tuple[str, str], ...]

    def __bool__(self) -> bool:
        return bool(self.subquery or self.keys)


def filter_parts(
    graph: str, where: PointFilter, brick_class: str | None, iris: Sequence[str] | None = None
) -> Filters:
    """The :class:`Filters` of ``where``; ``brick_class`` is its class, canonical."""
    model: list[str] = []
    shown: list[tuple[str, str]] = []
    if where.point:
        iris = [i for i in iris if i == where.point] if iris is not None else [where.point]
    if iris is not None:
        model.append(f"VALUES ?p {{ {' '.join(f'<{i}>' for i in safe_iris(iris))} }}")
    if brick_class:
        model.append(f"GRAPH <{graph}> {{ ?p a <{BRICK[_iri_safe(brick_class)]}> }}")
    if where.equipment:
        model.append(
            f"GRAPH <{graph}> {{ ?p brick:isPointOf ?fe . ?fe rdfs:label {sparql_string(where.equipment)} }}"
        )
    if where.q:
        text = sparql_string(where.q.lower())
        found = [
            f"{{ GRAPH <{graph}> {{ ?p osed:{prop} ?ft }} FILTER(CONTAINS(LCASE(STR(?ft)), {text})) }}"
            for prop in ("rawName", "rawDescription")
        ]
        model.append(" UNION ".join(found))
    if where.status:
        code = status_code(where.status)
        shown.append(("status", f"?key >= {code} && ?key < {code + 1}"))
    low, high = where.min_confidence, where.max_confidence
    if low is not None or high is not None:
        # Keys of the confidences c with low <= c <= high (six decimals); a point without a
        # confidence (key below 0) counts as 0.
        bounds = [f"?key >= {_confidence(low)}"] if low is not None else ["?key >= 0"]
        bounds += [f"?key < {_confidence(high) + _CONFIDENCE_STEP}"] if high is not None else []
        test = " && ".join(bounds)
        if (low or 0.0) <= 0.0 <= (1.0 if high is None else high):
            test = f"({test}) || ?key < 0"
        shown.append(("confidence", test))
    subquery = f"{{ SELECT DISTINCT ?p WHERE {{ {' '.join(model)} }} }}" if model else ""
    return Filters(subquery, tuple(shown))


def point_count_query(graph: str, index: str) -> str:
    """How many points the building has (``?n``) and how many its index ranks
    (``?ranked``): they differ when the model was changed unseen."""
    return (
        sparql_prefixes()
        + f"""SELECT ?n ?ranked WHERE {{
          {{ SELECT (COUNT(DISTINCT ?p) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?p osed:rawName ?name }} }} }}
          {{ SELECT (COUNT(?rank) AS ?ranked) WHERE {{
               GRAPH <{index}> {{ ?p osed:nameRank ?rank }} }} }} }}"""
    )


def _matching(index: str, filters: Filters, sort: str) -> str:
    if sort == "name" and any(key == "status" for key, _ in filters.keys):
        sort = "status"  # within one status, status keys run in name order: one pattern less
    patterns = [f"?p <{sort_predicate(sort)}> ?rank ."]
    tests = []
    for n, (key, test) in enumerate(filters.keys):
        if key == sort:
            tests.append(test.replace("?key", "?rank"))
        else:
            patterns.append(f"?p <{sort_predicate(key)}> ?key{n} .")
            tests.append(test.replace("?key", f"?key{n}"))
    where = " ".join(patterns) + (f" FILTER(({') && ('.join(tests)}))" if tests else "")
    return f"{filters.subquery} GRAPH <{index}> {{ {where} }}"


def count_query(index: str, filters: Filters) -> str:
    """How many points match (``?n``). A key test alone needs no other pattern: its key's
    triples are the points."""
    sort = filters.keys[0][0] if filters.keys and not filters.subquery else "name"
    return sparql_prefixes() + f"SELECT (COUNT(?p) AS ?n) WHERE {{ {_matching(index, filters, sort)} }}"


def page_query(
    index: str, filters: Filters, sort: str, descending: bool, offset: int = 0, limit: int | None = None
) -> str:
    """The IRIs of matching points in the order of their sort keys: one page, or all of
    them when ``limit`` is None."""
    direction = "DESC" if descending else "ASC"
    window = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
    return (
        sparql_prefixes()
        + f"SELECT ?p WHERE {{ {_matching(index, filters, sort)} }} ORDER BY {direction}(?rank){window}"
    )


def iris_query(index: str, filters: Filters) -> str:
    """Every matching point, once each."""
    return sparql_prefixes() + f"SELECT ?p WHERE {{ {_matching(index, filters, 'name')} }} ORDER BY ?p"


def summary_query(index: str, threshold: float) -> str:
    """Points by status code (``?code``, see :func:`status_code`), with the sum of their
    confidences and how many reach ``threshold``."""
    return (
        sparql_prefixes()
        + f"""SELECT ?code (COUNT(?p) AS ?n) (SUM(?c) AS ?confsum)
                 (SUM(IF(?c >= {float(threshold)}, 1, 0)) AS ?above)
        WHERE {{ GRAPH <{index}> {{ ?p osed:statusKey ?sk ; osed:confidenceKey ?ck }}
                 BIND(FLOOR(?sk) AS ?code) BIND(IF(?ck < 0, 0.0, FLOOR(?ck * 1000000) / 1000000) AS ?c) }}
        GROUP BY ?code"""
    )


def details_query(graph: str, iris: Sequence[str]) -> str:
    """Everything the table shows of these points, one row each (in no particular order)."""
    values = " ".join(f"<{i}>" for i in safe_iris(iris))
    # VALUES comes first inside the GRAPH group, so each OPTIONAL extends these points: an
    # OPTIONAL opening a group would match on its own and drop the points it misses.
    return (
        sparql_prefixes()
        + f"""SELECT ?p (MIN(STR(?n)) AS ?name) (MIN(STR(?d)) AS ?desc) (MIN(STR(?u)) AS ?unit)
                 (MIN(STR(?o)) AS ?otype) (MIN(STR(?c)) AS ?cls) (MIN(STR(?sg)) AS ?sugg)
                 (MIN(?cf) AS ?conf) (MIN(STR(?s0)) AS ?status) (MIN(STR(?r)) AS ?reason)
                 (MIN(STR(?eq)) AS ?equip) (GROUP_CONCAT(DISTINCT STR(?alt); separator="|") AS ?alts)
                 (MIN(STR(?ao)) AS ?altorder)
        WHERE {{ GRAPH <{graph}> {{
          VALUES ?p {{ {values} }}
          ?p osed:rawName ?n .
          OPTIONAL {{ ?p osed:rawDescription ?d }} OPTIONAL {{ ?p osed:rawUnit ?u }}
          OPTIONAL {{ ?p osed:rawObjectType ?o }} OPTIONAL {{ ?p osed:suggestedClass ?sg }}
          OPTIONAL {{ ?p osed:confidence ?cf }} OPTIONAL {{ ?p osed:reviewStatus ?s0 }}
          OPTIONAL {{ ?p osed:suggestionReason ?r }} OPTIONAL {{ ?p osed:alternativeClass ?alt }}
          OPTIONAL {{ ?p osed:alternativeOrder ?ao }}
          OPTIONAL {{ ?p a ?c . FILTER(STRSTARTS(STR(?c), STR(brick:)) && ?c != brick:Point) }}
          OPTIONAL {{ ?p brick:isPointOf ?e . ?e rdfs:label ?eq }}
        }} }} GROUP BY ?p"""
    )


def row(r: Mapping[str, object]) -> PointRow:
    alts = str(r.get("alts") or "")
    ranked = str(r.get("altorder") or "").split()
    return PointRow(
        iri=str(r["p"]),
        name=str(r["name"]),
        description=_text(r, "desc"),
        unit=_text(r, "unit"),
        object_type=_text(r, "otype"),
        brick_class=local(r.get("cls")),
        suggested_class=local(r.get("sugg")),
        confidence=float(str(r["conf"])) if r.get("conf") is not None else None,
        status=_text(r, "status") or "suggested",
        reason=_text(r, "reason"),
        alternatives=ranked or sorted(a.rsplit("#", 1)[-1] for a in alts.split("|") if a),
        equipment=_text(r, "equip"),
    )


def local(term: object) -> str | None:
    if term is None:
        return None
    text = str(term)
    return text.rsplit("#", 1)[-1] if "#" in text else text


def _text(r: Mapping[str, object], key: str) -> str | None:
    value = r.get(key)
    return str(value) if value is not None else None


def _iri_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "", name)[:200]
