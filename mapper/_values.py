"""Reading the cells of vendor exports: present values with units and status flags, BACnet
object types inside references and slot names, writability lists, Niagara escapes.

Each function takes one cell's text and returns what it says, or an empty answer when the
text is not of that kind; none of them raises on odd input (a value column mixing numbers,
states and errors never breaks a row).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ontology import UnitTable

#: BACnet object types by every spelling exports use, to the BACnet enumeration text.
_OBJECT_TYPES: dict[str, str] = {
    "ai": "analog-input",
    "ao": "analog-output",
    "av": "analog-value",
    "bi": "binary-input",
    "bo": "binary-output",
    "bv": "binary-value",
    "mi": "multi-state-input",
    "mo": "multi-state-output",
    "mv": "multi-state-value",
    "msi": "multi-state-input",
    "mso": "multi-state-output",
    "msv": "multi-state-value",
    "analoginput": "analog-input",
    "analogoutput": "analog-output",
    "analogvalue": "analog-value",
    "binaryinput": "binary-input",
    "binaryoutput": "binary-output",
    "binaryvalue": "binary-value",
    "multistateinput": "multi-state-input",
    "multistateoutput": "multi-state-output",
    "multistatevalue": "multi-state-value",
    # Other BACnet point-like objects exports list beside the classic nine.
    "integervalue": "integer-value",
    "positiveintegervalue": "positive-integer-value",
    "largeanalogvalue": "large-analog-value",
    "characterstringvalue": "characterstring-value",
    "accumulator": "accumulator",
    "pulseconverter": "pulse-converter",
    "loop": "loop",
}
#: Short codes found glued to an instance number (``AI10``, ``AV-12``): the nine point types
#: only, so that words such as ``LOOP3`` or ``BO`` alone are not taken for object ids.
_SHORT = ("msi", "mso", "msv", "ai", "ao", "av", "bi", "bo", "bv", "mi", "mo", "mv")
#: ``1000.AI10`` (Delta), ``AV-12``, ``AV:12``, ``AV 12``, ``AI_3``: a short code and instance.
_SHORT_ID = re.compile(r"(?:^|[^A-Za-z0-9])(" + "|".join(_SHORT) + r")[\s:_-]?(\d+)$", re.IGNORECASE)
#: ``//Site/1000.AI10``: device number, type code, instance (Delta object references).
_DEVICE_OBJECT = re.compile(r"(?:^|[/\\:\s])(\d+)\.(" + "|".join(_SHORT) + r")(\d+)\s*$", re.IGNORECASE)
#: ``analogValue_3``, ``analog-value:12``, ``Analog Value 4``, ``analog-input,3``, ``binaryValue0``.
_LONG_ID = re.compile(
    r"^\s*(analog|binary|multi[\s_-]?state)[\s_-]?(input|output|value)(?:[\s:,_#-]*(\d+))?\s*$",
    re.IGNORECASE,
)
#: A type code named as a word inside a longer text (``Bacnet Ai Export``, ``N2 AI``).
_WORD_CODE = re.compile(r"(?:^|[^A-Za-z])(" + "|".join(_SHORT) + r")(?:[^A-Za-z]|$)", re.IGNORECASE)

_NIAGARA_ESCAPE = re.compile(r"\$(?:u([0-9a-fA-F]{4})|([0-9a-fA-F]{2}))")
_STATUS_FLAGS = re.compile(r"\{([^{}]*)\}")
#: Niagara's active priority level after the value: ``@ 10``, or ``@ def`` (the default).
_PRIORITY_SUFFIX = re.compile(r"@\s*(\d{1,2}|def)\s*$", re.IGNORECASE)
#: A number with a decimal comma or point, optional sign and thousands separators.
_NUMBER = re.compile(r"^([+-]?(?:\d{1,3}(?:[\s\u00a0\u202f']\d{3})+|\d+)(?:[.,]\d+)?(?:[eE][+-]?\d+)?)(.*)$")
_NUMBER_DOT_THOUSANDS = re.compile(r"^([+-]?\d{1,3}(?:,\d{3})+\.\d+)(.*)$")
_MISSING = {
    "",
    "nan",
    "null",
    "none",
    "n/a",
    "na",
    "-",
    "--",
    "---",
    "?",
    "??",
    "#####",
    "****",
    "inf",
    "-inf",
}
#: Words a binary present value is shown with, by export language.
BINARY_STATES = frozenset(
    {
        "active", "inactive", "on", "off", "true", "false", "open", "closed", "close", "start", "stop",
        "run", "running", "stopped", "enabled", "disabled", "enable", "disable", "alarm", "normal",
        "occupied", "unoccupied", "yes", "no", "high", "low", "fault", "ok",
        "actif", "inactif", "marche", "arret", "ouvert", "ferme", "oui", "non", "vrai", "faux",
        "alarme", "defaut", "occupe", "inoccupe", "en marche", "a l'arret", "autorise", "interdit",
    }
)  # fmt: skip
#: Units are short; a longer trailing text after a number is a state (``2 Auto``).
_MAX_UNIT = 12


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lowercase, without accents: how words from exports are compared."""
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def unescape_niagara(text: str) -> str:
    """Niagara slot names escape characters as ``$20`` (one byte) or ``$u00e9`` (Unicode)."""

    def one(m: re.Match[str]) -> str:
        code = int(m.group(1) or m.group(2), 16)
        ch = chr(code)
        return ch if ch.isprintable() else " "

    return _NIAGARA_ESCAPE.sub(one, text)


def has_niagara_escapes(text: str) -> bool:
    return bool(_NIAGARA_ESCAPE.search(text)) and " " not in text.strip()


@dataclass(frozen=True)
class ObjectId:
    """A BACnet object type (enumeration text) and, where the text gives them, the instance
    and the device number."""

    object_type: str
    instance: int | None = None
    device: int | None = None


_WORDS = re.compile(r"[^0-9a-z]+")


def _words(text: str) -> str:
    return _WORDS.sub(" ", fold(text)).strip()


@lru_cache(maxsize=1)
def _type_names() -> tuple[dict[str, str], dict[str, bool]]:
    """Object-type names and writable component types, from ``data/object_types.toml``."""
    data = tomllib.loads((resources.files("mapper") / "data" / "object_types.toml").read_text("utf-8"))
    names = {_words(k): str(v) for k, v in data.get("names", {}).items()}
    writable = {_words(k): bool(v) for k, v in data.get("writable", {}).items()}
    return names, writable


@lru_cache(maxsize=1)
def _type_pattern() -> re.Pattern[str]:
    names = sorted(_type_names()[0], key=len, reverse=True)
    return re.compile(r"(?<![0-9a-z])(" + "|".join(re.escape(n) for n in names) + r")(?![0-9a-z])")


def _named_type(text: str) -> str | None:
    """An object type named in words (``Entrée analogique``, ``Bacnet Analog Value
    Prioritized Descriptor``): the whole cell, else the longest name inside it."""
    names = _type_names()[0]
    key = _words(text)
    if key in names:
        return names[key]
    found = [m.group(1) for m in _type_pattern().finditer(key)]
    return names[max(found, key=len)] if found else None


def type_writability(text: str) -> bool | None:
    """Whether a component type says the point can be written (Niagara ``Numeric Writable``
    yes, ``Numeric Point`` no); None when the type says nothing about it."""
    key = _words(text)
    table = _type_names()[1]
    if key in table:
        return table[key]
    padded = f" {key} "
    found = [(len(name), value) for name, value in table.items() if f" {name} " in padded]
    return max(found)[1] if found else None


@lru_cache(maxsize=65536)
def object_id(text: str) -> ObjectId | None:
    """The BACnet object a cell names: ``analog-input``, ``AI``, ``AV-12``, ``analogValue_3``,
    ``analog-value:12``, ``//Site/1000.AI10``, ``Entrée analogique``, ``Bacnet Ai Export``;
    None if it names none."""
    t = text.strip().strip("'\"")
    if not t or len(t) > 300:
        return None
    m = _DEVICE_OBJECT.search(t)
    if m:
        return ObjectId(_OBJECT_TYPES[m.group(2).lower()], int(m.group(3)), int(m.group(1)))
    m = _LONG_ID.match(t)
    if m:
        kind = re.sub(r"[\s_-]", "", (m.group(1) + m.group(2)).lower())
        return ObjectId(_OBJECT_TYPES[kind], int(m.group(3)) if m.group(3) else None)
    key = re.sub(r"[\s_-]", "", t.lower())
    if key in _OBJECT_TYPES:
        return ObjectId(_OBJECT_TYPES[key])
    m = _SHORT_ID.search(t)
    if m and (m.start(1) == 0 or len(t) - m.start(1) <= 12):
        return ObjectId(_OBJECT_TYPES[m.group(1).lower()], int(m.group(2)))
    named = _named_type(t)
    return ObjectId(named) if named else None


def object_type_word(text: str) -> str | None:
    """A type code named as a word in a longer text: ``Bacnet Ai Export`` -> analog-input."""
    found = {_OBJECT_TYPES[m.group(1).lower()] for m in _WORD_CODE.finditer(text)}
    return found.pop() if len(found) == 1 else None


def parse_number(text: str) -> float | None:
    """``264,22``, ``-1.06``, ``1 234,5``, ``1,234.5``, ``'12``: the number, else None."""
    value = _split_number(text)
    return value[0] if value and not value[1].strip() else None


def _split_number(text: str) -> tuple[float, str] | None:
    t = text.strip().lstrip("'").strip()
    m = _NUMBER_DOT_THOUSANDS.match(t)
    if m:
        number = m.group(1).replace(",", "")
    else:
        m = _NUMBER.match(t)
        if not m:
            return None
        number = re.sub(r"[\s\u00a0\u202f']", "", m.group(1)).replace(",", ".")
    try:
        value = float(number)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value, m.group(2)


@lru_cache(maxsize=1)
def _units() -> UnitTable:
    return UnitTable()


@dataclass(frozen=True)
class PresentValue:
    """What a value cell says: ``"264,22 kW {ok} @ 10"`` -> 264.22, kW, ok, priority 10."""

    text: str = ""  # the value as a number ("264.22") or state ("inactive"); "" if none
    unit: str = ""
    status: str = ""  # the flags in braces, comma-separated ("ok", "fault,down")
    kind: str = ""  # analog | binary | multistate | "" (nothing readable)
    priority: int | None = None
    #: The cell says there is no value (``nan``, ``#####``, ``-``): still a value cell.
    missing: bool = False

    @property
    def readable(self) -> bool:
        return bool(self.kind or self.status or self.missing)


@lru_cache(maxsize=65536)
def parse_value(text: str) -> PresentValue:
    """A present value as exports print it, with decimal commas, units, status flags in
    braces and the active priority after ``@``. Never raises."""
    t = text.strip()
    if len(t) > 200:
        return PresentValue()
    status = ",".join(
        s.strip().lower() for m in _STATUS_FLAGS.finditer(t) for s in m.group(1).split(",") if s.strip()
    )
    t = _STATUS_FLAGS.sub(" ", t)
    priority = None
    m = _PRIORITY_SUFFIX.search(t)
    if m:
        priority = int(m.group(1)) if m.group(1).isdigit() else None
        t = t[: m.start()]
    t = t.strip().strip("'\"").strip()
    if fold(t) in _MISSING:
        return PresentValue(status=status, priority=priority, missing=bool(t))
    number = _split_number(t)
    if number is not None:
        value, rest = number
        rest = rest.strip()
        shown = format(value, ".15g")  # 1 284 553,2 -> "1284553.2", never 1.28455e+06
        if not rest:
            return PresentValue(shown, "", status, "analog", priority)
        if _units().lookup(rest) is not None or (
            len(rest) <= _MAX_UNIT and not re.search(r"[^\W\d_]{4,}", rest.strip("()"))
        ):
            return PresentValue(shown, rest, status, "analog", priority)
        # "2 Auto", "1 (Occupé)": a multi-state value with its state text.
        return PresentValue(shown, "", status, "multistate", priority)
    key = fold(t)
    if key in BINARY_STATES:
        return PresentValue(key, "", status, "binary", priority)
    if re.fullmatch(r"[^\W\d_][\w\s'()/-]{0,40}", t):
        return PresentValue(t, "", status, "multistate", priority)
    return PresentValue(status=status, priority=priority)


_TRUE = {
    "true", "yes", "y", "1", "w", "rw", "r/w", "x", "oui", "o", "vrai", "writable", "writeable",
    "commandable", "settable", "read/write", "read write", "readwrite", "lecture/ecriture",
    "lecture ecriture", "l/e", "le", "ecriture", "modifiable", "commandable oui",
}  # fmt: skip
_FALSE = {
    "false", "no", "n", "0", "r", "ro", "non", "faux", "read", "read-only", "read only", "readonly",
    "lecture", "lecture seule", "l", "not writable", "non modifiable",
}  # fmt: skip
_PRIORITY_LIST = re.compile(
    r"^(?:(?:in|p|priority|priorite)\s*)?\d{1,2}(?:\s*[,;/ ]\s*(?:(?:in|p)\s*)?\d{1,2})*$"
)


@dataclass(frozen=True)
class Writability:
    writable: bool | None
    #: Writable priority levels a list names (``in8,in10`` -> (8, 10)).
    priorities: tuple[int, ...] = ()


def parse_writable(text: str) -> Writability | None:
    """``yes``/``no`` in English or French, ``R/W``, or a list of writable priority levels
    (Niagara's ``in8,in10``); None when the text says none of these."""
    key = fold(text).strip()
    if not key:
        return Writability(None)
    if key in _TRUE:
        return Writability(True)
    if key in _FALSE:
        return Writability(False)
    if _PRIORITY_LIST.match(key):
        levels = tuple(int(n) for n in re.findall(r"\d+", key))
        if all(1 <= n <= 16 for n in levels):
            return Writability(True, levels)
    return None


def looks_like_priority_list(text: str) -> bool:
    key = fold(text).strip()
    return bool(key) and bool(_PRIORITY_LIST.match(key)) and not key.isdigit()


@dataclass(frozen=True)
class Facets:
    unit: str = ""
    kind: str = ""


def parse_facets(text: str) -> Facets:
    """Niagara facets: ``units=°F,precision=1`` gives the unit, ``trueText=On,falseText=Off``
    a binary point, ``range={...}`` a multi-state one."""
    found: dict[str, str] = {}
    for part in re.split(r",(?![^{]*\})", text):
        key, sep, value = part.partition("=")
        if sep:
            found[key.strip().lower()] = value.strip()
    unit = found.get("units") or found.get("unit") or ""
    if unit.lower() in ("null", "none", "(null)"):
        unit = ""
    kind = "binary" if "truetext" in found or "falsetext" in found else ""
    if "range" in found:
        kind = "multistate"
    return Facets(unit, kind)
