"""The pipeline as one explicit context: points in, labeled, validated, stored, queried.

The CLI and the HTTP API both call this; neither has a path of its own to the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from typing import Literal as TypeLiteral
from urllib.parse import quote

from pydantic import BaseModel
from rdflib import RDF, RDFS, Graph, Literal, URIRef

from agent import (
    AgentConfig,
    ClassRetriever,
    Example,
    Knowledge,
    LabelingAgent,
    LLMConfig,
    LLMRefiner,
    openai_compatible_model,
)
from api import _paging
from api._paging import PointFilter, PointRow
from api.settings import Settings
from core.errors import GraphStoreError, IngestError, InvalidBuildingId, LabelingError, OsedError
from edge import SafetyLayer, safety_layer
from graphstore import GraphStore, open_store
from mapper import (
    LabeledPoint,
    RawPoint,
    ReviewStatus,
    build_model,
    building_id,
    building_iri,
    check_building_id,
    point_identities,
    read_points_graph,
    slug,
)
from ontology import (
    BRICK,
    BRICK_VERSION,
    OSED,
    PROV,
    Ontology,
    ValidationReport,
    ontology_graph_iri,
    sparql_iri,
    sparql_prefixes,
)

log = logging.getLogger("osed.service")
Progress = Callable[[int], None]
_HUMAN_STATUSES: dict[str, ReviewStatus] = {
    "confirmed": "confirmed",
    "corrected": "corrected",
    "rejected": "rejected",
}


class BuildingNotFound(OsedError):
    """No building with that id is stored."""


class Decision(BaseModel):
    """A reviewer's decision on one point (by IRI) or on every point with that raw name.

    ``expected_status`` / ``expected_class``: the state the reviewer saw. If the point has
    changed since (another reviewer decided it), the decision is refused with the point's
    current state instead of overwriting it."""

    point: str
    action: TypeLiteral["confirm", "correct", "reject"]
    brick_class: str | None = None
    expected_status: str | None = None
    expected_class: str | None = None


class DecisionResult(BaseModel):
    decided: int
    #: Other points whose class changed with the relabel (decisions that arrived together
    #: were applied in one relabel and report the same number).
    relabeled: int
    points: int
    batch: str = ""
    #: The answer of an earlier request with the same idempotency key, not applied again.
    replayed: bool = False


class DecisionConflict(OsedError):
    """Points changed since the reviewer saw them; ``current`` holds their state now."""

    def __init__(self, message: str, current: list[dict[str, str | None]]) -> None:
        super().__init__(message)
        self.current = current


class NothingToUndo(OsedError):
    """The caller has no decision left to undo in this building."""


class IdempotencyKeyReused(OsedError):
    """An idempotency key the caller already used for a different request."""


#: A value a dict did not hold (the undo log of a refused request).
_ABSENT = object()
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:~+/=-]{1,200}")


def check_idempotency_key(key: str) -> str:
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise OsedError("an idempotency key is 1-200 letters, digits or '._:~+/=-' (a UUID, say)")
    return key


def request_digest(payload: object) -> str:
    """What identifies a request under its idempotency key (its JSON, keys sorted)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _PendingDecisions:
    """One decision request waiting for the building's next relabel."""

    decisions: Sequence[Decision]
    user: str
    key: str | None
    digest: str
    future: Future[DecisionResult] = field(default_factory=Future)


@dataclass
class ImportResult:
    building: str
    points: int
    labeled: int
    abstained: int
    triples: int
    report: ValidationReport
    kept_decisions: int = 0
    labeled_points: list[LabeledPoint] = field(default_factory=list)
    #: Compared with what the store held before (all zero on a first import).
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Points the new source no longer lists: unreviewed ones are dropped, reviewed ones
    #: are kept and flagged osed:missingFromSource.
    disappeared: list[str] = field(default_factory=list)
    kept_missing: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "points": self.points,
            "labeled": self.labeled,
            "abstained": self.abstained,
            "kept_decisions": self.kept_decisions,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "disappeared": self.disappeared[:1000],
            "kept_missing": self.kept_missing[:1000],
            "triples": self.triples,
            "conforms": self.report.conforms,
            "violations": len(self.report.violations),
        }


class _RememberingRetriever(ClassRetriever):
    """The class search, remembering what it found for each text: the relabel after every
    decision asks again about the same unsure points (embedding them took 1.7 s of a 2.2 s
    decision on the demo building). The classes searched never change while it runs."""

    _KEEP = 50_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._found: OrderedDict[tuple[str, int], list[tuple[str, float]]] = OrderedDict()
        self._found_lock = threading.Lock()

    def search(self, texts: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        with self._found_lock:
            known = {t: self._found[(t, k)] for t in texts if (t, k) in self._found}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            found = dict(zip(missing, super().search(missing, k), strict=True))
            known.update(found)
            with self._found_lock:
                for text, hits in found.items():
                    self._found[(text, k)] = hits
                while len(self._found) > self._KEEP:
                    self._found.popitem(last=False)
        return [list(known[t]) for t in texts]


class Platform:
    """Settings, ontology, store and agent, built once and passed to whoever needs them."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: GraphStore | None = None,
        ontology: Ontology | None = None,
    ) -> None:
        self.settings = settings
        self.ontology = ontology or Ontology.load(settings.cache_dir)
        self._store = store
        #: An LLM is configured but its extra is not installed (warned once).
        self._llm_missing = False
        #: Read-modify-write of a building (import, decisions, undo) is one at a time, so
        #: two reviewers' decisions never overwrite each other.
        self.write_lock = threading.RLock()
        #: Building graph -> the store's version of it that its point index was made from.
        self._indexed: dict[str, tuple[int, int]] = {}
        #: Decision requests per building, applied by one thread: those that arrive while a
        #: relabel runs are applied together in the next (a relabel costs seconds on a large
        #: building, whatever the number of decisions in it).
        self._pending: dict[str, list[_PendingDecisions]] = defaultdict(list)
        self._pending_lock = threading.Lock()
        self._committer: ThreadPoolExecutor | None = None
        #: Building graph -> (the model's version, the building as last written), so a
        #: decision does not read the whole model back (embedded store only: it sees every
        #: write).
        self._states: dict[str, tuple[tuple[int, int], _BuildingState]] = {}
        #: Building graph -> (model version, table rows by point IRI), see ``_rows``.
        self._kept_rows: OrderedDict[str, tuple[tuple[int, int], dict[str, PointRow]]] = OrderedDict()
        self._rows_lock = threading.Lock()

    @cached_property
    def store(self) -> GraphStore:
        if self._store is None:
            self._store = open_store(self.settings.store, self.settings.store_path())
        _move_truncated_buildings(self._store, self.settings.base_iri)
        _install_ontology_graph(self._store, self.ontology, self.settings.base_iri)
        return self._store

    @cached_property
    def safety(self) -> SafetyLayer:
        """The one path to devices: every write is a lease through the safety layer."""
        return safety_layer(self.settings.edge, self.store, self.settings.base_iri, self.settings.safety_db())

    @cached_property
    def knowledge(self) -> Knowledge:
        return Knowledge.load(
            *self.settings.agent.abbreviation_files, languages=self.settings.agent.languages or None
        )

    @cached_property
    def retriever(self) -> ClassRetriever | None:
        if not self.settings.agent.retrieval:
            return None
        return _RememberingRetriever(self.ontology, self.settings.data_dir / "chroma")

    def new_agent(self) -> LabelingAgent:
        config = AgentConfig(abstain_below=self.settings.agent.abstain_below)
        agent = LabelingAgent(self.ontology, self.knowledge, config, retriever=self.retriever)
        agent.llm = self.llm_for(agent)
        return agent

    def llm_for(self, agent: LabelingAgent) -> LLMRefiner | None:
        """The configured LLM second opinion for this agent, or None (offline)."""
        s = self.settings.agent
        if not s.llm_base_url:
            return None
        llm_config = LLMConfig(
            base_url=s.llm_base_url,
            model=s.llm_model,
            api_key=s.llm_api_key.get_secret_value(),
            batch_size=s.llm_batch_size,
        )
        if self._llm_missing:
            return None
        try:
            chat_model = openai_compatible_model(llm_config)
        except LabelingError as exc:
            # The LLM is a second opinion: without its extra, label without it (said once).
            self._llm_missing = True
            log.warning("agent.llm_base_url is set, but %s; labeling goes on without the LLM", exc)
            return None
        retriever = self.retriever
        search_s223 = (lambda text, kind: retriever.search_s223([text], kind=kind)[0]) if retriever else None
        return LLMRefiner(
            chat_model, self.ontology, agent.search_classes, llm_config, search_s223=search_s223
        )

    def close(self) -> None:
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        safety = self.__dict__.get("safety")
        if safety is not None:
            safety.store.close()
        if self._store is not None:
            self._store.close()

    def graph_iri(self, building: str) -> str:
        return str(building_iri(self.settings.base_iri, building))

    def index_iri(self, building_graph: str) -> str:
        """The graph ranking a building's points for the point table (see api/_paging.py)."""
        return building_graph + "/index"

    # -- labeling ---------------------------------------------------------------------
    def label(
        self,
        points: Sequence[RawPoint],
        examples: Sequence[Example] = (),
        progress: Progress | None = None,
        decisions: dict[str, tuple[str, str | None]] | None = None,
        building: str = "",
    ) -> list[LabeledPoint]:
        """Suggest classes; points a human already decided keep the human's decision.

        The agent learns from this building's decisions first, then from the decisions
        stored for the site's other buildings."""
        agent = self.new_agent()
        agent.building = building
        decisions = decisions or {}
        learned = list(examples)
        # A re-imported Brick model says what its points are: those classes are decisions.
        learned.extend(
            Example(name=p.name, brick_class=t[len("brick:") :], building=building)
            for p in points
            for t in p.tags
            if t.startswith("brick:") and self.ontology.index.is_point(t[len("brick:") :])
        )
        identities = point_identities(points)
        by_identity = dict(zip(identities, points, strict=True))
        for identity, (status, cls) in decisions.items():
            raw = by_identity.get(identity)
            if raw is not None and cls and status in ("confirmed", "corrected"):
                learned.append(Example(name=raw.name, brick_class=cls, building=building))
        if building:
            learned.extend(self.site_examples(exclude=building))
        agent.learn(learned)
        suggestions = agent.suggest(points, progress=progress)
        labeled = []
        for identity, raw, suggestion in zip(identities, points, suggestions, strict=True):
            status, decided = decisions.get(identity, ("", None))
            human = _HUMAN_STATUSES.get(status)
            if human is not None:
                labeled.append(LabeledPoint(raw, suggestion, human, decided))
            else:
                labeled.append(
                    LabeledPoint(raw, suggestion, "suggested" if suggestion.brick_class else "abstained")
                )
        return labeled

    def model(self, building: str, labeled: Sequence[LabeledPoint], label: str | None = None) -> Graph:
        return build_model(
            building, labeled, self.ontology, base=self.settings.base_iri, building_label=label
        )

    # -- buildings --------------------------------------------------------------------
    def create_building(self, building: str, label: str | None = None) -> str:
        check_building_id(building)
        iri = self.graph_iri(building)
        if self.store.has_graph(iri):
            raise OsedError(f"building '{building}' already exists")
        self._write_building(iri, self.model(building, [], label))
        return iri

    def buildings(self) -> list[dict[str, object]]:
        result = self.store.query(
            sparql_prefixes()
            + """
            SELECT ?id ?label ?g (COUNT(DISTINCT ?p) AS ?points) WHERE {
              GRAPH ?g { ?b a osed:Building ; osed:buildingId ?id . OPTIONAL { ?b rdfs:label ?label }
                         OPTIONAL { ?p osed:rawName ?n } }
            } GROUP BY ?id ?label ?g ORDER BY ?id""",
            limit=100_000,
        )
        out = []
        for r in result.rows:
            # The id is the one its graph IRI carries (a model loaded under another id may
            # name its old one); a graph that is no building's IRI is not listed.
            found = building_id(self.settings.base_iri, str(r["g"]))
            if found is not None:
                out.append(
                    {
                        "id": found,
                        "label": str(r.get("label", r["id"])),
                        "graph": str(r["g"]),
                        "points": int(str(r["points"])),
                    }
                )
        return sorted(out, key=lambda b: str(b["id"]))

    def require_building(self, building: str) -> str:
        check_building_id(building)
        iri = self.graph_iri(building)
        if not self.store.has_graph(iri):
            raise BuildingNotFound(f"no building '{building}'")
        return iri

    def import_points(
        self,
        building: str,
        points: Sequence[RawPoint],
        *,
        examples: Sequence[Example] = (),
        progress: Progress | None = None,
        label: str | None = None,
    ) -> ImportResult:
        """Label and store a building's points in one all-or-nothing replacement.

        Points a human already decided keep that decision (matched by source identity).
        """
        with self.write_lock:
            return self._import_points(building, points, examples, progress, label)

    def _import_points(
        self,
        building: str,
        points: Sequence[RawPoint],
        examples: Sequence[Example],
        progress: Progress | None,
        label: str | None,
    ) -> ImportResult:
        check_building_id(building)
        iri = self.graph_iri(building)
        # One read of what is stored: its decisions, label and points.
        stored = self.store.get_graph(iri) if self.store.has_graph(iri) else Graph()
        decisions = _decisions_in(stored)
        label = label or _label_in(stored)
        old = [raw for _, raw in read_points_graph(stored)]
        before = dict(zip(point_identities(old), old, strict=True))
        new_ids = point_identities(points)
        listed = set(new_ids)
        gone = [ident for ident in before if ident not in listed]
        reviewed_gone = [ident for ident in gone if ident in decisions]
        # Reviewed points are never dropped silently: they stay, flagged as missing.
        kept = [before[ident] for ident in reviewed_gone]
        labeled = self.label([*points, *kept], examples, progress, decisions, building=building)
        labeled = [
            replace(lp, missing_from_source=True) if i >= len(points) else lp for i, lp in enumerate(labeled)
        ]
        model = self.model(building, labeled, label)
        report = self.ontology.validator.validate(model)
        self._write_building(iri, model)
        triples = len(model)
        same = sum(1 for ident, raw in zip(new_ids, points, strict=True) if _same(before.get(ident), raw))
        known = sum(1 for ident in new_ids if ident in before)
        return ImportResult(
            building=building,
            points=len(labeled),
            labeled=sum(1 for p in labeled if p.brick_class),
            abstained=sum(1 for p in labeled if not p.brick_class),
            triples=triples,
            report=report,
            kept_decisions=sum(1 for p in labeled if p.status in ("confirmed", "corrected", "rejected")),
            labeled_points=labeled,
            added=len(new_ids) - known,
            updated=known - same,
            unchanged=same,
            disappeared=[before[ident].name for ident in gone],
            kept_missing=[before[ident].name for ident in reviewed_gone],
        )

    def load_model(self, building: str, model: Graph) -> tuple[int, ValidationReport]:
        """Store an exported model as it is (decisions, provenance of its points, 223P
        topology), replacing the building's graph: an export loaded into an empty store is
        the graph it was exported from. A model exported under another id is moved to this
        one (its IRIs and ``osed:buildingId``), so the id, the graph and the nodes agree."""
        iri = self.graph_iri(building)
        try:
            read_points_graph(model)  # what every decision on the building reads back
        except (ValueError, TypeError) as exc:
            raise IngestError(f"the model for '{building}' is not a valid OSED model: {exc}") from exc
        sites = [str(b) for b in model.subjects(RDF.type, OSED.Building) if isinstance(b, URIRef)]
        if len(sites) == 1 and sites[0] != iri:
            model = _rebased(model, sites[0], iri)
            site = URIRef(iri)
            model.set((site, OSED.buildingId, Literal(building)))
        report = self.ontology.validator.validate(model)
        with self.write_lock:
            self._write_building(iri, model)
            self._states.pop(iri, None)
        return len(model), report

    def site_examples(self, exclude: str = "") -> list[Example]:
        """Human-confirmed points of every stored building except ``exclude``."""
        result = self.store.query(
            sparql_prefixes()
            + """SELECT ?id ?name ?cls WHERE { GRAPH ?g {
                ?b a osed:Building ; osed:buildingId ?id .
                ?p osed:rawName ?name ; osed:reviewStatus ?status ; osed:decidedClass ?cls .
                FILTER(?status IN ("confirmed", "corrected")) } }""",
            limit=10**7,
        )
        brick = "https://brickschema.org/schema/Brick#"
        return [
            Example(name=str(r["name"]), brick_class=str(r["cls"])[len(brick) :], building=str(r["id"]))
            for r in result.rows
            if str(r["id"]) != exclude
        ]

    def provenance_iri(self, building: str) -> str:
        return self.graph_iri(building) + "/provenance"

    def decide(
        self,
        building: str,
        decisions: Sequence[Decision],
        user: str,
        *,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> DecisionResult:
        """Record reviewers' decisions and relabel the building with them at once.

        All decisions of one call are one batch (undone together by :meth:`undo`). The
        building model, its index and the new provenance are written in one transaction.
        With an ``idempotency_key`` a request the caller already made (same key, same
        ``digest`` of the request) is answered as before and not applied again; another
        request under the same key is refused (:class:`IdempotencyKeyReused`).
        """
        return self.submit_decisions(
            building, decisions, user, idempotency_key=idempotency_key, digest=digest
        ).result()

    def submit_decisions(
        self,
        building: str,
        decisions: Sequence[Decision],
        user: str,
        *,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> Future[DecisionResult]:
        """:meth:`decide` without waiting: the future holds its result or its error."""
        check_building_id(building)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        pending = _PendingDecisions(
            decisions=list(decisions),
            user=user,
            key=idempotency_key,
            digest=digest or request_digest([d.model_dump() for d in decisions]),
        )
        with self._pending_lock:
            if self._committer is None:
                self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="osed-decisions")
            queue = self._pending[building]
            queue.append(pending)
            if len(queue) == 1:  # no pass for this building is queued yet
                self._committer.submit(self._apply_pending, building)
        return pending.future

    def replayed_decision(self, building: str, user: str, key: str, digest: str) -> DecisionResult | None:
        """The stored answer to the caller's earlier request under ``key``, if any."""
        check_idempotency_key(key)
        found = self._stored_answers(building, [(user, key)]).get((user, key))
        if found is None:
            return None
        if found[0] != digest:
            raise IdempotencyKeyReused(
                f"Idempotency-Key '{key}' was used for a different request; use a new key for a new request"
            )
        return found[1]

    def _stored_answers(
        self, building: str, asked: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, DecisionResult]]:
        """(user, key) -> (request digest, answer) of the requests made under these keys
        (one query for a whole group of decisions)."""
        if not asked:
            return {}
        by_agent = {str(_agent_iri(user)): user for user, _ in asked}
        values = " ".join(f'(<{_agent_iri(user)}> "{key}")' for user, key in asked)
        rows = self.store.query(
            sparql_prefixes()
            + f"""SELECT ?who ?key ?batch ?digest ?decided ?relabeled ?points WHERE {{
                VALUES (?who ?key) {{ {values} }}
                GRAPH <{self.provenance_iri(building)}> {{
                  ?b osed:idempotencyKey ?key ; prov:wasAssociatedWith ?who ; osed:batch ?batch ;
                     osed:requestDigest ?digest ; osed:decided ?decided ; osed:relabeled ?relabeled ;
                     osed:points ?points }} }}""",
            limit=len(asked) + 1,
        ).rows
        return {
            (by_agent[str(r["who"])], str(r["key"])): (
                str(r["digest"]),
                DecisionResult(
                    decided=int(str(r["decided"])),
                    relabeled=int(str(r["relabeled"])),
                    points=int(str(r["points"])),
                    batch=str(r["batch"]),
                    replayed=True,
                ),
            )
            for r in rows
        }

    def _apply_pending(self, building: str) -> None:
        """Apply every decision request waiting for ``building`` in one relabel (the
        committer thread)."""
        with self._pending_lock:
            group = [p for p in self._pending.pop(building, []) if p.future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            self._apply_group(building, group)
        except BaseException as exc:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def _apply_group(self, building: str, group: list[_PendingDecisions]) -> None:
        started = time.monotonic()
        with self.write_lock:
            locked = time.monotonic()
            try:
                iri = self.require_building(building)
            except OsedError as exc:
                for pending in group:
                    pending.future.set_exception(exc)
                return
            state = self._state(building, iri)
            before = dict(state.current)
            prov = Graph()
            try:
                applied, repeats = self._check_and_record(building, iri, state, group, prov)
                if applied:
                    model, changed = self._relabeled(building, state, before)
                    for pending, batch, decided in applied:
                        _batch_record(prov, iri, pending, batch, decided, changed, len(state.raws))
                    self._write_building(iri, model, add={self.provenance_iri(building): prov})
            except BaseException:
                self._states.pop(iri, None)  # ``state`` may hold what was never written
                raise
            if applied:
                self._keep_state(iri, state, model)
                log.info(
                    "building %s: %d decision requests applied in one relabel in %.2f s (%.2f s waiting "
                    "for the write lock)",
                    building,
                    len(applied),
                    time.monotonic() - locked,
                    locked - started,
                )
                for pending, batch, decided in applied:
                    pending.future.set_result(
                        DecisionResult(
                            decided=decided, relabeled=changed, points=len(state.raws), batch=batch
                        )
                    )
            for pending, earlier in repeats:
                _repeat(pending, earlier)

    def _check_and_record(
        self,
        building: str,
        iri: str,
        state: _BuildingState,
        group: list[_PendingDecisions],
        prov: Graph,
    ) -> tuple[list[tuple[_PendingDecisions, str, int]], list[tuple[_PendingDecisions, _PendingDecisions]]]:
        """Answer the requests already applied under their key and refuse those that cannot
        be applied; record the others in ``state`` and ``prov`` one after another (a refused
        one changes nothing). Returns (request, batch, decisions) of those recorded, and the
        requests that repeat an earlier one's key in this group."""
        applied: list[tuple[_PendingDecisions, str, int]] = []
        first_of: dict[tuple[str, str], _PendingDecisions] = {}
        repeats: list[tuple[_PendingDecisions, _PendingDecisions]] = []
        stored = self._stored_answers(building, [(p.user, p.key) for p in group if p.key is not None])
        for pending in group:
            if pending.key is not None:
                earlier = first_of.get((pending.user, pending.key))
                if earlier is not None:  # the same key twice in this group
                    repeats.append((pending, earlier))
                    continue
                answered = stored.get((pending.user, pending.key))
                if answered is not None:
                    if answered[0] == pending.digest:
                        pending.future.set_result(answered[1])
                    else:
                        pending.future.set_exception(
                            IdempotencyKeyReused(
                                f"Idempotency-Key '{pending.key}' was used for a different request; "
                                "use a new key for a new request"
                            )
                        )
                    continue
                first_of[(pending.user, pending.key)] = pending
            batch = uuid.uuid4().hex
            try:
                decided = self._record(building, iri, state, pending, batch, prov)
            except OsedError as exc:
                pending.future.set_exception(exc)
                continue
            applied.append((pending, batch, decided))
        return applied, repeats

    def _record(
        self,
        building: str,
        iri: str,
        state: _BuildingState,
        pending: _PendingDecisions,
        batch: str,
        prov: Graph,
    ) -> int:
        """Apply one request's decisions to ``state`` and add their provenance to ``prov``;
        when one of them cannot be applied, ``state`` is put back as it was and it raises."""
        decisions = pending.decisions
        conflicts = []
        for n, d in enumerate(decisions):
            targets = state.targets(d.point)
            if not targets:
                raise OsedError(f"decision {n + 1}: no point '{d.point}' in building '{building}'")
            if d.expected_status is None and d.expected_class is None:
                continue
            for target in targets:
                now_status, now_class = state.status_of(target), state.current.get(target)
                if (d.expected_status is not None and d.expected_status != now_status) or (
                    d.expected_class is not None and (d.expected_class or None) != now_class
                ):
                    conflicts.append(
                        {
                            "point": target,
                            "status": now_status,
                            "brick_class": now_class,
                            "name": state.names[target],
                        }
                    )
        if conflicts:
            raise DecisionConflict(
                f"{len(conflicts)} point(s) changed since you saw them: "
                + ", ".join(str(c["name"]) for c in conflicts[:5]),
                conflicts,
            )
        who = _agent_iri(pending.user)
        added = Graph()
        added.add((who, RDF.type, PROV.Agent))
        added.add((who, RDFS.label, Literal(pending.user)))
        now = datetime.now(UTC)
        decided = 0
        undo: list[tuple[dict[str, Any], str, Any]] = []
        try:
            decided = self._apply_decisions(decisions, iri, state, who, now, batch, added, undo)
        except OsedError:
            for values, key, old in reversed(undo):
                if old is _ABSENT:
                    values.pop(key, None)
                else:
                    values[key] = old
            raise
        prov += added
        return decided

    def _apply_decisions(
        self,
        decisions: Sequence[Decision],
        iri: str,
        state: _BuildingState,
        who: URIRef,
        now: datetime,
        batch: str,
        added: Graph,
        undo: list[tuple[dict[str, Any], str, Any]],
    ) -> int:
        def put(values: dict[str, Any], key: str, value: Any) -> None:
            undo.append((values, key, values.get(key, _ABSENT)))
            values[key] = value

        decided = 0
        for n, d in enumerate(decisions):
            for target in state.targets(d.point):
                previous = state.current.get(target)
                identity = state.identities[target]
                before = state.merged.get(identity)
                if d.action == "confirm":
                    if previous is None:
                        raise OsedError(
                            f"decision {n + 1}: '{d.point}' has no suggestion to confirm; correct it instead"
                        )
                    put(state.merged, identity, ("confirmed", previous))
                    chosen: str | None = previous
                elif d.action == "correct":
                    chosen = self.check_class(d.brick_class, f"decision {n + 1}")
                    put(state.merged, identity, ("corrected", chosen))
                else:
                    put(state.merged, identity, ("rejected", None))
                    chosen = None
                act = URIRef(f"{iri}/decision/{uuid.uuid4().hex}")
                _activity(added, act, who, now, d.action, batch)
                added.add((act, OSED.point, URIRef(target)))
                added.add(
                    (act, OSED.previousStatus, Literal(before[0] if before else state.status_of(target)))
                )
                if before and before[1]:
                    added.add((act, OSED.previousDecidedClass, BRICK[before[1]]))
                if chosen:
                    added.add((act, OSED.decidedClass, BRICK[chosen]))
                if previous:
                    added.add((act, OSED.previousClass, BRICK[previous]))
                # What a later request of the same relabel sees of this point.
                put(state.statuses, target, state.merged[identity][0])
                put(state.current, target, chosen)
                decided += 1
        return decided

    def undo(self, building: str, user: str) -> DecisionResult:
        """Undo ``user``'s most recent decision batch in this building that is not undone yet.

        Each point gets back the state it had before (a human decision, or the agent's
        suggestion); the undo itself is recorded in the provenance graph.
        """
        with self.write_lock:
            iri = self.require_building(building)
            state = self._state(building, iri)
            prov, who = self._prov_for(building, user)
            batches: dict[str, list[URIRef]] = defaultdict(list)
            when: dict[str, str] = {}
            agents = [who]
            # Decisions recorded when agent IRIs were slugged (`a@b` and `a_b` were one
            # agent): still the user's if that agent names no one else.
            legacy = URIRef(f"urn:osed:user:{slug(user)}")
            if legacy != who and set(prov.objects(legacy, RDFS.label)) == {Literal(user)}:
                agents.append(legacy)
            for act in (a for agent in agents for a in prov.subjects(PROV.wasAssociatedWith, agent)):
                batch = prov.value(act, OSED.batch)
                if (
                    batch is None
                    or (act, OSED.undoneBy, None) in prov
                    or (act, RDF.type, OSED.ReviewDecision) not in prov
                ):
                    continue
                if str(prov.value(act, OSED.action)) == "undo":
                    continue
                batches[str(batch)].append(URIRef(str(act)))
                when[str(batch)] = max(when.get(str(batch), ""), str(prov.value(act, PROV.endedAtTime)))
            if not batches:
                raise NothingToUndo(f"you have no decision to undo in building '{building}'")
            last = max(batches, key=lambda b: (when[b], b))
            now = datetime.now(UTC)
            undo = URIRef(f"{iri}/decision/{uuid.uuid4().hex}")
            _activity(prov, undo, who, now, "undo", uuid.uuid4().hex)
            # Latest first, so a point decided twice in one batch ends as it was before both.
            acts = sorted(batches[last], key=lambda a: str(prov.value(a, PROV.endedAtTime)), reverse=True)
            for act in acts:
                target = str(prov.value(act, OSED.point))
                prov.add((act, OSED.undoneBy, undo))
                prov.add((undo, OSED.point, URIRef(target)))
                identity = state.identities.get(target)
                if identity is None:
                    continue  # the point has left the building since
                status = str(prov.value(act, OSED.previousStatus) or "suggested")
                cls = _paging.local(prov.value(act, OSED.previousDecidedClass))
                if status in _HUMAN_STATUSES:
                    state.merged[identity] = (status, cls)
                else:
                    state.merged.pop(identity, None)
            changed = self._relabel(building, iri, state, prov)
            return DecisionResult(decided=len(acts), relabeled=changed, points=len(state.raws), batch=last)

    def check_class(self, name: str | None, where: str) -> str:
        cls = self.ontology.index.canonical((name or "").strip())
        if not self.ontology.index.is_point(cls):
            raise OsedError(f"{where}: '{(name or '')[:100]}' is not a Brick {BRICK_VERSION} point class")
        return cls

    def _prov_for(self, building: str, user: str) -> tuple[Graph, URIRef]:
        prov = self.store.get_graph(self.provenance_iri(building))
        who = _agent_iri(user)
        prov.add((who, RDF.type, PROV.Agent))
        prov.add((who, RDFS.label, Literal(user)))
        return prov, who

    def _relabel(self, building: str, iri: str, state: _BuildingState, prov: Graph) -> int:
        """Relabel with the decisions in ``state``; store model and provenance together."""
        model, changed = self._relabeled(building, state, state.current)
        try:
            self._write_building(iri, model, {self.provenance_iri(building): prov})
        except BaseException:
            self._states.pop(iri, None)
            raise
        self._keep_state(iri, state, model)
        return changed

    def _relabeled(
        self, building: str, state: _BuildingState, before: dict[str, str | None]
    ) -> tuple[Graph, int]:
        """The model relabeled with the decisions in ``state``, and how many points no
        human decided have another class than in ``before``."""
        labeled = self.label(state.raws, decisions=state.merged, building=building)
        model = self.model(building, labeled, state.label)
        after = _current_classes(model)
        changed = sum(
            1 for p in before if state.identities.get(p) not in state.merged and after.get(p) != before.get(p)
        )
        return model, changed

    def _state(self, building: str, iri: str) -> _BuildingState:
        """The building as stored: kept from the last write when nothing wrote it since."""
        kept = self._states.get(iri)
        if kept is not None and self.store.exclusive and kept[0] == self.store.version(iri):
            return kept[1]
        return _BuildingState.read(self, building, iri)

    def _keep_state(self, iri: str, state: _BuildingState, model: Graph) -> None:
        """Remember the building as just written (``state`` with the model's classes)."""
        state.current = _current_classes(model)
        state.statuses = {str(p): str(st) for p, st in model.subject_objects(OSED.reviewStatus)}
        self._states[iri] = (self.store.version(iri), state)

    def _write_building(
        self,
        iri: str,
        model: Graph,
        others: dict[str, Graph] | None = None,
        add: dict[str, Graph] | None = None,
    ) -> None:
        """Store a building's model, its point index and ``others``, and add ``add`` to
        its graphs, in one transaction."""
        with self.write_lock:
            before = self.store.version(iri)
            index = _paging.index_graph(_paging.keys_in(model))
            self.store.replace_graphs({iri: model, self.index_iri(iri): index, **(others or {})}, add=add)
            if self.store.version(iri) == (before[0], before[1] + 1):  # nobody else wrote it
                self._indexed[iri] = self.store.version(iri)

    def point_index(self, iri: str, stale: bool = False) -> str:
        """The IRI of the building's point index, rebuilt from the stored model first if the
        model was written since by something other than this platform (``osed load`` of a
        Turtle model, a SPARQL update, this process's start) or is known ``stale``."""
        if stale or self._indexed.get(iri) != self.store.version(iri):
            with self.write_lock:  # no decision lands between reading the model and ranking it
                version = self.store.version(iri)
                if stale or self._indexed.get(iri) != version:
                    rows = {
                        key: self.store.query(query, limit=10**7).rows
                        for key, query in _paging.keys_queries(iri).items()
                    }
                    index = _paging.index_graph(_paging.keys_from_rows(rows))
                    self.store.replace_graph(self.index_iri(iri), index)
                    self._indexed[iri] = version
        return self.index_iri(iri)

    def history(self, building: str, point: str) -> list[dict[str, str]]:
        """Every decision recorded for one point, oldest first."""
        self.require_building(building)
        prov = sparql_iri(self.provenance_iri(building))
        result = self.store.query(
            sparql_prefixes()
            + f"""SELECT ?when ?who ?action ?cls ?prev WHERE {{ GRAPH {prov} {{
                ?a osed:point {sparql_iri(point)} ; osed:action ?action ; prov:endedAtTime ?when ;
                   prov:wasAssociatedWith ?u . ?u rdfs:label ?who .
                OPTIONAL {{ ?a osed:decidedClass ?cls }} OPTIONAL {{ ?a osed:previousClass ?prev }}
            }} }} ORDER BY ?when""",
        )
        return [
            {
                "when": str(r["when"]),
                "who": str(r["who"]),
                "action": str(r["action"]),
                "brick_class": _paging.local(r.get("cls")) or "",
                "previous_class": _paging.local(r.get("prev")) or "",
            }
            for r in result.rows
        ]

    def building_graph(self, building: str) -> Graph:
        return self.store.get_graph(self.require_building(building))

    def validate_building(self, building: str) -> ValidationReport:
        return self.ontology.validator.validate(self.building_graph(building))

    def points(
        self,
        building: str,
        *,
        offset: int = 0,
        limit: int = 100,
        status: str | None = None,
        text: str | None = None,
        where: PointFilter | None = None,
        sort: str = "name",
        descending: bool = False,
        iris: Sequence[str] | None = None,
    ) -> tuple[int, list[PointRow]]:
        """One page of a building's points, filtered and sorted in the store (server-side
        paging: a 10,000-point building costs one page per request), and how many points
        match in all. ``iris`` restricts the page to those points."""
        iri = self.require_building(building)
        where = where or PointFilter()
        if status or text:
            where = where.model_copy(update={"status": status or where.status, "q": text or where.q})
        if sort not in _paging.SORTS:
            raise OsedError(f"cannot sort by '{sort[:40]}': use one of {', '.join(_paging.SORTS)}")
        filters = self._filter_parts(iri, where, iris)
        index = self.point_index(iri)
        if filters.subquery:
            # Filters on the model (text, class, equipment, IRIs) are evaluated once: every
            # match, in order, makes both the total and the page.
            ordered = self.store.query(_paging.page_query(index, filters, sort, descending), limit=10**7)
            total = len(ordered.rows)
            wanted = [str(r["p"]) for r in ordered.rows[offset : offset + limit]]
        else:
            if filters:  # status or confidence: keys in the index
                counted = self.store.query(_paging.count_query(index, filters)).rows
                total = int(str(counted[0]["n"])) if counted else 0
            else:
                total, ranked = self._count(iri, index)
                if ranked != total:  # a point added or dropped unseen (another client of the store)
                    index = self.point_index(iri, stale=True)
            page = self.store.query(
                _paging.page_query(index, filters, sort, descending, offset, limit), limit=limit
            )
            wanted = [str(r["p"]) for r in page.rows]
        if not wanted:
            return total, []
        # Then what the table shows, for just these points.
        rows = self._rows(iri, wanted)
        return total, [rows[p] for p in wanted if p in rows]

    def _rows(self, iri: str, wanted: list[str]) -> dict[str, PointRow]:
        """The table rows of these points: kept per point until the model is written again
        (embedded store), so pages after a write read each point once, not once a page."""
        if not self.store.exclusive:  # other clients write a shared store unseen
            found = self.store.query(_paging.details_query(iri, wanted), limit=len(wanted))
            return {r.iri: r for r in map(_paging.row, found.rows)}
        version = self.store.version(iri)
        with self._rows_lock:
            kept = self._kept_rows.get(iri)
            if kept is None or kept[0] != version:
                kept = (version, {})
            self._kept_rows[iri] = kept
            self._kept_rows.move_to_end(iri)
            while len(self._kept_rows) > 8:
                self._kept_rows.popitem(last=False)
            rows = {p: kept[1][p] for p in wanted if p in kept[1]}
        missing = [p for p in wanted if p not in rows]
        if missing:
            found = self.store.query(_paging.details_query(iri, missing), limit=len(missing))
            fresh = {r.iri: r for r in map(_paging.row, found.rows)}
            rows.update(fresh)
            with self._rows_lock:
                if self.store.version(iri) == version:  # not written meanwhile
                    kept[1].update(fresh)
        return rows

    def _count(self, iri: str, index: str) -> tuple[int, int]:
        row = self.store.query(_paging.point_count_query(iri, index)).rows[0]
        return int(str(row["n"])), int(str(row["ranked"]))

    def point_iris(self, building: str, where: PointFilter) -> list[str]:
        """Every point matching a filter (for decisions on everything a filter shows)."""
        iri = self.require_building(building)
        query = _paging.iris_query(self.point_index(iri), self._filter_parts(iri, where))
        return [str(r["p"]) for r in self.store.query(query, limit=10**6).rows]

    def _filter_parts(
        self, iri: str, where: PointFilter, iris: Sequence[str] | None = None
    ) -> _paging.Filters:
        cls = self.ontology.index.canonical(where.brick_class.strip()) if where.brick_class else None
        return _paging.filter_parts(iri, where, cls, iris)


def _agent_iri(user: str) -> URIRef:
    """The provenance agent of a caller: the name percent-encoded, so two callers (``a@b``
    and ``a_b``, a user and ``token:…``) are never one agent."""
    return URIRef("urn:osed:user:" + quote(user, safe="@"))


def _install_ontology_graph(store: GraphStore, ontology: Ontology, base: str) -> None:
    """Brick, 223P and the QUDT subset in the store's ontology graph, so class-hierarchy
    queries work; written when the store lacks the installed files' version (first open, an
    upgrade), else only checked (one ASK)."""
    graph = ontology.graph
    started = time.monotonic()
    if store.ensure_graph(ontology_graph_iri(base), graph.key, lambda: graph.ntriples):
        log.info("ontology graph written to the store in %.1f s", time.monotonic() - started)


def _move_truncated_buildings(store: GraphStore, base: str) -> None:
    """Move buildings stored when ids were slugged into their IRIs (cut to 48 characters,
    trailing '_' dropped, so two ids could share a graph) to the IRI of their whole id, with
    their provenance; the point index is rebuilt on first read."""
    found = store.query(
        sparql_prefixes() + "SELECT ?g ?id WHERE { GRAPH ?g { ?b a osed:Building ; osed:buildingId ?id } }",
        limit=1_000_000,
    ).rows
    for r in found:
        old, building = str(r["g"]), str(r["id"])
        try:
            new = str(building_iri(base, building))
        except InvalidBuildingId:
            continue
        if old == new or old != f"{base}{slug(building)}":
            continue
        if not store.has_graph(new):
            moved = {
                target: _rebased(store.get_graph(source), old, new)
                for source, target in ((old, new), (f"{old}/provenance", f"{new}/provenance"))
            }
            store.replace_graphs({iri: g for iri, g in moved.items() if len(g)})
        for gone in (old, f"{old}/provenance", f"{old}/index"):
            store.drop_graph(gone)
        log.warning("building '%s' moved from <%s> to <%s> (its whole id)", building, old, new)


def _rebased(graph: Graph, old: str, new: str) -> Graph:
    """``graph`` with every IRI at or below ``old`` moved below ``new``."""

    def term(t: Any) -> Any:
        # str(t): a URIRef is never equal to a str, so the building's own IRI stayed behind.
        if isinstance(t, URIRef) and (str(t) == old or t.startswith(old + "/")):
            return URIRef(new + t[len(old) :])
        return t

    out = Graph()
    out.addN((term(s), term(p), term(o), out) for s, p, o in graph)
    return out


def _decisions_in(graph: Graph) -> dict[str, tuple[str, str | None]]:
    """Human decisions in a building model: source identity -> (status, decided class)."""
    brick = str(BRICK)
    out: dict[str, tuple[str, str | None]] = {}
    for point, status in graph.subject_objects(OSED.reviewStatus):
        identity = graph.value(point, OSED.sourceIdentity)
        if identity is None or str(status) not in _HUMAN_STATUSES:
            continue
        decided = graph.value(point, OSED.decidedClass)
        out[str(identity)] = (str(status), str(decided)[len(brick) :] if decided is not None else None)
    return out


def _label_in(graph: Graph) -> str | None:
    for building in graph.subjects(RDF.type, OSED.Building):
        label = graph.value(building, RDFS.label)
        if label is not None:
            return str(label)
    return None


def _same(old: RawPoint | None, new: RawPoint) -> bool:
    """Whether a re-imported point says the same as before (where it sits in the file aside)."""
    return old is not None and replace(old, source=None) == replace(new, source=None)


def _current_classes(graph: Graph) -> dict[str, str | None]:
    """Point IRI -> the Brick class the model gives it (None for a bare brick:Point)."""
    brick = str(BRICK)
    out: dict[str, str | None] = {}
    for point in graph.subjects(OSED.rawName, None):
        classes = [str(c)[len(brick) :] for c in graph.objects(point, RDF.type) if str(c).startswith(brick)]
        cls = next((c for c in classes if c != "Point"), None)
        out[str(point)] = cls
    return out


@dataclass
class _BuildingState:
    """A stored building read once for a decision: points, decisions, current classes."""

    raws: list[RawPoint]
    identities: dict[str, str]  # point IRI -> source identity
    names: dict[str, str]  # point IRI -> raw name
    by_name: dict[str, list[str]]
    merged: dict[str, tuple[str, str | None]]  # identity -> human decision
    current: dict[str, str | None]  # point IRI -> class now
    statuses: dict[str, str]
    label: str | None

    @classmethod
    def read(cls, platform: Platform, building: str, iri: str) -> _BuildingState:
        graph = platform.store.get_graph(iri)
        try:
            points = read_points_graph(graph)
        except (ValueError, TypeError) as exc:  # written past the readers (a SPARQL update)
            raise OsedError(
                f"building '{building}' holds a point that cannot be read back, so it cannot be "
                f"relabeled; load it again or correct the model: {exc}"
            ) from exc
        raws = [raw for _, raw in points]
        by_name: dict[str, list[str]] = defaultdict(list)
        for point_iri, raw in points:
            by_name[raw.name].append(str(point_iri))
        return cls(
            raws=raws,
            identities=dict(zip((str(p) for p, _ in points), point_identities(raws), strict=True)),
            names={str(p): raw.name for p, raw in points},
            by_name=by_name,
            merged=_decisions_in(graph),
            current=_current_classes(graph),
            statuses={str(p): str(st) for p, st in graph.subject_objects(OSED.reviewStatus)},
            label=_label_in(graph),
        )

    def targets(self, point: str) -> list[str]:
        return [point] if point in self.identities else self.by_name.get(point, [])

    def status_of(self, point: str) -> str:
        return self.statuses.get(point, "suggested")


def _batch_record(
    prov: Graph, iri: str, pending: _PendingDecisions, batch: str, decided: int, relabeled: int, points: int
) -> None:
    """The answer to a request with an idempotency key, kept with its decisions."""
    if pending.key is None:
        return
    node = URIRef(f"{iri}/batch/{batch}")
    prov.add((node, RDF.type, OSED.DecisionBatch))
    prov.add((node, PROV.wasAssociatedWith, _agent_iri(pending.user)))
    prov.add((node, OSED.batch, Literal(batch)))
    prov.add((node, OSED.idempotencyKey, Literal(pending.key)))
    prov.add((node, OSED.requestDigest, Literal(pending.digest)))
    prov.add((node, OSED.decided, Literal(decided)))
    prov.add((node, OSED.relabeled, Literal(relabeled)))
    prov.add((node, OSED.points, Literal(points)))


def _repeat(pending: _PendingDecisions, earlier: _PendingDecisions) -> None:
    """A request repeated (same key) while the first was waiting: the first's answer."""
    if pending.digest != earlier.digest:
        pending.future.set_exception(
            IdempotencyKeyReused(f"Idempotency-Key '{pending.key}' was used for a different request")
        )
        return
    try:
        result = earlier.future.result(timeout=0)
    except Exception as exc:  # noqa: BLE001 - the first request's error is this one's too
        pending.future.set_exception(exc)
        return
    pending.future.set_result(result.model_copy(update={"replayed": True}))


def _activity(prov: Graph, act: URIRef, who: URIRef, when: datetime, action: str, batch: str) -> None:
    prov.add((act, RDF.type, PROV.Activity))
    prov.add((act, RDF.type, OSED.ReviewDecision))
    prov.add((act, PROV.wasAssociatedWith, who))
    prov.add((act, PROV.endedAtTime, Literal(when)))
    prov.add((act, OSED.action, Literal(action)))
    prov.add((act, OSED.batch, Literal(batch)))


__all__ = [
    "BuildingNotFound",
    "Decision",
    "DecisionConflict",
    "DecisionResult",
    "GraphStoreError",
    "IdempotencyKeyReused",
    "ImportResult",
    "NothingToUndo",
    "Platform",
    "PointFilter",
    "PointRow",
    "check_building_id",
]
