"""Understanding BMS point names: tokens, equipment and locations, abbreviation expansion."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import LabelingError
from mapper import EquipmentRef, LocationRef

_ORDINAL = re.compile(r"^(\d{1,3})(?:st|nd|rd|th|e|er|eme|ere)$")
_DELIMS = re.compile(r"[^0-9A-Za-zÀ-ÖØ-öø-ÿĀ-ž.]+|\.{2,}|(?<![0-9])\.|\.(?![0-9])")
_CAMEL = re.compile(r"(?<=[a-zà-ÿ])(?=[A-ZÀ-Ý])|(?<=[A-ZÀ-Ý])(?=[A-ZÀ-Ý][a-zà-ÿ]{2,})")
_ALNUM = re.compile(r"[0-9]+(?:\.[0-9]+|(?:st|nd|rd|th)(?![a-z]))?|[^0-9]+", re.IGNORECASE)
_DIGITS = re.compile(r"^[0-9]+(?:\.[0-9]+|st|nd|rd|th)?$", re.IGNORECASE)
_MAX_NAME = 512


@dataclass(frozen=True)
class Knowledge:
    """The abbreviation knowledge base: shipped file plus optional site files on top."""

    version: str
    tokens: dict[str, tuple[str, ...]]
    phrases: dict[tuple[str, ...], tuple[str, ...]]
    equipment: dict[str, str]
    locations: dict[str, str]
    implicit: frozenset[str]
    kind_hints: dict[str, str] = field(default_factory=dict)
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)
    related: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: dict[str, tuple[str, ...]] = field(default_factory=dict)
    compose_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    compose_suffixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Tags that say which stream or place a reading is about; multi-tag [defaults] need none.
    qualifiers: frozenset[str] = frozenset()
    max_phrase: int = 3

    #: Words that number what follows (No.3A, N° 12): part of an identifier before a digit.
    numbering: frozenset[str] = frozenset()
    #: Tag -> tags a modulating (analog) or a two-state (binary) point about it also says.
    analog: dict[str, tuple[str, ...]] = field(default_factory=dict)
    binary: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Languages whose vocabulary files were loaded (``fr``...), in load order.
    languages: tuple[str, ...] = ()
    #: Words a language file means otherwise than the base file (not declared in its
    #: ``[overrides]``): (language, word, base meaning, its meaning). They apply only to
    #: names in that language (``for_language``).
    conflicts: tuple[tuple[str, str, str, str], ...] = ()
    #: Language -> section -> word -> its meaning in that language.
    meanings: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    #: Language ("" = base) -> the words only its vocabulary has.
    exclusive: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, *site_files: Path, languages: Sequence[str] | None = None) -> Knowledge:
        """The shipped base file, then every language file in ``data/languages/`` (or only
        those named in ``languages``), then the site files, each on top of the last."""
        data_dir = resources.files("agent") / "data"
        data = tomllib.loads((data_dir / "abbreviations.toml").read_text("utf-8"))
        base = {
            section: {_key(k): (section, str(v)) for k, v in data.get(section, {}).items()}
            for section in _OWN_SECTIONS
        }
        base_meaning = {k: m for section in base.values() for k, m in section.items()}
        loaded: list[str] = []
        conflicts: list[tuple[str, str, str, str]] = []
        meanings: dict[str, dict[str, dict[str, str]]] = {}
        language_keys: dict[str, set[str]] = {}
        language_files = sorted(
            (f for f in (data_dir / "languages").iterdir() if f.name.endswith(".toml")),
            key=lambda f: f.name,
        )
        for entry in language_files:
            extra = tomllib.loads(entry.read_text("utf-8"))
            code = str(extra.get("language", entry.name.removesuffix(".toml")))
            if languages is not None and code not in languages:
                continue
            allowed = {_key(k) for k in extra.get("overrides", {}).get("tokens", [])}
            own: dict[str, dict[str, str]] = {}
            for section in _OWN_SECTIONS:
                entries = dict(extra.get(section, {}))
                for k, v in list(entries.items()):
                    key = _key(k)
                    meaning = base_meaning.get(key)
                    if meaning is not None and meaning != (section, str(v)) and key not in allowed:
                        # Another meaning than the base file's (CH: chiller in English
                        # names, chambre in French ones): used for names in this language.
                        conflicts.append((code, key, f"{meaning[0]}:{meaning[1]}", f"{section}:{v}"))
                        own.setdefault(section, {})[key] = str(v)
                        del entries[k]
                extra[section] = entries
            # [own.<section>]: meanings for names in this language only, conflict or not.
            for section, entries in extra.get("own", {}).items():
                if section in _OWN_SECTIONS:
                    own.setdefault(section, {}).update({_key(k): str(v) for k, v in entries.items()})
            keys = {_key(k) for section in _OWN_SECTIONS for k in extra.get(section, {})}
            keys |= {_key(w) for phrase in extra.get("phrases", {}) for w in phrase.split()}
            language_keys[code] = keys | {k for section in own.values() for k in section}
            meanings[code] = own
            _merge(data, extra)
            loaded.append(code)
        if languages is not None and (missing := set(languages) - set(loaded)):
            raise LabelingError(f"no vocabulary file for language(s) {', '.join(sorted(missing))}")
        for path in site_files:
            try:
                extra = tomllib.loads(Path(path).read_text("utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise LabelingError(f"{path}: cannot read abbreviation file: {exc}") from exc
            _merge(data, extra)
        tokens = {_key(k): tuple(str(v).split()) for k, v in data.get("tokens", {}).items()}
        phrases = {
            tuple(_key(w) for w in k.split()): tuple(str(v).split())
            for k, v in data.get("phrases", {}).items()
        }
        return cls(
            version=str(data.get("version", "0")),
            tokens=tokens,
            phrases=phrases,
            equipment={_key(k): str(v) for k, v in data.get("equipment", {}).items()},
            locations={_key(k): str(v) for k, v in data.get("locations", {}).items()},
            implicit=frozenset(data.get("implicit", {}).get("tags", [])),
            kind_hints={str(k): str(v) for k, v in data.get("kind_hints", {}).items()},
            context={_key(k): tuple(str(v).split()) for k, v in data.get("context", {}).items()},
            related={str(k): tuple(str(v).split()) for k, v in data.get("related", {}).items()},
            defaults={str(k): tuple(str(v).split()) for k, v in data.get("defaults", {}).items()},
            compose_prefixes={
                _key(k): tuple(str(v).split()) for k, v in data.get("compose", {}).get("prefixes", {}).items()
            },
            compose_suffixes={
                _key(k): tuple(str(v).split()) for k, v in data.get("compose", {}).get("suffixes", {}).items()
            },
            qualifiers=frozenset(data.get("qualifiers", {}).get("tags", [])),
            numbering=frozenset(_key(w) for w in data.get("numbering", {}).get("words", [])),
            analog={str(k): tuple(str(v).split()) for k, v in data.get("analog", {}).items()},
            binary={str(k): tuple(str(v).split()) for k, v in data.get("binary", {}).items()},
            max_phrase=max((len(k) for k in phrases), default=1),
            languages=tuple(loaded),
            conflicts=tuple(conflicts),
            meanings=meanings,
            exclusive=_exclusive(set(base_meaning), language_keys),
        )

    def for_language(self, code: str | None) -> Knowledge:
        """This knowledge as names in ``code`` read it: the language's own meanings of words
        the base file gives another (``ch``: a chiller in English, a room in French)."""
        own = self.meanings.get(code or "")
        if not own:
            return self
        tokens, equipment, locations = dict(self.tokens), dict(self.equipment), dict(self.locations)
        for key, value in own.get("tokens", {}).items():
            tokens[key] = tuple(value.split())
            equipment.pop(key, None)
            locations.pop(key, None)
        for key, value in own.get("equipment", {}).items():
            equipment[key] = value
            locations.pop(key, None)
        for key, value in own.get("locations", {}).items():
            locations[key] = value
            equipment.pop(key, None)
        return replace(self, tokens=tokens, equipment=equipment, locations=locations, meanings={})

    def detect_language(self, names: Iterable[str], sample: int = 3000) -> str | None:
        """The language a point list is written in: the one whose own words (four letters or
        more, found in no other vocabulary) appear in a fifth of its names or more, and in
        more names than English words do. None for the base language (English) or when
        nothing says: abbreviations (VAV, OCC, T) are shared by every language."""
        distinct = list(dict.fromkeys(names))[:sample]
        votes: Counter[str] = Counter()
        for name in distinct:
            keys = {k for k in (_key(t) for t in tokenize(name)) if len(k) >= 4}
            for code, words in self.exclusive.items():
                if keys & words:
                    votes[code] += 1
        best = max((c for c in votes if c), key=lambda c: votes[c], default=None)
        if best is None or votes[best] < 0.2 * len(distinct) or votes[best] <= votes.get("", 0):
            return None
        return best


#: Sections whose entries a language may mean otherwise than the base file.
_OWN_SECTIONS = ("tokens", "equipment", "locations")


def _exclusive(base_keys: set[str], language_keys: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Words only one vocabulary has (``""`` = the base file): what tells a language."""
    out = {"": frozenset(base_keys - {k for keys in language_keys.values() for k in keys})}
    for code, keys in language_keys.items():
        others = set(base_keys).union(*(k for c, k in language_keys.items() if c != code))
        out[code] = frozenset(k for k in keys - others if len(k) > 1)
    return out


_SECTIONS = (
    "tokens", "phrases", "equipment", "locations", "kind_hints", "context", "related", "defaults",
    "analog", "binary",
)  # fmt: skip


def _merge(data: dict[str, Any], extra: dict[str, Any]) -> None:
    """Lay one knowledge file over another: entries add or replace; lists replace."""
    for section in _SECTIONS:
        data.setdefault(section, {}).update(extra.get(section, {}))
    for part in ("prefixes", "suffixes"):
        data.setdefault("compose", {}).setdefault(part, {}).update(extra.get("compose", {}).get(part, {}))
    for section in ("implicit", "qualifiers"):
        if section in extra:
            data[section] = extra[section]
    if "numbering" in extra:
        words = {*data.get("numbering", {}).get("words", []), *extra["numbering"].get("words", [])}
        data["numbering"] = {"words": sorted(words)}


def _key(text: str) -> str:
    """How tokens and knowledge keys compare: without case or accents (``État`` = ``etat``)."""
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


@dataclass(frozen=True)
class ParsedName:
    """A point name taken apart."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]  # Brick tags from expanded tokens, in order
    unknown: tuple[str, ...]  # tokens the knowledge base does not know
    equipment: EquipmentRef | None = None
    locations: tuple[LocationRef, ...] = ()
    context: tuple[str, ...] = ()  # tags the surroundings imply (a VAV's flow is supply flow)
    #: Tags from words outside the point function (the equipment or place it sits in).
    around: tuple[str, ...] = ()
    #: Unknown words inside the point function (the ones that may still be Brick tags).
    unknown_inside: tuple[str, ...] = ()
    signature: str = ""  # the point function alone: what repeats on every piece of equipment
    expansions: tuple[tuple[str, str], ...] = field(default=())  # (token, tags) for reasons


_HEX_ESCAPE = re.compile(r"~([0-9a-fA-F]{2})")
#: Ordinals in French and English (1ER, 2E, 3ÈME, 2nd): one identifier token, like 1st.
_ORDINAL = re.compile(
    r"(?<![0-9A-Za-z])([0-9]+)(?:er|re|ère|ere|e|ème|eme|è|st|nd|rd|th)(?![A-Za-zÀ-ÿ])", re.IGNORECASE
)
#: Units glued in names, kept whole (a camelCase split would make "kW" "k W").
_UNIT_WORDS = re.compile(r"(?<![A-Za-z])(kW|kWh|MWh|kVA|kVAr|kvar|MW|mA|kPa|hPa|mbar)(?![a-z])")


def _normalise(text: str) -> str:
    """Compatibility forms folded (CO² -> CO2, ﬁ -> fi), Δ read as a word, controls dropped."""
    text = unicodedata.normalize("NFKC", text).replace("Δ", " delta ").replace("∆", " delta ")
    text = _ORDINAL.sub(lambda m: f"{m.group(1)}th", text)
    text = _UNIT_WORDS.sub(lambda m: m.group(1).lower(), text)
    return "".join(ch if ch.isprintable() else " " for ch in text)


def unescape(name: str) -> str:
    """Decode ``~2d``-style hex escapes that Haystack and some exports leave in names."""
    return _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name)


def tokenize(name: str, keep: frozenset[str] = frozenset()) -> list[str]:
    """Split on delimiters, camelCase and digit runs: ``EBU3B.RM-4144..ZN-T`` ->
    ``EBU 3 B RM 4144 ZN T``. Pieces in ``keep`` (``co2``, ``pm2.5``) stay whole."""
    text = _normalise(unescape(name[:_MAX_NAME]))
    out: list[str] = []
    for part in _DELIMS.split(text):
        if not part:
            continue
        if part.lower() in keep:
            out.append(part)
            continue
        for piece in _CAMEL.split(part):
            if piece.lower() in keep:
                out.append(piece)
                continue
            glued = _glued_keep(piece, keep)
            if glued:
                out.extend(glued)
                continue
            out.extend(m.group(0) for m in _ALNUM.finditer(piece) if m.group(0).strip("."))
    return out


def _glued_keep(piece: str, keep: frozenset[str]) -> list[str] | None:
    """``ZCO2`` -> ``Z CO2``: letters glued to a kept token that has digits in it."""
    if not piece[-1:].isalnum() or piece.isalpha() or piece.isdigit():
        return None
    low = piece.lower()
    for k in _with_digits(keep):
        if len(low) > len(k) and low.endswith(k):
            head = piece[: -len(k)]
            if head.isalpha():
                return [head, piece[-len(k) :]]
    return None


@lru_cache(maxsize=8)
def _with_digits(keep: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted((k for k in keep if any(c.isdigit() for c in k)), key=lambda k: (-len(k), k)))


_STRONG = re.compile(r"/|\\|:|\.{2,}|_{2,}|\s-\s")
#: A slash joining two short words (M/A, O/F, DEM/ARR, S/S) pairs them; it is no path.
_SHORT_SLASH = re.compile(r"(?<![0-9A-Za-zÀ-ÿ])([A-Za-zÀ-ÿ]{1,3})/([A-Za-zÀ-ÿ]{1,3})(?![0-9A-Za-zÀ-ÿ])")


def point_signature(
    name: str,
    keep: frozenset[str] = frozenset(),
    known: Callable[[str], bool] | None = None,
    numbering: frozenset[str] = frozenset(),
) -> str:
    """The part of a name that says what the point is, without equipment or location.

    Vendors put the point function last: after the last strong separator (``/``, ``:``,
    ``__``, ``..``), else after the last token carrying a number (``421_U10_CLG_VLV``).
    """
    text = _SHORT_SLASH.sub(r"\1 \2", _normalise(unescape(name[:_MAX_NAME])))
    segments = [s for s in _STRONG.split(text) if any(c.isalpha() for c in s)]
    tail = segments[-1] if segments else name
    tokens = _without_numbering(tokenize(tail, keep), numbering)
    last_id = -1
    for i, tok in enumerate(tokens):
        if _DIGITS.match(tok) and tok.lower() not in keep:
            last_id = i
    after = [t for t in tokens[last_id + 1 :] if not _DIGITS.match(t)]
    # A one-letter piece right after an identifier number is usually part of it (R342A).
    if last_id >= 0 and after and len(after[0]) == 1 and len(after) > 1:
        after = after[1:]
    words = [t for t in tokens if not _DIGITS.match(t)]
    if len(after) == 1 and len(after[0]) == 1 and re.search(r"[0-9][A-Za-z]\W*$", tail):
        after = []  # No.3A: the letter ends the identifier; the function is before it
    if not after:
        # Nothing after the last identifier: the function is the run of words between
        # numbers that says most (operatingMode1st Floor VAS1, RMI516 Zone Temp 2), the
        # first one on a tie.
        runs: list[list[str]] = [[]]
        for tok in tokens:
            if _DIGITS.match(tok) and tok.lower() not in keep:
                runs.append([])
            else:
                runs[-1].append(tok)
        runs = [r for r in runs if r]

        def says(run: list[str]) -> int:
            return sum(1 for t in run if known(_key(t))) if known else 0

        after = max(runs, key=says) if runs else words
    elif sum(len(t) for t in after) < 2:
        # A lone letter says too little (AHU2-OCC-C): keep the word before it too.
        after = words[-2:]
    return " ".join(_key(t) for t in after)


def _without_numbering(tokens: list[str], numbering: frozenset[str]) -> list[str]:
    """``No.3A``, ``N° 12``, ``#4``: a numbering word before a number is part of the
    identifier, not a word of the point function."""
    return [
        t
        for i, t in enumerate(tokens)
        if not (_key(t) in numbering and i + 1 < len(tokens) and _DIGITS.match(tokens[i + 1]))
    ]


def _separators(text: str, tokens: list[str]) -> list[str | None]:
    """For each token, what stands between it and the previous one in the name (``""`` for
    ``03A``, ``" "`` for ``1 M``, ``"-"`` for ``MTR-MAIN``); None where the text does not
    spell the token as such."""
    out: list[str | None] = []
    pos = 0
    for tok in tokens:
        at = text.find(tok, pos)
        if at < 0:
            out.append(None)
            continue
        out.append(text[pos:at])
        pos = at + len(tok)
    return out


def _span(keys: list[str], words: list[str]) -> tuple[int, int]:
    """Token positions of the signature's words (their last occurrence); all if not found."""
    n = len(words)
    if n:
        for begin in range(len(keys) - n, -1, -1):
            if keys[begin : begin + n] == words:
                return begin, begin + n
        # Digits inside the function (CO2 kept whole, or an id between its words): match
        # the first and last word instead.
        for begin in range(len(keys) - 1, -1, -1):
            if keys[begin] == words[0]:
                stop = next((j for j in range(len(keys) - 1, begin - 1, -1) if keys[j] == words[-1]), None)
                if stop is not None:
                    return begin, stop + 1
    return 0, len(keys)


class NameParser:
    """Turns names into Brick tags using the knowledge base; cached per distinct name."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.parse = lru_cache(maxsize=65536)(self._parse)
        self._keep = frozenset(
            k for k in knowledge.tokens if any(c.isdigit() for c in k) and any(c.isalpha() for c in k)
        )

    def _parse(self, name: str) -> ParsedName:
        kb = self.knowledge
        tokens = _without_numbering(tokenize(name, self._keep), kb.numbering)
        keys = [_key(t) for t in tokens]
        text = _normalise(unescape(name[:_MAX_NAME]))
        between = _separators(text, tokens)
        # Glued: nothing between (a token the text does not spell counts as glued);
        # hyphened: a single hyphen between.
        glued = [sep is None or sep == "" for sep in between]
        hyphened = [sep == "-" for sep in between]
        tags: list[str] = []
        unknown: list[str] = []
        expansions: list[tuple[str, str]] = []
        equipment: list[EquipmentRef] = []
        locations: list[LocationRef] = []
        context: list[str] = []
        for key in keys:
            context.extend(kb.context.get(key, ()))
        signature = point_signature(name, self._keep, self._says, kb.numbering)
        start, end = _span(keys, signature.split())
        #: Which token each tag came from: tags from outside the point function (the
        #: equipment or place it sits in: "HEATING UNIT-1 Discharge Air Temp") are context.
        owner: list[int] = []
        i = 0
        while i < len(keys):
            owner.extend([i - 1] * (len(tags) - len(owner)))
            ident = self._identifier(keys, tokens, i, glued, hyphened)
            if ident is not None:
                kind, cls, label, width = ident
                if kind == "equipment":
                    context.extend(kb.context.get(_key(cls), ()))
                    parent = equipment[-1] if equipment else None
                    equipment.append(EquipmentRef(brick_class=cls, name=label, parent=parent))
                else:
                    context.extend(kb.context.get(_key(cls), ()))
                    # A room named after a floor is in that floor (FL-2 RM-201).
                    floor = locations[-1] if locations and locations[-1].brick_class == "Floor" else None
                    locations.append(LocationRef(brick_class=cls, name=label, parent=floor))
                i += width
                continue
            phrase = self._phrase(keys, i)
            if phrase is not None:
                width, expansion = phrase
                tags.extend(expansion)
                expansions.append((" ".join(tokens[i : i + width]), " ".join(expansion)))
                i += width
                continue
            key = keys[i]
            if _DIGITS.match(key):
                i += 1
                continue
            if key in kb.tokens:
                expansion = kb.tokens[key]
                tags.extend(expansion)
                if expansion:
                    expansions.append((tokens[i], " ".join(expansion)))
            elif (composed := self._compose(key)) is not None:
                tags.extend(composed)
                expansions.append((tokens[i], " ".join(composed)))
            else:
                pieces = self._segment(key)
                if pieces:
                    for piece in pieces:
                        tags.extend(kb.tokens[piece])
                    expansions.append((tokens[i], " ".join(t for p in pieces for t in kb.tokens[p])))
                elif (word := self._word_before_code(key)) is not None:
                    # A whole word with a device code glued on (Temperaturedac, Humidityscc):
                    # the word counts, the code stays unknown.
                    tags.extend(kb.tokens[word])
                    expansions.append((tokens[i][: len(word)], " ".join(kb.tokens[word])))
                    unknown.append(tokens[i][len(word) :])
                elif (singular := self._singular(key)) is not None:
                    # A plural of a known word (VOLETS, registres, défauts).
                    tags.extend(kb.tokens[singular])
                    expansions.append((tokens[i], " ".join(kb.tokens[singular])))
                elif key in kb.equipment:
                    # An equipment word without a number (VAVActuatorPosition, "fancoil"):
                    # no equipment instance, but it says where the point sits.
                    context.extend(kb.context.get(key, ()))
                    context.extend(kb.context.get(_key(kb.equipment[key]), ()))
                    expansions.append((tokens[i], kb.equipment[key]))
                else:
                    unknown.append(tokens[i])
            i += 1
        owner.extend([len(keys) - 1] * (len(tags) - len(owner)))
        around = [t for t, at in zip(tags, owner, strict=True) if not start <= at < end]
        if around and len(around) < len(tags):
            tags = [t for t, at in zip(tags, owner, strict=True) if start <= at < end]
        else:
            around = []
        inside = {_key(t) for t in tokens[start:end]}
        return ParsedName(
            tokens=tuple(tokens),
            tags=tuple(tags),
            unknown=tuple(unknown),
            equipment=equipment[-1] if equipment else None,
            locations=tuple(locations),
            expansions=tuple(expansions),
            context=tuple(dict.fromkeys(context)),
            around=tuple(dict.fromkeys(around)),
            unknown_inside=tuple(t for t in unknown if _key(t) in inside),
            signature=signature,
        )

    def _says(self, key: str) -> bool:
        """Whether a token means something about the point (not an equipment or place)."""
        kb = self.knowledge
        if key in kb.equipment or key in kb.locations:
            return False
        return bool(kb.tokens.get(key)) or self._compose(key) is not None

    def _identifier(
        self, keys: list[str], tokens: list[str], i: int, glued: list[bool], hyphened: list[bool]
    ) -> tuple[str, str, str, int] | None:
        """Equipment or location prefix followed by a number: AHU-1, VAV 2-03, RM-4144; or an
        equipment prefix hyphened to a word the knowledge base does not know and that is
        not the last word (MTR-MAIN kW, MTR-HVAC Demand kW: the meter's own name)."""
        kb = self.knowledge
        key = keys[i]
        # An ordinal before a floor word: "2nd Floor", "3e étage" (the same floor as FL-2).
        ordinal = _ORDINAL.match(key)
        if ordinal and i + 1 < len(keys) and kb.locations.get(keys[i + 1]) == "Floor":
            return "location", "Floor", f"{tokens[i + 1].upper()}-{ordinal.group(1)}", 2
        table = (
            ("equipment", kb.equipment.get(key)),
            ("location", kb.locations.get(key)),
        )
        for kind, cls in table:
            if cls is None:
                continue
            j = i + 1
            numbers: list[str] = []
            while j < len(keys) and _DIGITS.match(keys[j]) and len(numbers) < 3:
                numbers.append(tokens[j])
                j += 1
            # A one-letter suffix glued to the number (VAV-2-03A) belongs to the identifier; a
            # letter after a space is a word of its own (CH-1 M/A, UTA2 P.S.).
            if (
                numbers
                and j < len(keys)
                and len(keys[j]) == 1
                and glued[j]
                and keys[j] not in self.knowledge.tokens
            ):
                numbers.append(tokens[j])
                j += 1
            if numbers:
                label = f"{tokens[i].upper()}-{'-'.join(numbers)}"
                return kind, cls, label, j - i
            nxt = i + 1
            if (
                kind == "equipment"
                and nxt < len(keys) - 1
                and hyphened[nxt]
                and keys[nxt].isalpha()
                and 2 <= len(keys[nxt]) <= 12
                and not self._known(keys[nxt])
            ):
                return kind, cls, f"{tokens[i].upper()}-{tokens[nxt].upper()}", 2
        return None

    def _known(self, key: str) -> bool:
        kb = self.knowledge
        return (
            key in kb.tokens
            or key in kb.equipment
            or key in kb.locations
            or key in kb.numbering
            or self._compose(key) is not None
        )

    def _compose(self, key: str) -> tuple[str, ...] | None:
        """``rah`` -> Return Air Humidity: a stream prefix glued to a measurement suffix."""
        kb = self.knowledge
        if key in kb.equipment or key in kb.locations:
            return None  # HWP is a hot water pump, not "hot water pressure"
        for cut in range(len(key) - 1, 0, -1):
            prefix, suffix = key[:cut], key[cut:]
            if prefix in kb.compose_prefixes and suffix in kb.compose_suffixes:
                return kb.compose_prefixes[prefix] + kb.compose_suffixes[suffix]
        return None

    def _phrase(self, keys: list[str], i: int) -> tuple[int, tuple[str, ...]] | None:
        for width in range(min(self.knowledge.max_phrase, len(keys) - i), 1, -1):
            expansion = self.knowledge.phrases.get(tuple(keys[i : i + width]))
            if expansion is not None:
                return width, expansion
        return None

    def _singular(self, key: str) -> str | None:
        """``volets`` -> ``volet``, ``vannes`` -> ``vanne``, ``chevaux``-style ``x`` plurals:
        a known word of four letters or more with a plural ending."""
        for cut in ("s", "x"):
            stem = key[: -len(cut)]
            if key.endswith(cut) and len(stem) >= 4 and self.knowledge.tokens.get(stem):
                return stem
        return None

    @lru_cache(maxsize=16384)  # noqa: B019 - the parser lives as long as its knowledge
    def _word_before_code(self, key: str) -> str | None:
        """``temperaturedac`` -> ``temperature``: the longest known word of six letters or
        more that starts the token, followed by letters (the device code)."""
        known = self.knowledge.tokens
        for cut in range(len(key) - 2, 5, -1):
            if known.get(key[:cut]) and key[cut:].isalpha():
                return key[:cut]
        return None

    def _segment(self, key: str) -> tuple[str, ...] | None:
        """Split a glued token (``CLGSP``) into known abbreviations, fewest pieces first."""
        if len(key) < 4 or not key.isalpha():
            return None
        known = self.knowledge.tokens
        best: list[tuple[str, ...] | None] = [None] * (len(key) + 1)
        best[0] = ()
        for end in range(1, len(key) + 1):
            for start in range(max(0, end - 12), end - 1):
                prev = best[start]
                piece = key[start:end]
                if prev is None or piece not in known or not known[piece]:
                    continue
                candidate = (*prev, piece)
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
        result = best[len(key)]
        return result if result and len(result) > 1 else None
