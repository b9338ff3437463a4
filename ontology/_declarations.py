"""What a building model carries so that Brick's and 223P's own shapes can check it alone.

An outsider validates an exported model with the standards' files only: 223P's ``223p.ttl``
(which imports QUDT, never shipped with it) or Brick 1.5 as brickschema loads it (QUDT not
loaded either). Their shapes then ask that every ``qudt:hasUnit`` be a ``qudt:Unit`` and every
quantity kind a ``qudt:QuantityKind`` with a dimension vector; for the terms of the two
ontologies themselves too (Brick's quantities refer to QUDT quantity kinds, 223P's media to
units). So a model carries, from the QUDT subset the project ships (``data/qudt_subset.ttl``,
QUDT 3.3.0, CC BY 4.0):

- the declaration of every unit and quantity kind it uses, with the quantity kinds of those
  units;
- the declarations of the units and quantity kinds Brick 1.5 and 223P themselves refer to;

the types 223P gives the enumeration values the model uses (``s223:Fluid-Air a
s223:Fluid-Air``: pyshacl leaves them out when it mixes ``223p.ttl`` in as the ontology graph,
for they are shapes too); and, from the project's vocabulary (``data/osed_shapes.ttl``), the
declaration of every ``osed:`` class its nodes have, up to the Brick and 223P classes they specialise (an
``osed:ModbusReference`` is an ``s223:ExternalReference``).
"""

from __future__ import annotations

from functools import cached_property

import pyoxigraph as ox
from rdflib import OWL, RDF, RDFS, SKOS, Graph, URIRef

from core.errors import OntologyError
from ontology import _paths
from ontology.namespaces import OSED, QK, QUDT, S223, UNIT

_QUDT_TERMS = (str(UNIT), str(QK))
_CLASS_FACTS = (RDF.type, RDFS.subClassOf, RDFS.label, RDFS.comment, SKOS.definition)


def _is_qudt_term(node: object) -> bool:
    return isinstance(node, URIRef) and str(node).startswith(_QUDT_TERMS)


class Declarations:
    """Adds to a model the declarations it needs (loads the QUDT subset once)."""

    @cached_property
    def qudt(self) -> Graph:
        """The QUDT subset: every unit and quantity kind a model can use."""
        try:
            return Graph().parse(_paths.own_data("qudt_subset.ttl"), format="turtle")
        except (OSError, SyntaxError, ValueError) as exc:
            raise OntologyError(f"cannot read the QUDT subset: {exc}") from exc

    @cached_property
    def vocabulary(self) -> Graph:
        """The project's class declarations (``osed:`` classes and what they specialise)."""
        shapes = Graph().parse(_paths.own_data("osed_shapes.ttl"), format="turtle")
        out = Graph()
        for cls in shapes.subjects(RDF.type, OWL.Class):
            if isinstance(cls, URIRef) and str(cls).startswith(str(OSED)):
                for p in _CLASS_FACTS:
                    for o in shapes.objects(cls, p):
                        out.add((cls, p, o))
        return out

    @cached_property
    def ontology_terms(self) -> frozenset[URIRef]:
        """The units and quantity kinds Brick 1.5 and 223P refer to that QUDT declares."""
        found: set[URIRef] = set()
        for path in (_paths.brick_ttl(), _paths.s223_ttl()):
            for t in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE):
                for term in (t.subject, t.object):
                    if isinstance(term, ox.NamedNode) and term.value.startswith(_QUDT_TERMS):
                        found.add(URIRef(term.value))
        return frozenset(n for n in found if (n, RDF.type, None) in self.qudt)

    @cached_property
    def enumerations(self) -> frozenset[URIRef]:
        """223P's enumeration values: the nodes 223P types as instances of themselves."""
        found: set[URIRef] = set()
        for t in ox.parse(path=str(_paths.s223_ttl()), format=ox.RdfFormat.TURTLE):
            if (
                t.predicate.value == str(RDF.type)
                and isinstance(t.subject, ox.NamedNode)
                and t.subject == t.object
                and t.subject.value.startswith(str(S223))
            ):
                found.add(URIRef(t.subject.value))
        return frozenset(found)

    def used_terms(self, model: Graph) -> set[URIRef]:
        """The units and quantity kinds ``model`` refers to (as objects, or declared)."""
        used: set[URIRef] = set()
        for s, _p, o in model:
            for node in (s, o):
                if _is_qudt_term(node):
                    used.add(node)  # type: ignore[arg-type]
        return used

    def for_model(self, model: Graph) -> Graph:
        """The declarations ``model`` needs and does not have yet (see the module's doc)."""
        qudt = self.qudt
        wanted = self.used_terms(model) | self.ontology_terms
        for unit in list(wanted):
            wanted.update(o for o in qudt.objects(unit, QUDT.hasQuantityKind) if isinstance(o, URIRef))
        out = Graph()
        for term in wanted:
            for p, o in qudt.predicate_objects(term):
                out.add((term, p, o))
        enumerations = self.enumerations
        for _s, p, o in model:
            if p != RDF.type and o in enumerations:
                out.add((o, RDF.type, o))
        vocabulary = self.vocabulary
        todo = [o for o in set(model.objects(None, RDF.type)) if str(o).startswith(str(OSED))]
        seen: set[object] = set()
        while todo:
            cls = todo.pop()
            if cls in seen:
                continue
            seen.add(cls)
            for p, o in vocabulary.predicate_objects(cls):
                out.add((cls, p, o))
                if p == RDFS.subClassOf and str(o).startswith(str(OSED)):
                    todo.append(o)
        return out - model

    def undeclared(self, model: Graph) -> list[str]:
        """Units and quantity kinds ``model`` uses that it does not declare (empty when the
        model carries what the standards' shapes need)."""
        missing = []
        for term in sorted(self.used_terms(model) | self.ontology_terms):
            if (term, RDF.type, None) not in model:
                missing.append(str(term))
        return missing
