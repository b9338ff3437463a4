"""Controllable assets and grid topology, found by query in the graph (never by name)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, Graph, Literal, URIRef
from rdflib.namespace import XSD

from core.errors import IngestError, InvalidBuildingId, OsedError
from graphstore import GraphStore
from mapper import REC, building_iri, check_building_id, decode_text
from ontology import BRICK, OSED, ClassIndex, sparql_prefixes


@dataclass(frozen=True)
class AssetKind:
    """What makes equipment a controllable asset of one kind."""

    name: str
    equipment: tuple[str, ...]  # Brick equipment classes (with their subclasses)
    controls: tuple[str, ...]  # point classes to act on, best first (with subclasses)
    rated_kw: float  # estimate when neither the graph nor a power point says
    duty: float  # share of rated power drawn on average when running normally


KINDS: dict[str, AssetKind] = {
    k.name: k
    for k in (
        AssetKind(
            "thermostat",
            ("Thermostat", "Terminal_Unit", "Heat_Pump", "Packaged_Air_Source_Heat_Pump"),
            (
                "Cooling_Zone_Air_Temperature_Setpoint",
                "Zone_Air_Temperature_Setpoint",
                "Temperature_Setpoint",
            ),
            3.5,
            0.5,
        ),
        AssetKind(
            "water_heater",
            ("Water_Heater", "Domestic_Hot_Water_System"),
            ("Temperature_Setpoint", "Enable_Command", "On_Off_Command"),
            4.5,
            0.25,
        ),
        AssetKind(
            "ev_charger",
            ("Electric_Vehicle_Charging_Station",),
            ("Current_Limit", "Setpoint", "Enable_Command", "Command"),
            7.2,
            0.8,
        ),
        AssetKind(
            "battery", ("Battery", "Energy_Storage"), ("Setpoint", "Enable_Command", "Command"), 5.0, 0.0
        ),
        AssetKind(
            "hvac",
            ("AHU", "Fan", "Pump", "Chiller", "Cooling_Tower", "Rooftop_Unit"),
            ("Speed_Setpoint", "Speed_Command", "Frequency_Command", "Start_Stop_Command", "Enable_Command"),
            10.0,
            0.6,
        ),
        AssetKind(
            "pv", ("PV_Panel", "PV_Array", "Inverter"), ("Setpoint", "Limit", "Command", "Alarm"), 10.0, 0.0
        ),
    )
}


@dataclass(frozen=True)
class Asset:
    building: str
    equipment: str  # IRI
    label: str
    kind: str
    point: str  # IRI of the writable point acted on
    point_name: str
    point_class: str
    power_point: str | None  # IRI of a power sensor of the same equipment, if any
    rated_kw: float
    minimum: float | None = None
    maximum: float | None = None
    transformer: str | None = None
    feeder: str | None = None

    @property
    def id(self) -> str:
        return self.equipment


def _descendants(index: ClassIndex, roots: tuple[str, ...]) -> dict[str, int]:
    """Class name -> rank of the first root it falls under."""
    out: dict[str, int] = {}
    for rank, root in enumerate(roots):
        for cls in index.brick:
            if cls not in out and (cls == root or index.is_subclass(cls, root)):
                out[cls] = rank
    return out


def asset_query(index: ClassIndex, kinds: tuple[str, ...], graphs: list[str] | None = None) -> str:
    """SPARQL selecting the writable points of equipment of the given asset kinds (Brick
    class hierarchy expanded), over every building graph or the given ones."""
    equipment = sorted({c for k in kinds for c in _descendants(index, KINDS[k].equipment)})
    values_graph = f"VALUES ?g {{ {' '.join(f'<{g}>' for g in graphs)} }}" if graphs else ""
    return (
        sparql_prefixes()
        + f"""SELECT ?g ?bid ?e ?elabel ?ecls ?p ?pname ?pcls ?min ?max ?rated WHERE {{
            {values_graph}
            GRAPH ?g {{
              ?b a osed:Building ; osed:buildingId ?bid .
              ?e a ?ecls ; rdfs:label ?elabel .
              VALUES ?ecls {{ {" ".join(f"brick:{c}" for c in equipment)} }}
              ?p brick:isPointOf ?e ; osed:rawName ?pname ; a ?pcls ; ref:hasExternalReference ?ref .
              ?ref osed:writable true .
              FILTER(STRSTARTS(STR(?pcls), STR(brick:)))
              OPTIONAL {{ ?ref osed:minValue ?min }} OPTIONAL {{ ?ref osed:maxValue ?max }}
              OPTIONAL {{ ?e osed:ratedPowerKW ?rated }}
            }} }}"""
    )


def find_assets(
    store: GraphStore,
    index: ClassIndex,
    *,
    base_iri: str = "urn:osed:",
    buildings: list[str] | None = None,
    kinds: tuple[str, ...] = tuple(KINDS),
    query: str | None = None,
) -> list[Asset]:
    """Every controllable asset of the given kinds in the stored buildings: for each piece of
    equipment, its best writable control point (by the kind's class preference) and a power
    sensor if it has one. ``query`` replaces the default binding query (same variables)."""
    topology = read_topology(store, base_iri)
    graphs = [str(building_iri(base_iri, b)) for b in buildings] if buildings is not None else None
    equipment_rank: dict[str, str] = {}
    for kind in kinds:
        for cls in _descendants(index, KINDS[kind].equipment):
            equipment_rank.setdefault(cls, kind)
    rows = store.query(query or asset_query(index, kinds, graphs), limit=10**7).rows
    values_graph = f"VALUES ?g {{ {' '.join(f'<{g}>' for g in graphs)} }}" if graphs else ""
    power = _power_points(store, index, values_graph)
    best: dict[tuple[str, str], tuple[int, str, Any]] = {}
    ranks = {k: _descendants(index, KINDS[k].controls) for k in kinds}
    for r in rows:
        ecls = _local(r["ecls"])
        found = equipment_rank.get(ecls)
        if found is None:
            continue
        rank = ranks[found].get(_local(r["pcls"]))
        if rank is None:
            continue
        key = (str(r["g"]), str(r["e"]))
        candidate = (rank, str(r["pname"]), r)
        if key not in best or candidate[:2] < best[key][:2]:
            best[key] = candidate
    assets = []
    for (_g, e), (_rank, _name, r) in sorted(best.items(), key=lambda kv: kv[0]):
        asset_kind = equipment_rank[_local(r["ecls"])]
        bid = str(r["bid"])
        where = topology.building_parents.get(bid, (None, None))
        assets.append(
            Asset(
                building=bid,
                equipment=e,
                label=str(r["elabel"]),
                kind=asset_kind,
                point=str(r["p"]),
                point_name=str(r["pname"]),
                point_class=_local(r["pcls"]),
                power_point=power.get(e),
                rated_kw=float(str(r["rated"])) if "rated" in r else KINDS[asset_kind].rated_kw,
                minimum=float(str(r["min"])) if "min" in r else None,
                maximum=float(str(r["max"])) if "max" in r else None,
                transformer=where[0],
                feeder=where[1],
            )
        )
    return assets


def _power_points(store: GraphStore, index: ClassIndex, values_graph: str) -> dict[str, str]:
    classes = " ".join(f"brick:{c}" for c in _descendants(index, ("Power_Sensor",)))
    rows = store.query(
        sparql_prefixes()
        + f"""SELECT ?e ?p WHERE {{ {values_graph} GRAPH ?g {{
            ?p brick:isPointOf ?e ; a ?cls . VALUES ?cls {{ {classes} }} }} }} ORDER BY ?e ?p""",
        limit=10**7,
    ).rows
    out: dict[str, str] = {}
    for r in rows:
        out.setdefault(str(r["e"]), str(r["p"]))
    return out


def _local(term: object) -> str:
    text = str(term)
    return text.rsplit("#", 1)[-1]


# -- topology -----------------------------------------------------------------------------------
def topology_iri(base_iri: str) -> str:
    return f"{base_iri}topology"


@dataclass
class Topology:
    """Feeders, transformers (rated kVA) and the buildings each transformer feeds."""

    feeders: dict[str, str] = field(default_factory=dict)  # id -> label
    transformers: dict[str, tuple[str, float, str | None]] = field(
        default_factory=dict
    )  # id -> label, kVA, feeder
    building_parents: dict[str, tuple[str | None, str | None]] = field(
        default_factory=dict
    )  # -> (xfmr, feeder)

    def buildings_under(self, node: str) -> list[str]:
        """Buildings fed by a transformer, or by every transformer of a feeder."""
        return sorted(b for b, (t, f) in self.building_parents.items() if node in (t, f))


def topology_graph(
    path: Path | None = None, *, data: bytes | None = None, base_iri: str = "urn:osed:"
) -> Graph:
    """The topology as RDF, from a CSV (``id,kind,label,parent,rated_kva``; kind feeder,
    transformer or building; parent = what feeds it) or a Turtle file."""
    name = str(path) if path else "topology"
    raw = data if data is not None else (path.read_bytes() if path else b"")
    if name.endswith((".ttl", ".turtle")):
        g = Graph()
        try:
            g.parse(data=raw.decode("utf-8"), format="turtle")
        except Exception as exc:  # noqa: BLE001 - rdflib raises many kinds
            raise IngestError(f"not valid Turtle: {exc}", source=name) from None
        return g
    text = decode_text(raw, name)
    reader = csv.DictReader(io.StringIO(text))
    need = {"id", "kind", "parent"}
    if not reader.fieldnames or not need <= {f.strip().lower() for f in reader.fieldnames}:
        raise IngestError("a topology CSV needs the columns id, kind, parent (and rated_kva)", source=name)
    g = Graph()
    g.bind("brick", BRICK)
    g.bind("osed", OSED)
    rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    kinds = {r["id"]: r["kind"].lower() for r in rows}
    for n, r in enumerate(rows, start=2):
        node_id, kind, parent = r["id"], r["kind"].lower(), r.get("parent", "")
        if not node_id:
            raise IngestError("empty id", source=name, row=n, field="id")
        if kind not in ("feeder", "transformer", "building"):
            raise IngestError(
                f"kind '{kind}' is not feeder, transformer or building", source=name, row=n, field="kind"
            )
        if parent and parent not in kinds:
            raise IngestError(f"parent '{parent}' is not listed", source=name, row=n, field="parent")
        if kind == "building":
            try:
                check_building_id(node_id)
            except InvalidBuildingId as exc:
                raise IngestError(str(exc), source=name, row=n, field="id") from None
        node = _node(base_iri, kind, node_id)
        if kind == "feeder":
            g.add((node, RDF.type, OSED.Feeder))
        elif kind == "transformer":
            g.add((node, RDF.type, BRICK.Transformer))
            kva = r.get("rated_kva", "")
            try:
                g.add((node, OSED.ratedKVA, Literal(float(kva), datatype=XSD.decimal)))
            except ValueError:
                raise IngestError(
                    f"rated_kva '{kva}' is not a number", source=name, row=n, field="rated_kva"
                ) from None
        else:
            g.add((node, RDF.type, REC.Building))  # brick:Building is deprecated in Brick 1.5
        g.add((node, OSED.topologyId, Literal(node_id)))
        g.add((node, RDFS.label, Literal(r.get("label") or node_id)))
        if parent:
            g.add((_node(base_iri, kinds[parent], parent), BRICK.feeds, node))
    return g


def _node(base: str, kind: str, node_id: str) -> URIRef:
    if kind == "building":
        return building_iri(base, node_id)
    # Percent-encoded, so distinct ids stay distinct IRIs whatever they hold.
    return URIRef(f"{base}topology/{kind}/{quote(node_id, safe='')}")


def read_topology(store: GraphStore, base_iri: str = "urn:osed:") -> Topology:
    iri = topology_iri(base_iri)
    topo = Topology()
    if iri not in store.graphs():
        return topo
    rows = store.query(
        sparql_prefixes()
        + f"""SELECT ?x ?xid ?kind ?label ?kva ?parent ?pid WHERE {{ GRAPH <{iri}> {{
            ?x osed:topologyId ?xid ; a ?kind . OPTIONAL {{ ?x rdfs:label ?label }}
            OPTIONAL {{ ?x osed:ratedKVA ?kva }}
            OPTIONAL {{ ?parent brick:feeds ?x . ?parent osed:topologyId ?pid }} }} }}""",
        limit=10**7,
    ).rows
    parent_of: dict[str, str] = {}
    kind_of: dict[str, str] = defaultdict(str)
    for r in rows:
        xid, kind = str(r["xid"]), _local(r["kind"])
        kind_of[xid] = kind
        if "pid" in r:
            parent_of[xid] = str(r["pid"])
        if kind == "Feeder":
            topo.feeders[xid] = str(r.get("label", xid))
        elif kind == "Transformer":
            topo.transformers[xid] = (str(r.get("label", xid)), float(str(r.get("kva", 0) or 0)), None)
    for xid, (label, kva, _f) in list(topo.transformers.items()):
        topo.transformers[xid] = (label, kva, parent_of.get(xid))
    for xid, kind in kind_of.items():
        if kind == "Building":
            xfmr = parent_of.get(xid)
            feeder = topo.transformers.get(xfmr, ("", 0.0, None))[2] if xfmr else None
            topo.building_parents[xid] = (xfmr, feeder)
    return topo


def load_topology(store: GraphStore, graph: Graph, base_iri: str = "urn:osed:") -> int:
    """Replace the stored topology (all-or-nothing); returns the number of triples."""
    if not any(graph.subjects(OSED.topologyId, None)):
        raise OsedError("the topology names no feeder, transformer or building (osed:topologyId)")
    return store.replace_graph(topology_iri(base_iri), graph)
