"""The labeling agent: evidence from names, units and object types; memory of human decisions."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent._calibration import Calibration
from agent._llm import LLMRefiner
from agent._names import Knowledge, NameParser, ParsedName, _key, tokenize
from agent._retrieval import ClassRetriever
from agent._scoring import MEASURES, ClassScorer, Evidence, Scored, normalise_tag, object_type_key
from core.errors import LabelingError
from mapper import EquipmentRef, RawPoint, Suggestion, s223_equipment_class
from ontology import Ontology

_NGRAM = 3
_NON_ALPHA = re.compile(r"[^a-z]+")


@dataclass(frozen=True)
class Example:
    """A human-confirmed (or corrected) point: the agent must agree with it from now on."""

    name: str
    brick_class: str
    building: str = ""


@dataclass(frozen=True)
class AgentConfig:
    abstain_below: float = 0.25
    temperature: float = 1.2
    #: How far a confirmed look-alike name moves the ranking, per unit of similarity.
    example_weight: float = 6.0
    min_example_similarity: float = 0.55
    #: How much a close ontology definition lifts a class, per unit of cosine similarity
    #: above the floor.
    retrieval_weight: float = 1.5
    retrieval_floor: float = 0.45
    #: How much the other unsure points believed to be of a point's class make it worth
    #: confirming (it teaches the building's convention for that class).
    convention_weight: float = 0.1
    #: How far below the third-ranked class one of another point kind may score and still
    #: be offered as the second alternative.
    kind_margin: float = 1.0


#: Tags that say what kind of point something is, the subject of building conventions.
_KIND_TAGS = frozenset(
    {"Command", "Sensor", "Setpoint", "Status", "Position", "On", "Off", "Start", "Stop", "Enable", "Run"}
)


class _ExampleMemory:
    """Confirmed examples, found by exact name, by point signature, and by similar signatures.

    Each entry remembers its building, so lookups prefer the building being labeled and
    fall back on the site's other buildings.
    """

    def __init__(self, parser: NameParser) -> None:
        self._parser = parser
        self.exact: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_signature: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self._grams: dict[int, set[int]] = defaultdict(set)
        self._entries: list[tuple[str, str, float]] = []  # (building, signature, norm)
        self._ids: dict[tuple[str, str], int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, name: str, brick_class: str, building: str = "") -> None:
        self._count += 1
        self.exact[name][brick_class] += 1
        signature = self._parser.parse(name).signature
        if not signature:
            return
        key = (building, signature)
        self.by_signature[key][brick_class] += 1
        if key not in self._ids:
            grams = _grams(signature)
            self._ids[key] = len(self._entries)
            self._entries.append((building, signature, math.sqrt(len(grams)) or 1.0))
            for g in grams:
                self._grams[g].add(self._ids[key])

    def same_signature(self, signature: str, building: str) -> tuple[Counter[str], bool] | None:
        """Classes confirmed for this signature: in this building if any (then ``True``),
        else anywhere."""
        found = self.by_signature.get((building, signature))
        if found:
            return found, True
        merged: Counter[str] = Counter()
        for (_b, sig), classes in self.by_signature.items():
            if sig == signature:
                merged.update(classes)
        return (merged, False) if merged else None

    def similar(self, signature: str, building: str, limit: int = 5) -> list[tuple[float, Counter[str]]]:
        grams = _grams(signature)
        if not grams or not self._entries:
            return []
        overlap: Counter[int] = Counter()
        for g in grams:
            for idx in self._grams.get(g, ()):
                overlap[idx] += 1
        norm = math.sqrt(len(grams))
        out = []
        for idx, shared in overlap.most_common(limit * 4):
            other_building, sig, other_norm = self._entries[idx]
            sim = shared / (norm * other_norm)
            if other_building != building:
                sim *= 0.9  # another building's convention may differ
            out.append((sim, self.by_signature[(other_building, sig)]))
        out.sort(key=lambda x: -x[0])
        return out[:limit]


def _grams(text: str) -> set[int]:
    words = _NON_ALPHA.sub(" ", text.lower()).split()
    grams: set[int] = set()
    for w in words:
        padded = f" {w} "
        grams.update(hash(padded[i : i + _NGRAM]) for i in range(max(1, len(padded) - _NGRAM + 1)))
        grams.add(hash("w:" + w))
    return grams


class LabelingAgent:
    """Suggests a Brick class for each point, with alternatives, a confidence and a reason.

    Deterministic: the same points and examples give the same suggestions.
    """

    def __init__(
        self,
        ontology: Ontology,
        knowledge: Knowledge | None = None,
        config: AgentConfig | None = None,
        retriever: ClassRetriever | None = None,
        calibration: Calibration | None = None,
        llm: LLMRefiner | None = None,
    ) -> None:
        self.ontology = ontology
        self.retriever = retriever
        #: Brick equipment class -> the 223P class retrieval chose for it (None: none fits).
        self._s223_choice: dict[str, tuple[str, float] | None] = {}
        self.calibration = calibration or Calibration.load()
        self.llm = llm
        self.knowledge = knowledge or Knowledge.load()
        self.config = config or AgentConfig()
        self._check_knowledge()
        self.parser = NameParser(self.knowledge)
        #: The language of the point list being labeled (None: the base language).
        self.language: str | None = None
        self._parsers: dict[str | None, NameParser] = {None: self.parser}
        self.scorer = ClassScorer(
            ontology,
            self.knowledge.implicit,
            self.knowledge.kind_hints,
            self.knowledge.related,
            self.knowledge.defaults,
            self.knowledge.qualifiers,
            self.knowledge.analog,
            self.knowledge.binary,
        )
        self.memory = _ExampleMemory(self.parser)
        self._tag_names = {t.lower(): t for t in self.scorer.vocabulary}
        self._class_tags = {
            c.name: frozenset(normalise_tag(t) for t in c.tags)
            for c in ontology.index.point_classes(include_deprecated=True)
        }
        # Tag sets that name exactly one class (several Brick classes share every tag).
        owners: dict[frozenset[str], list[str]] = defaultdict(list)
        for c in ontology.index.point_classes():
            owners[self._class_tags[c.name]].append(c.name)
        self._by_tags = {tags: names[0] for tags, names in owners.items() if len(names) == 1}
        #: The building being labeled: its own examples count before other buildings'.
        self.building = ""
        #: How far this building's reviewers agree with the agent more (or less) than usual.
        self._agreement = 0.0

    def _check_knowledge(self) -> None:
        index = self.ontology.index
        for prefix, cls in self.knowledge.equipment.items():
            if not index.is_equipment(cls):
                raise LabelingError(
                    f"abbreviations: equipment '{prefix}' names '{cls}', not a Brick equipment class"
                )
        for prefix, cls in self.knowledge.locations.items():
            if cls not in index or index.root(cls) != "Location":
                raise LabelingError(
                    f"abbreviations: location '{prefix}' names '{cls}', not a Brick location class"
                )

    # -- learning --------------------------------------------------------------------
    def learn(self, examples: Iterable[Example]) -> int:
        """Remember human decisions; returns how many were taken."""
        count = 0
        for ex in examples:
            cls = self.ontology.index.canonical(ex.brick_class.strip())
            if not self.ontology.index.is_point(cls):
                raise LabelingError(f"example '{ex.name}': '{ex.brick_class}' is not a Brick point class")
            self.memory.add(ex.name, cls, ex.building)
            count += 1
        return count

    # -- suggesting ------------------------------------------------------------------
    def suggest(
        self,
        points: Sequence[RawPoint],
        progress: Callable[[int], None] | None = None,
    ) -> list[Suggestion]:
        """One suggestion per point, in order. Points with the same name, description,
        unit, type and tags are judged once."""
        keys = [_evidence_key(p) for p in points]
        first: dict[_Key, RawPoint] = {}
        for key, point in zip(keys, points, strict=True):
            first.setdefault(key, point)
        self.language = self.knowledge.detect_language(
            text for p in first.values() for text in (p.name, p.description) if text
        )
        prepared = {key: self._prepare(point) for key, point in first.items()}
        self._agreement = _agreement(prepared.values())
        rules = self._conventions(prepared.values())
        if rules:
            for draft in prepared.values():
                self._apply_conventions(draft, rules)
        if self.retriever is not None:
            self._retrieve(prepared)
        done: dict[_Key, Suggestion] = {}
        out = []
        for n, key in enumerate(keys, start=1):
            suggestion = done.get(key)
            if suggestion is None:
                suggestion = self._finish(prepared[key])
                done[key] = suggestion
            out.append(suggestion)
            if progress is not None and n % 200 == 0:
                progress(200)
        if self.llm is not None:
            out = self.llm.refine(points, out)
        if self.retriever is not None:
            out = self._with_s223_equipment(out)
        if progress is not None:
            progress(len(points) % 200)
        return out

    #: How alike a Brick equipment class and a 223P class must be (cosine similarity of
    #: their label and definition) for the 223P class to be used.
    S223_SIMILARITY = 0.75

    def _with_s223_equipment(self, suggestions: list[Suggestion]) -> list[Suggestion]:
        """For equipment of a Brick class the mapper knows no 223P class for, the 223P
        equipment class retrieval over 223P finds closest, when it is close enough and its
        own shapes ask only for connection points the model can give it."""
        assert self.retriever is not None
        index = self.ontology.index
        wanted: set[str] = set()
        for s in suggestions:
            ref = s.equipment
            while ref is not None:
                if s223_equipment_class(ref.brick_class) is None and ref.brick_class in index:
                    wanted.add(ref.brick_class)
                ref = ref.parent
        if not wanted:
            return suggestions
        # Asked once per Brick class for the agent's life (the relabel after every decision
        # asks about the same classes again).
        new = sorted(wanted - self._s223_choice.keys())
        texts = [f"{index.get(c).label}: {index.get(c).definition}".strip(": ") for c in new]
        for cls, hits in zip(
            new, self.retriever.search_s223(texts, kind="equipment", k=3) if new else [], strict=True
        ):
            good = hits and hits[0][1] >= self.S223_SIMILARITY and hits[0][0] in index.s223_ports
            self._s223_choice[cls] = hits[0] if good else None
        chosen = {c: hit for c in wanted if (hit := self._s223_choice[c]) is not None}
        if not chosen:
            return suggestions

        def typed(ref: EquipmentRef | None) -> EquipmentRef | None:
            if ref is None:
                return None
            hit = chosen.get(ref.brick_class)
            parent = typed(ref.parent)
            if hit is None:
                return ref if parent is ref.parent else replace(ref, parent=parent)
            return replace(ref, parent=parent, s223_class=hit[0], s223_similarity=round(hit[1], 2))

        return [
            replace(s, equipment=typed(s.equipment)) if s.equipment is not None else s for s in suggestions
        ]

    def _named_equipment(self, text: str, reader: NameParser) -> EquipmentRef | None:
        kinds = reader.knowledge.equipment
        for token in tokenize(_clean(text)):
            cls = kinds.get(_key(token))
            if cls is not None:
                return EquipmentRef(brick_class=cls, name=" ".join(text.split())[:64])
        return None

    def _reader(self) -> NameParser:
        """The parser for the language of the point list being labeled."""
        parser = self._parsers.get(self.language)
        if parser is None:
            parser = self._parsers[self.language] = NameParser(self.knowledge.for_language(self.language))
        return parser

    def _prepare(self, point: RawPoint) -> _Draft:
        name = _clean(point.name)
        reader = self._reader()
        parsed = reader.parse(name)
        # Confirmations are remembered by the point function as every language reads it.
        signature = self.parser.parse(name).signature
        decided = self.memory.exact.get(point.name)
        tags = list(parsed.tags) + self._lexical_tags(parsed.unknown_inside)
        described = ""
        if point.description:
            desc = reader.parse(_clean(point.description))
            tags.extend(desc.tags)
            tags.extend(self._lexical_tags(desc.unknown))
            described = " ".join(desc.tags)
        for tag in point.tags:
            tags.extend(reader.parse(tag).tags)
        unit = self.ontology.units.lookup(point.unit)
        equipment, context = parsed.equipment, parsed.context
        if equipment is None and (point.equipment or point.reference):
            # The name says no equipment (Metasys ZN-T, WebCTRL zone_temp): the export's
            # equipment column or the object's path does (FC-2.VAV-1-A-1.ZN-T).
            around = reader.parse(_clean(point.equipment or point.reference))
            equipment, context = around.equipment, (*context, *around.context)
            if equipment is None and point.equipment:
                # An equipment column names it without a number (CPT-PRINC, CHAUFFERIE):
                # the equipment is the column's, of the class its first known word says.
                equipment = self._named_equipment(point.equipment, reader)
        evidence = self.scorer.evidence(
            tags,
            unit,
            point.object_type,
            context,
            parsed.around,
            value_kind=point.value_kind,
            writable=point.writable,
        )
        ranked = self.scorer.rank(evidence)
        if decided:
            # What the agent alone would have said: how this building departs from it is
            # a convention the other points may share (see _conventions).
            own = ranked[0].name if ranked else None
            return _Draft(point, parsed, None, [], None, decided=decided, own_guess=own, equipment=equipment)
        ranked, borrowed = self._apply_examples(parsed, ranked, evidence, signature)
        found = self.memory.same_signature(signature, self.building) if borrowed and signature else None
        local = bool(found and found[1])
        return _Draft(
            point, parsed, evidence, ranked, borrowed, described=described, local=local, equipment=equipment
        )

    # -- building conventions ------------------------------------------------------------
    def _conventions(self, drafts: Iterable[_Draft]) -> dict[tuple[frozenset[str], frozenset[str]], float]:
        """Tag rewrites this building's reviewers keep making, with their net support.

        Buildings differ in conventions no name spells out: a valve at "%" is a command in
        one building and a position sensor in another; a fan's status is Fan_Status here
        and Fan_On_Off_Status there. A confirmed point the agent alone would have labeled
        P, confirmed as T, teaches the rewrite (tags of P not in T) -> (tags of T not in P).
        Confirmations where the agent was already right and the rewrite would have applied
        count against it.
        """
        decided = [d for d in drafts if d.decided and d.own_guess]
        if not decided:
            return {}
        support: Counter[tuple[frozenset[str], frozenset[str]]] = Counter()
        for d in decided:
            assert d.decided is not None and d.own_guess is not None
            truth = d.decided.most_common(1)[0][0]
            if truth == d.own_guess:
                continue
            before, after = self._class_tags.get(d.own_guess), self._class_tags.get(truth)
            if not before or not after or not (before & after - {"point"}):
                continue
            removed, added = before - after, after - before
            # Only conventions about what kind of point it is; a class that merely adds a
            # location or medium is the ordinary learning by look-alike names.
            if (removed or added) and removed | added <= _KIND_TAGS and len(removed) + len(added) <= 3:
                support[(frozenset(removed), frozenset(added))] += 1
        if not support:
            return {}
        rules: dict[tuple[frozenset[str], frozenset[str]], float] = {}
        for rule, n in support.items():
            against = 0
            for d in decided:
                assert d.decided is not None and d.own_guess is not None
                if d.decided.most_common(1)[0][0] == d.own_guess and self._rewrite(d.own_guess, rule):
                    against += 1
            if n > against:
                rules[rule] = (n - against) / (n + against)
        return rules

    def _rewrite(self, cls: str, rule: tuple[frozenset[str], frozenset[str]]) -> str | None:
        tags = self._class_tags.get(cls)
        removed, added = rule
        if tags is None or not removed <= tags or added & tags:
            return None
        return self._by_tags.get((tags - removed) | added)

    def _apply_conventions(
        self, draft: _Draft, rules: dict[tuple[frozenset[str], frozenset[str]], float]
    ) -> None:
        if draft.decided or not draft.ranked or draft.evidence is None:
            return
        if draft.borrowed and draft.borrowed[0] >= 0.99:
            return  # a confirmed point with the same signature says more than a convention
        top = draft.ranked[0]
        best: tuple[float, str] | None = None
        said = set(draft.evidence.tags)
        if draft.evidence.explicit_kind:
            said.add(draft.evidence.explicit_kind)
        for rule, strength in sorted(
            rules.items(), key=lambda kv: (-kv[1], sorted(kv[0][0]), sorted(kv[0][1]))
        ):
            if rule[0] & said:
                continue  # the name says so itself: a convention does not overrule it
            target = self._rewrite(top.name, rule)
            if target and (best is None or strength > best[0]):
                best = (strength, target)
        if best is None:
            return
        strength, target = best
        base = self.scorer.score_class(target, draft.evidence)
        if base is None:
            return  # the unit rules it out
        lifted = replace(base, score=top.score + 1.0 + strength)
        others = [s for s in draft.ranked if s.name != target]
        draft.ranked = [lifted, *others]
        draft.convention = (top.name, target)

    def _alternatives(self, ranked: list[Scored]) -> tuple[str, ...]:
        """The runner-up, then the best class of another point kind than the top's if it is
        close enough: buildings differ on the kind far more than on near-identical qualifiers."""
        if len(ranked) < 3:
            return tuple(s.name for s in ranked[1:3])
        index = self.ontology.index
        top_kind = index.point_kind(ranked[0].name)
        second = ranked[1]
        kinds = {top_kind, index.point_kind(second.name)}
        for s in ranked[2:10]:
            if index.point_kind(s.name) not in kinds and ranked[2].score - s.score <= self.config.kind_margin:
                return second.name, s.name
        return second.name, ranked[2].name

    def search_classes(self, text: str) -> list[tuple[str, float]]:
        """Classes matching free text: the ontology index if there is one, else the tags."""
        if self.retriever is not None:
            return self.retriever.search([text], k=10)[0]
        parsed = self.parser.parse(_clean(text))
        tags = list(parsed.tags) + self._lexical_tags(parsed.unknown)
        ranked = self.scorer.rank(self.scorer.evidence(tags, None, ""), limit=10)
        return [(s.name, s.score) for s in ranked]

    def _lexical_tags(self, words: Sequence[str]) -> list[str]:
        """Unknown words that are Brick tags themselves (Formaldehyde, Irradiance, Radon)."""
        out = []
        for word in words:
            if len(word) < 3:
                continue
            tag = self._tag_names.get(word.lower())
            if tag is None and word.lower().endswith("s"):
                tag = self._tag_names.get(word.lower()[:-1])
            if tag:
                out.append(tag)
        return out

    def _retrieve(self, drafts: dict[Any, _Draft]) -> None:
        """Ask the ontology index about the points the tag evidence leaves unsure."""
        assert self.retriever is not None
        unsure: dict[str, list[_Draft]] = defaultdict(list)
        for draft in drafts.values():
            if draft.decided or draft.evidence is None:
                continue
            if draft.borrowed and draft.borrowed[0] >= 0.99:
                continue
            # Only where the tags cannot decide: the best class takes less than half of the
            # score mass, or the two best are tied (Brick has classes that share every tag).
            # (Not the calibrated confidence: what is asked must not depend on the map.)
            if draft.ranked:
                decided = self._factors(draft)["logit"] >= 0.0
                tied = len(draft.ranked) > 1 and draft.ranked[0].score - draft.ranked[1].score < 0.05
                if decided and not tied:
                    continue
            query = _query_text(draft)
            if query:
                unsure[query].append(draft)
        if not unsure:
            return
        queries = sorted(unsure)
        for query, hits in zip(queries, self.retriever.search(queries, k=10), strict=True):
            for draft in unsure[query]:
                draft.ranked = self._merge_retrieval(draft, hits)
                draft.retrieved = [name for name, _ in hits[:3]]

    def _merge_retrieval(self, draft: _Draft, hits: list[tuple[str, float]]) -> list[Scored]:
        assert draft.evidence is not None
        weight = self.config.retrieval_weight
        floor = self.config.retrieval_floor
        by_name = {s.name: s for s in draft.ranked}
        for name, sim in hits:
            if sim <= floor:
                continue
            base = by_name.get(name) or self.scorer.score_class(name, draft.evidence)
            if base is None:
                continue  # ruled out by the unit
            by_name[name] = replace(base, score=base.score + weight * (sim - floor))
        return sorted(by_name.values(), key=lambda s: (-s.score, s.name))

    def _finish(self, draft: _Draft) -> Suggestion:
        point, parsed = draft.point, draft.parsed
        if draft.decided:
            cls, n = draft.decided.most_common(1)[0]
            share = n / sum(draft.decided.values())
            factors = {"decided": 1.0, "decided_share": share}
            return Suggestion(
                brick_class=cls,
                confidence=round(self.calibration(factors), 3),
                factors=tuple(sorted(factors.items())),
                alternatives=tuple(c for c, _ in draft.decided.most_common(3)[1:]),
                reason=f"a reviewer confirmed '{point.name}' as {cls}",
                equipment=draft.equipment,
                locations=parsed.locations,
                source="example",
            )
        evidence, ranked, borrowed = draft.evidence, draft.ranked, draft.borrowed
        assert evidence is not None
        if not ranked or not (evidence.tags or evidence.explicit_kind or borrowed or draft.retrieved):
            return Suggestion(
                brick_class=None,
                confidence=0.0,
                reason="nothing in the name, unit or type is recognisable",
                equipment=draft.equipment,
                locations=parsed.locations,
            )
        factors = self._factors(draft)
        confidence = self.calibration(factors)
        top = ranked[0]
        alternatives = self._alternatives(ranked)
        reason = _reason(parsed, draft.described, point, evidence, top, borrowed)
        if draft.convention and draft.convention[1] == top.name:
            reason += (
                f"; this building's reviewers label points like this {top.name}, not {draft.convention[0]}"
            )
        if draft.retrieved and top.name in draft.retrieved:
            reason += f"; ontology search agrees ({top.name} among the nearest definitions)"
        doubts = _doubts(factors, parsed)
        if doubts:
            reason += f"; doubt: {doubts}"
        shown = tuple(sorted(factors.items()))
        if confidence < self.config.abstain_below:
            return Suggestion(
                brick_class=None,
                confidence=round(confidence, 3),
                alternatives=(top.name, *alternatives[:1]),
                reason=f"unsure (best guess {top.name}); {reason}",
                equipment=draft.equipment,
                locations=parsed.locations,
                factors=shown,
            )
        return Suggestion(
            brick_class=top.name,
            confidence=round(confidence, 3),
            alternatives=alternatives,
            reason=reason,
            equipment=draft.equipment,
            locations=parsed.locations,
            source="example" if borrowed and borrowed[1] == top.name else "agent",
            factors=shown,
        )

    def suggest_review(
        self, points: Sequence[RawPoint], k: int, suggestions: Sequence[Suggestion] | None = None
    ) -> list[int]:
        """Indices of the ``k`` points a human should confirm next.

        Points sharing a point signature are one group: confirming one labels all of them.
        Groups are ranked by how many points a confirmation would settle times how unsure
        the agent is about them; similar signatures count as partly settled once a look-alike
        was picked. The representative is the group's most typical point (most common name).
        """
        if k <= 0 or not points:
            return []
        suggestions = list(suggestions) if suggestions is not None else self.suggest(points)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(points):
            if p.name in self.memory.exact:
                continue
            sig = self.parser.parse(_clean(p.name)).signature or _clean(p.name).lower()
            groups[sig].append(i)
        weights: dict[str, float] = {}
        for sig, members in groups.items():
            doubt = sum(1.0 - suggestions[i].confidence for i in members) / len(members)
            weights[sig] = len(members) * (0.05 + doubt)
        believed = {
            sig: Counter(suggestions[i].brick_class for i in members).most_common(1)[0][0]
            for sig, members in groups.items()
        }
        # A confirmation also teaches the building's convention for its class (see
        # _conventions): unsure points believed to be of the same class share in it.
        doubt_by_class: dict[str | None, float] = defaultdict(float)
        for sig, members in groups.items():
            doubt_by_class[believed[sig]] += sum(1.0 - suggestions[i].confidence for i in members)
        for sig, members in groups.items():
            own = sum(1.0 - suggestions[i].confidence for i in members)
            weights[sig] += self.config.convention_weight * (doubt_by_class[believed[sig]] - own)
        picked: list[int] = []
        chosen_grams: list[set[int]] = []
        chosen_classes: set[str | None] = set()
        remaining = dict(weights)
        while remaining and len(picked) < k:

            def value(sig: str) -> float:
                grams = _grams(sig)
                overlap = max(
                    (len(grams & g) / (math.sqrt(len(grams) * len(g)) or 1.0) for g in chosen_grams),
                    default=0.0,
                )
                same_belief = 0.5 if believed[sig] in chosen_classes else 1.0
                return remaining[sig] * (1.0 - 0.7 * overlap) * same_belief

            best = max(sorted(remaining), key=value)
            members = groups[best]
            names = Counter(points[i].name for i in members)
            typical = names.most_common(1)[0][0]
            picked.append(next(i for i in members if points[i].name == typical))
            chosen_grams.append(_grams(best))
            chosen_classes.add(believed[best])
            del remaining[best]
        return picked

    def _apply_examples(
        self, parsed: ParsedName, ranked: list[Scored], evidence: Evidence, signature: str
    ) -> tuple[list[Scored], tuple[float, str] | None]:
        if not len(self.memory):
            return ranked, None
        votes: dict[str, float] = defaultdict(float)
        found = self.memory.same_signature(signature, self.building) if signature else None
        same, local = found if found else (None, False)
        if same:
            for cls, n in same.items():
                votes[cls] += 1.0 * n / sum(same.values())
            best_sim = 1.0
        else:
            neighbours = [
                (sim, classes)
                for sim, classes in self.memory.similar(signature, self.building)
                if sim >= self.config.min_example_similarity
            ]
            if not neighbours:
                return ranked, None
            best_sim = neighbours[0][0]
            for sim, classes in neighbours:
                total = sum(classes.values())
                for cls, n in classes.items():
                    votes[cls] += sim * n / total
        total_votes = sum(votes.values())
        by_name = {s.name: s for s in ranked}
        top_score = ranked[0].score if ranked else 0.0
        boosted = []
        own_tags = set(parsed.tags)
        for cls, v in votes.items():
            bonus = self.config.example_weight * best_sim * v / total_votes
            if own_tags and not same:
                # A look-alike name with its own meaning borrows only what does not
                # contradict it; the same signature, or an opaque code, borrows fully.
                shared = own_tags & set(self._class_tags.get(cls, ()))
                bonus *= max(0.25, len(shared) / len(own_tags))
            base = by_name.pop(cls, None)
            if base is None and self.scorer.score_class(cls, evidence) is None:
                continue  # the unit rules it out (a look-alike confirmed in °F, this in cfm)
            score = (base.score if base else top_score - 2.0) + bonus
            if local:
                # This building's reviewers confirmed this very point function (ZN-T on
                # another VAV): their answer wins however sure the tags were, unless the
                # unit rules it out.
                score = max(score, top_score + 1.0 + v / total_votes)
            boosted.append(
                Scored(
                    name=cls,
                    score=score,
                    matched=base.matched if base else (),
                    missing=base.missing if base else (),
                    unexplained=base.unexplained if base else (),
                )
            )
        merged = sorted([*by_name.values(), *boosted], key=lambda s: (-s.score, s.name))
        winner = max(sorted(votes), key=lambda c: votes[c])
        return merged, (best_sim, winner)

    def _factors(self, draft: _Draft) -> dict[str, float]:
        """What the confidence rests on (see ``agent._calibration.FACTORS``)."""
        ranked, parsed, borrowed, evidence = draft.ranked, draft.parsed, draft.borrowed, draft.evidence
        assert evidence is not None and ranked
        top = ranked[0]
        tau = self.config.temperature
        z = sum(math.exp((s.score - top.score) / tau) for s in ranked[:10])
        share = min(1.0 - 1e-6, max(1e-6, 1.0 / z))
        second = ranked[1].score if len(ranked) > 1 else top.score - 5.0
        words = [t for t in parsed.tokens if not t.isdigit()]
        signature_words = parsed.signature.split()
        # Unknown words that are Brick tags themselves (Frequency, Bypass) were understood.
        unknown = [w for w in parsed.unknown if not self._lexical_tags([w])]
        unknown_inside = [w for w in parsed.unknown_inside if not self._lexical_tags([w])]
        # "Level" is how Brick names the reading of a substance (Formaldehyde_Level_Sensor).
        measured = set(top.missing) & MEASURES - {"Level"}
        agrees = bool(borrowed and borrowed[1] == top.name)
        factors = {
            "logit": math.log(share / (1.0 - share)),
            "margin": min(5.0, top.score - second) / 5.0,
            "known": 1.0 - len(unknown) / len(words) if words else 1.0,
            "unknown_inside": len(unknown_inside) / max(1, len(signature_words)),
            "no_tags": 0.0 if evidence.tags else 1.0,
            "tags": min(5, len(evidence.tags)) / 5.0,
            "kind_unstated": 0.0 if evidence.kind_stated else 1.0,
            "kind_conflict": 1.0 if evidence.kind_conflict else 0.0,
            "quantity_assumed": 1.0 if measured - set(evidence.weak_tags) else 0.0,
            "missing": min(3, len(top.missing)) / 3.0,
            "unexplained": min(3, len(top.unexplained)) / 3.0,
            "unit": 1.0 if evidence.unit is not None else 0.0,
            "unit_unknown": 1.0 if draft.point.unit and evidence.unit is None else 0.0,
            "object_type": 1.0 if object_type_key(draft.point.object_type) else 0.0,
            "value_kind": 1.0 if draft.point.value_kind else 0.0,
            "borrowed_same": 1.0 if agrees and borrowed and borrowed[0] >= 0.99 else 0.0,
            "borrowed_local": 1.0 if agrees and draft.local else 0.0,
            "borrowed_sim": borrowed[0] if agrees and borrowed else 0.0,
            "borrowed_disagrees": 1.0 if borrowed and not agrees else 0.0,
            "retrieved": 1.0 if draft.retrieved else 0.0,
            "convention": 1.0 if draft.convention and draft.convention[1] == top.name else 0.0,
            "agreement": self._agreement,
        }
        return factors


#: How often a reviewer's decision matches what the agent alone would say, across buildings:
#: the prior the building's own agreement is compared with.
_USUAL_AGREEMENT = 0.75


def _agreement(drafts: Iterable[_Draft]) -> float:
    """This building's reviewers' agreement with the agent's own guesses, minus the usual
    agreement, shrunk toward 0 while few decisions say it (0 with none)."""
    guesses = [d.decided.most_common(1)[0][0] == d.own_guess for d in drafts if d.decided and d.own_guess]
    if not guesses:
        return 0.0
    n = len(guesses)
    return n / (n + 4.0) * (sum(guesses) / n - _USUAL_AGREEMENT)


_Key = tuple[str, str, str, str, tuple[str, ...], str, bool | None]


def _evidence_key(p: RawPoint) -> _Key:
    """What the agent judges a point on: points alike in all of it get one suggestion."""
    return (p.name, p.description, p.unit, p.object_type, p.tags, p.value_kind, p.writable)


@dataclass
class _Draft:
    """A point between the two phases: tag scoring and examples, then retrieval."""

    point: RawPoint
    parsed: ParsedName
    evidence: Evidence | None
    ranked: list[Scored]
    borrowed: tuple[float, str] | None
    decided: Counter[str] | None = None
    own_guess: str | None = None
    convention: tuple[str, str] | None = None
    described: str = ""
    retrieved: list[str] = field(default_factory=list)
    #: A reviewer of this building confirmed a point with the same point function.
    local: bool = False
    #: The equipment the point belongs to: from its name, else the export's columns.
    equipment: EquipmentRef | None = None


def _query_text(draft: _Draft) -> str:
    """What the point says, in words the agent understood: expansions, description, unit.

    Words it did not understand are left out: their nearest definitions would be a guess
    presented as evidence (``COUR`` is not close to anything for a reason)."""
    words = [exp for _tok, exp in draft.parsed.expansions]
    if not words:
        return ""
    if draft.point.description:
        words.append(draft.point.description)
    if draft.point.unit:
        words.append(draft.point.unit)
    return " ".join(words)[:300].strip()


def _doubts(factors: dict[str, float], parsed: ParsedName) -> str:
    """The factors that lower the confidence most, in words, for the reviewer."""
    out = []
    if factors.get("unknown_inside", 0.0) > 0:
        out.append(f"not understood: {' '.join(parsed.unknown_inside[:3])}")
    if factors.get("kind_unstated"):
        out.append("nothing says whether it is read or set")
    if factors.get("quantity_assumed"):
        out.append("the measured quantity is assumed")
    if factors.get("kind_conflict"):
        out.append("the name and the object type disagree on the point kind")
    if factors.get("borrowed_disagrees"):
        out.append("a confirmed look-alike was labeled otherwise")
    return ", ".join(out)


def _clean(text: str) -> str:
    """Drop what cannot be part of a name (controls, invalid surrogates), keep the rest."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(ch if ch.isprintable() else " " for ch in text[:512])


def _reason(
    parsed: ParsedName,
    described: str,
    point: RawPoint,
    evidence: Evidence,
    top: Scored,
    borrowed: tuple[float, str] | None,
) -> str:
    parts = []
    if borrowed and borrowed[1] == top.name:
        parts.append(f"names like this were confirmed as {top.name} (similarity {borrowed[0]:.2f})")
    if parsed.expansions:
        shown = ", ".join(f"{tok}={exp}" for tok, exp in parsed.expansions[:5])
        parts.append(f"name: {shown}")
    if described:
        parts.append(f"description: {described}")
    if evidence.unit is not None:
        # The plainest quantities first: °C is a temperature before a dew point.
        plainest = sorted(evidence.unit.quantity_names, key=lambda q: (len(q), q))[:2]
        parts.append(f"unit {point.unit} fits {', '.join(q.replace('_', ' ') for q in plainest)}")
    if point.object_type:
        parts.append(f"object type {point.object_type}")
    if top.missing:
        parts.append(f"assumed {' '.join(top.missing)}")
    if parsed.unknown:
        parts.append(f"unknown: {' '.join(parsed.unknown[:4])}")
    return "; ".join(parts) or "generic match"
