"""Reading points back from a stored building model (the inverse of ``build_model``).

Everything a source said about a point is kept in the graph (raw name, description,
unit, object type, tags, writability, limits, adapter address), so a building can be
relabeled from the store alone, e.g. after a reviewer's decision.
"""

from __future__ import annotations

from rdflib import RDF, Graph, URIRef
from rdflib.term import Node

from mapper._records import (
    Address,
    BACnetAddress,
    EdgeXAddress,
    HomeAssistantAddress,
    ModbusAddress,
    MQTTAddress,
    RawPoint,
    SourceRef,
)
from ontology import BACNET, OSED, REF


def read_points_graph(graph: Graph) -> list[tuple[URIRef, RawPoint]]:
    """Every point of a model with its IRI, in source order (file row, then name)."""
    out = []
    for point in set(graph.subjects(OSED.rawName, None)):
        if not isinstance(point, URIRef):
            continue
        try:
            out.append((point, _point(graph, point)))
        except (ValueError, TypeError) as exc:  # a model edited by hand
            raise ValueError(f"point '{_text(graph, point, OSED.rawName)}': {exc}") from exc
    out.sort(key=lambda item: (_row(item[1]), item[1].name, str(item[0])))
    return out


def _row(point: RawPoint) -> int:
    return point.source.row if point.source and point.source.row is not None else 1 << 30


def _text(graph: Graph, node: Node, pred: URIRef) -> str:
    value = graph.value(node, pred)
    return str(value) if value is not None else ""


def _number(graph: Graph, node: Node, pred: URIRef) -> float | None:
    value = graph.value(node, pred)
    return float(str(value)) if value is not None else None


def _point(graph: Graph, point: URIRef) -> RawPoint:
    writable = graph.value(point, OSED.writable)
    source_file = _text(graph, point, OSED.sourceFile)
    row = graph.value(point, OSED.sourceRow)
    ref = graph.value(point, REF.hasExternalReference)
    minimum = maximum = None
    address = None
    if ref is not None:
        minimum = _number(graph, ref, OSED.minValue)
        maximum = _number(graph, ref, OSED.maxValue)
        address = _address(graph, ref)
    return RawPoint(
        name=_text(graph, point, OSED.rawName),
        description=_text(graph, point, OSED.rawDescription),
        unit=_text(graph, point, OSED.rawUnit),
        object_type=_text(graph, point, OSED.rawObjectType),
        tags=tuple(sorted(str(t) for t in graph.objects(point, OSED.sourceTag))),
        writable=None if writable is None else str(writable) == "true",
        minimum=minimum,
        maximum=maximum,
        source=SourceRef(source_file, int(str(row)), _text(graph, point, OSED.sourceSha256))
        if source_file and row is not None
        else None,
        address=address,
        reference=_text(graph, point, OSED.rawReference),
        present_value=_text(graph, point, OSED.rawPresentValue),
        value_kind=_text(graph, point, OSED.valueKind),
        status=_text(graph, point, OSED.rawStatus),
        extra=_extra(graph, point),
        equipment=_text(graph, point, OSED.rawEquipment),
    )


def _extra(graph: Graph, point: URIRef) -> tuple[tuple[str, str], ...]:
    fields = []
    for node in graph.objects(point, OSED.sourceField):
        position = graph.value(node, OSED.position)
        fields.append(
            (
                int(str(position)) if position is not None else 0,
                _text(graph, node, OSED.column),
                _text(graph, node, RDF.value),
            )
        )
    return tuple((column, cell) for _, column, cell in sorted(fields))


def _whole(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{field} holds no instance number ({text!r})") from None


def _address(graph: Graph, ref: Node) -> Address | None:
    adapter = _text(graph, ref, OSED.adapter)
    if adapter == "bacnet":
        obj_type, _, instance = _text(graph, ref, BACNET["object-identifier"]).partition(",")
        device = _text(graph, ref, BACNET["device-identifier"]).partition(",")[2]
        priority = graph.value(ref, BACNET["priority-for-writing"])
        return BACnetAddress(
            device_instance=_whole(device, "bacnet:device-identifier"),
            object_type=obj_type,
            object_instance=_whole(instance, "bacnet:object-identifier"),
            property_identifier=_text(graph, ref, BACNET["property-identifier"]) or "present-value",
            priority=int(str(priority)) if priority is not None else None,
            device_address=_text(graph, ref, OSED.bacnetDeviceAddress) or None,
        )
    if adapter == "edgex":
        return EdgeXAddress(_text(graph, ref, OSED.edgexDevice), _text(graph, ref, OSED.edgexResource))
    if adapter == "homeassistant":
        return HomeAssistantAddress(
            _text(graph, ref, OSED.haEntityId), _text(graph, ref, OSED.haAttribute) or None
        )
    if adapter == "modbus":
        return ModbusAddress(
            unit=int(_number(graph, ref, OSED.modbusUnit) or 0),
            register=int(_number(graph, ref, OSED.modbusRegister) or 0),
            register_type=_text(graph, ref, OSED.modbusRegisterType) or "holding",
            data_type=_text(graph, ref, OSED.modbusDataType) or "uint16",
            scale=_number(graph, ref, OSED.modbusScale) or 1.0,
            word_order=_text(graph, ref, OSED.modbusWordOrder) or "big",
            host=_text(graph, ref, OSED.modbusHost) or None,
        )
    if adapter == "mqtt":
        return MQTTAddress(
            _text(graph, ref, OSED.mqttStateTopic), _text(graph, ref, OSED.mqttCommandTopic) or None
        )
    return None
