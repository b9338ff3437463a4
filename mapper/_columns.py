"""Deciding what each column of a tabular point list means, from its header AND its values.

Vendor exports spread a point's meaning over columns whose headers differ by vendor and
language, and headers alone mislead: Niagara's ``Name`` holds component slots
(``analogValue_0``) while the point name is in ``Object Name``; its ``Type`` holds
component types. So each column is profiled (what share of its cells look like point
names, object references, present values, units, priority lists...) and a header is
believed only when the values agree. Spellings live in ``data/columns.toml``.

The outcome is a ``ColumnPlan``: which column feeds which field, how that was decided, and
which columns are not used (they are kept on every point as raw evidence and reported).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from core.errors import IngestError
from mapper._values import (
    BINARY_STATES,
    fold,
    has_niagara_escapes,
    looks_like_priority_list,
    object_id,
    object_type_word,
    parse_number,
    parse_value,
    parse_writable,
    type_writability,
    unescape_niagara,
)

#: Fields a column can feed, in the order their header claims are settled.
FIELDS = (
    "name", "description", "unit", "object_type", "object_instance", "writable", "minimum",
    "maximum", "value", "status", "reference", "equipment", "facets", "bacnet_device",
    "bacnet_object", "bacnet_priority", "bacnet_address", "edgex_device", "edgex_resource",
    "ha_entity", "ha_attribute", "modbus_unit", "modbus_register", "modbus_type",
    "modbus_datatype", "modbus_scale", "modbus_host", "modbus_word_order", "mqtt_topic",
    "mqtt_command_topic",
)  # fmt: skip
#: How a field is shown to people (CLI output, job results).
FIELD_LABELS = {
    "name": "point name",
    "description": "description",
    "unit": "unit",
    "object_type": "object type",
    "object_instance": "object instance",
    "writable": "writable",
    "minimum": "minimum",
    "maximum": "maximum",
    "value": "present value",
    "status": "status",
    "reference": "object reference",
    "equipment": "equipment",
    "facets": "facets",
}
#: Rows profiled to decide the columns: enough to see every kind of cell a column holds.
_SAMPLE = 500
_NETWORK_ADDRESS = re.compile(
    r"(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?|\d{1,3}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){1,7}"
)
_PUNCT = re.compile(r"[^0-9a-z]+")
#: Short words that make a cell read as a sentence (a description) rather than a name.
_PROSE_WORDS = frozenset(
    {"de", "du", "des", "la", "le", "les", "d", "l", "et", "a", "au", "aux", "en", "pour", "sur", "par",
     "of", "the", "and", "for", "to", "in", "on", "with", "from"}
)  # fmt: skip


def fold_header(header: str) -> str:
    """``Référence de l'objet`` -> ``reference de l objet``: no case, accents, punctuation."""
    folded = unicodedata.normalize("NFKD", header.strip().lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _PUNCT.sub(" ", folded).strip()


@lru_cache(maxsize=1)
def header_spellings() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Field -> (strong spellings, weak spellings), folded, from ``data/columns.toml``."""
    text = (resources.files("mapper") / "data" / "columns.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {
        name: (
            tuple(fold_header(s) for s in data.get(name, {}).get("strong", [])),
            tuple(fold_header(s) for s in data.get(name, {}).get("weak", [])),
        )
        for name in FIELDS
    }


@dataclass(frozen=True)
class ColumnChoice:
    """One field and the column it is read from."""

    field: str
    column: str  # the file's own header
    how: str  # "header", "values", "--columns", or a sentence ("inside the object reference")

    def describe(self) -> str:
        label = FIELD_LABELS.get(self.field, self.field)
        how = "" if self.how == "header" else f" ({self.how})"
        return f"{label} <- '{self.column}'{how}"


@dataclass
class ReadReport:
    """What a reader made of a file's columns: said in the CLI output and the job result."""

    columns: list[ColumnChoice] = field(default_factory=list)
    #: Headers of columns no field is read from; their cells are kept on each point.
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The file's line (CSV) or sheet row (XLSX) holding the header.
    header_row: int = 1

    def lines(self) -> list[str]:
        out = []
        if self.columns:
            out.append("columns: " + "; ".join(c.describe() for c in self.columns))
        if self.unused:
            out.append(
                "not used (kept on each point as source evidence): "
                + ", ".join(f"'{h}'" for h in self.unused)
            )
        out.extend(self.notes)
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "columns": [{"field": c.field, "column": c.column, "how": c.how} for c in self.columns],
            "unused": list(self.unused),
            "notes": list(self.notes),
            "header_row": self.header_row,
        }


@dataclass(frozen=True)
class ColumnProfile:
    """What a column's cells look like (shares of its non-empty cells)."""

    index: int
    header: str
    filled: float
    distinct: float
    namelike: float
    prose: float
    slots: float
    object_types: float
    values: float
    numbers: float
    writables: float
    priority_lists: float
    escapes: float
    #: Share of cells naming a component type that says whether it is writable.
    writable_types: float = 0.0
    #: Share of cells naming a device and an object (1000.AI10): an object reference.
    devices: float = 0.0
    #: Share of cells that are a network address (IPv4[:port], an MS/TP MAC number).
    network_addresses: float = 0.0


@dataclass
class ColumnPlan:
    """Which column each field is read from, plus how to read the cells."""

    header: list[str]
    columns: dict[str, int]
    how: dict[str, str]
    #: Columns holding Niagara ``$xx`` escapes: decoded when read.
    escaped: frozenset[int] = frozenset()
    #: Where object types come from when no object-type column says: slot or reference column.
    type_sources: tuple[int, ...] = ()
    #: The writable column lists priority levels: an empty cell there means read-only.
    writable_is_priority_list: bool = False
    #: No writable column, but a column of component types that say it (Numeric Writable).
    writable_types: int | None = None
    unused: tuple[int, ...] = ()
    #: Lines before the header (a report title, a date): skipped.
    preamble: int = 0
    #: Columns that also name the point, read where the name column is empty.
    name_fallbacks: tuple[int, ...] = ()
    #: What the reader assumed, said to the user.
    notes: tuple[str, ...] = ()

    def report(self) -> ReadReport:
        choices = [
            ColumnChoice(f, self.header[i].strip() or f"column {i + 1}", self.how.get(f, "header"))
            for f, i in sorted(self.columns.items(), key=lambda kv: FIELDS.index(kv[0]))
        ]
        for i in self.type_sources:
            if "object_type" not in self.columns:
                source = "inside the object reference" if self.how.get("_types") == "reference" else ""
                choices.append(
                    ColumnChoice(
                        "object_type",
                        self.header[i].strip() or f"column {i + 1}",
                        source or "from the slot or object names",
                    )
                )
        if "value" in self.columns and "unit" not in self.columns:
            choices.append(ColumnChoice("unit", self.header[self.columns["value"]], "inside the value"))
        if self.writable_types is not None:
            choices.append(
                ColumnChoice("writable", self.header[self.writable_types], "from the component type")
            )
        notes = [f"skipped {self.preamble} line(s) before the header"] if self.preamble else []
        notes.extend(self.notes)
        return ReadReport(
            columns=choices,
            unused=[self.header[i].strip() or f"column {i + 1}" for i in self.unused],
            notes=notes,
            header_row=self.preamble + 1,
        )


def _cells(rows: Sequence[Sequence[str]], i: int) -> list[str]:
    out = []
    for row in rows[:_SAMPLE]:
        if i < len(row):
            text = row[i].strip()
            if text:
                out.append(text)
    return out


def _share(cells: list[str], test: object) -> float:
    if not cells:
        return 0.0
    assert callable(test)
    return sum(1 for c in cells if test(c)) / len(cells)


def _is_slot(text: str) -> bool:
    """A BACnet object id standing alone (``analogValue_0``, ``AV-12``, ``analog-value:3``)."""
    found = object_id(text)
    if found is None:
        return False
    t = text.strip()
    return found.device is None and (len(t) <= 24 and not re.search(r"[A-Za-z]{2,}[^A-Za-z0-9]+[A-Za-z]", t))


def _is_prose(text: str) -> bool:
    words = [fold(w) for w in re.split(r"[\s']+", text) if w]
    if len(words) < 3:
        return False
    lower = sum(1 for w in words if w.isalpha() and w == w.lower())
    function = sum(1 for w in words if w in _PROSE_WORDS)
    original_lower = sum(1 for w in re.split(r"\s+", text) if w.isalpha() and w.islower())
    return function >= 1 and (original_lower >= len(words) / 2 or lower == len(words))


def _name_like(text: str) -> bool:
    if not any(ch.isalpha() for ch in text) or len(text) > 160:
        return False
    if _is_slot(text):
        return False
    value = parse_value(text)
    if value.kind == "analog" or (value.kind == "binary" and fold(text) in BINARY_STATES):
        return False
    return len(text.split()) <= 12


def profile(header: list[str], rows: Sequence[Sequence[str]]) -> list[ColumnProfile]:
    out = []
    n = max(1, min(len(rows), _SAMPLE))
    for i, head in enumerate(header):
        cells = _cells(rows, i)
        decoded = (
            [unescape_niagara(c) for c in cells] if cells and _share(cells, has_niagara_escapes) else cells
        )
        out.append(
            ColumnProfile(
                index=i,
                header=head,
                filled=len(cells) / n,
                distinct=len(set(cells)) / len(cells) if cells else 0.0,
                namelike=_share(decoded, _name_like),
                prose=_share(decoded, _is_prose),
                slots=_share(cells, _is_slot),
                object_types=_share(cells, lambda c: object_id(c) is not None or object_type_word(c)),
                values=_share(cells, lambda c: parse_value(c).readable),
                numbers=_share(cells, lambda c: parse_number(c) is not None),
                writables=_share(cells, lambda c: parse_writable(c) is not None),
                priority_lists=_share(cells, looks_like_priority_list),
                escapes=_share(cells, has_niagara_escapes),
                writable_types=_share(cells, lambda c: type_writability(c) is not None),
                devices=_share(cells, lambda c: (o := object_id(c)) is not None and o.device is not None),
                network_addresses=_share(cells, lambda c: bool(_NETWORK_ADDRESS.fullmatch(c.strip()))),
            )
        )
    return out


def _fits(field_name: str, p: ColumnProfile, strong: bool) -> bool:
    """Whether a column's values agree with what its header says it holds."""
    if p.filled == 0:
        return strong and field_name != "name"
    if field_name == "name":
        return p.namelike >= 0.6 and p.slots < 0.5
    if field_name == "object_type":
        return strong or p.object_types >= 0.6
    if field_name == "writable":
        return strong or p.writables >= 0.8
    if field_name in ("minimum", "maximum", "object_instance", "bacnet_priority", "modbus_scale"):
        return strong or p.numbers >= 0.8
    if field_name == "value":
        return strong or p.values >= 0.7
    if field_name == "modbus_register":
        return strong or p.numbers >= 0.9
    if field_name == "bacnet_address":
        return p.network_addresses >= 0.8
    if field_name == "reference" and not strong:
        return p.devices >= 0.5 or p.namelike >= 0.5
    return True


def plan_columns(
    header: list[str],
    rows: Sequence[Sequence[str]],
    source: str,
    column_map: dict[str, str] | None = None,
    *,
    preamble: int = 0,
) -> ColumnPlan:
    """Decide every column's role; refuse a file whose point-name column cannot be decided."""
    spellings = header_spellings()
    folded = [fold_header(h) for h in header]
    columns: dict[str, int] = {}
    how: dict[str, str] = {}
    for canonical, file_header in (column_map or {}).items():
        if canonical not in FIELDS:
            raise IngestError(
                f"--columns names the field '{canonical}', which is not one of: " + ", ".join(FIELDS),
                source=source,
            )
        if fold_header(file_header) not in folded:
            raise IngestError(
                f"column mapping names '{file_header}', which is not in the header", source=source
            )
        columns[canonical] = folded.index(fold_header(file_header))
        how[canonical] = "--columns"
    profiles = profile(header, rows)
    taken = set(columns.values())

    def claim(strength: int) -> None:
        for canonical in FIELDS:
            if canonical in columns:
                continue
            # Earlier spellings are the better names for the field (Object Name > Name); a
            # column with values beats an empty one (Description empty, Libellé filled).
            fitting = [
                i
                for spelling in spellings[canonical][0 if strength == 0 else 1]
                for i, f in enumerate(folded)
                if f == fold_header(spelling)
                and i not in taken
                and _fits(canonical, profiles[i], strong=strength == 0)
            ]
            if fitting:
                chosen = next((i for i in fitting if profiles[i].filled > 0), fitting[0])
                columns[canonical] = chosen
                how[canonical] = "header"
                taken.add(chosen)

    claim(0)
    claim(1)
    # Columns no header named: what their values are.
    for p in profiles:
        if p.index in taken or p.filled == 0:
            continue
        if "value" not in columns and p.values >= 0.8 and p.numbers < 0.95 and p.namelike < 0.5:
            columns["value"], how["value"] = p.index, "values"
            taken.add(p.index)
        elif "writable" not in columns and p.priority_lists >= 0.5 and p.writables >= 0.9:
            columns["writable"], how["writable"] = p.index, "values"
            taken.add(p.index)
        elif "reference" not in columns and p.devices >= 0.6:
            columns["reference"], how["reference"] = p.index, "values"
            taken.add(p.index)
    if "name" not in columns:
        _name_from_values(profiles, taken, header, source, columns, how)
    # Other columns that name the point (Niagara's Target Name beside Object Name): used
    # on a row whose name cell is empty.
    strong, weak = spellings["name"]
    notes: list[str] = []
    if "modbus_register" in columns and "modbus_unit" not in columns:
        notes.append("no Modbus unit id column: unit id 1 is assumed for every register")
    name_fallbacks = tuple(
        p.index
        for p in profiles
        if p.index not in taken and folded[p.index] in {*strong, *weak} and _fits("name", p, strong=False)
    )
    # Where object types come from when no column names them: a reference or slot column.
    type_sources: list[int] = []
    if "object_type" not in columns:
        ref = columns.get("reference")
        if ref is not None and profiles[ref].object_types >= 0.5:
            type_sources.append(ref)
            how["_types"] = "reference"
        else:
            slot = [p for p in profiles if p.slots >= 0.6 and p.index != columns.get("name")]
            if slot:
                type_sources.append(slot[0].index)
                how["_types"] = "slot"
                taken.add(slot[0].index)
            else:
                other = [
                    p for p in profiles if p.index not in taken and p.object_types >= 0.8 and p.filled > 0
                ]
                if other:
                    type_sources.append(other[0].index)
                    how["_types"] = "values"
                    taken.add(other[0].index)
    writable_types: int | None = None
    if "writable" not in columns:
        typed = [p for p in profiles if p.writable_types >= 0.8]
        if typed:
            writable_types = typed[0].index
            how["_writable_types"] = "from the component type"
    writable = columns.get("writable")
    escaped = frozenset(p.index for p in profiles if p.escapes >= 0.2)
    if "description" not in columns and name_fallbacks:
        # A second column naming the point (Niagara's Target Name, a display name beside the
        # object name) is the words the agent reads beside the name.
        columns["description"], how["description"] = name_fallbacks[0], "a second name column"
        taken.add(name_fallbacks[0])
    used = taken | set(type_sources) | ({writable_types} if writable_types is not None else set())
    unused = tuple(p.index for p in profiles if p.index not in used)
    return ColumnPlan(
        header=header,
        columns=columns,
        how=how,
        escaped=escaped,
        type_sources=tuple(type_sources),
        writable_is_priority_list=writable is not None and profiles[writable].priority_lists > 0,
        writable_types=writable_types,
        unused=unused,
        preamble=preamble,
        name_fallbacks=name_fallbacks,
        notes=tuple(notes),
    )


def _name_from_values(
    profiles: list[ColumnProfile],
    taken: set[int],
    header: list[str],
    source: str,
    columns: dict[str, int],
    how: dict[str, str],
) -> None:
    """No header says which column holds the names: the one whose values look like names."""

    def score(p: ColumnProfile) -> float:
        return p.namelike + 0.5 * p.distinct - 0.6 * p.prose + 0.2 * p.filled

    candidates = [
        p
        for p in profiles
        if p.index not in taken
        and p.filled >= 0.5
        and p.namelike >= 0.7
        and p.slots < 0.5
        and p.distinct >= 0.3
    ]
    candidates.sort(key=lambda p: -score(p))
    shown = ", ".join(repr(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
    if not candidates:
        raise IngestError(
            f"no point-name column: no header names one ('Name', 'Object Name', 'Nom'...) and no "
            f"column's values look like point names (header is {shown}); choose one with "
            f"--columns name=COLUMN",
            source=source,
            row=1,
            field="name",
        )
    if len(candidates) > 1 and score(candidates[0]) - score(candidates[1]) < 0.15:
        names = " or ".join(repr(header[p.index]) for p in candidates[:3])
        raise IngestError(
            f"cannot tell which column holds the point names: {names}; choose one with "
            f"--columns name=COLUMN (API: columns=name=COLUMN)",
            source=source,
            row=1,
            field="name",
        )
    columns["name"], how["name"] = candidates[0].index, "values"
    taken.add(candidates[0].index)


def parse_column_map(text: str | None) -> dict[str, str] | None:
    """``name=Object Name,unit=Eng Units`` -> {"name": "Object Name", "unit": "Eng Units"}."""
    if not text or not text.strip():
        return None
    mapping = {}
    for part in text.split(","):
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise IngestError(f"column mapping '{part.strip()[:60]}' is not field=COLUMN", source="--columns")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def has_name_header(header: list[str], column_map: dict[str, str] | None = None) -> bool:
    """Whether a header row names a point-name column (used to find the sheet of a workbook)."""
    if column_map and "name" in column_map:
        return fold_header(column_map["name"]) in {fold_header(h) for h in header}
    strong, weak = header_spellings()["name"]
    names = {"name", *strong, *weak}
    return any(fold_header(h) in names for h in header)
