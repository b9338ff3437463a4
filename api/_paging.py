"""The SPARQL behind the point table: which points match a filter, in which order, and the
details of one page of them.

A point is any subject with an ``osed:rawName`` in the building's graph. Every query here
yields one row per point, whatever the graph states twice (two equipment labels, two Brick
types, two descriptions): values are taken with MIN, so a point is counted, sorted and
shown once, by the same value each time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal as TypeLiteral

from pydantic import BaseModel, Field

from ontology import BRICK, sparql_prefixes

#: The sort keys of the table; ties are broken by raw name, then IRI (a total order, so
#: consecutive pages neither repeat nor skip a point).
SORT_KEYS = {
    "name": "?name",
    "confidence": "COALESCE(?conf, -1.0)",
    "status": "?status",
    "class": 'COALESCE(?cls, "")',
    "equipment": 'COALESCE(?equip, "")',
}

_NOT_IN_IRI = re.compile(r'[\s<>"{}|\\^`]')


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
    return [i for i in iris if not _NOT_IN_IRI.search(i)]


def matching(
    graph: str, where: PointFilter, brick_class: str | None, iris: Sequence[str] | None = None
) -> str:
    """A subquery: one row per point of ``graph`` the filter admits, with its sort keys
    ``?p ?name ?status ?cls ?conf ?equip`` (``?cls``: the Brick class other than brick:Point,
    unbound when the point has none). ``brick_class`` is the filter's class, canonical."""
    inside = []
    if where.point:
        iris = [i for i in iris if i == where.point] if iris is not None else [where.point]
    if iris is not None:
        inside.append(f"VALUES ?p {{ {' '.join(f'<{i}>' for i in safe_iris(iris))} }}")
    inside.append("?p osed:rawName ?n .")
    if brick_class:
        inside.append(f"?p a <{BRICK[_iri_safe(brick_class)]}> .")
    if where.equipment:
        inside.append(
            f'?p brick:isPointOf ?fe . ?fe rdfs:label ?eq . FILTER(STR(?eq) = "{_escape(where.equipment)}")'
        )
    else:
        inside.append("OPTIONAL { ?p brick:isPointOf ?e . ?e rdfs:label ?eq }")
    inside.append('OPTIONAL { ?p osed:reviewStatus ?s0 } BIND(COALESCE(STR(?s0), "suggested") AS ?s)')
    inside.append("OPTIONAL { ?p a ?c . FILTER(STRSTARTS(STR(?c), STR(brick:)) && ?c != brick:Point) }")
    inside.append("OPTIONAL { ?p osed:confidence ?cf }")
    if where.status:
        inside.append(f'FILTER(?s = "{_escape(where.status)}")')
    if where.q:
        text = _escape(where.q.lower())
        inside.append(
            f'FILTER(CONTAINS(LCASE(STR(?n)), "{text}") || '
            f'EXISTS {{ ?p osed:rawDescription ?fd . FILTER(CONTAINS(LCASE(STR(?fd)), "{text}")) }})'
        )
    if where.min_confidence is not None:
        inside.append(f"FILTER(COALESCE(?cf, 0.0) >= {float(where.min_confidence)})")
    if where.max_confidence is not None:
        inside.append(f"FILTER(COALESCE(?cf, 0.0) <= {float(where.max_confidence)})")
    body = "\n          ".join(inside)
    return f"""SELECT ?p (MIN(STR(?n)) AS ?name) (MIN(?s) AS ?status) (MIN(STR(?c)) AS ?cls)
                 (MIN(?cf) AS ?conf) (MIN(STR(?eq)) AS ?equip)
        WHERE {{ GRAPH <{graph}> {{
          {body} }} }} GROUP BY ?p"""


def count_query(subquery: str) -> str:
    return sparql_prefixes() + f"SELECT (COUNT(?p) AS ?n) WHERE {{ {{ {subquery} }} }}"


def page_query(subquery: str, sort: str, descending: bool, offset: int, limit: int) -> str:
    key = SORT_KEYS[sort]
    order = f"DESC({key})" if descending else f"ASC({key})"
    return (
        sparql_prefixes()
        + f"""SELECT ?p WHERE {{ {{ {subquery} }} }}
        ORDER BY {order} ?name ?p LIMIT {int(limit)} OFFSET {int(offset)}"""
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
        WHERE {{ GRAPH <{graph}> {{
          VALUES ?p {{ {values} }}
          ?p osed:rawName ?n .
          OPTIONAL {{ ?p osed:rawDescription ?d }} OPTIONAL {{ ?p osed:rawUnit ?u }}
          OPTIONAL {{ ?p osed:rawObjectType ?o }} OPTIONAL {{ ?p osed:suggestedClass ?sg }}
          OPTIONAL {{ ?p osed:confidence ?cf }} OPTIONAL {{ ?p osed:reviewStatus ?s0 }}
          OPTIONAL {{ ?p osed:suggestionReason ?r }} OPTIONAL {{ ?p osed:alternativeClass ?alt }}
          OPTIONAL {{ ?p a ?c . FILTER(STRSTARTS(STR(?c), STR(brick:)) && ?c != brick:Point) }}
          OPTIONAL {{ ?p brick:isPointOf ?e . ?e rdfs:label ?eq }}
        }} }} GROUP BY ?p"""
    )


def row(r: Mapping[str, object]) -> PointRow:
    alts = str(r.get("alts") or "")
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
        alternatives=[a.rsplit("#", 1)[-1] for a in alts.split("|") if a],
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


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")[:200]
