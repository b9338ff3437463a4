"""The ASHRAE 223P classes as text to search: name, label, comment, and what kind of thing.

Retrieval (``agent``) and the class search of the API find a 223P class for a point's or an
equipment's words the way they find a Brick class; this reads what they need from the
223p.ttl brickschema ships (0.1 s with pyoxigraph's parser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyoxigraph as ox

from core.errors import OntologyError
from ontology import _paths
from ontology.namespaces import S223

S223Kind = Literal[
    "equipment", "property", "medium", "enumeration", "connection", "connection_point", "space", "other"
]
#: The kind of a class is that of the first of these roots it falls under.
_ROOTS: tuple[tuple[str, S223Kind], ...] = (
    ("Equipment", "equipment"),
    ("Property", "property"),
    ("Substance-Medium", "medium"),
    ("EnumerationKind", "enumeration"),
    ("ConnectionPoint", "connection_point"),
    ("Connection", "connection"),
    ("DomainSpace", "space"),
    ("PhysicalSpace", "space"),
    ("Zone", "space"),
    ("ZoneGroup", "space"),
)
S223_KINDS: tuple[S223Kind, ...] = (
    "equipment",
    "property",
    "medium",
    "enumeration",
    "connection",
    "connection_point",
    "space",
    "other",
)
_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"
_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
_COMMENT = "http://www.w3.org/2000/01/rdf-schema#comment"
_CODE = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class S223Class:
    """One 223P class (``name`` is its local name: ``Fan``, ``Fluid-Air``)."""

    name: str
    label: str
    comment: str
    kind: S223Kind
    parents: tuple[str, ...]

    @property
    def iri(self) -> str:
        return str(S223) + self.name


def read_s223_classes(path: Path | None = None) -> dict[str, S223Class]:
    """Every ``s223:Class`` of the file, by local name."""
    path = path or _paths.s223_ttl()
    try:
        triples = list(ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
    except (SyntaxError, OSError) as exc:
        raise OntologyError(f"cannot parse {path}: {exc}") from exc
    ns = str(S223)
    classes: set[str] = set()
    parents: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    comments: dict[str, str] = {}
    for t in triples:
        s, p, o = t.subject, t.predicate.value, t.object
        if not isinstance(s, ox.NamedNode) or not s.value.startswith(ns):
            continue
        name = s.value[len(ns) :]
        if p == _RDF_TYPE and isinstance(o, ox.NamedNode) and o.value == ns + "Class":
            classes.add(name)
        elif p == _SUBCLASS and isinstance(o, ox.NamedNode) and o.value.startswith(ns):
            parents.setdefault(name, []).append(o.value[len(ns) :])
        elif p == _LABEL and isinstance(o, ox.Literal) and o.language in (None, "", "en"):
            labels.setdefault(name, o.value)
        elif p == _COMMENT and isinstance(o, ox.Literal) and o.language in (None, "", "en"):
            comments.setdefault(name, _CODE.sub(r"\1", o.value).strip())

    def ancestors(name: str) -> list[str]:
        out: list[str] = []
        todo = [name]
        while todo:
            cur = todo.pop(0)
            if cur not in out:
                out.append(cur)
                todo.extend(parents.get(cur, ()))
        return out

    out = {}
    for name in sorted(classes):
        lineage = ancestors(name)
        kind: S223Kind = next((k for root, k in _ROOTS if root in lineage), "other")
        out[name] = S223Class(
            name=name,
            label=labels.get(name, name.replace("-", " ")),
            comment=comments.get(name, ""),
            kind=kind,
            parents=tuple(sorted(parents.get(name, ()))),
        )
    return out
