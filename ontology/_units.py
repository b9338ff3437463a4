"""Units and quantity kinds: the project's unit table and the QUDT subset it ships.

QUDT is not shipped offline. ``data/qudt_units.ttl`` is the project's table of the units BMS
point lists use: their spellings, the quantities each can measure (QUDT's and Brick's), and
the quantity kind a point in that unit measures when its class names none. QUDT's own
declarations of those units and of the quantity kinds they, Brick 1.5 and 223P refer to are
in ``data/qudt_subset.ttl`` (QUDT 3.3.0, CC BY 4.0); a model carries the part it uses
(``_declarations.py``).
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
from ontology.namespaces import BRICK, OSED, QK, QUDT

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Unit:
    iri: str
    symbol: str
    #: What the unit can measure, QUDT's and Brick's quantity kinds (the agent's evidence).
    quantity_kinds: frozenset[str]
    #: The QUDT quantity kind a point in this unit measures when its class says nothing more.
    default_quantity_kind: str | None = None

    @property
    def quantity_names(self) -> frozenset[str]:
        return frozenset(qk_local(q) for q in self.quantity_kinds)


@dataclass(frozen=True)
class PropertyQuantity:
    """The quantity kind a 223P QuantifiableProperty states, and whether it is a difference."""

    kind: str
    delta: bool = False


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
        defaults: dict[str, str] = {}
        path = _paths.own_data("qudt_units.ttl")
        for t in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE):
            s, p, o = t.subject.value, t.predicate.value, t.object
            if p == str(QUDT.symbol):
                symbols[s] = o.value
            elif p == str(QUDT.hasQuantityKind):
                kinds.setdefault(s, set()).add(o.value)
            elif p == str(OSED.unitSynonym):
                synonyms.setdefault(s, []).append(o.value)
            elif p == str(OSED.defaultQuantityKind):
                defaults[s] = o.value
        for iri, qks in kinds.items():
            unit = Unit(
                iri=iri,
                symbol=symbols.get(iri, ""),
                quantity_kinds=frozenset(qks),
                default_quantity_kind=defaults.get(iri),
            )
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

    def property_quantity(self, brick_quantity: str | None, unit: Unit | None) -> PropertyQuantity | None:
        """The QUDT quantity kind of a point whose Brick class measures ``brick_quantity``
        (a QUDT or Brick quantity) in ``unit``; None when neither names one.

        223P wants a QUDT quantity kind whose dimensions are the unit's: a Brick quantity is
        replaced by the QUDT one it refines (``Differential_Temperature`` is a ``Temperature``
        difference: ``delta``). When the class's quantity cannot be measured in the source's
        unit, the unit (what the source says) wins: the unit's own default quantity kind.
        """
        found = self._qudt_quantity(brick_quantity) if brick_quantity else None
        if unit is None:
            return found
        unit_dims = self._dimensions.get(unit.iri)
        if found is not None and (unit_dims is None or self._dimensions.get(found.kind) == unit_dims):
            return found
        if unit.default_quantity_kind is None:
            return found
        return PropertyQuantity(unit.default_quantity_kind, delta=found.delta if found else False)

    def _qudt_quantity(self, iri: str) -> PropertyQuantity | None:
        if iri.startswith(str(QK)):
            return PropertyQuantity(iri)
        delta = iri in self._brick_quantities.deltas
        seen: set[str] = set()
        todo = [iri]
        while todo:
            cur = todo.pop(0)
            if cur in seen:
                continue
            seen.add(cur)
            for parent in self._brick_quantities.broader.get(cur, ()):
                if parent.startswith(str(QK)):
                    return PropertyQuantity(parent, delta=delta or parent in self._brick_quantities.deltas)
                todo.append(parent)
        return None

    @cached_property
    def _dimensions(self) -> dict[str, str]:
        """Dimension vector of every unit and quantity kind of the QUDT subset."""
        out: dict[str, str] = {}
        for t in ox.parse(path=str(_paths.own_data("qudt_subset.ttl")), format=ox.RdfFormat.TURTLE):
            if t.predicate.value == str(QUDT.hasDimensionVector):
                out[t.subject.value] = t.object.value
        return out

    @cached_property
    def _brick_quantities(self) -> _BrickQuantities:
        return _BrickQuantities.read()


@dataclass(frozen=True)
class _BrickQuantities:
    """What Brick 1.5 says of its own quantities: the QUDT (or Brick) ones each refines
    (``brick:hasQUDTReference``, then ``skos:broader``), and which are differences."""

    broader: dict[str, tuple[str, ...]]
    deltas: frozenset[str]

    @classmethod
    def read(cls) -> _BrickQuantities:
        reference: dict[str, list[str]] = {}
        broader: dict[str, list[str]] = {}
        deltas: set[str] = set()
        brick_ns = str(BRICK)
        for t in ox.parse(path=str(_paths.brick_ttl()), format=ox.RdfFormat.TURTLE):
            s, p, o = t.subject.value, t.predicate.value, t.object
            if not s.startswith(brick_ns):
                continue
            if p == str(BRICK.hasQUDTReference) and isinstance(o, ox.NamedNode):
                reference.setdefault(s, []).append(o.value)
            elif p == _SKOS_BROADER and isinstance(o, ox.NamedNode):
                broader.setdefault(s, []).append(o.value)
            elif p == str(QUDT.isDeltaQuantity) and isinstance(o, ox.Literal) and o.value == "true":
                deltas.add(s)
        for t in ox.parse(path=str(_paths.own_data("qudt_units.ttl")), format=ox.RdfFormat.TURTLE):
            if t.predicate.value == str(OSED.qudtQuantityKind):
                reference.setdefault(t.subject.value, []).append(t.object.value)
        merged = {
            k: (*sorted(reference.get(k, ())), *sorted(broader.get(k, ()))) for k in {*reference, *broader}
        }
        return cls(broader=merged, deltas=frozenset(deltas))


_SKOS_BROADER = "http://www.w3.org/2004/02/skos/core#broader"


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
