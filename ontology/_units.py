"""Units and quantity kinds: the project's own QUDT subset.

QUDT is not shipped offline. ``data/qudt_units.ttl`` declares the units BMS point lists
use, with their spellings; quantity kinds are declared from the Brick classes that use
them. Together they make 223P's ``sh:class qudt:Unit`` / ``qudt:QuantityKind`` checks pass
for a correct model and let the validator say when a unit does not fit a class.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

import pyoxigraph as ox
from rdflib import RDF, RDFS, Graph, Literal, URIRef

from ontology import _paths
from ontology._index import ClassIndex, qk_local
from ontology.namespaces import OSED, QUDT

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Unit:
    iri: str
    symbol: str
    quantity_kinds: frozenset[str]

    @property
    def quantity_names(self) -> frozenset[str]:
        return frozenset(qk_local(q) for q in self.quantity_kinds)


def normalise_unit_text(text: str) -> str:
    """Fold the spellings of one unit together (case, spaces, º vs °, ² vs 2)."""
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    folded = folded.replace("º", "°").replace("deg.", "deg")
    return _SPACE.sub(" ", folded)


class UnitTable:
    """Looks up a raw unit string (``°F``, ``cfm``, ``degrees-fahrenheit``) as a QUDT unit."""

    def __init__(self) -> None:
        self._by_iri: dict[str, Unit] = {}
        self._by_text: dict[str, Unit] = {}
        symbols: dict[str, str] = {}
        kinds: dict[str, set[str]] = {}
        synonyms: dict[str, list[str]] = {}
        path = _paths.own_data("qudt_units.ttl")
        for t in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE):
            s, p, o = t.subject.value, t.predicate.value, t.object
            if p == str(QUDT.symbol):
                symbols[s] = o.value
            elif p == str(QUDT.hasQuantityKind):
                kinds.setdefault(s, set()).add(o.value)
            elif p == str(OSED.unitSynonym):
                synonyms.setdefault(s, []).append(o.value)
        for iri, qks in kinds.items():
            unit = Unit(iri=iri, symbol=symbols.get(iri, ""), quantity_kinds=frozenset(qks))
            self._by_iri[iri] = unit
            for text in [*synonyms.get(iri, []), symbols.get(iri, "")]:
                self._by_text.setdefault(normalise_unit_text(text), unit)

    def lookup(self, text: str | None) -> Unit | None:
        """The unit a raw string names, or None when it is empty or unknown."""
        if text is None:
            return None
        key = normalise_unit_text(text)
        if not key:
            return None
        return self._by_text.get(key) or self._by_text.get(key.replace(" ", ""))

    def by_iri(self, iri: str) -> Unit | None:
        return self._by_iri.get(iri)

    def units(self) -> list[Unit]:
        return list(self._by_iri.values())

    @cached_property
    def graph(self) -> Graph:
        g = Graph()
        g.parse(_paths.own_data("qudt_units.ttl"), format="turtle")
        return g


def quantity_kind_graph(index: ClassIndex, units: UnitTable) -> Graph:
    """Declares as qudt:QuantityKind every quantity kind that Brick classes or our units use."""
    g = Graph()
    kinds = set(index.quantity_kinds()) | set(index.brick_quantities.values())
    for unit in units.units():
        kinds |= unit.quantity_kinds
    for iri in sorted(kinds):
        g.add((URIRef(iri), RDF.type, QUDT.QuantityKind))
        g.add((URIRef(iri), RDFS.label, Literal(qk_local(iri).replace("_", " "))))
    return g
