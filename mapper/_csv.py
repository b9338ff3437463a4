"""Reading CSV point lists into RawPoint records, with errors that name file, row and field."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from core.errors import IngestError
from mapper._columns import ColumnPlan, ReadReport, has_name_header, plan_columns
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
from mapper._values import (
    ObjectId,
    PresentValue,
    fold,
    object_id,
    object_type_word,
    parse_facets,
    parse_number,
    parse_value,
    parse_writable,
    type_writability,
    unescape_niagara,
)

_BACNET_TYPES = {
    "ai": "analog-input",
    "ao": "analog-output",
    "av": "analog-value",
    "bi": "binary-input",
    "bo": "binary-output",
    "bv": "binary-value",
    "mi": "multi-state-input",
    "mo": "multi-state-output",
    "msi": "multi-state-input",
    "mso": "multi-state-output",
    "msv": "multi-state-value",
    "mv": "multi-state-value",
}
_OBJECT_ID = re.compile(r"^\s*([A-Za-z][A-Za-z-]*?)[\s,:_-]*(\d+)\s*$")


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 when the bytes look like text."""
    if not data.strip():
        raise IngestError("the file is empty", source=source)
    if b"\x00" in data[:4096]:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            try:
                return data.decode("utf-16")
            except UnicodeDecodeError:
                pass
        raise IngestError("unknown encoding: the file contains NUL bytes (binary?)", source=source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_at = exc.start
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = ""
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t")
    if not text or controls > max(2, len(text) // 1000):
        line = data[:bad_at].count(b"\n") + 1
        raise IngestError(
            f"unknown encoding: not UTF-8 (byte {bad_at}, line {line}) nor Windows-1252 text",
            source=source,
        )
    return text


def sniff_delimiter(text: str) -> str:
    """The delimiter of a delimited text: what csv.Sniffer says, unless the header line
    does not split on it while it does on another (a broken quote further down fools the
    sniffer into one column per line)."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    header = lines[0] if lines else ""
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        sniffed = ""
    counts = {d: header.count(d) for d in ",;\t|"}
    if sniffed and counts.get(sniffed, 0) > 0:
        return sniffed
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else (sniffed or ",")


def read_points_csv(
    path: Path | str,
    *,
    data: bytes | None = None,
    max_bytes: int | None = None,
    column_map: dict[str, str] | None = None,
    rejected: list[IngestError] | None = None,
    report: ReadReport | None = None,
) -> list[RawPoint]:
    """Read a CSV/TSV point list. ``column_map`` maps our column names to the file's headers."""
    source = str(path)
    if data is None:
        try:
            size = Path(path).stat().st_size
            if max_bytes is not None and size > max_bytes:
                raise IngestError(
                    f"file is {size / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB limit",
                    source=source,
                )
            data = Path(path).read_bytes()
        except OSError as exc:
            raise IngestError(f"cannot read file: {exc.strerror}", source=source) from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise IngestError(
            f"file is {len(data) / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB limit",
            source=source,
        )
    text = decode_text(data, source)
    preamble = _preamble(text)
    body = text
    if preamble:
        # Report generators put a title and a date above the table (WebCTRL, Desigo).
        body = "\n".join(text.splitlines()[preamble:])
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=sniff_delimiter(body))
    try:
        header = next(reader)
    except StopIteration:
        raise IngestError("the file is empty", source=source) from None
    except csv.Error as exc:
        raise IngestError(f"malformed CSV header: {exc}", source=source, row=preamble + 1) from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        row_no = preamble + 1
        try:
            for row_no, row in enumerate(reader, start=preamble + 2):
                yield row_no, row
        except csv.Error as exc:
            raise IngestError(f"malformed CSV: {exc}", source=source, row=row_no + 1) from exc

    return points_from_table(header, rows(), source, column_map, rejected, report, preamble=preamble)


def _preamble(text: str, look: int = 40) -> int:
    """How many lines above the table's header a report puts (title, site, date): the
    header is the first line as wide as the table under it, with most of its cells filled."""
    lines = text.splitlines()[:look]
    if len(lines) < 3:
        return 0
    delimiter = sniff_delimiter("\n".join(lines[len(lines) // 2 :]))
    try:
        records = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return 0
    widths = [len(r) for r in records]
    wide = [w for w in widths if w >= 2]
    if not wide:
        return 0
    table = max(set(wide), key=lambda w: (wide.count(w), w))
    for i, record in enumerate(records[:-1]):
        filled = sum(1 for cell in record if cell.strip())
        if len(record) == table and filled >= max(2, table // 2) and widths[i + 1] == table:
            if i and all(sum(1 for cell in r if cell.strip()) <= 1 for r in records[:i]):
                return i
            return 0
    return 0


def reject(problem: IngestError, rejected: list[IngestError] | None) -> None:
    """Record a bad row when the caller collects them, else refuse the file with it."""
    if rejected is None:
        raise problem
    rejected.append(problem)


def points_from_table(
    header: list[str],
    rows: Iterable[tuple[int, list[str]]],
    source: str,
    column_map: dict[str, str] | None = None,
    rejected: list[IngestError] | None = None,
    report: ReadReport | None = None,
    preamble: int = 0,
) -> list[RawPoint]:
    """Points from a header and numbered rows (CSV, XLSX, vendor exports): one reader, one
    set of errors. Column roles are decided from the header and the values together
    (``plan_columns``); what was decided is added to ``report``. With ``rejected`` a bad
    row is recorded there and skipped; without, it refuses the whole file."""
    numbered = [(row_no, row) for row_no, row in rows if any(cell.strip() for cell in row)]
    if not numbered:
        raise IngestError("the file has a header but no points", source=source)
    plan = plan_columns(header, [row for _, row in numbered], source, column_map, preamble=preamble)
    if report is not None:
        decided = plan.report()
        report.columns.extend(decided.columns)
        report.unused.extend(decided.unused)
        report.notes.extend(decided.notes)
        report.header_row = decided.header_row
    points: list[RawPoint] = []
    for row_no, row in numbered:
        try:
            if len(row) != len(header):
                raise IngestError(
                    f"ragged row: {len(row)} fields where the header has {len(header)}",
                    source=source,
                    row=row_no,
                )
            points.append(_point(row, plan, source, row_no))
        except IngestError as exc:
            reject(exc, rejected)
    if not points:
        raise IngestError("the file has a header but no points", source=source)
    return points


def has_name_column(header: list[str], column_map: dict[str, str] | None = None) -> bool:
    return has_name_header(header, column_map)


def _point(row: list[str], plan: ColumnPlan, source: str, row_no: int) -> RawPoint:
    header, columns = plan.header, plan.columns

    def field(name: str) -> str:
        """The file's own header for one of our columns (errors name what the user sees)."""
        idx = columns.get(name)
        return header[idx].strip() if idx is not None and header[idx].strip() else name

    def cell(name: str) -> str:
        idx = columns.get(name)
        if idx is None:
            return ""
        text = row[idx].strip()
        return unescape_niagara(text) if idx in plan.escaped else text

    def number(name: str, convert: Callable[[str], float | int] = float) -> float | int | None:
        text = cell(name)
        if not text:
            return None
        value = parse_number(text)
        if value is None:
            shown = parse_value(text)
            value = float(shown.text) if shown.kind == "analog" else None
        if value is None or (convert is int and not float(value).is_integer()):
            raise IngestError(
                f"'{text[:40]}' is not a number", source=source, row=row_no, field=field(name)
            ) from None
        return int(value) if convert is int else float(value)

    name = cell("name")
    for i in plan.name_fallbacks:
        if name:
            break
        name = unescape_niagara(row[i].strip()) if i in plan.escaped else row[i].strip()
    if not name:
        raise IngestError("empty point name", source=source, row=row_no, field=field("name"))
    writable_text = cell("writable")
    writability = parse_writable(writable_text)
    if writability is None:
        raise IngestError(
            f"'{writable_text[:40]}' is not yes/no, read/write or a list of writable priority levels",
            source=source,
            row=row_no,
            field=field("writable"),
        )
    writable = writability.writable
    if writable is None and plan.writable_is_priority_list and "writable" in columns:
        writable = False  # an empty list of writable priority levels: read-only
    if writable is None and plan.writable_types is not None and plan.writable_types < len(row):
        writable = type_writability(row[plan.writable_types])
    minimum, maximum = number("minimum"), number("maximum")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise IngestError(
            f"minimum {minimum} is above maximum {maximum}",
            source=source,
            row=row_no,
            field=field("minimum"),
        )
    value = parse_value(cell("value")) if "value" in columns else PresentValue()
    unit = cell("unit")
    if parse_value(unit).missing:
        unit = ""  # "-", "n/a": no unit
    unit = unit or value.unit
    kind = value.kind
    if "facets" in columns:
        facets = parse_facets(cell("facets"))
        unit = unit or facets.unit
        kind = kind or facets.kind
    reference = cell("reference")
    found = _object_id(row, plan, cell)
    raw_type = cell("object_type")
    # The object type as BACnet names it, whatever the export called it ("Entrée
    # analogique", "Bacnet Analog Input Descriptor"); the export's words stay as evidence.
    object_type = found.object_type if found is not None else raw_type
    status = cell("status")
    if value.status:
        status = f"{status} {{{value.status}}}".strip() if status else value.status
    extra = tuple(
        (
            header[i].strip() or f"column {i + 1}",
            unescape_niagara(row[i].strip()) if i in plan.escaped else row[i].strip(),
        )
        for i in plan.unused
        if i < len(row) and row[i].strip()
    )
    return RawPoint(
        name=name,
        description=cell("description"),
        unit=unit,
        object_type=object_type,
        writable=writable,
        minimum=None if minimum is None else float(minimum),
        maximum=None if maximum is None else float(maximum),
        source=SourceRef(source, row_no),
        address=_address(cell, number, source, row_no, found, "bacnet_device" in columns),
        reference=reference,
        present_value=value.text,
        value_kind=kind,
        status=status,
        extra=extra,
        equipment=cell("equipment"),
    )


def _object_id(row: list[str], plan: ColumnPlan, cell: Callable[[str], str]) -> ObjectId | None:
    """The BACnet object a row names: the type from its object-type column, else from a
    reference or slot column; the device and instance from a reference that names them
    (``3100.AI1``) when its type agrees with the type column's."""
    typed: ObjectId | None = None
    text = cell("object_type")
    if text:
        typed = object_id(text)
        if typed is None and (word := object_type_word(text)):
            typed = ObjectId(word)
    named = [plan.columns[f] for f in ("bacnet_object", "reference") if f in plan.columns]
    for i in (*named, *plan.type_sources):
        if i >= len(row) or (found := object_id(row[i])) is None:
            continue
        if typed is None:
            return found
        if found.device is not None and found.object_type == typed.object_type:
            return found
    return typed


def _address(
    cell: Callable[[str], str],
    number: Callable[..., float | int | None],
    source: str,
    row_no: int,
    found: ObjectId | None = None,
    has_device_column: bool = True,
) -> Address | None:
    # An object identifier alone (WebCTRL's "analog-input:1001") names the type, not where
    # the point is: an address needs the device too, from a device column or the reference.
    named = cell("bacnet_device") or (cell("bacnet_object") and has_device_column)
    if not named and found and found.device is not None and found.instance is not None:
        # An object reference naming its device (Delta's //Site/1000.AI10): a BACnet address.
        return BACnetAddress(
            device_instance=found.device, object_type=found.object_type, object_instance=found.instance
        )
    if named:
        device = number("bacnet_device", int)
        obj = cell("bacnet_object")
        if not obj and cell("object_instance"):
            obj = f"{cell('object_type')},{cell('object_instance')}"
        match = _OBJECT_ID.match(obj)
        if device is None or not match:
            raise IngestError(
                "a BACnet address needs a device instance and an object such as 'analog-value,3'",
                source=source,
                row=row_no,
                field="bacnet_object" if device is not None else "bacnet_device",
            )
        kind = match.group(1).lower().rstrip("-")
        priority = number("bacnet_priority", int)
        return BACnetAddress(
            device_instance=int(device),
            object_type=_BACNET_TYPES.get(kind, kind),
            object_instance=int(match.group(2)),
            priority=None if priority is None else int(priority),
            device_address=cell("bacnet_address") or None,
        )
    if cell("edgex_device"):
        if not cell("edgex_resource"):
            raise IngestError(
                "an EdgeX address needs a resource",
                source=source,
                row=row_no,
                field="edgex_resource",
            )
        return EdgeXAddress(device=cell("edgex_device"), resource=cell("edgex_resource"))
    if cell("ha_entity"):
        return HomeAssistantAddress(entity_id=cell("ha_entity"), attribute=cell("ha_attribute") or None)
    if cell("modbus_register"):
        unit = number("modbus_unit", int)
        register = number("modbus_register", int)
        scale = number("modbus_scale")
        return ModbusAddress(
            unit=int(unit) if unit is not None else 1,
            register=int(register or 0),
            register_type=(kind := _register_type(cell("modbus_type"), source, row_no)),
            # A coil or a discrete input holds one bit.
            data_type=(
                cell("modbus_datatype") or ("bool" if kind in ("coil", "discrete") else "uint16")
            ).lower(),
            scale=float(scale) if scale is not None else 1.0,
            host=cell("modbus_host") or None,
            word_order=_word_order(cell("modbus_word_order"), source, row_no),
        )
    if cell("mqtt_topic"):
        return MQTTAddress(state_topic=cell("mqtt_topic"), command_topic=cell("mqtt_command_topic") or None)
    return None


#: Modbus register types as gateways and front ends write them, in English and French.
_REGISTER_TYPES = {
    "holding": "holding", "holding register": "holding", "holding registers": "holding",
    "hr": "holding", "4x": "holding", "registre de maintien": "holding",
    "input": "input", "input register": "input", "input registers": "input", "ir": "input",
    "3x": "input", "registre d entree": "input",
    "coil": "coil", "coils": "coil", "0x": "coil", "bobine": "coil",
    "discrete": "discrete", "discrete input": "discrete", "discrete inputs": "discrete",
    "di": "discrete", "1x": "discrete", "entree discrete": "discrete",
}  # fmt: skip


def _register_type(text: str, source: str, row_no: int) -> str:
    key = re.sub(r"[^0-9a-z]+", " ", fold(text)).strip() or "holding"
    found = _REGISTER_TYPES.get(key)
    if found is None:
        raise IngestError(
            f"Modbus register type '{text[:30]}' is not holding, input, coil or discrete",
            source=source,
            row=row_no,
            field="modbus_type",
        )
    return found


def _word_order(text: str, source: str, row_no: int) -> str:
    order = (text or "big").strip().lower()
    if order not in ("big", "little"):
        raise IngestError(
            f"Modbus word order '{text[:20]}' is not 'big' or 'little'",
            source=source,
            row=row_no,
            field="modbus_word_order",
        )
    return order


def write_points_csv(points: Iterable[RawPoint], path: Path) -> None:
    """Points as a CSV that read_points_csv reads back (address columns included)."""
    header = [
        "name", "description", "unit", "object_type", "writable", "min", "max",
        "bacnet_device", "bacnet_object", "bacnet_priority", "bacnet_address",
        "edgex_device", "edgex_resource",
        "ha_entity", "ha_attribute", "modbus_unit", "modbus_register", "modbus_type",
        "modbus_datatype", "modbus_scale", "modbus_host", "modbus_word_order", "mqtt_topic",
        "mqtt_command_topic",
    ]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        for p in points:
            row: dict[str, object] = {
                "name": p.name,
                "description": p.description,
                "unit": p.unit,
                "object_type": p.object_type,
                "writable": "" if p.writable is None else ("yes" if p.writable else "no"),
                "min": "" if p.minimum is None else p.minimum,
                "max": "" if p.maximum is None else p.maximum,
            }
            a = p.address
            if isinstance(a, BACnetAddress):
                row.update(
                    bacnet_device=a.device_instance,
                    bacnet_object=f"{a.object_type},{a.object_instance}",
                    bacnet_priority=a.priority or "",
                    bacnet_address=a.device_address or "",
                )
            elif isinstance(a, EdgeXAddress):
                row.update(edgex_device=a.device, edgex_resource=a.resource)
            elif isinstance(a, HomeAssistantAddress):
                row.update(ha_entity=a.entity_id, ha_attribute=a.attribute or "")
            elif isinstance(a, ModbusAddress):
                row.update(
                    modbus_unit=a.unit,
                    modbus_register=a.register,
                    modbus_type=a.register_type,
                    modbus_datatype=a.data_type,
                    modbus_scale=a.scale,
                    modbus_host=a.host or "",
                    modbus_word_order=a.word_order,
                )
            elif isinstance(a, MQTTAddress):
                row.update(mqtt_topic=a.state_topic, mqtt_command_topic=a.command_topic or "")
            writer.writerow(row)
