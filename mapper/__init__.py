"""Point sources in, RDF out: the ``RawPoint`` record, readers, and the model builder."""

from mapper._bacnet import discover_bacnet
from mapper._columns import ColumnChoice, ReadReport, header_spellings, parse_column_map
from mapper._csv import decode_text, read_points_csv, sniff_delimiter, write_points_csv
from mapper._discovery import discover_edgex, discover_homeassistant
from mapper._export import ModelFormat, serialize_model
from mapper._formats import FORMATS, detect_format, parse_zinc, read_osed_model, read_points
from mapper._graph import read_points_graph
from mapper._rdf import (
    BUILDING_ID_RULE,
    build_model,
    building_id,
    building_iri,
    check_building_id,
    equipment_iri,
    point_identities,
    point_iri,
    property_class,
    slug,
)
from mapper._records import (
    REVIEW_STATUSES,
    AdapterName,
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
    ReviewStatus,
    SourceRef,
    Suggestion,
)
from mapper._s223 import REC, TopologySummary, s223_equipment_class

__all__ = [
    "BUILDING_ID_RULE",
    "FORMATS",
    "REC",
    "REVIEW_STATUSES",
    "AdapterName",
    "Address",
    "BACnetAddress",
    "ColumnChoice",
    "EdgeXAddress",
    "EquipmentRef",
    "HomeAssistantAddress",
    "LabeledPoint",
    "LocationRef",
    "MQTTAddress",
    "ModbusAddress",
    "ModelFormat",
    "RawPoint",
    "ReadReport",
    "ReviewStatus",
    "SourceRef",
    "Suggestion",
    "TopologySummary",
    "build_model",
    "building_id",
    "building_iri",
    "check_building_id",
    "decode_text",
    "detect_format",
    "discover_bacnet",
    "discover_edgex",
    "discover_homeassistant",
    "equipment_iri",
    "header_spellings",
    "parse_column_map",
    "parse_zinc",
    "point_identities",
    "point_iri",
    "property_class",
    "read_osed_model",
    "read_points",
    "read_points_csv",
    "read_points_graph",
    "s223_equipment_class",
    "serialize_model",
    "slug",
    "sniff_delimiter",
    "write_points_csv",
]
