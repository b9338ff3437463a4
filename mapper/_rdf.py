"""Turning labeled points into a Brick + 223P building model (graph conventions: docs/graph.md)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

from rdflib import RDF, RDFS, XSD, Graph, Literal, URIRef

from core.errors import InvalidBuildingId
from mapper._records import (
    Address,
    BACnetAddress,
    EdgeXAddress,
    EquipmentRef,
    HomeAssistantAddress,
    LabeledPoint,
    LocationRef,
    ModbusAddress,
    MQTTAddress,
    RawPoint,
)
from mapper._s223 import REC, add_location, add_topology
from ontology import BACNET, BRICK, ONTOLOGY_GRAPH_NAME, OSED, QUDT, REF, S223, Ontology, qk_local

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_REFERENCE_CLASS = {
    "bacnet": (OSED.BACnetReference, S223.BACnetExternalReference),
    "edgex": (OSED.EdgeXReference,),
    "homeassistant": (OSED.HomeAssistantReference,),
    "modbus": (OSED.ModbusReference,),
    "mqtt": (OSED.MQTTReference,),
}


#: A building id, matched in full. Every character it allows is unreserved in IRIs, so the
#: id is written into its graph IRI as it is: two ids never share a graph, and the id reads
#: back from the IRI (``building_id``). No '/': the graph's own sub-IRIs (``/point/…``,
#: ``/provenance``, ``/index``) never look like another building.
BUILDING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BUILDING_ID_RULE = (
    "a building id is 1 to 64 characters, each a letter A-Z or a-z, a digit, '.', '_' or '-', "
    "the first a letter or digit"
)
#: Graphs the platform names beside the buildings' own (``{base}topology``, ``{base}ontology``).
RESERVED_BUILDING_IDS = {"topology": "the grid topology graph", ONTOLOGY_GRAPH_NAME: "the ontology graph"}


def slug(text: str, limit: int = 48) -> str:
    """A readable IRI segment for a name (lossy: used only beside a hash or inside a building)."""
    return _SLUG.sub("_", text).strip("_")[:limit] or "x"


def check_building_id(building: str) -> str:
    """``building`` if it is a valid building id, else :class:`InvalidBuildingId` in one line."""
    if not isinstance(building, str) or BUILDING_ID.fullmatch(building) is None:
        shown = repr(building[:80]) if isinstance(building, str) else type(building).__name__
        raise InvalidBuildingId(f"invalid building id {shown}: {BUILDING_ID_RULE}")
    if building in RESERVED_BUILDING_IDS:
        raise InvalidBuildingId(f"building id '{building}' is reserved for {RESERVED_BUILDING_IDS[building]}")
    return building


def building_iri(base: str, building: str) -> URIRef:
    """The building's graph IRI: ``base`` followed by the id itself (one-to-one)."""
    return URIRef(f"{base}{check_building_id(building)}")


def building_id(base: str, iri: str) -> str | None:
    """The id of the building whose graph IRI this is, or None if it is no building's."""
    if not iri.startswith(base):
        return None
    candidate = iri[len(base) :]
    if BUILDING_ID.fullmatch(candidate) is None or candidate in RESERVED_BUILDING_IDS:
        return None
    return candidate


def point_iri(base: str, building: str, identity: str, name: str) -> URIRef:
    digest = hashlib.sha1(identity.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return URIRef(f"{building_iri(base, building)}/point/{slug(name)}_{digest}")


def equipment_iri(base: str, building: str, equipment: EquipmentRef) -> URIRef:
    return URIRef(f"{building_iri(base, building)}/equip/{slug(equipment.key())}")


def point_identities(points: Sequence[RawPoint]) -> list[str]:
    """Stable identities: the address or name, numbered where a name without address repeats."""
    seen: Counter[str] = Counter()
    out = []
    for p in points:
        ident = p.source_identity()
        seen[ident] += 1
        out.append(ident if seen[ident] == 1 else f"{ident}#{seen[ident]}")
    return out


def property_class(ontology: Ontology, brick_class: str | None, has_quantity: bool) -> URIRef:
    """The 223P property class that describes a point of this Brick class."""
    kind = ontology.index.point_kind(brick_class) if brick_class else None
    if kind == "Sensor":
        return S223.QuantifiableObservableProperty if has_quantity else S223.ObservableProperty
    if kind in ("Setpoint", "Command", "Parameter"):
        return S223.QuantifiableActuatableProperty if has_quantity else S223.ActuatableProperty
    if kind in ("Status", "Alarm"):
        return S223.ObservableProperty
    return S223.QuantifiableProperty if has_quantity else S223.Property


_QUANTIFIABLE = frozenset(
    {S223.QuantifiableProperty, S223.QuantifiableObservableProperty, S223.QuantifiableActuatableProperty}
)


def build_model(
    building: str,
    points: Sequence[LabeledPoint],
    ontology: Ontology,
    *,
    base: str = "urn:osed:",
    building_label: str | None = None,
) -> Graph:
    """The RDF of one building: its points, equipment, 223P properties and adapter references."""
    g = Graph()
    for prefix, ns in (("brick", BRICK), ("s223", S223), ("osed", OSED), ("qudt", QUDT)):
        g.bind(prefix, ns)
    g.bind("ref", REF)
    g.bind("bacnet", BACNET)
    site = building_iri(base, building)
    g.add((site, RDF.type, REC.Building))  # brick:Building is deprecated in Brick 1.5
    g.add((site, RDF.type, OSED.Building))
    g.add((site, RDFS.label, Literal(building_label or building)))
    g.add((site, OSED.buildingId, Literal(building)))
    placed: list[tuple[URIRef, LabeledPoint]] = []
    equipment_nodes: dict[str, URIRef] = {}
    location_nodes: dict[str, URIRef] = {}
    for labeled, identity in zip(points, point_identities([p.raw for p in points]), strict=True):
        iri = point_iri(base, building, identity, labeled.raw.name)
        _add_point(g, ontology, iri, labeled, identity)
        placed.append((iri, labeled))
        equipment = labeled.suggestion.equipment
        if equipment is not None:
            # Abstained points belong to their equipment too: the name says so.
            node = _add_equipment(g, base, building, site, equipment, equipment_nodes, labeled.raw.name)
            g.add((iri, BRICK.isPointOf, node))
            g.add((node, BRICK.hasPoint, iri))
        for loc in labeled.suggestion.locations:
            _add_location(g, base, building, site, loc, location_nodes, labeled.raw.name)
    add_topology(g, ontology, site, placed, equipment_nodes, location_nodes)
    # The QUDT units and quantity kinds, and the osed: classes, the model uses: so that
    # 223P's and Brick's own shapes can check the exported Turtle alone.
    g += ontology.declarations.for_model(g)
    return g


def _add_location(
    g: Graph,
    base: str,
    building: str,
    site: URIRef,
    loc: LocationRef,
    nodes: dict[str, URIRef],
    name: str,
) -> URIRef:
    node = nodes.get(loc.key())
    if node is None:
        parent = _add_location(g, base, building, site, loc.parent, nodes, name) if loc.parent else None
        node = nodes[loc.key()] = URIRef(f"{building_iri(base, building)}/space/{slug(loc.key())}")
        add_location(g, site, node, loc, parent, [name])
    return node


def _add_point(g: Graph, ontology: Ontology, iri: URIRef, labeled: LabeledPoint, identity: str) -> None:
    raw, suggestion = labeled.raw, labeled.suggestion
    cls = labeled.brick_class
    if cls is not None:
        cls = ontology.index.canonical(cls)
    g.add((iri, RDF.type, BRICK[cls] if cls else BRICK.Point))
    unit = ontology.units.lookup(raw.unit)
    quantity = ontology.units.property_quantity(ontology.index.quantity_kind(cls) if cls else None, unit)
    kind = property_class(ontology, cls, quantity is not None)
    g.add((iri, RDF.type, kind))
    if unit:
        g.add((iri, BRICK.hasUnit, URIRef(unit.iri)))
    meant = ontology.units.property_quantity(ontology.index.quantity_kind(cls) if cls else None, None)
    if unit and quantity and meant and quantity.kind != meant.kind:
        # The unit wins for 223P (a property's unit and quantity kind must agree), but a unit
        # that cannot measure what the class measures is a finding the reviewer must see.
        what = f"unit {unit.symbol or unit.iri} does not measure {qk_local(meant.kind)}"
        g.add((iri, OSED.unitConflict, Literal(f"{what}, the quantity of {cls}")))
    if quantity and kind in _QUANTIFIABLE:
        # 223P: a QuantifiableProperty states exactly one QUDT quantity kind and at most one
        # unit, whose dimensions agree; no unit is invented where the source gives none.
        g.add((iri, QUDT.hasQuantityKind, URIRef(quantity.kind)))
        if quantity.delta:
            g.add((iri, QUDT.isDeltaQuantity, Literal(True)))
        if unit:
            g.add((iri, QUDT.hasUnit, URIRef(unit.iri)))
    g.add((iri, RDFS.label, Literal(raw.name)))
    g.add((iri, OSED.rawName, Literal(raw.name)))
    g.add((iri, OSED.sourceIdentity, Literal(identity)))
    for pred, value in (
        (OSED.rawDescription, raw.description),
        (OSED.rawUnit, raw.unit),
        (OSED.rawObjectType, raw.object_type),
        (OSED.rawReference, raw.reference),
        (OSED.rawPresentValue, raw.present_value),
        (OSED.valueKind, raw.value_kind),
        (OSED.rawStatus, raw.status),
        (OSED.rawEquipment, raw.equipment),
    ):
        if value:
            g.add((iri, pred, Literal(value)))
    for n, (column, cell) in enumerate(raw.extra, start=1):
        # Source columns no field was read from: kept on the point, in the file's order.
        node = URIRef(f"{iri}/column/{n}")
        g.add((iri, OSED.sourceField, node))
        g.add((node, RDF.type, OSED.SourceField))
        g.add((node, OSED.column, Literal(column)))
        g.add((node, RDF.value, Literal(cell)))
        g.add((node, OSED.position, Literal(n)))
    for tag in raw.tags:
        g.add((iri, OSED.sourceTag, Literal(tag)))
    if raw.source is not None:
        g.add((iri, OSED.sourceFile, Literal(raw.source.source)))
        if raw.source.row is not None:
            g.add((iri, OSED.sourceRow, Literal(raw.source.row)))
        if raw.source.sha256:
            g.add((iri, OSED.sourceSha256, Literal(raw.source.sha256)))
    g.add((iri, OSED.reviewStatus, Literal(labeled.status)))
    g.add((iri, OSED.confidence, Literal(_decimal(suggestion.confidence), datatype=XSD.decimal)))
    if suggestion.brick_class:
        g.add((iri, OSED.suggestedClass, BRICK[suggestion.brick_class]))
    for alt in suggestion.alternatives:
        g.add((iri, OSED.alternativeClass, BRICK[alt]))
    if suggestion.alternatives:
        # A set of triples has no order: the runner-up first, as the agent ranked them.
        g.add((iri, OSED.alternativeOrder, Literal(" ".join(suggestion.alternatives))))
    if suggestion.reason:
        g.add((iri, OSED.suggestionReason, Literal(suggestion.reason)))
    g.add((iri, OSED.suggestionSource, Literal(suggestion.source)))
    if labeled.decided_class:
        g.add((iri, OSED.decidedClass, BRICK[labeled.decided_class]))
    if labeled.missing_from_source:
        g.add((iri, OSED.missingFromSource, Literal(True)))
    if raw.writable is not None:
        g.add((iri, OSED.writable, Literal(raw.writable)))
    if raw.address is not None:
        ref = URIRef(f"{iri}/ref")
        g.add((iri, REF.hasExternalReference, ref))
        g.add((iri, S223.hasExternalReference, ref))
        _add_reference(g, ref, raw.address, labeled)


def _add_reference(g: Graph, ref: URIRef, address: Address, labeled: LabeledPoint) -> None:
    raw = labeled.raw
    for cls in _REFERENCE_CLASS[address.adapter]:
        g.add((ref, RDF.type, cls))
    g.add((ref, OSED.adapter, Literal(address.adapter)))
    g.add((ref, OSED.writable, Literal(bool(raw.writable))))
    g.add((ref, RDFS.label, Literal(f"{address.adapter} reference of {raw.name}")))
    if raw.minimum is not None:
        g.add((ref, OSED.minValue, Literal(_decimal(raw.minimum), datatype=XSD.decimal)))
    if raw.maximum is not None:
        g.add((ref, OSED.maxValue, Literal(_decimal(raw.maximum), datatype=XSD.decimal)))
    if isinstance(address, BACnetAddress):
        g.add(
            (
                ref,
                BACNET["object-identifier"],
                Literal(f"{address.object_type},{address.object_instance}"),
            )
        )
        g.add((ref, BACNET["device-identifier"], Literal(f"device,{address.device_instance}")))
        g.add((ref, BACNET["property-identifier"], Literal(address.property_identifier)))
        g.add((ref, BACNET["object-name"], Literal(raw.name)))
        if address.priority is not None:
            g.add(
                (
                    ref,
                    BACNET["priority-for-writing"],
                    Literal(address.priority, datatype=XSD.nonNegativeInteger),
                )
            )
        if address.device_address:
            g.add((ref, OSED.bacnetDeviceAddress, Literal(address.device_address)))
    elif isinstance(address, EdgeXAddress):
        g.add((ref, OSED.edgexDevice, Literal(address.device)))
        g.add((ref, OSED.edgexResource, Literal(address.resource)))
    elif isinstance(address, HomeAssistantAddress):
        g.add((ref, OSED.haEntityId, Literal(address.entity_id)))
        if address.attribute:
            g.add((ref, OSED.haAttribute, Literal(address.attribute)))
    elif isinstance(address, ModbusAddress):
        g.add((ref, OSED.modbusUnit, Literal(address.unit)))
        g.add((ref, OSED.modbusRegister, Literal(address.register)))
        g.add((ref, OSED.modbusRegisterType, Literal(address.register_type)))
        g.add((ref, OSED.modbusDataType, Literal(address.data_type)))
        g.add((ref, OSED.modbusScale, Literal(_decimal(address.scale), datatype=XSD.decimal)))
        g.add((ref, OSED.modbusWordOrder, Literal(address.word_order)))
        if address.host:
            g.add((ref, OSED.modbusHost, Literal(address.host)))
    elif isinstance(address, MQTTAddress):
        g.add((ref, OSED.mqttStateTopic, Literal(address.state_topic)))
        if address.command_topic:
            g.add((ref, OSED.mqttCommandTopic, Literal(address.command_topic)))


def _add_equipment(
    g: Graph,
    base: str,
    building: str,
    site: URIRef,
    equipment: EquipmentRef,
    nodes: dict[str, URIRef],
    name: str,
) -> URIRef:
    """The Brick node of a piece of equipment (and its parents); how it relates to its
    parent (part of it, or fed by it) is the topology's to say (mapper._s223)."""
    iri = nodes.get(equipment.key())
    if iri is None:
        iri = nodes[equipment.key()] = equipment_iri(base, building, equipment)
        g.add((iri, RDF.type, BRICK[equipment.brick_class]))
        g.add((iri, RDFS.label, Literal(equipment.name)))
        g.add((iri, BRICK.hasLocation, site))
        g.add((site, BRICK.isLocationOf, iri))
        if equipment.parent is not None:
            _add_equipment(g, base, building, site, equipment.parent, nodes, name)
    return iri


def _decimal(value: float) -> Decimal:
    return Decimal(str(round(float(value), 6)))
