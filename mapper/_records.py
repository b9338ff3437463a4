"""The records that flow through the pipeline: source -> RawPoint -> Suggestion -> RDF.

They live here, below the agent, so that the agent reads RawPoints and the mapper turns
labeled points into RDF without either package reaching back up the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AdapterName = Literal["bacnet", "edgex", "homeassistant", "modbus", "mqtt"]
ReviewStatus = Literal["suggested", "confirmed", "corrected", "rejected", "abstained"]
REVIEW_STATUSES: tuple[ReviewStatus, ...] = (
    "suggested",
    "confirmed",
    "corrected",
    "rejected",
    "abstained",
)


@dataclass(frozen=True)
class BACnetAddress:
    device_instance: int
    object_type: str  # BACnet enumeration text, e.g. "analog-value"
    object_instance: int
    property_identifier: str = "present-value"
    priority: int | None = None  # priority-for-writing, 3..16
    device_address: str | None = None  # "192.168.1.20" or "192.168.1.20:47808"

    adapter: AdapterName = field(default="bacnet", init=False)

    def identity(self) -> str:
        return f"bacnet:{self.device_instance}:{self.object_type}:{self.object_instance}"


@dataclass(frozen=True)
class EdgeXAddress:
    device: str
    resource: str
    adapter: AdapterName = field(default="edgex", init=False)

    def identity(self) -> str:
        return f"edgex:{self.device}:{self.resource}"


@dataclass(frozen=True)
class HomeAssistantAddress:
    entity_id: str
    attribute: str | None = None
    adapter: AdapterName = field(default="homeassistant", init=False)

    def identity(self) -> str:
        return f"ha:{self.entity_id}:{self.attribute or ''}"


@dataclass(frozen=True)
class ModbusAddress:
    unit: int
    register: int
    register_type: str = "holding"  # holding | input | coil | discrete
    data_type: str = "uint16"  # int16 | uint16 | int32 | uint32 | float32 | bool
    scale: float = 1.0
    word_order: str = "big"
    host: str | None = None
    adapter: AdapterName = field(default="modbus", init=False)

    def identity(self) -> str:
        return f"modbus:{self.host or ''}:{self.unit}:{self.register_type}:{self.register}"


@dataclass(frozen=True)
class MQTTAddress:
    state_topic: str
    command_topic: str | None = None
    adapter: AdapterName = field(default="mqtt", init=False)

    def identity(self) -> str:
        return f"mqtt:{self.state_topic}"


Address = BACnetAddress | EdgeXAddress | HomeAssistantAddress | ModbusAddress | MQTTAddress


@dataclass(frozen=True)
class SourceRef:
    """Where a point came from: a file and 1-based data row, or a device.

    For a file, ``source`` is its name without a folder (the model names no path of the
    machine that imported it) and ``sha256`` the hex digest of its bytes."""

    source: str
    row: int | None = None
    sha256: str = ""

    def __str__(self) -> str:
        return f"{self.source}, row {self.row}" if self.row is not None else self.source


@dataclass(frozen=True)
class RawPoint:
    """One point as a source describes it, before any labeling."""

    name: str
    description: str = ""
    unit: str = ""
    object_type: str = ""
    tags: tuple[str, ...] = ()
    writable: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    source: SourceRef | None = None
    address: Address | None = None
    #: The object reference or path the source gives (``//Site/1000.AI10``, an export ord).
    reference: str = ""
    #: The present value the export showed (a number as text, or a state such as
    #: ``inactive``), the kind of value it is (analog, binary, multistate) and its status
    #: flags (``ok``, ``fault``): evidence of what the point is, not live data.
    present_value: str = ""
    value_kind: str = ""
    status: str = ""
    #: Source columns no field was read from, as (header, cell): kept, never dropped.
    extra: tuple[tuple[str, str], ...] = ()
    #: The equipment the source says the point belongs to (a WebCTRL or EBO column).
    equipment: str = ""

    def source_identity(self) -> str:
        """What makes this point the same point on the next import: its address, else its name."""
        return self.address.identity() if self.address else f"name:{self.name}"


@dataclass(frozen=True)
class EquipmentRef:
    """Equipment a point belongs to, recognised from its name (``AHU-1`` -> brick:AHU)."""

    brick_class: str
    name: str
    parent: EquipmentRef | None = None
    #: The ASHRAE 223P class the agent chose for a Brick class the mapper has no 223P
    #: counterpart for (by retrieval over 223P), and how alike the two were.
    s223_class: str | None = None
    s223_similarity: float | None = None

    def key(self) -> str:
        return self.name.upper()


@dataclass(frozen=True)
class LocationRef:
    """A floor, room or space a point's name carries (``FL-2``, ``RM-4144``); ``parent`` is
    the location it sits in when the name gives both (the room's floor)."""

    brick_class: str
    name: str
    parent: LocationRef | None = None

    def key(self) -> str:
        return self.name.upper()


@dataclass(frozen=True)
class Suggestion:
    """The agent's answer for one point. ``brick_class`` is None when it abstains."""

    brick_class: str | None
    confidence: float
    alternatives: tuple[str, ...] = ()
    reason: str = ""
    equipment: EquipmentRef | None = None
    source: str = "agent"  # agent | example | llm
    #: What the confidence rests on, as (factor, value) (see agent._calibration.FACTORS).
    factors: tuple[tuple[str, float], ...] = ()
    #: Floors, rooms and spaces the name carries, outermost first.
    locations: tuple[LocationRef, ...] = ()


@dataclass(frozen=True)
class LabeledPoint:
    """A point with its suggestion and, once a human decided, the decision."""

    raw: RawPoint
    suggestion: Suggestion
    status: ReviewStatus = "suggested"
    decided_class: str | None = None
    #: A reviewed point the latest import of its source no longer lists: kept, flagged.
    missing_from_source: bool = False

    @property
    def brick_class(self) -> str | None:
        """The class the model uses: a human's decision beats the agent's suggestion."""
        if self.status in ("confirmed", "corrected"):
            return self.decided_class or self.suggestion.brick_class
        if self.status == "rejected":
            return None
        return self.suggestion.brick_class
