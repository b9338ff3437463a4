"""The class index: every Brick 1.5 and 223P class with what the agent and mapper need.

Parsing the 2 MB Brick.ttl takes a few seconds, so the index is built once with
pyoxigraph's parser and cached as JSON keyed by the brickschema version and file sizes.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import pyoxigraph as ox

from core.errors import OntologyError
from ontology import _paths
from ontology._s223_rules import equipment_ports
from ontology.namespaces import BRICK, QK, S223, TAG

log = logging.getLogger(__name__)

_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"
_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
_COMMENT = "http://www.w3.org/2000/01/rdf-schema#comment"
_DEFINITION = "http://www.w3.org/2004/02/skos/core#definition"
_DEPRECATED = "http://www.w3.org/2002/07/owl#deprecated"
_OWL_CLASS = "http://www.w3.org/2002/07/owl#Class"
_S223_CLASS = str(S223) + "Class"
_S223_ABSTRACT = str(S223) + "AbstractClass"

#: Direct children of brick:Point: the kind of a point decides its 223P property class.
POINT_KINDS = ("Sensor", "Setpoint", "Command", "Status", "Alarm", "Parameter")
_ROOTS = ("Point", "Equipment", "Location", "Collection", "Measurable", "Substance")

#: Bump when the JSON layout or the extraction changes.
_CACHE_LAYOUT = 5
_REC = "https://w3id.org/rec#"


@dataclass(frozen=True)
class BrickClass:
    """One Brick class as the rest of the project sees it."""

    name: str
    label: str
    definition: str
    parents: tuple[str, ...]
    tags: tuple[str, ...]
    quantity: str | None = None
    substances: tuple[str, ...] = ()
    deprecated: bool = False
    replaced_by: str | None = None
    alias_of: str | None = None

    @property
    def iri(self) -> str:
        return str(BRICK) + self.name


@dataclass
class ClassIndex:
    """Brick and 223P classes, their hierarchy, and the derived facts used everywhere."""

    brick: dict[str, BrickClass]
    s223_parents: dict[str, tuple[str, ...]]
    brick_quantities: dict[str, str] = field(default_factory=dict)
    #: Superclasses of the RealEstateCore location classes Brick 1.5 uses (rec:Room,
    #: rec:Level...), from Brick's own file.
    rec_parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: 223P equipment class (local name) -> the (direction, medium) connection points its
    #: own shapes require, for the classes that require nothing else (``_s223_rules``).
    s223_ports: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, cache_dir: Path | None = None) -> ClassIndex:
        """Load from the cache when it matches the installed ontology, else build and cache."""
        key = _cache_key()
        path = cache_dir / f"class-index-{key}.json" if cache_dir else None
        if path and path.is_file():
            try:
                return cls.from_json(json.loads(path.read_text("utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable class-index cache %s: %s", path, exc)
        index = cls.build()
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(index.to_json()), "utf-8")
            tmp.replace(path)
        return index

    @classmethod
    def build(cls) -> ClassIndex:
        brick = _read_brick(_paths.brick_ttl())
        s223 = _read_s223_hierarchy(_paths.s223_ttl())
        rec = _read_hierarchy(_paths.brick_ttl(), _REC)
        ports = equipment_ports(_paths.s223_ttl())
        return cls(
            brick=brick[0], s223_parents=s223, brick_quantities=brick[1], rec_parents=rec, s223_ports=ports
        )

    def to_json(self) -> dict[str, object]:
        return {
            "layout": _CACHE_LAYOUT,
            "brick": [asdict(c) for c in self.brick.values()],
            "s223": {k: list(v) for k, v in self.s223_parents.items()},
            "brick_quantities": self.brick_quantities,
            "rec": {k: list(v) for k, v in self.rec_parents.items()},
            "s223_ports": {k: [list(p) for p in v] for k, v in self.s223_ports.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ClassIndex:
        if data.get("layout") != _CACHE_LAYOUT:
            raise ValueError("cache layout changed")
        raw = data["brick"]
        assert isinstance(raw, list)
        brick = {}
        for item in raw:
            for key in ("parents", "tags", "substances"):
                item[key] = tuple(item[key])
            brick[item["name"]] = BrickClass(**item)
        s223 = data["s223"]
        assert isinstance(s223, dict)
        quantities = data.get("brick_quantities", {})
        assert isinstance(quantities, dict)
        rec = data.get("rec", {})
        assert isinstance(rec, dict)
        ports = data.get("s223_ports", {})
        assert isinstance(ports, dict)
        return cls(
            brick=brick,
            s223_parents={k: tuple(v) for k, v in s223.items()},
            brick_quantities=quantities,
            rec_parents={k: tuple(v) for k, v in rec.items()},
            s223_ports={k: tuple((str(d), str(m)) for d, m in v) for k, v in ports.items()},
        )

    # -- lookups ------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self.brick

    def get(self, name: str) -> BrickClass:
        try:
            return self.brick[name]
        except KeyError:
            raise OntologyError(f"'{name}' is not a Brick {_paths.BRICK_VERSION} class") from None

    def ancestors(self, name: str) -> tuple[str, ...]:
        """All Brick superclasses of ``name``, nearest first, without ``name`` itself."""
        return self._ancestors[name]

    def is_subclass(self, name: str, parent: str) -> bool:
        return name == parent or parent in self._ancestors.get(name, ())

    def root(self, name: str) -> str | None:
        """``Point``, ``Equipment``, ``Location``... or None for other Brick classes."""
        lineage = (name, *self._ancestors.get(name, ()))
        for root in _ROOTS:
            if root in lineage:
                return root
        return None

    def is_point(self, name: str) -> bool:
        return name in self.brick and self.is_subclass(name, "Point")

    def is_equipment(self, name: str) -> bool:
        return name in self.brick and self.is_subclass(name, "Equipment")

    def point_kind(self, name: str) -> str | None:
        """``Sensor``, ``Setpoint``, ``Command``, ``Status``, ``Alarm`` or ``Parameter``."""
        lineage = (name, *self._ancestors.get(name, ()))
        for kind in POINT_KINDS:
            if kind in lineage:
                return kind
        return None

    def canonical(self, name: str) -> str:
        """Follow ``brick:aliasOf`` and ``brick:isReplacedBy`` to the class to use."""
        seen: set[str] = set()
        while name in self.brick and name not in seen:
            seen.add(name)
            cls = self.brick[name]
            nxt = cls.alias_of or cls.replaced_by
            if not nxt or nxt not in self.brick:
                break
            name = nxt
        return name

    def quantity_kind(self, name: str) -> str | None:
        """The quantity kind IRI of a point class, inherited from the nearest ancestor."""
        for candidate in (name, *self._ancestors.get(name, ())):
            cls = self.brick.get(candidate)
            if cls and cls.quantity:
                return cls.quantity
        return None

    def point_classes(self, *, include_deprecated: bool = False) -> Iterator[BrickClass]:
        """Usable point classes: canonical ones (no alias, not deprecated) by default."""
        for cls in self.brick.values():
            if not self.is_point(cls.name):
                continue
            if include_deprecated or not (cls.deprecated or cls.alias_of):
                yield cls

    def s223_ancestors(self, iri: str) -> tuple[str, ...]:
        out: list[str] = []
        todo = list(self.s223_parents.get(iri, ()))
        while todo:
            cur = todo.pop(0)
            if cur not in out:
                out.append(cur)
                todo.extend(self.s223_parents.get(cur, ()))
        return tuple(out)

    def quantity_kinds(self) -> set[str]:
        """Every quantity kind IRI any Brick class refers to."""
        return {c.quantity for c in self.brick.values() if c.quantity}

    @cached_property
    def _ancestors(self) -> dict[str, tuple[str, ...]]:
        result: dict[str, tuple[str, ...]] = {}
        for name in self.brick:
            out: list[str] = []
            todo = list(self.brick[name].parents)
            while todo:
                cur = todo.pop(0)
                if cur in out or cur == name:
                    continue
                out.append(cur)
                parent = self.brick.get(cur)
                if parent:
                    todo.extend(parent.parents)
            result[name] = tuple(out)
        return result

    @cached_property
    def children(self) -> dict[str, tuple[str, ...]]:
        kids: dict[str, list[str]] = defaultdict(list)
        for cls in self.brick.values():
            for parent in cls.parents:
                kids[parent].append(cls.name)
        return {k: tuple(sorted(v)) for k, v in kids.items()}


def _cache_key() -> str:
    files = [_paths.brick_ttl(), _paths.s223_ttl()]
    sizes = "-".join(str(p.stat().st_size) for p in files)
    return f"{_paths.brickschema_version()}-{sizes}-v{_CACHE_LAYOUT}"


def _triples(path: Path) -> Iterable[ox.Triple | ox.Quad]:
    try:
        return list(ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
    except (SyntaxError, OSError) as exc:
        raise OntologyError(f"cannot parse {path}: {exc}") from exc


def _local(iri: str, ns: str) -> str | None:
    return iri[len(ns) :] if iri.startswith(ns) else None


def _read_brick(path: Path) -> tuple[dict[str, BrickClass], dict[str, str]]:
    ns, tag_ns = str(BRICK), str(TAG)
    is_class: set[str] = set()
    parents: dict[str, list[str]] = defaultdict(list)
    labels: dict[str, str] = {}
    definitions: dict[str, str] = {}
    tags: dict[str, list[str]] = defaultdict(list)
    quantity: dict[str, str] = {}
    substances: dict[str, list[str]] = defaultdict(list)
    deprecated: set[str] = set()
    replaced: dict[str, str] = {}
    alias: dict[str, str] = {}
    quantities: dict[str, str] = {}
    for t in _triples(path):
        s, p, o = t.subject, t.predicate.value, t.object
        if not isinstance(s, ox.NamedNode):
            continue
        name = _local(s.value, ns)
        if name is None:
            continue
        if p == _RDF_TYPE and isinstance(o, ox.NamedNode):
            if o.value == _OWL_CLASS:
                is_class.add(name)
            elif o.value in (ns + "Quantity",):
                quantities[name] = s.value
        elif p == _SUBCLASS and isinstance(o, ox.NamedNode):
            parent = _local(o.value, ns)
            if parent:
                parents[name].append(parent)
        elif p == _LABEL and isinstance(o, ox.Literal):
            labels.setdefault(name, o.value)
        elif p == _DEFINITION and isinstance(o, ox.Literal):
            if o.language in (None, "en") and (name not in definitions or o.language == "en"):
                definitions[name] = o.value
        elif p == ns + "hasAssociatedTag" and isinstance(o, ox.NamedNode):
            tag = _local(o.value, tag_ns)
            if tag:
                tags[name].append(tag)
        elif p == ns + "hasQuantity" and isinstance(o, ox.NamedNode):
            quantity[name] = o.value
        elif p == ns + "hasSubstance" and isinstance(o, ox.NamedNode):
            sub = _local(o.value, ns)
            if sub:
                substances[name].append(sub)
        elif p == _DEPRECATED and isinstance(o, ox.Literal) and o.value == "true":
            deprecated.add(name)
        elif p == ns + "isReplacedBy" and isinstance(o, ox.NamedNode):
            rep = _local(o.value, ns)
            if rep:
                replaced[name] = rep
        elif p == ns + "aliasOf" and isinstance(o, ox.NamedNode):
            target = _local(o.value, ns)
            if target:
                alias[name] = target
    classes = {}
    for name in sorted(is_class):
        classes[name] = BrickClass(
            name=name,
            label=labels.get(name, name.replace("_", " ")),
            definition=definitions.get(name, ""),
            parents=tuple(sorted(set(parents.get(name, ())))),
            tags=tuple(sorted(set(tags.get(name, ())))),
            quantity=quantity.get(name),
            substances=tuple(sorted(set(substances.get(name, ())))),
            deprecated=name in deprecated,
            replaced_by=replaced.get(name),
            alias_of=alias.get(name),
        )
    if "Point" not in classes or "Zone_Air_Temperature_Sensor" not in classes:
        raise OntologyError(f"{path} does not look like Brick {_paths.BRICK_VERSION}")
    return classes, quantities


def _read_hierarchy(path: Path, namespace: str) -> dict[str, tuple[str, ...]]:
    """Direct superclasses of the classes of ``namespace`` declared in ``path``."""
    parents: dict[str, list[str]] = defaultdict(list)
    for t in _triples(path):
        s, p, o = t.subject, t.predicate.value, t.object
        if (
            p == _SUBCLASS
            and isinstance(s, ox.NamedNode)
            and isinstance(o, ox.NamedNode)
            and s.value.startswith(namespace)
        ):
            parents[s.value].append(o.value)
    return {k: tuple(v) for k, v in parents.items()}


def _read_s223_hierarchy(path: Path) -> dict[str, tuple[str, ...]]:
    parents = _read_hierarchy(path, str(S223))
    if str(S223) + "QuantifiableObservableProperty" not in parents:
        raise OntologyError(f"{path} does not look like the ASHRAE 223P ontology")
    return parents


def qk_local(iri: str) -> str:
    """Short name of a quantity kind IRI (``Temperature``), for messages."""
    for ns in (str(QK), str(BRICK)):
        if iri.startswith(ns):
            return iri[len(ns) :]
    return iri
