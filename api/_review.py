"""What the review page asks besides points and decisions: progress, the next points to
review, look-alike points, the equipment tree and the Brick class list."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from agent import Example, point_signature
from api._paging import STATUSES, PointFilter, PointRow, local, summary_query
from api._service import BuildingNotFound, Platform
from mapper import Suggestion, read_points_graph
from ontology import OSED, sparql_prefixes

_HUMAN = ("confirmed", "corrected", "rejected")


class ReviewSummary(BaseModel):
    total: int
    by_status: dict[str, int]
    #: Points a human has decided (confirmed, corrected or rejected).
    decided: int
    #: Suggestions at or above ``threshold``, and the threshold itself.
    above_threshold: int
    threshold: float
    #: The agent's abstention threshold (below it, no class is suggested).
    abstain_below: float
    #: Expected share of points whose class is right: decided points count as right,
    #: suggestions by their calibrated confidence, abstentions as wrong.
    estimated_accuracy: float


class ClassInfo(BaseModel):
    name: str
    label: str
    definition: str
    parents: list[str]
    #: "brick" or "s223"; for 223P also the class's kind (equipment, property, medium...).
    ontology: str = "brick"
    kind: str = ""
    iri: str = ""


class EquipmentNode(BaseModel):
    iri: str
    label: str
    brick_class: str
    parents: list[str]
    points: list[dict[str, str | None]]
    #: "equipment", or "space" for a floor, room or zone named in the points.
    kind: str = "equipment"
    #: Its ASHRAE 223P class (``AirHandlingUnit``, ``PhysicalSpace``...), if it has one.
    s223_class: str | None = None
    #: How each parent relates to it: "feeds" or "contains".
    relations: dict[str, str] = {}
    #: What the model concluded (``osed:inference``) and from which point names.
    inference: str | None = None
    inferred_from: str | None = None
    #: Connections (ducts, pipes) from it, as "Duct to VAV-1-01".
    connections: list[str] = []


class Similar(BaseModel):
    signature: str
    points: list[PointRow]


def summary(platform: Platform, building: str, threshold: float = 0.8) -> ReviewSummary:
    iri = platform.require_building(building)
    # From the point index: the statuses and confidences the table shows, one per point.
    query = summary_query(platform.point_index(iri), threshold)
    result = platform.store.query(query)
    by_status: dict[str, int] = {}
    right = 0.0
    above = 0
    for r in result.rows:
        code, n = int(float(str(r["code"]))), int(str(r["n"]))
        status = STATUSES[code] if code < len(STATUSES) else "other"
        by_status[status] = n
        if status in ("confirmed", "corrected"):
            right += n
        elif status == "suggested":
            right += float(str(r.get("confsum", 0) or 0))
            above += int(str(r.get("above", 0) or 0))
    total = sum(by_status.values())
    return ReviewSummary(
        total=total,
        by_status=by_status,
        decided=sum(by_status.get(s, 0) for s in _HUMAN),
        above_threshold=above,
        threshold=threshold,
        abstain_below=platform.settings.agent.abstain_below,
        estimated_accuracy=round(right / total, 4) if total else 0.0,
    )


def review_queue(platform: Platform, building: str, k: int = 10) -> list[PointRow]:
    """The ``k`` undecided points whose confirmation would teach the agent most (active
    learning over the stored suggestions: large groups of look-alike, unsure points first)."""
    iri = platform.require_building(building)
    graph = platform.store.get_graph(iri)
    points = read_points_graph(graph)
    agent = platform.new_agent()
    agent.building = building
    decided: list[Example] = []
    candidates = []
    suggestions = []
    for point_iri, raw in points:
        status = str(graph.value(point_iri, OSED.reviewStatus) or "suggested")
        if status in _HUMAN:
            cls = local(graph.value(point_iri, OSED.decidedClass))
            if cls:
                decided.append(Example(raw.name, cls, building))
            continue
        conf = graph.value(point_iri, OSED.confidence)
        cls = local(graph.value(point_iri, OSED.suggestedClass))
        candidates.append((str(point_iri), raw))
        suggestions.append(
            Suggestion(brick_class=cls, confidence=float(str(conf)) if conf is not None else 0.0)
        )
    agent.learn(decided)
    picked = agent.suggest_review([raw for _, raw in candidates], k, suggestions)
    wanted = [candidates[i][0] for i in picked]
    return _rows(platform, building, wanted)


def similar(platform: Platform, building: str, point: str) -> Similar:
    """Points with the same name pattern (point signature) as ``point``."""
    iri = platform.require_building(building)
    result = platform.store.query(
        sparql_prefixes() + f"SELECT ?p ?name WHERE {{ GRAPH <{iri}> {{ ?p osed:rawName ?name }} }}",
        limit=10**6,
    )
    names = {str(r["p"]): str(r["name"]) for r in result.rows}
    if point not in names:
        raise BuildingNotFound(f"no point '{point[:200]}' in building '{building}'")
    signature = point_signature(names[point])
    if not signature:
        return Similar(signature="", points=_rows(platform, building, [point]))
    same = sorted(p for p, n in names.items() if point_signature(n) == signature)
    return Similar(signature=signature, points=_rows(platform, building, same))


def _rows(platform: Platform, building: str, iris: list[str]) -> list[PointRow]:
    """The table rows of these points, in this order (fetched by IRI, 1,000 at a time)."""
    rows: dict[str, PointRow] = {}
    for start in range(0, len(iris), 1000):
        chunk = iris[start : start + 1000]
        _, page = platform.points(building, limit=len(chunk), iris=chunk)
        rows.update({r.iri: r for r in page})
    return [rows[i] for i in iris if i in rows]


def equipment_tree(platform: Platform, building: str) -> list[EquipmentNode]:
    """Equipment and spaces inferred from point names, what feeds or contains each, its 223P
    class and connections, why it was inferred, and its points (each once)."""
    iri = platform.require_building(building)

    def select(body: str) -> list[dict[str, object]]:
        rows = platform.store.query(sparql_prefixes() + body, limit=10**6).rows
        return [dict(r) for r in rows]

    equipment = select(
        f"""SELECT ?e (MIN(STR(?label)) AS ?name) (MIN(STR(?cls)) AS ?kind) WHERE {{ GRAPH <{iri}> {{
            ?e rdfs:label ?label ; a ?cls . FILTER(STRSTARTS(STR(?cls), STR(brick:)))
            FILTER NOT EXISTS {{ ?e osed:rawName ?any }}
            FILTER NOT EXISTS {{ ?e a osed:Building }} }} }} GROUP BY ?e"""
    )
    spaces = select(
        f"""SELECT ?e (MIN(STR(?label)) AS ?name) (MIN(STR(?cls)) AS ?kind) WHERE {{ GRAPH <{iri}> {{
            ?e rdfs:label ?label ; a ?cls . ?e a ?s . VALUES ?s {{ s223:PhysicalSpace s223:Zone }}
            FILTER(STRSTARTS(STR(?cls), "https://w3id.org/rec#")) }} }} GROUP BY ?e"""
    )
    about = select(
        f"""SELECT ?e (MIN(STR(?c)) AS ?s223) (MIN(STR(?w)) AS ?why) (MIN(STR(?f)) AS ?names)
            WHERE {{ GRAPH <{iri}> {{ ?e osed:inference ?w .
              OPTIONAL {{ ?e osed:inferredFrom ?f }}
              OPTIONAL {{ ?e a ?c . FILTER(STRSTARTS(STR(?c), STR(s223:))) }} }} }} GROUP BY ?e"""
    )
    links = select(
        f"""SELECT DISTINCT ?parent ?e ?how WHERE {{ GRAPH <{iri}> {{
            {{ ?parent brick:feeds ?e . BIND("feeds" AS ?how) }} UNION
            {{ ?parent brick:hasPart ?e . BIND("contains" AS ?how) }} }} }}"""
    )
    ducts = select(
        f"""SELECT ?e (MIN(STR(?c)) AS ?kind) ?to (MIN(STR(?tl)) AS ?target) WHERE {{ GRAPH <{iri}> {{
            ?d s223:connectsFrom ?e ; s223:connectsTo ?to ; a ?c . FILTER(?c IN (s223:Duct, s223:Pipe))
            OPTIONAL {{ ?to rdfs:label ?tl }} }} }} GROUP BY ?e ?to"""
    )
    points = select(
        f"""SELECT ?e ?p (MIN(STR(?n)) AS ?name) (MIN(STR(?c)) AS ?cls) (MIN(STR(?s0)) AS ?status)
            WHERE {{ GRAPH <{iri}> {{ ?p brick:isPointOf ?e ; osed:rawName ?n .
              OPTIONAL {{ ?p osed:reviewStatus ?s0 }}
              OPTIONAL {{ ?p a ?c . FILTER(STRSTARTS(STR(?c), STR(brick:)) && ?c != brick:Point) }}
            }} }} GROUP BY ?e ?p ORDER BY ?name ?p"""
    )
    nodes = {
        str(r["e"]): EquipmentNode(
            iri=str(r["e"]), label=str(r["name"]), brick_class=local(r["kind"]) or "", parents=[], points=[]
        )
        for r in equipment
    }
    for r in spaces:
        kind = str(r["kind"]).rsplit("#", 1)[-1]
        nodes.setdefault(
            str(r["e"]),
            EquipmentNode(
                iri=str(r["e"]), label=str(r["name"]), brick_class=kind, parents=[], points=[], kind="space"
            ),
        )
    for r in about:
        node = nodes.get(str(r["e"]))
        if node is not None:
            node.s223_class = local(r.get("s223")) or None
            node.inference = str(r["why"])
            node.inferred_from = str(r["names"]) if r.get("names") else None
    for r in ducts:
        node = nodes.get(str(r["e"]))
        if node is not None:
            target = str(r.get("target") or "") or (
                "its zone" if str(r["to"]).endswith("/hvac") else str(r["to"])
            )
            node.connections.append(f"{local(r['kind'])} to {target}")
    parents: dict[str, set[str]] = defaultdict(set)
    for r in links:
        child, parent = str(r["e"]), str(r["parent"])
        if child in nodes and parent in nodes:
            parents[child].add(parent)
            nodes[child].relations[parent] = str(r["how"])
    for r in points:
        node = nodes.get(str(r["e"]))
        if node is not None:
            node.points.append(
                {
                    "iri": str(r["p"]),
                    "name": str(r["name"]),
                    "brick_class": local(r.get("cls")),
                    "status": str(r.get("status") or "suggested"),
                }
            )
    for e, node in nodes.items():
        node.parents = sorted(parents[e])
        node.connections.sort()
    return sorted(nodes.values(), key=lambda n: (n.label, n.iri))


def search_classes(
    platform: Platform, text: str, limit: int = 20, ontology: str = "brick", kind: str = ""
) -> list[ClassInfo]:
    """Classes for a search box, by name, label, then definition: Brick point classes, or
    223P classes (``ontology="s223"``, of one ``kind`` or any)."""
    if ontology == "s223":
        return _search_s223(platform, text, limit, kind)
    index = platform.ontology.index
    scored = _scored(text, ((c.name, c.label, c.definition) for c in index.point_classes()))
    out = []
    for name in sorted(scored, key=lambda c: (-scored[c], c))[:limit]:
        cls = index.brick[name]
        parents = ", ".join(p.replace("_", " ") for p in cls.parents)
        definition = cls.definition or (f"{cls.label}: a kind of {parents}" if parents else cls.label)
        out.append(
            ClassInfo(
                name=name, label=cls.label, definition=definition, parents=list(cls.parents), iri=cls.iri
            )
        )
    return out


def _search_s223(platform: Platform, text: str, limit: int, kind: str) -> list[ClassInfo]:
    classes = platform.ontology.s223_classes
    wanted = [c for c in classes.values() if not kind or c.kind == kind]
    scored = _scored(text, ((c.name, c.label, c.comment) for c in wanted))
    return [
        ClassInfo(
            name=name,
            label=classes[name].label,
            definition=classes[name].comment,
            parents=list(classes[name].parents),
            ontology="s223",
            kind=classes[name].kind,
            iri=classes[name].iri,
        )
        for name in sorted(scored, key=lambda c: (-scored[c], c))[:limit]
    ]


def _scored(text: str, classes: Iterable[tuple[str, str, str]]) -> Counter[str]:
    """Every class holding each word of ``text``: a whole word of its name counts most,
    then a part of its name or label, then its definition."""
    words = [w for w in text.lower().replace("_", " ").replace("-", " ").split() if w]
    scored: Counter[str] = Counter()
    for class_name, class_label, class_definition in classes:
        name = class_name.lower().replace("_", " ").replace("-", " ")
        label = class_label.lower()
        definition = class_definition.lower()
        if not words:
            scored[class_name] = 1
            continue
        score = 0
        for w in words:
            if w in name.split():
                score += 4
            elif w in name or w in label:
                score += 3
            elif w in definition:
                score += 1
            else:
                score = 0
                break
        if score:
            # Shorter names first among equals: the general class before its refinements.
            scored[class_name] = score * 100 - len(class_name)
    return scored


__all__ = [
    "ClassInfo",
    "EquipmentNode",
    "PointFilter",
    "ReviewSummary",
    "Similar",
    "equipment_tree",
    "review_queue",
    "search_classes",
    "similar",
    "summary",
]
