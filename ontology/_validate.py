"""SHACL validation of a building model against Brick 1.5, 223P and the project's shapes.

Two runs:

- ``Validator.validate``: the project's shapes with the Brick and 223P shapes that can target
  the model's nodes, on the model with its class closure materialised from the cached class
  index. Fast (the labeling and review paths use it), but a trimmed set.
- ``Validator.standards``: the standards' own checks as their users run them. 223P: its
  ``223p.ttl`` as shapes over the model *together with* ``223p.ttl`` (what the official
  open223 pipeline does: brick-tq-shacl validates data + shapes as one graph, after the SHACL
  rules), SHACL-AF rules on. Brick: ``brickschema.Graph(load_brick=True)`` plus the model,
  ``validate()``. Both with shifty, the engine brickschema 0.8 validates with; pyshacl gives
  the same results with ``advanced=True`` and 223p.ttl in the data graph but takes minutes
  per building (docs/standards.md). ``osed validate`` runs both.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyshacl
import shifty
from rdflib import OWL, RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.namespace import SH

from core.errors import OntologyError
from ontology import _paths
from ontology._index import ClassIndex
from ontology._units import UnitTable, quantity_kind_graph
from ontology.namespaces import BACNET, BRICK, OSED, S223

log = logging.getLogger(__name__)

_SEVERITY = {SH.Violation: "violation", SH.Warning: "warning", SH.Info: "info"}


@dataclass(frozen=True)
class ValidationResult:
    """One SHACL result, tied back to the point it concerns where there is one."""

    severity: str
    message: str
    focus: str
    point: str | None = None
    path: str | None = None
    value: str | None = None
    shape: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    conforms: bool
    results: tuple[ValidationResult, ...] = ()
    points_checked: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def violations(self) -> tuple[ValidationResult, ...]:
        return tuple(r for r in self.results if r.severity == "violation")

    def by_point(self) -> dict[str, list[ValidationResult]]:
        """Results grouped by the point they concern (``""`` for model-level ones)."""
        grouped: dict[str, list[ValidationResult]] = defaultdict(list)
        for r in self.results:
            grouped[r.point or ""].append(r)
        return dict(grouped)

    def summary(self) -> str:
        if self.conforms:
            return f"conforms: {self.points_checked} points, 0 violations"
        return (
            f"does not conform: {len(self.violations)} violation(s) "
            f"on {len({r.point or r.focus for r in self.violations})} node(s)"
        )

    def to_text(self) -> str:
        """Violations one by one first; then warnings and infos, one line per message with
        how many nodes it concerns (a 223P advice repeated on every setpoint would bury the
        violations otherwise)."""
        lines = [self.summary()]
        for r in self.violations:
            where = r.point or r.focus
            path = f" [{r.path}]" if r.path else ""
            lines.append(f"  violation: {where}{path}: {r.message}")
        others: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in self.results:
            if r.severity != "violation":
                others[(r.severity, r.message)].append(r.point or r.focus)
        for (severity, message), nodes in sorted(others.items(), key=lambda kv: -len(kv[1])):
            more = f" (and {len(nodes) - 1} more)" if len(nodes) > 1 else ""
            lines.append(f"  {severity}: {nodes[0]}{more}: {message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class StandardsReport:
    """The violations 223P's and Brick's own checks find in a model (run as their users do)."""

    s223: tuple[ValidationResult, ...]
    brick: tuple[ValidationResult, ...]

    @property
    def conforms(self) -> bool:
        return not self.s223 and not self.brick


class Validator:
    """Validates building models; loads its shapes once (a few seconds) on first use."""

    def __init__(self, index: ClassIndex, units: UnitTable) -> None:
        self._index = index
        self._units = units
        self._shapes: Graph | None = None
        self._lock = threading.Lock()
        self._targets: dict[object, tuple[set[str], set[str]]] | None = None
        self._pruned: dict[frozenset[object], Graph] = {}
        self._s223_graph: Graph | None = None
        self._brick_graph: Graph | None = None
        self._support = quantity_kind_graph(index, units) + units.graph
        vocab = Graph().parse(_paths.own_data("osed_shapes.ttl"), format="turtle")
        self._osed_parents: dict[str, tuple[str, ...]] = defaultdict(tuple)
        for sub, sup in vocab.subject_objects(RDFS.subClassOf):
            self._osed_parents[str(sub)] += (str(sup),)

    def shapes(self) -> Graph:
        with self._lock:
            if self._shapes is None:
                g = Graph()
                try:
                    g.parse(_paths.brick_ttl(), format="turtle")
                    g.parse(_paths.s223_ttl(), format="turtle")
                    g.parse(_paths.own_data("osed_shapes.ttl"), format="turtle")
                except (OSError, SyntaxError, ValueError) as exc:
                    raise OntologyError(f"cannot load SHACL shapes: {exc}") from exc
                self._shapes = g
            return self._shapes

    def validate(self, model: Graph) -> ValidationReport:
        data = self._prepare(model)
        points = {s for s in model.subjects(OSED.rawName, None)}
        conforms, report, _text = pyshacl.validate(
            data,
            shacl_graph=self._without_idle_sparql(self._relevant_shapes(data), data),
            inference="none",
            advanced=False,
            allow_warnings=True,
            abort_on_first=False,
        )
        results = tuple(self._results(report, model, points))
        blocking = any(r.severity == "violation" for r in results)
        return ValidationReport(
            conforms=bool(conforms) or not blocking,
            results=results,
            points_checked=len(points),
        )

    def standards(self, model: Graph) -> StandardsReport:
        """223P's and Brick's own checks of ``model`` alone, as their users run them."""
        points = {s for s in model.subjects(OSED.rawName, None)}
        with warnings.catch_warnings():
            # shifty says, once per run, that it skips 223P's rules that would mint blank
            # nodes; that is about the standard's rules, not about the model: not for users.
            warnings.simplefilter("ignore", category=Warning)
            _c, s223_report, _t = shifty.validate(
                model, self._s223(), graph_mode="union", infer=True, minimum_severity="violation"
            )
            _c, brick_report, _t = shifty.validate(self._brick() + model, None, minimum_severity="violation")
        return StandardsReport(
            s223=tuple(r for r in self._results(s223_report, model, points) if r.severity == "violation"),
            brick=tuple(r for r in self._results(brick_report, model, points) if r.severity == "violation"),
        )

    def validate_all(self, model: Graph) -> ValidationReport:
        """The project's shapes and the standards' own checks (``osed validate``): conforms
        means what a 223P or Brick user means by it, and the project's rules hold too."""
        own = self.validate(model)
        standards = self.standards(model)
        results = tuple(
            sorted(
                (*own.results, *_tagged(standards.s223, "223P"), *_tagged(standards.brick, "Brick")),
                key=lambda r: (r.point or r.focus, r.message),
            )
        )
        return ValidationReport(
            conforms=own.conforms and standards.conforms,
            results=results,
            points_checked=own.points_checked,
            extra={"223P violations": len(standards.s223), "Brick violations": len(standards.brick)},
        )

    def _s223(self) -> Graph:
        with self._lock:
            if self._s223_graph is None:
                self._s223_graph = _parse(_paths.s223_ttl())
            return self._s223_graph

    def _brick(self) -> Graph:
        with self._lock:
            if self._brick_graph is None:
                self._brick_graph = _parse(_paths.brick_ttl())
            return self._brick_graph

    def check(self, model: Graph, shapes: Graph) -> list[str]:
        """Messages of the violations of ``shapes`` (another party's requirements, e.g. a grid
        function's) over ``model`` with its class closure; empty when it conforms."""
        data = self._prepare(model)
        conforms, report, _text = pyshacl.validate(
            data, shacl_graph=shapes, inference="none", advanced=True, allow_warnings=True
        )
        if conforms:
            return []
        if not isinstance(report, Graph):  # pyshacl refused the shapes themselves
            raise OntologyError(f"invalid requirement shapes: {_text.strip()[:300]}")
        messages = {str(m) for m in report.objects(None, SH.resultMessage)}
        return sorted(messages) or ["the requirements are not met"]

    def _relevant_shapes(self, data: Graph) -> Graph:
        """Only the shapes that can target something in ``data``, with what they refer to.

        Brick and 223P together declare thousands of shapes; evaluating all of them is
        what makes naive validation take minutes. A shape whose target class or predicate
        does not occur in the data cannot produce a result, so it is left out.
        """
        shapes = self.shapes()
        with self._lock:
            if self._targets is None:
                self._targets = _index_targets(shapes)
            targets = self._targets
        classes = {str(o) for o in data.objects(None, RDF.type)}
        predicates = {str(p) for p in data.predicates()}
        keep = [
            shape
            for shape, (by_class, by_predicate) in targets.items()
            if by_class & classes or by_predicate & predicates
        ]
        key = frozenset(keep)
        cached = self._pruned.get(key)
        if cached is not None:
            return cached
        out = Graph()
        seen: set[object] = set()
        todo: list[object] = list(keep)
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for p, o in shapes.predicate_objects(node):  # type: ignore[arg-type]
                out.add((node, p, o))  # type: ignore[arg-type]
                if isinstance(o, BNode) or o in targets or p in _SHAPE_REFS:
                    todo.append(o)
        for prefix_decl in shapes.subjects(SH.declare, None):
            for p, o in shapes.predicate_objects(prefix_decl):
                out.add((prefix_decl, p, o))
                if isinstance(o, BNode):
                    for p2, o2 in shapes.predicate_objects(o):
                        out.add((o, p2, o2))
        if len(self._pruned) > 32:
            self._pruned.clear()
        self._pruned[key] = out
        return out

    def _without_idle_sparql(self, shapes: Graph, data: Graph) -> Graph:
        """Drop SPARQL constraints that have no solution anywhere in ``data``.

        pyshacl parses a SPARQL constraint's query again for every focus node, which is
        most of the time spent on a building. Run once with ``$this`` unbound, a
        constraint's SELECT returns every solution any focus node could have; when it
        returns none, the constraint cannot report anything and is left out.
        """
        idle = []
        for holder, constraint in shapes.subject_objects(SH.sparql):
            select = shapes.value(constraint, SH.select)
            if select is None:
                continue
            prefixes = _prefix_block(shapes, constraint)
            try:
                has_solution = bool(list(data.query(prefixes + str(select))))
            except Exception:  # noqa: BLE001 - unknown query shape: keep it for pyshacl
                has_solution = True
            if not has_solution:
                idle.append((holder, constraint))
        if not idle:
            return shapes
        out = Graph()
        out += shapes
        for holder, constraint in idle:
            out.remove((holder, SH.sparql, constraint))
        return out

    def _prepare(self, model: Graph) -> Graph:
        """Copy of the model plus what RDFS inference would add for its nodes' classes.

        Also marks each point's asserted Brick classes with ``osed:brickClass`` (on the copy
        only) so a shape can say when a point carries two classes.
        """
        data = Graph()
        for triple in model:
            data.add(triple)
        points = set(model.subjects(OSED.rawName, None))
        brick_ns = str(BRICK)
        for s, o in list(model.subject_objects(RDF.type)):
            iri = str(o)
            if iri.startswith(brick_ns) and s in points:
                data.add((s, OSED.brickClass, o))
            for anc in self._superclasses(iri):
                data.add((s, RDF.type, URIRef(anc)))
        # Oxigraph stores xsd:nonNegativeInteger as xsd:integer; 223P checks the former.
        for prop in _NON_NEGATIVE:
            for s, o in list(data.subject_objects(prop)):
                if isinstance(o, Literal) and o.datatype == XSD.integer and int(o) >= 0:
                    data.remove((s, prop, o))
                    data.add((s, prop, Literal(int(o), datatype=XSD.nonNegativeInteger)))
        data += self._support
        return data

    def _superclasses(self, iri: str) -> list[str]:
        brick_ns = str(BRICK)
        if iri.startswith(brick_ns):
            name = iri[len(brick_ns) :]
            return [brick_ns + a for a in self._index.ancestors(name)] if name in self._index else []
        out: list[str] = []
        todo = [iri]
        while todo:
            cur = todo.pop()
            for parent in (
                *self._osed_parents.get(cur, ()),
                *self._index.s223_parents.get(cur, ()),
                *self._index.rec_parents.get(cur, ()),
            ):
                if parent not in out:
                    out.append(parent)
                    todo.append(parent)
        return out

    def _results(self, report: Graph, model: Graph, points: set[Any]) -> list[ValidationResult]:
        out = []
        for res in report.subjects(RDF.type, SH.ValidationResult):
            focus = report.value(res, SH.focusNode)
            severity = _SEVERITY.get(URIRef(str(report.value(res, SH.resultSeverity))), "violation")
            message = report.value(res, SH.resultMessage)
            path = report.value(res, SH.resultPath)
            value = report.value(res, SH.value)
            shape = report.value(res, SH.sourceShape)
            out.append(
                ValidationResult(
                    severity=severity,
                    message=str(message) if message is not None else "constraint not met",
                    focus=str(focus),
                    point=_owning_point(model, focus, points),
                    path=str(path) if isinstance(path, URIRef) else None,
                    value=str(value) if value is not None else None,
                    shape=str(shape) if isinstance(shape, URIRef) else None,
                )
            )
        out.sort(key=lambda r: (r.point or r.focus, r.message))
        return out


def _parse(path: Any) -> Graph:
    try:
        return Graph().parse(path, format="turtle")
    except (OSError, SyntaxError, ValueError) as exc:
        raise OntologyError(f"cannot load {path}: {exc}") from exc


def _tagged(results: tuple[ValidationResult, ...], standard: str) -> list[ValidationResult]:
    return [
        ValidationResult(
            severity=r.severity,
            message=r.message if r.message.startswith("s223:") else f"{standard}: {r.message}",
            focus=r.focus,
            point=r.point,
            path=r.path,
            value=r.value,
            shape=r.shape,
        )
        for r in results
    ]


def _owning_point(model: Graph, focus: Any, points: set[Any]) -> str | None:
    if focus in points:
        return str(focus)
    for subject in model.subjects(None, focus):
        if subject in points:
            return str(subject)
    return None


#: 223P shapes left out, because they check the ontology itself or need vocabularies that
#: are not shipped offline: the closed-world checks require every predicate used on an
#: s223 node (qudt:hasUnit, qudt:hasQuantityKind...) to be declared in full QUDT.
_SKIPPED = {
    str(S223) + name
    for name in (
        "Concept",
        "ConceptShape",
        "ClosedWorldQUDTShape",
        "ClosedWorld223Shape",
        "AbstractClass",
        "AbstractClassShape",
        "Class",
        "SymmetricRelationShape",
        "RelationWithInverseShape",
    )
}

_NON_NEGATIVE = (BACNET["priority-for-writing"], BACNET["property-array-index"])

_SHAPE_REFS = {
    SH.node,
    SH.property,
    SH["not"],
    SH["and"],
    SH["or"],
    SH.xone,
    SH.qualifiedValueShape,
}


def _index_targets(shapes: Graph) -> dict[object, tuple[set[str], set[str]]]:
    """Each node shape -> (classes it targets, predicates whose use it targets)."""
    out: dict[object, tuple[set[str], set[str]]] = {}
    node_shapes = set(shapes.subjects(RDF.type, SH.NodeShape))
    for shape in node_shapes:
        if str(shape) in _SKIPPED:
            continue
        classes: set[str] = set()
        predicates: set[str] = set()
        types = set(shapes.objects(shape, RDF.type))
        if types & {RDFS.Class, OWL.Class}:
            classes.add(str(shape))  # implicit class target
        classes.update(str(c) for c in shapes.objects(shape, SH.targetClass))
        predicates.update(str(p) for p in shapes.objects(shape, SH.targetSubjectsOf))
        predicates.update(str(p) for p in shapes.objects(shape, SH.targetObjectsOf))
        # sh:target (SPARQL targets) in Brick select ontology classes, not data: left out.
        if classes or predicates:
            out[shape] = (classes, predicates)
    return out


def _prefix_block(shapes: Graph, constraint: object) -> str:
    """PREFIX lines from the sh:declare of the constraint's sh:prefixes ontologies."""
    lines = []
    for ontology in shapes.objects(constraint, SH.prefixes):  # type: ignore[arg-type]
        for decl in shapes.objects(ontology, SH.declare):
            prefix = shapes.value(decl, SH.prefix)
            namespace = shapes.value(decl, SH.namespace)
            if prefix is not None and namespace is not None:
                lines.append(f"PREFIX {prefix}: <{namespace}>")
    return "\n".join(lines) + "\n"
