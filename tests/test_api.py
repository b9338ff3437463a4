from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient
from rdflib import Graph
from SPARQLWrapper import JSON, SPARQLWrapper

from api._service import Platform
from api.app import create_app
from tests.conftest import FIXTURES, finished_job, free_port


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        yield c


def _import(client: TestClient) -> dict:
    assert client.post("/buildings", json={"id": "hq", "label": "HQ"}).status_code == 201
    with (FIXTURES / "small_building.csv").open("rb") as fh:
        r = client.post("/buildings/hq/points", files={"file": ("small.csv", fh, "text/csv")})
    assert r.status_code == 202, r.text
    job = finished_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_upload_labels_as_a_job_and_points_are_listed(client: TestClient) -> None:
    job = _import(client)
    assert job["result"]["points"] == 6 and job["done"] == 6
    page = client.get("/buildings/hq/points", params={"limit": 3}).json()
    assert page["total"] == 6 and len(page["items"]) == 3
    zone = client.get("/buildings/hq/points", params={"q": "ZN-T"}).json()["items"][0]
    assert zone["brick_class"] == "Zone_Air_Temperature_Sensor"
    assert 0 < zone["confidence"] <= 1 and zone["status"] == "suggested"
    assert zone["equipment"] == "VAV-1-01"
    assert len(zone["alternatives"]) == 2 and zone["reason"]


def test_model_as_turtle_and_json_ld_and_validation(client: TestClient) -> None:
    _import(client)
    ttl = client.get("/buildings/hq/model", headers={"Accept": "text/turtle"})
    assert ttl.headers["content-type"].startswith("text/turtle")
    assert len(Graph().parse(data=ttl.text, format="turtle")) > 50
    jsonld = client.get("/buildings/hq/model", params={"format": "json-ld"})
    assert len(Graph().parse(data=jsonld.text, format="json-ld")) == len(Graph().parse(data=ttl.text))
    report = client.get("/buildings/hq/validation").json()
    assert report["conforms"] is True and report["points_checked"] == 6


@pytest.mark.parametrize(
    ("accept", "marker"),
    [
        ("application/sparql-results+json", '"bindings"'),
        ("application/sparql-results+xml", "<sparql"),
        ("text/csv", "p\r\n"),
    ],
)
def test_sparql_protocol_select_formats(client: TestClient, accept: str, marker: str) -> None:
    _import(client)
    q = "PREFIX brick: <https://brickschema.org/schema/Brick#> SELECT ?p WHERE { ?p a brick:Zone_Air_Temperature_Sensor }"
    r = client.get("/sparql", params={"query": q}, headers={"Accept": accept})
    assert r.status_code == 200 and marker in r.text
    r = client.post(
        "/sparql", content=q, headers={"Content-Type": "application/sparql-query", "Accept": accept}
    )
    assert r.status_code == 200 and marker in r.text


def test_sparql_construct_ask_and_errors(client: TestClient) -> None:
    _import(client)
    r = client.post("/sparql", data={"query": "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 5"})
    assert r.headers["content-type"].startswith("text/turtle")
    assert client.get("/sparql", params={"query": "ASK { ?s ?p ?o }"}).json()["boolean"] is True
    bad = client.get("/sparql", params={"query": "SELECT ?x WHERE {"})
    assert bad.status_code == 400 and "malformed" in bad.json()["detail"]
    upd = client.post("/sparql", data={"update": "DROP ALL"})
    assert upd.status_code == 403
    assert client.get("/sparql", params={"query": "SELECT * { ?s ?p ?o }"}).status_code == 200


def test_bad_upload_is_refused_and_stored_points_unchanged(client: TestClient) -> None:
    _import(client)
    r = client.post(
        "/buildings/hq/points", files={"file": ("bad.csv", b"name,unit\nA,F\nB,F,x\n", "text/csv")}
    )
    assert r.status_code == 400
    assert r.json()["row"] == 3 and "bad.csv" in r.json()["detail"]
    assert client.get("/buildings/hq/points").json()["total"] == 6


def test_roles_are_enforced(platform: Platform) -> None:
    platform.settings.api.tokens = {"viewer-token": "viewer"}
    platform.settings.api.anonymous_role = ""
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        assert c.get("/buildings").status_code == 401
        auth = {"Authorization": "Bearer viewer-token"}
        assert c.get("/buildings", headers=auth).status_code == 200
        assert c.post("/buildings", json={"id": "x"}, headers=auth).status_code == 403


def test_a_standard_sparql_client_can_query_the_endpoint(platform: Platform) -> None:
    app = create_app(platform.settings, platform=platform)
    with TestClient(app) as c:
        _import(c)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        client = SPARQLWrapper(f"http://127.0.0.1:{port}/sparql")
        client.setQuery(
            "PREFIX brick: <https://brickschema.org/schema/Brick#> "
            "SELECT ?p WHERE { ?p a brick:Supply_Air_Temperature_Sensor }"
        )
        client.setReturnFormat(JSON)
        bindings = client.queryAndConvert()["results"]["bindings"]  # type: ignore[index]
        assert len(bindings) == 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_upload_over_the_size_limit_is_refused(platform: Platform) -> None:
    platform.settings.api.max_upload_mb = 0.001
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        r = c.post("/buildings/hq/points", files={"file": ("big.csv", b"name\n" + b"x\n" * 2000, "text/csv")})
    assert r.status_code == 400
    assert "larger than the 0.001 MB limit" in r.json()["detail"] and "big.csv" in r.json()["detail"]


def test_long_running_sparql_query_is_stopped_with_503(platform: Platform) -> None:
    from rdflib import Graph, Literal, URIRef

    g = Graph()
    for i in range(3000):
        g.add((URIRef(f"urn:x:{i}"), URIRef("urn:x:p"), Literal(i)))
    platform.store.replace_graph("urn:x:g", g)
    platform.store.settings.query_timeout_s = 0.5
    # No row limit: only the deadline can stop this 27-billion-row query.
    platform.store.settings.result_limit = 10**12
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        r = c.get("/sparql", params={"query": "SELECT * WHERE { ?a ?p ?x . ?b ?p ?y . ?c ?p ?z }"})
    assert r.status_code == 503 and "timeout" in r.json()["detail"]


def test_decisions_are_stored_with_provenance_and_used_at_once(
    client: TestClient, platform: Platform
) -> None:
    assert client.post("/buildings", json={"id": "hq"}).status_code == 201
    csv_text = (
        "name,unit\n"
        "VAV-1.QZX,°F\nVAV-2.QZX,°F\nVAV-3.QZX,°F\n"  # an opaque code the agent cannot read
        "VAV-1.ZN-T,°F\n"
    ).encode()
    r = client.post("/buildings/hq/points", files={"file": ("v.csv", csv_text, "text/csv")})
    finished_job(client, r.json()["id"])
    items = {p["name"]: p for p in client.get("/buildings/hq/points").json()["items"]}
    assert items["VAV-2.QZX"]["brick_class"] != "Zone_Air_Temperature_Setpoint"
    target = items["VAV-1.QZX"]["iri"]
    r = client.post(
        "/buildings/hq/decisions",
        json={
            "decisions": [
                {"point": target, "action": "correct", "brick_class": "Zone_Air_Temperature_Setpoint"},
                {"point": "VAV-1.ZN-T", "action": "confirm"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["decided"] == 2 and r.json()["relabeled"] >= 2
    items = {p["name"]: p for p in client.get("/buildings/hq/points").json()["items"]}
    assert items["VAV-1.QZX"]["status"] == "corrected"
    # Learned at once; the deprecated class the reviewer typed became its replacement.
    assert items["VAV-2.QZX"]["brick_class"] == "Target_Zone_Air_Temperature_Setpoint"
    assert items["VAV-2.QZX"]["status"] == "suggested"
    assert items["VAV-1.ZN-T"]["status"] == "confirmed"
    history = client.get("/buildings/hq/history", params={"point": target}).json()
    assert history[0]["action"] == "correct" and history[0]["who"].startswith("anonymous")
    # A re-import of the same list keeps what the reviewer decided.
    r = client.post("/buildings/hq/points", files={"file": ("v.csv", csv_text, "text/csv")})
    job = finished_job(client, r.json()["id"])
    assert job["result"]["kept_decisions"] == 2
    items = {p["name"]: p for p in client.get("/buildings/hq/points").json()["items"]}
    assert items["VAV-1.QZX"]["brick_class"] == "Target_Zone_Air_Temperature_Setpoint"
    assert platform.validate_building("hq").conforms


def test_bad_decisions_are_refused_and_change_nothing(client: TestClient) -> None:
    _import(client)
    before = client.get("/buildings/hq/model").text
    r = client.post("/buildings/hq/decisions", json={"decisions": [{"point": "nope", "action": "confirm"}]})
    assert r.status_code == 400 and "no point 'nope'" in r.json()["detail"]
    r = client.post(
        "/buildings/hq/decisions",
        json={"decisions": [{"point": "AHU-1.SA-T", "action": "correct", "brick_class": "AHU"}]},
    )
    assert r.status_code == 400 and "not a Brick 1.5 point class" in r.json()["detail"]
    assert client.get("/buildings/hq/model").text == before


def test_a_new_building_learns_from_the_sites_other_buildings(platform: Platform) -> None:
    from api._service import Decision
    from mapper import RawPoint

    opaque = [RawPoint("B1.RM101.QZX", unit="°F"), RawPoint("B1.RM102.QZX", unit="°F")]
    platform.import_points("b1", opaque)
    first = platform.points("b1")[1][0]
    platform.decide(
        "b1",
        [Decision(point=first.iri, action="correct", brick_class="Zone_Air_Temperature_Sensor")],
        "alice",
    )
    platform.import_points("b2", [RawPoint("B2.RM7.QZX", unit="°F")])
    (row,) = platform.points("b2")[1]
    assert row.brick_class == "Zone_Air_Temperature_Sensor" and row.status == "suggested"


def test_reimport_merges_reports_changes_and_never_drops_a_reviewed_point(platform: Platform) -> None:
    from rdflib.compare import isomorphic

    from api._service import Decision
    from mapper import RawPoint
    from ontology import OSED

    first = [
        RawPoint("VAV-1.ZN-T", unit="°F"),
        RawPoint("VAV-1.DA-T", unit="°F"),
        RawPoint("VAV-1.FLOW", unit="cfm"),
        RawPoint("VAV-1.OLD", unit="°F"),
    ]
    platform.import_points("m", first)
    again = platform.import_points("m", first)
    assert (again.added, again.updated, again.unchanged, again.disappeared) == (0, 0, 4, [])
    graph = platform.building_graph("m")
    platform.import_points("m", first)
    assert isomorphic(graph, platform.building_graph("m"))  # idempotent

    platform.decide("m", [Decision(point="VAV-1.DA-T", action="confirm")], "bob")
    newer = [
        RawPoint("VAV-1.ZN-T", unit="degF"),  # changed
        RawPoint("VAV-1.FLOW", unit="cfm"),  # unchanged
        RawPoint("VAV-1.CO2", unit="ppm"),  # new
    ]  # DA-T (reviewed) and OLD (not reviewed) are gone
    result = platform.import_points("m", newer)
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    assert sorted(result.disappeared) == ["VAV-1.DA-T", "VAV-1.OLD"]
    assert result.kept_missing == ["VAV-1.DA-T"]
    graph = platform.building_graph("m")
    names = {str(o) for o in graph.objects(None, OSED.rawName)}
    assert names == {"VAV-1.ZN-T", "VAV-1.FLOW", "VAV-1.CO2", "VAV-1.DA-T"}
    flagged = {str(graph.value(s, OSED.rawName)) for s in graph.subjects(OSED.missingFromSource, None)}
    assert flagged == {"VAV-1.DA-T"}
    rows = {r.name: r for r in platform.points("m")[1]}
    assert rows["VAV-1.DA-T"].status == "confirmed"


@pytest.mark.parametrize(
    ("fixture", "points", "violations"),
    [
        ("site.ede.csv", 4, 0),
        # Haystack says a setpoint is writable but not how to reach it: validation says so.
        ("site.haystack.json", 3, 1),
        ("points.zinc", 2, 1),
        ("rtu.xlsx", 4, 2),  # two writable rows, no adapter address columns
        ("francais_cp1252.csv", 4, 0),
    ],
)
def test_upload_accepts_every_point_list_format(
    client: TestClient, fixture: str, points: int, violations: int
) -> None:
    assert client.post("/buildings", json={"id": "f"}).status_code == 201
    with (FIXTURES / fixture).open("rb") as fh:
        r = client.post("/buildings/f/points", files={"file": (fixture, fh, "application/octet-stream")})
    assert r.status_code == 202, r.text
    job = finished_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["points"] == points, job["result"]
    assert job["result"]["violations"] == violations, job["result"]


def test_upload_with_skip_bad_rows_reports_them_in_the_job(client: TestClient) -> None:
    assert client.post("/buildings", json={"id": "s"}).status_code == 201
    data = b"name,unit,min\nA,\xc2\xb0F,1\nB,\xc2\xb0F,x\n"
    r = client.post(
        "/buildings/s/points", params={"skip_bad_rows": "true"}, files={"file": ("m.csv", data, "text/csv")}
    )
    job = finished_job(client, r.json()["id"])
    assert job["result"]["points"] == 1
    assert job["result"]["rejected"] == [
        {"source": "m.csv", "row": 3, "field": "min", "reason": "'x' is not a number"}
    ]


def test_a_vendor_export_upload_says_which_column_became_which_field(client: TestClient) -> None:
    _import(client)
    delta = (
        "Référence de l'objet;Alarme;Nom;Valeur;Statut\n"
        "//Site/1000.AI10;;TEMP. ALIM. No.3A;20 °C;Normal\n"
        "//Site/1000.BV12;Oui;DEM/ARR VENT. RETOUR;active;Normal\n"
    ).encode("cp1252")
    r = client.post("/buildings/fr/points", files={"file": ("export.csv", delta, "text/csv")})
    job = finished_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    columns = job["result"]["columns"]
    fields = {(c["field"], c["column"]) for c in columns["columns"]}
    assert {("name", "Nom"), ("value", "Valeur"), ("object_type", "Référence de l'objet")} <= fields
    assert ("unit", "Valeur") in fields
    assert columns["unused"] == ["Alarme"]
    model = client.get("/buildings/fr/model").text
    assert "Alarme" in model  # the unused column is kept on its point


def test_an_export_whose_names_cannot_be_told_apart_is_refused_and_nothing_changes(
    client: TestClient,
) -> None:
    _import(client)
    before = client.get("/buildings/hq/model").text
    data = "A;B\n" + "".join(f"AHU-{i} SAT;VAV-{i} ZNT\n" for i in range(20))
    r = client.post("/buildings/hq/points", files={"file": ("two.csv", data.encode(), "text/csv")})
    assert r.status_code == 400
    assert "--columns name=" in r.json()["detail"] and "'A' or 'B'" in r.json()["detail"]
    assert client.get("/buildings/hq/model").text == before
    r = client.post(
        "/buildings/hq2/points",
        params={"columns": "name=B"},
        files={"file": ("two.csv", data.encode(), "text/csv")},
    )
    job = finished_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert client.get("/buildings/hq2/points", params={"q": "VAV-3 ZNT"}).json()["total"] == 1


def test_a_retried_decision_with_the_same_idempotency_key_is_applied_once(
    client: TestClient, platform: Platform
) -> None:
    _import(client)
    body = {"decisions": [{"point": "AHU-1.SA-T", "action": "confirm"}]}
    first = client.post("/buildings/hq/decisions", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200, first.text
    # The client gave up before the answer came and sends the same request again.
    again = client.post("/buildings/hq/decisions", json=body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json()["batch"] == first.json()["batch"] and again.json()["replayed"] is True
    point = client.get("/buildings/hq/points", params={"q": "AHU-1.SA-T"}).json()["items"][0]["iri"]
    assert len(client.get("/buildings/hq/history", params={"point": point}).json()) == 1
    # The same key for another request is a client error, and nothing is applied.
    other = {"decisions": [{"point": "AHU-1.SA-T", "action": "reject"}]}
    reused = client.post("/buildings/hq/decisions", json=other, headers={"Idempotency-Key": "k-1"})
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    assert len(client.get("/buildings/hq/history", params={"point": point}).json()) == 1
    # Kept in the store: a restarted server still knows the key.
    restarted = Platform(platform.settings, store=platform.store, ontology=platform.ontology)
    with TestClient(create_app(platform.settings, platform=restarted)) as c:
        replay = c.post("/buildings/hq/decisions", json=body, headers={"Idempotency-Key": "k-1"})
        assert replay.json()["batch"] == first.json()["batch"]
        assert c.post(
            "/buildings/hq/decisions", json=body, headers={"Idempotency-Key": "not a key!"}
        ).status_code in (400, 422)
    assert len(client.get("/buildings/hq/history", params={"point": point}).json()) == 1
    # A filter decision retried: the same, though the filter matches nothing any more.
    by_filter = {"action": "confirm", "filter": {"q": "SA-T"}}
    once = client.post(
        "/buildings/hq/decisions/by-filter", json=by_filter, headers={"Idempotency-Key": "f-1"}
    )
    twice = client.post(
        "/buildings/hq/decisions/by-filter", json=by_filter, headers={"Idempotency-Key": "f-1"}
    )
    assert once.status_code == twice.status_code == 200 and twice.json()["batch"] == once.json()["batch"]


def test_decisions_arriving_together_are_applied_together_each_its_own_batch(platform: Platform) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from api._service import Decision
    from core.errors import OsedError
    from mapper import RawPoint

    platform.import_points("b", [RawPoint(f"VAV-{i}.ZN-T", unit="°F") for i in range(24)])
    iri = platform.graph_iri("b")
    writes = platform.store.version(iri)[1]
    start = threading.Barrier(24)

    def decide(i: int) -> object:
        start.wait()
        point = f"VAV-{i}.ZN-T" if i % 8 else "no such point"
        try:
            return platform.decide("b", [Decision(point=point, action="reject")], f"user{i}")
        except OsedError as exc:
            return exc

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(decide, range(24)))
    refused = [r for r in results if isinstance(r, OsedError)]
    assert len(refused) == 3 and all("no point" in str(r) for r in refused)
    batches = {r.batch for r in results if not isinstance(r, OsedError)}
    assert len(batches) == 21
    statuses = {r.name: r.status for r in platform.points("b", limit=100)[1]}
    assert sum(1 for s in statuses.values() if s == "rejected") == 21
    # Fewer model writes than decisions: those that waited were applied in one relabel.
    assert platform.store.version(iri)[1] - writes < 12
    undone = platform.undo("b", "user1")
    assert undone.decided == 1
    assert {r.name: r.status for r in platform.points("b", limit=100)[1]}["VAV-1.ZN-T"] == "suggested"
