"""What ASHRAE 223P's own shapes require of each equipment class, read from ``223p.ttl``.

A class's requirement is met from a point list when all it asks is connection points of a
direction and a medium (``A Fan shall have at least one inlet using the medium Fluid-Air``):
the model can give it those. A class that also asks for parts (``A FanCoilUnit shall contain
a Fan``), a role, or sensors inside it (an ``ElectricityMeter``) cannot be met from names
alone, so the model does not use it for equipment its list does not show that way.
"""

from __future__ import annotations

from pathlib import Path

from rdflib import RDFS, Graph, URIRef
from rdflib.collection import Collection
from rdflib.namespace import SH
from rdflib.term import Node

from ontology.namespaces import S223

_DIRECTION: dict[URIRef, str] = {
    S223.InletConnectionPoint: "in",
    S223.OutletConnectionPoint: "out",
    S223.BidirectionalConnectionPoint: "bi",
    S223.ConnectionPoint: "bi",
}


def equipment_ports(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """223P equipment class (local name) -> the (direction, medium) connection points its
    shapes require, for every class whose requirements are only such points."""
    g = Graph().parse(path, format="turtle")
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    equipment = S223.Equipment
    classes = {c for c in g.transitive_subjects(RDFS.subClassOf, equipment) if isinstance(c, URIRef)}
    for cls in classes:
        ports = _ports(g, cls)
        if ports is not None:
            out[str(cls)[len(str(S223)) :]] = ports
    return out


def _ports(g: Graph, cls: URIRef) -> tuple[tuple[str, str], ...] | None:
    found: list[tuple[str, str]] = []
    for ancestor in g.transitive_objects(cls, RDFS.subClassOf):
        if not str(ancestor).startswith(str(S223)):
            continue
        if any(g.value(ancestor, k) is not None for k in (SH["or"], SH.xone, SH["and"])):
            return None
        for shape in g.objects(ancestor, SH.property):
            least = g.value(shape, SH.minCount) or g.value(shape, SH.qualifiedMinCount)
            if least is None or int(str(least)) < 1:
                continue
            port = _port(g, shape)
            if port is None:
                return None
            if port not in found:
                found.append(port)
    return tuple(sorted(found))


def _port(g: Graph, shape: Node) -> tuple[str, str] | None:
    if g.value(shape, SH.path) != S223.hasConnectionPoint:
        return None
    wanted = g.value(shape, SH.qualifiedValueShape)
    if wanted is None:
        return None
    kind = g.value(wanted, SH["class"])
    direction = _DIRECTION.get(kind) if isinstance(kind, URIRef) else None
    medium = None
    for node in (*g.objects(wanted, SH.node), wanted):
        medium = medium or _medium(g, node)
    if direction is None or medium is None:
        return None
    return direction, str(medium)[len(str(S223)) :]


def _medium(g: Graph, node: Node) -> URIRef | None:
    """The medium class a connection-point shape asks for (the first of an ``sh:or``)."""
    for prop in g.objects(node, SH.property):
        if g.value(prop, SH.path) != S223.hasMedium:
            continue
        cls = g.value(prop, SH["class"])
        if isinstance(cls, URIRef):
            return cls
        either = g.value(prop, SH["or"])
        if either is not None:
            for alternative in Collection(g, either):
                cls = g.value(alternative, SH["class"])
                if isinstance(cls, URIRef):
                    return cls
    either = g.value(node, SH["or"])
    if either is not None:
        for alternative in Collection(g, either):
            found = _medium(g, alternative)
            if found is not None:
                return found
    return None
