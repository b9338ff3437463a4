"""Scoring Brick point classes against the evidence a point carries.

Each usable point class is a set of Brick tags. A point's evidence is the tags its name,
description and source tags expand to, plus what its unit and BACnet object type imply.
A class scores for the tags it shares with the evidence (rarer tags count more), and
loses for the tags it needs that the evidence does not give and for evidence it leaves
unexplained. A unit that cannot measure a class's quantity kind rules the class out,
since the model would fail validation.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

from ontology import POINT_KINDS, Ontology, Unit

#: Tags that say what kind of point it is; handled apart from the others.
KIND_TAGS = frozenset(POINT_KINDS)
#: Brick spells one idea two ways in some classes; evidence and classes use the first.
_TAG_ALIASES = {
    "Discharge": "Supply",
    "Heating": "Heat",
    "Cooling": "Cool",
    "Deionized": "Deionised",
}

#: What a BACnet object type says about the kind of point (prior cost of each kind).
_OBJECT_TYPE_KINDS: dict[str, dict[str, float]] = {
    # A physical input is a reading; an output drives something. Values hold setpoints,
    # parameters and computed readings alike, and a setpoint's name nearly always says so
    # (SP, STPT, CONS), so an AV whose name says no kind is as likely a reading.
    "ai": {"Sensor": 0.0, "Status": 1.0},
    "ao": {"Command": 0.0, "Setpoint": 1.0, "Parameter": 2.0},
    "av": {"Sensor": 0.3, "Setpoint": 0.5, "Command": 0.8, "Parameter": 0.8, "Status": 1.2},
    "bi": {"Status": 0.0, "Alarm": 0.3, "Sensor": 1.5},
    "bo": {"Command": 0.0, "Status": 1.5},
    "bv": {"Command": 0.3, "Status": 0.3, "Alarm": 0.6, "Setpoint": 1.5, "Parameter": 1.0},
    "msi": {"Status": 0.0, "Sensor": 1.0, "Command": 2.0},
    "mso": {"Command": 0.0, "Status": 1.0},
    "msv": {"Command": 0.3, "Status": 0.3, "Setpoint": 1.0},
}
#: Whether an object type carries a modulating (analog) or a two-state (binary) signal.
_SIGNAL = {"ai": "analog", "ao": "analog", "av": "analog", "bi": "binary", "bo": "binary", "bv": "binary"}
#: Object types whose kind a word about the thing may tell (a value holds either).
_AMBIGUOUS_TYPES = ("av", "bv", "msv")
#: Kinds an object type rules out: an input is read from the field, never written (no
#: setpoint or command), an output drives the field (no reading).
_IMPOSSIBLE_KINDS: dict[str, frozenset[str]] = {
    "ai": frozenset({"Setpoint", "Command", "Parameter"}),
    "bi": frozenset({"Setpoint", "Command", "Parameter"}),
    "msi": frozenset({"Setpoint", "Command", "Parameter"}),
    "ao": frozenset({"Sensor", "Alarm"}),
    "bo": frozenset({"Sensor", "Setpoint", "Alarm"}),
    "mso": frozenset({"Sensor", "Alarm"}),
}
#: Kind costs when nothing says what kind a point is: most unnamed points are readings.
_DEFAULT_KINDS = {
    "Sensor": 0.3,
    "Status": 1.2,
    "Setpoint": 1.8,
    "Command": 1.8,
    "Parameter": 2.2,
    "Alarm": 1.8,
}
_OBJECT_TYPE_ALIASES = {
    "analog-input": "ai",
    "analoginput": "ai",
    "analog input": "ai",
    "analog-output": "ao",
    "analog output": "ao",
    "analog-value": "av",
    "analog value": "av",
    "binary-input": "bi",
    "binary input": "bi",
    "binary-output": "bo",
    "binary output": "bo",
    "binary-value": "bv",
    "binary value": "bv",
    "multi-state-input": "msi",
    "multi-state-output": "mso",
    "multi-state-value": "msv",
    "mi": "msi",
    "mo": "mso",
    "mv": "msv",
}
#: Quantity kinds a unit implies, as evidence tags (°F says temperature, cfm says air flow).
_UNIT_TAGS = {
    "Temperature": ("Temperature",),
    "VolumeFlowRate": ("Flow",),
    "Pressure": ("Pressure",),
    "StaticPressure": ("Pressure",),
    "ElectricPower": ("Power",),
    "Energy": ("Energy",),
    "RelativeHumidity": (),
    "ElectricCurrent": ("Current",),
    "Voltage": ("Voltage",),
    "Frequency": ("Frequency",),
    "Illuminance": ("Illuminance",),
    "Time": ("Time",),
    "Enthalpy": ("Enthalpy",),
    "ApparentPower": ("Apparent", "Power"),
}


#: What a point measures or sets. A class about another of these contradicts the evidence
#: (a humidity reading is no temperature sensor, however well the rest matches).
MEASURES = frozenset(
    {
        "Temperature", "Humidity", "Flow", "Pressure", "CO2", "CO", "Power", "Energy", "Current",
        "Voltage", "Speed", "Frequency", "Position", "Level", "Illuminance", "Dewpoint", "Enthalpy",
        "Irradiance", "Luminance",
    }
)  # fmt: skip
#: Words naming the equipment a point is about rather than what the point says of it.
_SUBJECTS = frozenset(
    {"Fan", "Pump", "Valve", "Damper", "Filter", "Coil", "Humidifier", "Boiler", "Chiller", "Motor"}
)
_CONTRADICTION = 3.0
_UNMEASURED = 1.0
#: What the present value an export shows says about the kind of point, when no BACnet
#: object type does (a two-state value is no temperature reading; a number is no status).
_VALUE_KIND_COSTS: dict[str, dict[str, float]] = {
    "binary": {
        "Sensor": 1.5,
        "Setpoint": 2.5,
        "Parameter": 2.0,
        "Status": -0.3,
        "Command": -0.2,
        "Alarm": -0.2,
    },
    "analog": {"Status": 1.0, "Alarm": 1.2},
    "multistate": {"Sensor": 0.8, "Setpoint": 0.8, "Status": -0.2, "Command": -0.2},
}
#: Whether a point can be written says whether it is set (setpoint, command) or read.
_WRITABLE_COSTS: dict[bool, dict[str, float]] = {
    True: {"Sensor": 1.2, "Status": 0.8, "Alarm": 1.0, "Setpoint": -0.2, "Command": -0.2, "Parameter": -0.1},
    False: {"Setpoint": 0.3, "Command": 0.3, "Parameter": 0.2},
}


def object_type_key(object_type: str) -> str | None:
    key = object_type.strip().lower().replace("_", "-")
    key = _OBJECT_TYPE_ALIASES.get(key, key)
    return key if key in _OBJECT_TYPE_KINDS else None


def normalise_tag(tag: str) -> str:
    return _TAG_ALIASES.get(tag, tag)


@dataclass(frozen=True)
class ClassProfile:
    name: str
    tags: frozenset[str]  # without Point and without the kind tag
    kind: str | None
    quantity: str | None
    depth: int
    #: A deprecated or alias name: scored so old-style names are understood, but a current
    #: class with the same tags is the better answer.
    stale: bool = False


@dataclass(frozen=True)
class Evidence:
    tags: frozenset[str]
    weak_tags: frozenset[str]  # from the unit: supports a class, not missed when absent
    kind_costs: dict[str, float]
    unit: Unit | None
    explicit_kind: str | None
    #: Quantities the unit says the point measures (kW: power).
    unit_measures: frozenset[str] = frozenset()
    #: Tags of the equipment or place around the point: a class having them is not
    #: penalised as much for them, but they do not make the class.
    faint_tags: frozenset[str] = frozenset()
    #: Whether a word or the BACnet object type says what kind of point it is.
    kind_stated: bool = True
    #: The export shows a two-state present value (active/inactive, on/off).
    binary: bool = False
    #: Point kinds the BACnet object type rules out (an analog input is no setpoint).
    impossible: frozenset[str] = frozenset()
    #: The name says a kind the object type rules out.
    kind_conflict: bool = False


@dataclass(frozen=True)
class Scored:
    name: str
    score: float
    matched: tuple[str, ...]
    missing: tuple[str, ...]
    unexplained: tuple[str, ...]


class ClassScorer:
    """Ranks Brick point classes for a point's evidence."""

    def __init__(
        self,
        ontology: Ontology,
        implicit: frozenset[str],
        kind_hints: dict[str, str] | None = None,
        related: dict[str, tuple[str, ...]] | None = None,
        defaults: dict[str, tuple[str, ...]] | None = None,
        qualifiers: frozenset[str] = frozenset(),
        analog: dict[str, tuple[str, ...]] | None = None,
        binary: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._ontology = ontology
        self._implicit = implicit
        self._kind_hints = kind_hints or {}
        self._related = related or {}
        defaults = defaults or {}
        self._defaults = {k: v for k, v in defaults.items() if " " not in k.strip()}
        #: Unqualified readings and what they usually are: (tags, kind) -> tags to add weakly.
        self._usual = [
            (frozenset(normalise_tag(t) for t in k.split()), tuple(normalise_tag(t) for t in v))
            for k, v in sorted(defaults.items())
            if " " in k.strip()
        ]
        self._qualifiers = frozenset(normalise_tag(t) for t in qualifiers)
        self._by_value_kind = {"analog": analog or {}, "binary": binary or {}}
        index = ontology.index
        profiles = []
        # Deprecated and alias classes are scored too: their names are how points are
        # still named (Zone_Air_Temperature_Setpoint). Results are mapped to the class
        # to use (Target_Zone_Air_Temperature_Setpoint) in rank(). Brick gives most of them
        # no tags; their names are made of tags, so the name's words that are tags stand in.
        classes = list(index.point_classes(include_deprecated=True))
        known_tags = {t for cls in classes for t in cls.tags}
        for cls in classes:
            kind = index.point_kind(cls.name)
            own = cls.tags
            if not own and (cls.deprecated or cls.alias_of):
                # Only where the class it now stands for still has those tags: Brick also
                # retired names whose meaning moved (Heat_Sensor is now Temperature_Sensor).
                words = tuple(w for w in cls.name.split("_") if w in known_tags)
                target = index.canonical(cls.name)
                if target in index and set(words) <= set(index.get(target).tags):
                    own = words
            tags = frozenset(normalise_tag(t) for t in own) - {"Point"} - KIND_TAGS
            profiles.append(
                ClassProfile(
                    name=cls.name,
                    tags=tags,
                    kind=kind,
                    quantity=index.quantity_kind(cls.name),
                    depth=len(index.ancestors(cls.name)),
                    stale=bool(cls.deprecated or cls.alias_of),
                )
            )
        self.profiles = profiles
        self._by_name = {p.name: p for p in profiles}
        df: Counter[str] = Counter(t for p in profiles for t in p.tags)
        n = len(profiles)
        self.weights = {t: 1.0 + math.log(n / c) for t, c in df.items()}
        # What each tag costs a class when the evidence lacks it; precomputed for _value.
        self._missing_cost = {
            p.name: {t: self.weights.get(t, 1.0) * (0.15 if t in implicit else 0.9) for t in p.tags}
            for p in profiles
        }
        self._all_missing = {name: sum(c.values()) for name, c in self._missing_cost.items()}
        self.vocabulary = frozenset(df) | KIND_TAGS
        self._by_tag: dict[str, list[ClassProfile]] = defaultdict(list)
        for p in profiles:
            for t in p.tags:
                self._by_tag[t].append(p)
        current = {c.name for c in index.point_classes()}
        self._generic = [p for p in profiles if len(p.tags) <= 1 and p.name in current]
        #: Tags that name what is measured or set; without one, a kind's default applies.
        self._quantity_tags = frozenset(
            t
            for p in profiles
            if p.quantity
            for t in p.tags
            if t not in ("Air", "Water", "Zone", "Supply", "Return", "Outside", "Mixed", "Exhaust")
        )
        self._rank_cache: dict[object, list[Scored]] = {}

    def weight(self, tag: str) -> float:
        return self.weights.get(tag, 1.0)

    def evidence(
        self,
        tags: list[str],
        unit: Unit | None,
        object_type: str,
        context: tuple[str, ...] = (),
        around: tuple[str, ...] = (),
        value_kind: str = "",
        writable: bool | None = None,
    ) -> Evidence:
        norm = [normalise_tag(t) for t in tags]
        kinds = [t for t in norm if t in KIND_TAGS]
        explicit = kinds[-1] if kinds else None
        plain = frozenset(t for t in norm if t not in KIND_TAGS and t in self.vocabulary)
        weak: set[str] = {normalise_tag(t) for t in context}
        # The stream of the equipment around the point is the point's stream too (an
        # exhaust fan's airflow); anything else about it is only faint evidence.
        faint = {normalise_tag(t) for t in around if t in self.vocabulary}
        weak.update(faint & self._qualifiers)
        if explicit and not (plain & self._quantity_tags) and unit is None:
            weak.update(self._defaults.get(explicit, ()))
        for tag in plain:
            weak.update(self._related.get(tag, ()))
        unit_tags = {t for qk in unit.quantity_names for t in _UNIT_TAGS.get(qk, ())} if unit else set()
        weak.update(unit_tags)
        if unit is not None and "VolumeFlowRate" in unit.quantity_names and "Water" not in plain:
            weak.add("Air")
        if self._usual:
            said = plain | weak | ({explicit} if explicit else set())
            if not (said & self._qualifiers):
                for needs, adds in self._usual:
                    if needs <= said:
                        weak.update(adds)
        key = object_type_key(object_type)
        # What a modulating or two-state point about these tags also says (a valve driven
        # by an analog output is driven to a position).
        signal = _SIGNAL.get(key or "", value_kind)
        said = plain | weak | ({explicit} if explicit else set())
        for condition, implied in self._by_value_kind.get(signal, {}).items():
            if {normalise_tag(t) for t in condition.split()} <= said:
                weak.update(normalise_tag(t) for t in implied)
        costs = dict(_OBJECT_TYPE_KINDS[key]) if key else dict(_DEFAULT_KINDS)
        if not explicit and key in (None, *_AMBIGUOUS_TYPES):
            # What a point about this thing usually is, where neither a word nor the object
            # type says (a value object holds commands and statuses alike).
            hinted = {self._kind_hints[t] for t in plain if t in self._kind_hints}
            if key is not None:
                hinted &= set(_OBJECT_TYPE_KINDS[key])  # only kinds the object type allows
            if "Sensor" in hinted:
                hinted = {"Sensor"}
            for kind in hinted:
                costs[kind] = min(costs.get(kind, 3.0), 0.1)
            if hinted and key is None:
                costs["Sensor"] = max(costs["Sensor"], 1.0)
        for kind in POINT_KINDS:
            costs.setdefault(kind, 3.0)
        if not key:
            for kind, cost in _VALUE_KIND_COSTS.get(value_kind, {}).items():
                costs[kind] = max(0.0, costs[kind] + cost)
        for kind, cost in _WRITABLE_COSTS.get(writable, {}).items() if writable is not None else ():
            costs[kind] = max(0.0, costs[kind] + cost)
        physical = bool(
            unit is not None
            and unit.quantity_kinds
            and not (unit.quantity_names <= {"Dimensionless", "DimensionlessRatio"})
        )
        if physical:
            # A physical unit makes a status or alarm unlikely.
            costs["Status"] += 1.0
            costs["Alarm"] += 1.5
        return Evidence(
            faint_tags=frozenset(faint) - plain - weak,
            kind_stated=bool(explicit or key),
            binary=value_kind == "binary",
            # A word saying the kind wins over the object type (a room sensor's setpoint
            # dial is wired as an analog input); the disagreement lowers the confidence.
            impossible=(frozenset() if explicit else _IMPOSSIBLE_KINDS.get(key or "", frozenset()))
            | (frozenset({"Status", "Alarm"}) if key in ("ai", "ao", "av") and physical else frozenset()),
            kind_conflict=bool(explicit and explicit in _IMPOSSIBLE_KINDS.get(key or "", frozenset())),
            unit_measures=frozenset(unit_tags) & MEASURES,
            tags=plain,
            weak_tags=frozenset(weak) - plain,
            kind_costs=costs,
            unit=unit,
            explicit_kind=explicit,
        )

    def rank(self, ev: Evidence, limit: int = 20) -> list[Scored]:
        """The best ``limit`` classes, best first; cached, since many names share evidence."""
        key = (
            ev.tags,
            ev.weak_tags,
            ev.faint_tags,
            tuple(sorted(ev.kind_costs.items())),
            ev.unit.iri if ev.unit else None,
            ev.explicit_kind,
            ev.binary,
            ev.impossible,
            limit,
        )
        cached = self._rank_cache.get(key)
        if cached is None:
            cached = self._rank(ev, limit)
            if len(self._rank_cache) < 100_000:
                self._rank_cache[key] = cached
        return list(cached)

    def _rank(self, ev: Evidence, limit: int) -> list[Scored]:
        candidates: dict[str, ClassProfile] = {}
        for t in ev.tags | ev.weak_tags:
            for p in self._by_tag.get(t, ()):
                candidates[p.name] = p
        for p in self._generic:
            candidates.setdefault(p.name, p)
        evidence_weight = sum(self.weight(t) for t in ev.tags)
        quick = [
            (value, p.name, p)
            for p in candidates.values()
            if (value := self._value(p, ev, evidence_weight)) is not None
        ]
        quick.sort(key=lambda item: (-item[0], item[1]))
        canonical = self._ontology.index.canonical
        out: list[Scored] = []
        seen: set[str] = set()
        for value, _name, p in quick:
            name = canonical(p.name)
            if name in seen:
                continue
            seen.add(name)
            out.append(replace(self._explain(p, ev, value), name=name))
            if len(out) >= limit:
                break
        return out

    def score_class(self, name: str, ev: Evidence) -> Scored | None:
        """Score one class by name (for candidates found by retrieval); None if ruled out."""
        profile = self._by_name.get(name)
        return self._score(profile, ev) if profile else None

    def _score(self, p: ClassProfile, ev: Evidence) -> Scored | None:
        value = self._value(p, ev, sum(self.weight(t) for t in ev.tags))
        return None if value is None else self._explain(p, ev, value)

    def _value(self, p: ClassProfile, ev: Evidence, evidence_weight: float) -> float | None:
        """The class's score; the hot path, so it walks only the tags the class shares."""
        unit = ev.unit
        if unit is not None and p.quantity and unit.quantity_kinds and p.quantity not in unit.quantity_kinds:
            return None
        if p.kind in ev.impossible:
            return None
        costs = self._missing_cost[p.name]
        score = -self._all_missing[p.name]
        matched_weight = 0.0
        for t in p.tags:
            if t in ev.tags:
                w = self.weights.get(t, 1.0)
                matched_weight += w
                score += w + costs[t]
            elif t in ev.weak_tags:
                score += 0.5 * self.weights.get(t, 1.0) + costs[t]
            elif t in ev.faint_tags:
                score += 0.5 * costs[t]
        score -= 0.6 * (evidence_weight - matched_weight)
        # Between classes otherwise equal, the one that leaves out the equipment the point
        # is about (Fan in "fan fault") says more than the one leaving out what it says.
        score += 0.02 * sum(1 for t in ev.tags - p.tags if t in _SUBJECTS)
        measures = ev.tags & MEASURES
        if measures and not (p.tags & measures):
            # About another quantity: contradicts the name. About none (Fan_Status for a
            # fan speed): a reading of that quantity is unlikely to be it.
            score -= _CONTRADICTION if p.tags & MEASURES else _UNMEASURED
        elif ev.unit_measures and not measures and not (p.tags & MEASURES):
            # A reading in kW or A is about power or current, not a fan command or status.
            score -= 2 * _UNMEASURED
        if ev.binary and p.kind in ("Sensor", "Setpoint") and p.tags & MEASURES:
            score -= _CONTRADICTION  # active/inactive is no temperature or flow reading
        if ev.explicit_kind:
            if p.kind != ev.explicit_kind:
                score -= 6.0 + ev.kind_costs.get(p.kind or "", 3.0) * 0.5
            else:
                score += 1.0
        else:
            score -= ev.kind_costs.get(p.kind or "", 3.0)
        # Among equals, the more specific class (deeper) is the better description.
        return score + 0.01 * p.depth - (0.05 if p.stale else 0.0)

    @staticmethod
    def _explain(p: ClassProfile, ev: Evidence, value: float) -> Scored:
        return Scored(
            name=p.name,
            score=value,
            matched=tuple(sorted(p.tags & (ev.tags | ev.weak_tags))),
            missing=tuple(sorted(p.tags - ev.tags - ev.weak_tags)),
            unexplained=tuple(sorted(ev.tags - p.tags)),
        )
