"""Edge actuator adapters (BACnet/IP, Modbus TCP, MQTT, EdgeX, Home Assistant) and the safety
layer every write passes through."""

from edge._base import Adapter, PointTarget, Value
from edge._graph import GraphResolver
from edge._safety import PointLimit, SafetyConfig, SafetyLayer, WriteResult, utc_text
from edge._store import AuditEntry, Lease, Override, SafetyStore
from edge.settings import EdgeSettings, adapter_factory, parse_duration, safety_layer

__all__ = [
    "Adapter",
    "AuditEntry",
    "EdgeSettings",
    "GraphResolver",
    "Lease",
    "Override",
    "PointLimit",
    "PointTarget",
    "SafetyConfig",
    "SafetyLayer",
    "SafetyStore",
    "Value",
    "WriteResult",
    "adapter_factory",
    "parse_duration",
    "safety_layer",
    "utc_text",
]
