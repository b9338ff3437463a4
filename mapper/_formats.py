"""Point sources beyond plain CSV: XLSX, BACnet EDE, Haystack JSON and Zinc, Brick/223P Turtle.

``read_points`` detects the format from the file (or takes ``fmt``) and returns RawPoints;
every error names the file, and the row and field where there is one.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from lxml import etree

from core.errors import IngestError
from mapper._columns import ReadReport
from mapper._csv import decode_text, points_from_table, read_points_csv, reject
from mapper._records import BACnetAddress, RawPoint, SourceRef
from ontology import ClassIndex

FORMATS = ("csv", "xlsx", "ede", "niagara", "haystack-json", "zinc", "turtle")

#: Haystack markers that say nothing about what a point is.
_HAYSTACK_NOISE = {"point", "his", "cur", "writable", "hisTotalized", "id", "tz"}


_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0", "an old-format Office file (save it as .xlsx or .csv)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)


def _not_a_point_list(data: bytes) -> str | None:
    """What a file is when it plainly is not a point list (PDF, image...), else None."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    return None


#: What openpyxl, zipfile, zlib and the XML parsers raise on a damaged workbook.
_XLSX_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, IndexError, TypeError, EOFError, NotImplementedError, RuntimeError,
    zipfile.BadZipFile, zlib.error,
    ElementTree.ParseError, etree.LxmlError,
)  # fmt: skip
#: What rdflib's Turtle parser raises on damaged input (its own errors, and assertions).
_TURTLE_ERRORS: tuple[type[BaseException], ...] = (
    SyntaxError, ValueError, KeyError, IndexError, TypeError, AssertionError, AttributeError, UnicodeError,
)  # fmt: skip


def detect_format(path: str, data: bytes) -> str:
    """The format of a point list, from its name and first bytes."""
    name = path.lower()
    head = data[:4096]
    if name.endswith((".xlsx", ".xlsm")) or head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if name.endswith((".ttl", ".turtle")):
        return "turtle"
    if name.endswith(".zinc") or head.lstrip().startswith(b"ver:"):
        return "zinc"
    if name.endswith(".json") or head.lstrip().startswith((b"{", b"[")):
        return "haystack-json"
    text = head.decode("utf-8", "replace").lower()
    if ("keyname" in text and "object-instance" in text) or "engineering-data-exchange" in text:
        return "ede"
    if "@prefix" in text and "brickschema" in text:
        return "turtle"
    return "csv"


def read_points(
    path: Path | str,
    *,
    data: bytes | None = None,
    fmt: str | None = None,
    max_bytes: int | None = None,
    column_map: dict[str, str] | None = None,
    sheet: str | None = None,
    rejected: list[IngestError] | None = None,
    report: ReadReport | None = None,
) -> list[RawPoint]:
    """Read any supported point source (``fmt`` overrides detection).

    A bad row refuses the file unless ``rejected`` is given: then each bad row is recorded
    there (file, row, field, reason) and skipped."""
    source = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise IngestError(f"cannot read file: {exc.strerror}", source=source) from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise IngestError(
            f"file is {len(data) / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB limit", source=source
        )
    if not data.strip():
        raise IngestError("the file is empty", source=source)
    what = _not_a_point_list(data)
    if what:
        raise IngestError(f"this is {what}, not a point list", source=source)
    kind = fmt or detect_format(source, data)
    if kind not in FORMATS:
        raise IngestError(f"unknown format '{kind}' (one of {', '.join(FORMATS)})", source=source)
    return _recorded(_read(source, data, kind, column_map, sheet, rejected, report), source, data)


def file_name(source: str) -> str:
    """The last segment of a path as a client or this machine wrote it (``/`` or ``\\``)."""
    return re.split(r"[\\/]", source)[-1] or source


def _recorded(points: list[RawPoint], source: str, data: bytes) -> list[RawPoint]:
    """Each point's source as the model records it: the file's name and the hash of its
    bytes, so an export tells which upload it came from without naming a folder."""
    digest = hashlib.sha256(data).hexdigest()
    name = file_name(source)
    out = []
    for p in points:
        if p.source is not None and p.source.source.startswith(source):
            # A workbook's points say their sheet after the file: "list.xlsx [Points]".
            where = name + p.source.source[len(source) :]
            p = dataclasses.replace(p, source=SourceRef(where, p.source.row, digest))
        out.append(p)
    return out


def _read(
    source: str,
    data: bytes,
    kind: str,
    column_map: dict[str, str] | None,
    sheet: str | None,
    rejected: list[IngestError] | None,
    report: ReadReport | None,
) -> list[RawPoint]:
    if kind in ("csv", "niagara"):
        return read_points_csv(source, data=data, column_map=column_map, rejected=rejected, report=report)
    if kind == "xlsx":
        return read_points_xlsx(
            source, data, sheet=sheet, column_map=column_map, rejected=rejected, report=report
        )
    if kind == "ede":
        return read_points_ede(source, data, rejected=rejected)
    if kind == "haystack-json":
        return read_points_haystack(source, _json(source, data), rejected=rejected)
    if kind == "zinc":
        return read_points_haystack(source, parse_zinc(source, decode_text(data, source)), rejected=rejected)
    return read_points_turtle(source, data)


# -- XLSX ---------------------------------------------------------------------------------------
def read_points_xlsx(
    source: str,
    data: bytes,
    *,
    sheet: str | None = None,
    column_map: dict[str, str] | None = None,
    rejected: list[IngestError] | None = None,
    report: ReadReport | None = None,
) -> list[RawPoint]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        if sheet is not None and sheet not in book.sheetnames:
            raise IngestError(f"no sheet '{sheet}' (sheets: {', '.join(book.sheetnames)})", source=source)
        ws = book[sheet] if sheet else _point_sheet(book, source, column_map)
        # The sheet's XML is parsed as it is iterated: read it whole here, so that a broken
        # workbook is refused as one, not halfway through the rows.
        table = list(ws.iter_rows(values_only=True))
    except _XLSX_ERRORS as exc:
        raise IngestError(f"not a readable XLSX workbook: {_short(exc)}", source=source) from exc
    where = f"{source} [{ws.title}]"
    if not table:
        raise IngestError("the sheet is empty", source=where)
    header = ["" if v is None else str(v).strip() for v in table[0]]
    while header and not header[-1]:
        header.pop()

    def numbered() -> Iterator[tuple[int, list[str]]]:
        for row_no, values in enumerate(table[1:], start=2):
            cells = ["" if v is None else _cell(v) for v in values][: len(header)]
            cells += [""] * (len(header) - len(cells))
            yield row_no, cells

    return points_from_table(header, numbered(), where, column_map, rejected, report)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def _point_sheet(book: Any, source: str, column_map: dict[str, str] | None) -> Any:
    """The first sheet whose header has a point-name column (workbooks often open on a
    cover or read-me sheet)."""
    from mapper._csv import has_name_column

    for ws in book.worksheets:
        first = next(ws.iter_rows(values_only=True, max_row=1), None)
        header = ["" if v is None else str(v) for v in (first or ())]
        if has_name_column(header, column_map):
            return ws
    raise IngestError(
        f"no sheet has a point-name column (sheets: {', '.join(book.sheetnames)}); use --sheet",
        source=source,
    )


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# -- BACnet EDE ---------------------------------------------------------------------------------
def read_points_ede(source: str, data: bytes, rejected: list[IngestError] | None = None) -> list[RawPoint]:
    """BACnet Engineering Data Exchange (B.I.G.-EU layout 2.x): a header block, then
    ``keyname;device obj.-instance;object-name;object-type;object-instance;description;
    present-value-default;min-present-value;max-present-value;settable;supports COV;
    hi-limit;low-limit;state-text-reference;unit-code;vendor-specific-address``."""
    from bacpypes3.basetypes import EngineeringUnits
    from bacpypes3.primitivedata import ObjectType

    text = decode_text(data, source)
    lines = text.splitlines()
    header_at = next(
        (i for i, line in enumerate(lines) if "keyname" in line.lower() and "object-name" in line.lower()),
        None,
    )
    if header_at is None:
        raise IngestError("no EDE column header (keyname;device obj.-instance;...)", source=source)
    delimiter = ";" if lines[header_at].count(";") >= lines[header_at].count(",") else ","
    header = [h.strip().lstrip("#").strip().lower() for h in lines[header_at].split(delimiter)]

    def col(*names: str) -> int | None:
        for n in names:
            if n in header:
                return header.index(n)
        return None

    c_device = col("device obj.-instance")
    c_name, c_type, c_inst = col("object-name"), col("object-type"), col("object-instance")
    c_desc = col("description")
    c_min, c_max = col("min-present-value", "min. value"), col("max-present-value", "max. value")
    c_settable = col("settable", "commandable")
    c_unit = col("unit-code")
    if None in (c_device, c_name, c_type, c_inst):
        raise IngestError("EDE header lacks a mandatory column", source=source, row=header_at + 1)
    points = []
    reader = csv.reader(lines[header_at + 1 :], delimiter=delimiter)
    for row_no, row in enumerate(reader, start=header_at + 2):
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        try:

            def cell(i: int | None, row: list[str] = row) -> str:
                return row[i].strip() if i is not None and i < len(row) else ""

            type_text = cell(c_type)
            try:
                obj_type = (
                    str(ObjectType(int(type_text))) if type_text.isdigit() else str(ObjectType(type_text))
                )
            except (ValueError, TypeError, KeyError):
                raise IngestError(
                    f"unknown object type '{type_text}'", source=source, row=row_no, field="object-type"
                ) from None
            if obj_type == "device":
                continue
            try:
                device = int(cell(c_device))
                instance = int(cell(c_inst))
            except ValueError:
                raise IngestError(
                    "device and object instance must be numbers",
                    source=source,
                    row=row_no,
                    field="object-instance",
                ) from None
            unit = ""
            code = cell(c_unit)
            if code:
                try:
                    unit = str(EngineeringUnits(int(code)))
                except (ValueError, TypeError, KeyError):
                    unit = ""
                if not unit or unit.isdigit():  # bacpypes3 echoes codes it does not know
                    raise IngestError(
                        f"unknown BACnet unit code '{code}'", source=source, row=row_no, field="unit-code"
                    )
            settable = cell(c_settable).upper()
            if not cell(c_name):
                raise IngestError("empty object name", source=source, row=row_no, field="object-name")
            points.append(
                RawPoint(
                    name=cell(c_name),
                    description=cell(c_desc),
                    unit="" if unit == "no-units" else unit,
                    object_type=obj_type,
                    writable=settable in ("Y", "YES", "TRUE", "1") if settable else None,
                    minimum=_float(cell(c_min)),
                    maximum=_float(cell(c_max)),
                    source=SourceRef(source, row_no),
                    address=BACnetAddress(
                        device_instance=device, object_type=obj_type, object_instance=instance
                    ),
                )
            )
        except IngestError as exc:
            reject(exc, rejected)

    if not points:
        raise IngestError("the EDE file lists no objects", source=source)
    return points


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", ".")) if text else None
    except ValueError:
        return None


# -- Project Haystack ---------------------------------------------------------------------------
def _json(source: str, data: bytes) -> Any:
    try:
        return json.loads(decode_text(data, source))
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"invalid JSON at line {exc.lineno}: {exc.msg}", source=source, row=exc.lineno
        ) from exc


def _hay(value: Any) -> tuple[str, Any]:
    """(kind, value) of a Haystack JSON value, v3 ('m:', 'n:72 °F') or v4 ({'_kind': ...})."""
    if isinstance(value, dict) and "_kind" in value:
        kind = value["_kind"]
        if kind == "number":
            return "number", (value.get("val"), value.get("unit", ""))
        if kind == "ref":
            return "ref", value.get("val")
        return kind, value.get("val")
    if isinstance(value, str) and len(value) > 1 and value[1] == ":":
        prefix, body = value[0], value[2:]
        if prefix == "m":
            return "marker", True
        if prefix == "n":
            num, _, unit = body.partition(" ")
            return "number", (num, unit)
        if prefix == "r":
            return "ref", body.split(" ")[0]
        if prefix == "s":
            return "str", body
        return "other", body
    if value is True or value == {"_kind": "marker"}:
        return "marker", True
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int | float):
        return "number", (value, "")
    return ("str", value) if isinstance(value, str) else ("other", value)


def read_points_haystack(source: str, grid: Any, rejected: list[IngestError] | None = None) -> list[RawPoint]:
    """Points (records with the ``point`` marker) of a Haystack grid: dis, tags, unit, kind,
    writable and equipRef kept; marker tags become evidence for the agent."""
    rows = grid.get("rows") if isinstance(grid, dict) else grid
    if not isinstance(rows, list):
        raise IngestError("not a Haystack grid (no rows)", source=source)
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        if isinstance(row, dict) and "id" in row:
            by_id[str(_hay(row["id"])[1])] = row
    points = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or _hay(row.get("point"))[0] != "marker":
            continue
        markers = tuple(
            sorted(k for k, v in row.items() if _hay(v)[0] == "marker" and k not in _HAYSTACK_NOISE)
        )
        name = _text(row.get("dis")) or _text(row.get("navName")) or _ref_dis(row.get("id"))
        if not name:
            reject(
                IngestError("point without dis, navName or id", source=source, row=n, field="dis"), rejected
            )
            continue
        equip = by_id.get(str(_hay(row.get("equipRef"))[1]), {}) if "equipRef" in row else {}
        equip_name = _text(equip.get("navName")) or _text(equip.get("dis")) or _ref_dis(equip.get("id"))
        kind = _text(row.get("kind"))
        points.append(
            RawPoint(
                name=name,
                description=f"{equip_name}: {name}" if equip_name and equip_name not in name else "",
                unit=_text(row.get("unit")),
                object_type={"Bool": "binary", "Number": "", "Str": ""}.get(kind, ""),
                tags=markers,
                writable=_hay(row.get("writable"))[0] == "marker" if "writable" in row else None,
                minimum=_number(row.get("minVal")),
                maximum=_number(row.get("maxVal")),
                source=SourceRef(source, n),
            )
        )
    if not points:
        raise IngestError("the Haystack grid has no records with the 'point' marker", source=source)
    return points


def _ref_dis(value: Any) -> str:
    """The display text a ref carries (``r:p1 Zone Temp``, Hayson ``dis``), else its id."""
    if isinstance(value, dict):
        return str(value.get("dis") or value.get("val") or "")
    if isinstance(value, str) and value.startswith("r:"):
        ident, _, dis = value[2:].partition(" ")
        return dis or ident
    return ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    kind, val = _hay(value)
    return "" if kind == "marker" or val is None else str(val)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    kind, val = _hay(value)
    if kind == "number":
        try:
            return float(val[0])
        except (TypeError, ValueError):
            return None
    return None


_ZINC_TOKEN = re.compile(
    r'\s*(?:"((?:[^"\\]|\\.)*)"|(@[\w:.~-]+)(?:\s+"(?:[^"\\]|\\.)*")?|`[^`]*`|'
    r"(-?(?:\d[\d_]*)(?:\.\d+)?(?:[eE][+-]?\d+)?)([^\s,]*)|([A-Za-z][\w-]*(?::[^,\s]*)?))\s*"
)


def parse_zinc(source: str, text: str) -> dict[str, Any]:
    """A Zinc grid as rows of Haystack JSON v3-style values (enough for point lists)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("ver:"):
        raise IngestError("not a Zinc grid (first line must start with ver:)", source=source, row=1)
    cols = [c.strip().split(" ")[0] for c in lines[1].split(",")]
    rows = []
    for row_no, line in enumerate(lines[2:], start=3):
        values = _zinc_values(line, source, row_no)
        if len(values) != len(cols):
            raise IngestError(
                f"ragged row: {len(values)} values where the grid has {len(cols)} columns",
                source=source,
                row=row_no,
            )
        rows.append({c: v for c, v in zip(cols, values, strict=True) if v is not None})
    return {"cols": [{"name": c} for c in cols], "rows": rows}


def _zinc_values(line: str, source: str, row_no: int) -> list[Any]:
    values: list[Any] = []
    pos = 0
    while pos <= len(line):
        if pos == len(line) or line[pos] == ",":
            values.append(None)
            pos += 1
            continue
        m = _ZINC_TOKEN.match(line, pos)
        if not m or m.end() == pos:
            raise IngestError(f"cannot read Zinc value at column {pos + 1}", source=source, row=row_no)
        string, ref, number, unit, word = m.groups()
        if string is not None:
            values.append("s:" + _zinc_string(f'"{string}"', source, row_no, pos))
        elif ref is not None:
            display = m.group(0).strip()[len(ref) :].strip()
            values.append(
                "r:" + ref[1:] + (" " + _zinc_string(display, source, row_no, pos) if display else "")
            )
        elif number is not None:
            values.append(f"n:{number.replace('_', '')}" + (f" {unit}" if unit else ""))
        elif word in ("M",):
            values.append("m:")
        elif word in ("N", "R", "NA"):
            values.append(None)
        elif word in ("T", "F"):
            values.append(word == "T")
        else:
            values.append(word)
        pos = m.end()
        if pos < len(line):
            if line[pos] != ",":
                raise IngestError(f"expected ',' at column {pos + 1}", source=source, row=row_no)
            pos += 1
        else:
            break
    return values


def _zinc_string(quoted: str, source: str, row_no: int, pos: int) -> str:
    """A Zinc string literal (JSON escapes); a broken one is the file's error, not ours."""
    try:
        value = json.loads(quoted)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"bad Zinc string at column {pos + 1}: {exc.msg}", source=source, row=row_no
        ) from exc
    return str(value)


# -- Brick / 223P Turtle ------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _class_index() -> ClassIndex:
    return ClassIndex.build()


def read_osed_model(source: str, data: bytes) -> Any:
    """The graph of an OSED export (Turtle holding an ``osed:Building``), to be stored as it
    is; None for any other file (a point list, a foreign model)."""
    from rdflib import RDF, Graph

    from ontology import OSED

    if b"w3id.org/osed/ns#" not in data[: 1 << 20] or detect_format(source, data) != "turtle":
        return None
    graph = Graph()
    try:
        graph.parse(data=data, format="turtle")
    except _TURTLE_ERRORS as exc:
        raise IngestError(f"not valid Turtle: {_short(exc)}", source=source) from exc
    if (None, RDF.type, OSED.Building) not in graph:
        return None
    from mapper._graph import read_points_graph

    try:
        read_points_graph(graph)  # stored as it is, but relabeled from its points later
    except (ValueError, TypeError) as exc:
        raise IngestError(f"not a valid OSED model: {_short(exc)}", source=source) from exc
    return graph


def read_points_turtle(source: str, data: bytes) -> list[RawPoint]:
    """Points of a Brick or 223P model: an OSED export keeps everything; a foreign model
    gives each point's label, unit and (in ``tags``) its Brick class as ``brick:<Class>``."""
    from rdflib import RDF, RDFS, Graph

    from mapper._graph import read_points_graph
    from ontology import BRICK, OSED, QUDT, S223

    graph = Graph()
    try:
        graph.parse(data=data, format="turtle")
    except _TURTLE_ERRORS as exc:
        raise IngestError(f"not valid Turtle: {_short(exc)}", source=source) from exc
    if any(True for _ in graph.subjects(OSED.rawName, None)):
        try:
            return [p for _, p in read_points_graph(graph)]
        except (ValueError, TypeError) as exc:
            # An OSED export edited by hand: a row number, an instance or a limit that is
            # not a number.
            raise IngestError(f"not a valid OSED model: {_short(exc)}", source=source) from exc
    index = _class_index()
    points = []
    brick = str(BRICK)
    for subject in sorted(set(graph.subjects(RDF.type, None)), key=str):
        types = [str(t) for t in graph.objects(subject, RDF.type)]
        classes = [t[len(brick) :] for t in types if t.startswith(brick) and index.is_point(t[len(brick) :])]
        is_property = any(t.startswith(str(S223)) and "Property" in t for t in types)
        if not classes and not is_property:
            continue
        label = graph.value(subject, RDFS.label)
        unit = graph.value(subject, BRICK.hasUnit) or graph.value(subject, QUDT.hasUnit)
        points.append(
            RawPoint(
                name=str(label) if label is not None else str(subject).rsplit("#", 1)[-1].rsplit("/", 1)[-1],
                unit=str(unit).rsplit("/", 1)[-1] if unit is not None else "",
                tags=tuple(f"brick:{c}" for c in classes),
                source=SourceRef(source),
            )
        )
    if not points:
        raise IngestError("the model has no Brick points or 223P properties", source=source)
    return points
