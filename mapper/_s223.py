"""ASHRAE 223P topology from what a point list reveals, and the Brick locations beside it.

Only what the names say is built (the 223P user guide's "describe what is there"):

- an equipment node for every equipment identifier the names carry (``AHU-1``, ``VAV-2-03``,
  ``P-1``), typed with its Brick class *and* the most specific 223P class whose own rules the
  list lets the model meet: a VAV box is a ``SingleDuctTerminal`` only when its points show a
  damper (223P requires the terminal to contain one), else a ``TerminalUnit``; a class whose
  rules ask for what the list does not show stays plain ``s223:Equipment``;
- its connection points, with the medium its class calls for (air for an air handler, a
  fan, a damper, a terminal; water for a pump, a chiller, a boiler);
- connections only where the names say one thing serves another: ``AHU-1.VAV-1-01`` is a
  duct from the air handler's outlet to the box's inlet; a fan, damper or valve named under
  an air handler is a part it contains, not something it feeds;
- every point as a property of its equipment (``s223:hasProperty``), a sensor that
  ``observes`` each reading at the connection point its stream says (supply at the outlet,
  return or outside air at the inlet), and the equipment ``actuatedByProperty`` its commands
  and setpoints;
- rooms and floors named in the points as ``s223:PhysicalSpace`` and Brick/REC locations
  (``rec:Level`` contains ``rec:Room``), and, where a terminal unit's points name a room, the
  HVAC zone it serves (``s223:Zone`` + ``DomainSpace`` enclosed by the room).

Every node made here says why (``osed:inference``) and from which point names
(``osed:inferredFrom``), so a reviewer and a 223P user can tell what the list showed from what
was concluded.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from rdflib import RDF, RDFS, Graph, Literal, Namespace, URIRef

from mapper._records import EquipmentRef, LabeledPoint, LocationRef
from ontology import BRICK, OSED, QUDT, S223, Ontology

REC = Namespace("https://w3id.org/rec#")

#: Brick equipment class -> 223P class, when the class's 223P rules can be met from a list.
_S223_CLASS = {
    "AHU": "AirHandlingUnit",
    "Rooftop_Unit": "AirHandlingUnit",
    "Makeup_Air_Unit": "AirHandlingUnit",
    "Dedicated_Outdoor_Air_System_Unit": "AirHandlingUnit",
    "Computer_Room_Air_Handler": "AirHandlingUnit",
    "VAV": "TerminalUnit",
    "Terminal_Unit": "TerminalUnit",
    "Fan_Coil_Unit": "TerminalUnit",
    "Fan": "Fan",
    "Supply_Fan": "Fan",
    "Return_Fan": "Fan",
    "Exhaust_Fan": "Fan",
    "Pump": "Pump",
    "Chilled_Water_Pump": "Pump",
    "Hot_Water_Pump": "Pump",
    "Condenser_Water_Pump": "Pump",
    "Chiller": "Chiller",
    "Boiler": "Boiler",
    "Cooling_Tower": "CoolingTower",
    "Packaged_Heat_Pump": "HeatPump",
    "Heat_Pump": "HeatPump",
    "Battery": "Battery",
    "Inverter": "ElectricEnergyInverter",
    "PV_Panel": "PhotovoltaicModule",
    "Humidifier": "Humidifier",
    "Damper": "Damper",
    "Valve": "Valve",
    "Thermostat": "Thermostat",
    "VFD": "VariableFrequencyDrive",
    "Radiator": "Radiator",
}
#: Connection points where the mapper knows more than 223P's shapes ask (a battery's DC
#: outlet, where the shapes say only "electricity") or meets a requirement the shapes
#: cannot be met with from names in general (the damper a single-duct terminal contains is
#: made here). Every other class gets what its shapes require (``ClassIndex.s223_ports``).
_PORTS: dict[str, tuple[tuple[str, str], ...]] = {
    "SingleDuctTerminal": (("in", "Fluid-Air"), ("out", "Fluid-Air")),
    "ElectricEnergyInverter": (("in", "Electricity-DC"), ("out", "Electricity-AC")),
    "PhotovoltaicModule": (("in", "EM-Light"), ("out", "Electricity-DC")),
    "VariableFrequencyDrive": (("in", "Electricity-AC"), ("out", "Electricity-AC")),
    "Battery": (("out", "Electricity-DC"),),
    "Radiator": (("bi", "Fluid-Air"),),
}
#: Roles a 223P class always has (223P: "Radiators shall have the role Role-Heating").
_ROLES = {"Radiator": "Role-Heating"}
#: Equipment that sits inside an air handler or a terminal (contained), not fed by it.
_COMPONENTS = frozenset({"Fan", "Damper", "Valve", "Humidifier", "VariableFrequencyDrive", "Pump"})
#: Terminal units (an air handler feeds them through a duct; one naming a room serves its zone).
_SERVED_BY_AIR = frozenset({"TerminalUnit", "SingleDuctTerminal"})
#: The connection that carries a fluid from one equipment to the next.
_CONNECTION = {
    str(S223["Fluid-Air"]): (S223.Duct, "duct"),
    str(S223["Fluid-Water"]): (S223.Pipe, "pipe"),
}
#: Brick location class -> the current (REC) class Brick 1.5 replaced it with.
_LOCATION = {
    "Building": REC.Building,
    "Floor": REC.Level,
    "Storey": REC.Level,
    "Room": REC.Room,
    "Space": REC.Space,
    "HVAC_Zone": REC.HVACZone,
    "Zone": REC.Zone,
}
_INLET_STREAMS = re.compile(r"^(Return|Outside|Entering|Mixed|Exhaust)_")
_OUTLET_STREAMS = re.compile(r"^(Supply|Discharge|Leaving)_")


@dataclass
class TopologySummary:
    """What the topology added to a model (counted by the standards check)."""

    equipment: int = 0
    connection_points: int = 0
    connections: int = 0
    properties: int = 0
    sensors: int = 0
    spaces: int = 0
    zones: int = 0


@dataclass
class _Equipment:
    ref: EquipmentRef
    iri: URIRef
    points: list[tuple[URIRef, LabeledPoint]] = field(default_factory=list)
    s223_class: str = "Equipment"
    ports: dict[str, URIRef] = field(default_factory=dict)
    #: The damper a single-duct terminal contains, the zone it serves (when named).
    damper: URIRef | None = None
    zone: URIRef | None = None
    zone_space: URIRef | None = None


def s223_equipment_class(brick_class: str) -> str | None:
    """The 223P class the mapper gives equipment of this Brick class, if it knows one."""
    return _S223_CLASS.get(brick_class)


def location_class(brick_class: str) -> URIRef:
    """The class a location is typed with: the current REC one Brick 1.5 points to."""
    return _LOCATION.get(brick_class, REC.Space)


def add_topology(
    g: Graph,
    ontology: Ontology,
    site: URIRef,
    points: Sequence[tuple[URIRef, LabeledPoint]],
    equipment_iri: dict[str, URIRef],
    location_iri: dict[str, URIRef],
) -> TopologySummary:
    """Add 223P equipment, connection points, connections, properties, sensors and spaces
    (and Brick's matching relations) for the points of one building, already in ``g``."""
    summary = TopologySummary()
    g.bind("rec", REC)
    found: dict[URIRef, _Equipment] = {}

    def collect(ref: EquipmentRef) -> _Equipment:
        iri = equipment_iri[ref.key()]
        if iri not in found:
            found[iri] = _Equipment(ref, iri)
            if ref.parent is not None:
                collect(ref.parent)
        return found[iri]

    for iri, labeled in points:
        if labeled.suggestion.equipment is not None:
            collect(labeled.suggestion.equipment).points.append((iri, labeled))
    index = ontology.index
    for eq in found.values():
        eq.s223_class = s223_equipment_class(eq.ref.brick_class) or "Equipment"
        if eq.s223_class == "Equipment" and eq.ref.s223_class in index.s223_ports:
            eq.s223_class = eq.ref.s223_class
        if eq.s223_class == "TerminalUnit" and any(_about(p, "Damper") for _, p in eq.points):
            eq.s223_class = "SingleDuctTerminal"
    for eq in found.values():
        names = [p.raw.name for _, p in eq.points]
        g.add((eq.iri, RDF.type, S223[eq.s223_class]))
        why = "equipment identifier in point names"
        if eq.s223_class == eq.ref.s223_class and eq.ref.s223_similarity is not None:
            why += (
                f"; 223P class {eq.s223_class} found by retrieval over 223P for Brick "
                f"{eq.ref.brick_class} (similarity {eq.ref.s223_similarity:.2f})"
            )
        _inferred(g, eq.iri, why, names or _child_names(eq, found))
        summary.equipment += 1
        ports = _PORTS.get(eq.s223_class) or index.s223_ports.get(eq.s223_class, ())
        for n, (direction, medium) in enumerate(ports):
            name = direction if sum(1 for d, _ in ports if d == direction) == 1 else f"{direction}-{n}"
            eq.ports.setdefault(direction, _port(g, eq.iri, name, medium))
            summary.connection_points += 1
        if eq.s223_class in _ROLES:
            g.add((eq.iri, S223.hasRole, S223[_ROLES[eq.s223_class]]))
        if eq.s223_class == "SingleDuctTerminal":
            # 223P: a single-duct terminal contains its damper; its points show one.
            damper = URIRef(f"{eq.iri}/damper")
            g.add((damper, RDF.type, S223.Damper))
            g.add((damper, RDF.type, BRICK.Damper))
            g.add((damper, RDFS.label, Literal(f"{eq.ref.name} damper")))
            shown = [p.raw.name for _, p in eq.points if _about(p, "Damper")]
            _inferred(g, damper, "damper points of the terminal", shown)
            for direction in ("in", "out"):
                port = _port(g, damper, direction, "Fluid-Air")
                g.add((port, S223.mapsTo, eq.ports[direction]))
                summary.connection_points += 1
            g.add((eq.iri, S223.contains, damper))
            eq.damper = damper
            g.add((eq.iri, BRICK.hasPart, damper))
            g.add((damper, BRICK.isPartOf, eq.iri))
            summary.equipment += 1
    # What serves what, from the nesting of identifiers in the names.
    served: dict[tuple[URIRef, str], list[_Equipment]] = defaultdict(list)
    for eq in found.values():
        parent_ref = eq.ref.parent
        if parent_ref is None:
            continue
        parent = found[equipment_iri[parent_ref.key()]]
        if eq.s223_class in _COMPONENTS and parent.s223_class in (
            "AirHandlingUnit",
            "TerminalUnit",
            "SingleDuctTerminal",
            "Equipment",
        ):
            g.add((parent.iri, S223.contains, eq.iri))
            g.add((parent.iri, BRICK.hasPart, eq.iri))
            g.add((eq.iri, BRICK.isPartOf, parent.iri))
            continue
        g.add((parent.iri, BRICK.feeds, eq.iri))
        g.add((eq.iri, BRICK.isFedBy, parent.iri))
        # A duct or pipe from the parent's outlet to the child's inlet, when both carry
        # the same fluid (AHU-1.VAV-1-01: air; CH-1.CHWP-1: water).
        out, inlet = parent.ports.get("out"), eq.ports.get("in")
        if out is not None and inlet is not None:
            fluid = g.value(out, S223.hasMedium)
            if fluid is not None and fluid == g.value(inlet, S223.hasMedium) and str(fluid) in _CONNECTION:
                served[(parent.iri, str(fluid))].append(eq)
    for (parent_iri, carried), children in served.items():
        parent = found[parent_iri]
        link_class, word = _CONNECTION[carried]
        link = URIRef(f"{parent_iri}/supply-{word}")
        g.add((link, RDF.type, link_class))
        g.add((link, RDFS.label, Literal(f"{parent.ref.name} supply {word}")))
        g.add((link, S223.hasMedium, URIRef(carried)))
        why = (
            "terminal units named under the air handler"
            if parent.s223_class == "AirHandlingUnit"
            and all(c.s223_class in _SERVED_BY_AIR for c in children)
            else f"equipment named under {parent.ref.name}, fed by it"
        )
        _inferred(g, link, why, sorted(c.ref.name for c in children))
        for port in (parent.ports["out"], *(c.ports["in"] for c in children)):
            g.add((link, S223.cnx, port))
            g.add((port, S223.cnx, link))
            g.add((link, S223.connectsAt, port))
        g.add((link, S223.connectsFrom, parent_iri))
        for child in children:
            g.add((link, S223.connectsTo, child.iri))
        summary.connections += 1
    # Spaces the names carry.
    rooms_of: dict[URIRef, set[URIRef]] = defaultdict(set)
    for iri, labeled in points:
        for loc in labeled.suggestion.locations:
            node = location_iri[loc.key()]
            if labeled.suggestion.equipment is None:
                # Brick: a point is a point *of* a location; only equipment has a location.
                g.add((iri, BRICK.isPointOf, node))
                g.add((node, BRICK.hasPoint, iri))
                continue
            eq = found[equipment_iri[labeled.suggestion.equipment.key()]]
            g.add((eq.iri, BRICK.hasLocation, node))
            g.add((node, BRICK.isLocationOf, eq.iri))
            # In a room of the building: the room is where it is (the room is part of the
            # building).
            g.remove((eq.iri, BRICK.hasLocation, site))
            g.remove((site, BRICK.isLocationOf, eq.iri))
            if loc.brick_class in ("Room", "Space"):
                rooms_of[eq.iri].add(node)
    summary.spaces = sum(1 for _ in g.subjects(RDF.type, S223.PhysicalSpace))
    # A terminal unit whose points name the room it serves: the HVAC zone of that room.
    for eq_iri, rooms in rooms_of.items():
        eq = found[eq_iri]
        if eq.s223_class not in _SERVED_BY_AIR or len(rooms) != 1:
            continue
        (room,) = rooms
        zone, domain = URIRef(f"{eq_iri}/zone"), URIRef(f"{room}/hvac")
        g.add((domain, RDF.type, S223.DomainSpace))
        g.add((domain, S223.hasDomain, S223["Domain-HVAC"]))
        g.add((room, S223.encloses, domain))
        inlet = _port(g, domain, "in", "Fluid-Air")
        duct = URIRef(f"{eq_iri}/discharge-duct")
        g.add((duct, RDF.type, S223.Duct))
        g.add((duct, S223.hasMedium, S223["Fluid-Air"]))
        for port in (eq.ports["out"], inlet):
            g.add((duct, S223.cnx, port))
            g.add((port, S223.cnx, duct))
            g.add((duct, S223.connectsAt, port))
        g.add((duct, S223.connectsFrom, eq_iri))
        g.add((duct, S223.connectsTo, domain))
        g.add((zone, RDF.type, S223.Zone))
        g.add((zone, RDF.type, REC.HVACZone))
        g.add((zone, RDFS.label, Literal(f"zone of {eq.ref.name}")))
        g.add((zone, S223.hasDomain, S223["Domain-HVAC"]))
        g.add((zone, S223.hasDomainSpace, domain))
        eq.zone, eq.zone_space = zone, domain
        g.add((eq_iri, BRICK.feeds, zone))
        g.add((zone, BRICK.isFedBy, eq_iri))
        g.add((zone, BRICK.hasPart, room))
        g.add((room, BRICK.isPartOf, zone))
        names = [p.raw.name for _, p in eq.points]
        for node in (zone, domain, duct):
            _inferred(g, node, "a room named in the terminal unit's points", names)
        summary.zones += 1
        summary.connections += 1
        summary.connection_points += 1
    # Properties: every point is a property of what it is about: its equipment (a
    # terminal's damper points of the damper it contains, its zone points of the zone it
    # serves, when the list shows them), or the room it names. Readings are observed by a
    # sensor where their stream says; commands and setpoints actuate what they belong to.
    owners: list[tuple[URIRef, LabeledPoint, URIRef, URIRef | None]] = []
    for eq in found.values():
        for iri, labeled in eq.points:
            stream = labeled.brick_class or ""
            owner: URIRef = eq.iri
            seen_at: URIRef | None = _where(eq, stream)
            if eq.damper is not None and _about(labeled, "Damper"):
                owner = seen_at = eq.damper
            elif eq.zone is not None and stream.startswith("Zone_"):
                # Observed in the zone's domain space (a sensor is located at something
                # connectable: 223P's rule; a room is not).
                owner, seen_at = eq.zone, eq.zone_space or eq.zone
            owners.append((iri, labeled, owner, seen_at))
    for iri, labeled in points:
        if labeled.suggestion.equipment is None and labeled.suggestion.locations:
            # A room's own reading: a property of the room; where its sensor is, the list
            # does not say (223P locates a sensor at equipment, a connection or a domain
            # space, never at a room), so no sensor is made up.
            space = location_iri[labeled.suggestion.locations[-1].key()]
            owners.append((iri, labeled, space, None))
    actuatable = (S223.ActuatableProperty, S223.QuantifiableActuatableProperty)
    for iri, labeled, owner, seen_at in owners:
        g.add((owner, S223.hasProperty, iri))
        summary.properties += 1
        kind = index.point_kind(labeled.brick_class) if labeled.brick_class else None
        # A difference (a filter's pressure drop) is observed between two places; 223P asks
        # for both (hasReferenceLocation), and a list names neither, so no sensor is made up.
        difference = (iri, QUDT.isDeltaQuantity, Literal(True)) in g
        if kind == "Sensor" and seen_at is not None and not difference:
            sensor = URIRef(f"{iri}/sensor")
            g.add((sensor, RDF.type, S223.Sensor))
            g.add((sensor, RDFS.label, Literal(f"sensor of {labeled.raw.name}")))
            g.add((sensor, S223.observes, iri))
            g.add((sensor, S223.hasObservationLocation, seen_at))
            _inferred(g, sensor, "a reading in the point list", [labeled.raw.name])
            summary.sensors += 1
        elif any((iri, RDF.type, c) in g for c in actuatable) and not any(
            (owner, RDF.type, c) in g for c in (S223.PhysicalSpace, S223.Zone)
        ):
            g.add((owner, S223.actuatedByProperty, iri))
    return summary


def _about(labeled: LabeledPoint, word: str) -> bool:
    cls = labeled.brick_class or ""
    return word in cls.split("_")


def _child_names(eq: _Equipment, found: dict[URIRef, _Equipment]) -> list[str]:
    """Names that reveal an equipment seen only as the parent of another (AHU-1 in
    AHU-1.VAV-1-01.ZN-T)."""
    return [
        p.raw.name
        for other in found.values()
        if other.ref.parent is not None and other.ref.parent.key() == eq.ref.key()
        for _, p in other.points[:3]
    ]


def _port(g: Graph, owner: URIRef, name: str, medium: str) -> URIRef:
    """A connection point of ``owner``; ``name`` is its direction (``in``, ``out``, ``bi``),
    numbered when a class has several of one direction (``bi-0``)."""
    port = URIRef(f"{owner}/{name}")
    kind = {
        "in": S223.InletConnectionPoint,
        "out": S223.OutletConnectionPoint,
        "bi": S223.BidirectionalConnectionPoint,
    }[name.split("-")[0]]
    g.add((port, RDF.type, kind))
    g.add((port, S223.hasMedium, S223[medium]))
    g.add((owner, S223.hasConnectionPoint, port))
    g.add((port, S223.isConnectionPointOf, owner))
    return port


def _where(eq: _Equipment, brick_class: str) -> URIRef:
    """Where a reading is observed: the outlet for a supply or leaving stream, the inlet
    for a return, outside, entering or mixed one, else the equipment itself."""
    if _OUTLET_STREAMS.match(brick_class) and "out" in eq.ports:
        return eq.ports["out"]
    if _INLET_STREAMS.match(brick_class) and "in" in eq.ports:
        return eq.ports["in"]
    return eq.iri


def _inferred(g: Graph, node: URIRef, why: str, names: Sequence[str]) -> None:
    g.add((node, OSED.inference, Literal(why)))
    shown = list(dict.fromkeys(n for n in names if n))
    if shown:
        more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
        g.add((node, OSED.inferredFrom, Literal(", ".join(shown[:5]) + more)))


def add_location(
    g: Graph, site: URIRef, iri: URIRef, loc: LocationRef, parent: URIRef | None, names: Sequence[str]
) -> None:
    """A room or floor named in the points: a REC location and a 223P physical space, part
    of its floor (or of the building)."""
    if (iri, RDF.type, S223.PhysicalSpace) in g:
        return
    g.add((iri, RDF.type, location_class(loc.brick_class)))
    g.add((iri, RDF.type, S223.PhysicalSpace))
    g.add((iri, RDFS.label, Literal(loc.name)))
    container = parent if parent is not None else site
    g.add((container, BRICK.hasPart, iri))
    g.add((iri, BRICK.isPartOf, container))
    if parent is not None:
        g.add((parent, S223.contains, iri))
    _inferred(g, iri, f"{loc.brick_class.lower()} identifier in point names", names)
