"""The REST calls behind the review page: filters, decisions with conflict detection, undo,
sign-in, provenance across a restart. Everything the page does can be scripted this way."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rdflib import RDF, RDFS, Graph, Literal, URIRef

from agent import ClassRetriever, point_signature
from api import _paging
from api._service import Decision, Platform, PointFilter, _RememberingRetriever
from api._users import UserStore, hash_password, verify_password
from api.app import create_app
from api.settings import Settings
from core.errors import OsedError
from eval.paging import synthetic_points
from graphstore import OxigraphStore
from mapper import LabeledPoint, RawPoint, Suggestion, build_model, read_points
from ontology import BRICK, OSED, Ontology
from tests.conftest import FIXTURES, stored_points
from tests.test_cli import osed as run_osed


def _client(platform: Platform) -> TestClient:
    platform.import_points("hq", read_points(FIXTURES / "small_building.csv"))
    return TestClient(create_app(platform.settings, platform=platform))


def test_points_filter_by_status_class_equipment_confidence_and_sort(platform: Platform) -> None:
    with _client(platform) as c:
        everything = c.get("/buildings/hq/points").json()
        assert everything["total"] == 6
        by_conf = c.get("/buildings/hq/points", params={"sort": "confidence", "order": "desc"}).json()[
            "items"
        ]
        confs = [r["confidence"] or 0 for r in by_conf]
        assert confs == sorted(confs, reverse=True)
        zone = c.get("/buildings/hq/points", params={"brick_class": "Zone_Air_Temperature_Sensor"}).json()
        assert [r["name"] for r in zone["items"]] == ["AHU-1.VAV-1-01.ZN-T"]
        vav = c.get("/buildings/hq/points", params={"equipment": "VAV-1-01"}).json()["items"]
        assert {r["name"] for r in vav} == {"AHU-1.VAV-1-01.ZN-T", "AHU-1.VAV-1-01.AIRFLOW"}
        described = c.get("/buildings/hq/points", params={"q": "thermostat cooling"}).json()["items"]
        assert [r["name"] for r in described] == ["TSTAT-1 Cooling Setpoint"]  # found by description
        high = c.get("/buildings/hq/points", params={"min_confidence": 0.99}).json()
        assert all(r["confidence"] >= 0.99 for r in high["items"])
        assert c.get("/buildings/hq/points", params={"min_confidence": 2}).status_code == 422
        assert c.get("/buildings/hq/points", params={"sort": "colour"}).status_code == 422


def test_two_reviewers_on_one_point_the_later_is_told_and_nothing_is_lost(platform: Platform) -> None:
    with _client(platform) as c:
        row = c.get("/buildings/hq/points", params={"q": "ZN-T"}).json()["items"][0]
        seen = {"expected_status": row["status"], "expected_class": row["brick_class"]}
        first = c.post(
            "/buildings/hq/decisions",
            json={
                "decisions": [
                    {"point": row["iri"], "action": "correct", "brick_class": "Temperature_Sensor", **seen}
                ]
            },
        )
        assert first.status_code == 200
        late = c.post(
            "/buildings/hq/decisions",
            json={"decisions": [{"point": row["iri"], "action": "confirm", **seen}]},
        )
        assert late.status_code == 409
        body = late.json()
        assert body["current"] == [
            {
                "point": row["iri"],
                "status": "corrected",
                "brick_class": "Temperature_Sensor",
                "name": row["name"],
            }
        ]
        now = c.get("/buildings/hq/points", params={"point": row["iri"]}).json()["items"][0]
        assert (now["status"], now["brick_class"]) == ("corrected", "Temperature_Sensor")


def test_concurrent_decisions_on_different_points_are_all_kept(platform: Platform) -> None:
    with _client(platform) as c:
        items = c.get("/buildings/hq/points").json()["items"]
        names = [r["name"] for r in items if r["brick_class"]][:4]
        errors: list[Exception] = []

        def reject(name: str) -> None:
            try:
                platform.decide("hq", [Decision(point=name, action="reject")], f"user-{name[:3]}")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reject, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        statuses = {r["name"]: r["status"] for r in c.get("/buildings/hq/points").json()["items"]}
        assert all(statuses[n] == "rejected" for n in names)


def test_unknown_class_refused_and_undo_by_filter(platform: Platform) -> None:
    with _client(platform) as c:
        row = c.get("/buildings/hq/points").json()["items"][0]
        bad = c.post(
            "/buildings/hq/decisions",
            json={"decisions": [{"point": row["iri"], "action": "correct", "brick_class": "Flux_Capacitor"}]},
        )
        assert bad.status_code == 400 and "Flux_Capacitor" in bad.json()["detail"]
        assert c.post("/buildings/hq/undo").status_code == 409  # nothing to undo yet
        done = c.post(
            "/buildings/hq/decisions/by-filter", json={"action": "confirm", "filter": {"q": "AHU-1"}}
        )
        assert done.status_code == 200 and done.json()["decided"] >= 4
        summary = c.get("/buildings/hq/summary").json()
        assert summary["decided"] == done.json()["decided"]
        assert c.post("/buildings/hq/undo").json()["decided"] == done.json()["decided"]
        after = c.get("/buildings/hq/summary").json()
        assert after["decided"] == 0 and after["by_status"].get("confirmed", 0) == 0
        assert (
            c.post(
                "/buildings/hq/decisions/by-filter", json={"action": "confirm", "filter": {"q": "zzz"}}
            ).status_code
            == 400
        )


def test_summary_queue_similar_equipment_and_class_search(platform: Platform) -> None:
    with _client(platform) as c:
        s = c.get("/buildings/hq/summary", params={"threshold": 0.5}).json()
        assert s["total"] == 6 and 0 < s["estimated_accuracy"] <= 1 and s["above_threshold"] <= 6
        queue = c.get("/buildings/hq/review-queue", params={"k": 3}).json()
        assert 1 <= len(queue) <= 3 and all(q["status"] in ("suggested", "abstained") for q in queue)
        zn = c.get("/buildings/hq/points", params={"q": "ZN-T"}).json()["items"][0]
        similar = c.get("/buildings/hq/similar", params={"point": zn["iri"]}).json()
        assert similar["signature"] and [p["name"] for p in similar["points"]] == ["AHU-1.VAV-1-01.ZN-T"]
        tree = {e["label"]: e for e in c.get("/buildings/hq/equipment").json()}
        assert "AHU-1" in tree and "VAV-1-01" in tree
        assert tree["VAV-1-01"]["parents"] == [tree["AHU-1"]["iri"]]
        assert tree["VAV-1-01"]["relations"] == {tree["AHU-1"]["iri"]: "feeds"}
        assert tree["AHU-1"]["s223_class"] == "AirHandlingUnit" and tree["AHU-1"]["kind"] == "equipment"
        assert "AHU-1.VAV-1-01.ZN-T" in tree["VAV-1-01"]["inferred_from"] and tree["VAV-1-01"]["inference"]
        assert {p["name"] for p in tree["VAV-1-01"]["points"]} == {
            "AHU-1.VAV-1-01.ZN-T",
            "AHU-1.VAV-1-01.AIRFLOW",
        }
        found = c.get("/classes", params={"q": "zone air temperature setpoint"}).json()
        assert found[0]["name"] == "Target_Zone_Air_Temperature_Setpoint" and found[0]["definition"]


def test_sign_in_with_the_user_store_roles_and_who_is_recorded(platform: Platform) -> None:
    platform.settings.api.anonymous_role = ""
    UserStore(platform.settings.users_path()).add("rita", "s3cret-pass", "reviewer")
    UserStore(platform.settings.users_path()).add("victor", "s3cret-pass", "viewer")
    stored = json.loads(platform.settings.users_path().read_text())
    assert "s3cret-pass" not in json.dumps(stored)  # only the salted hash is kept
    with _client(platform) as c:
        assert c.get("/buildings").status_code == 401
        assert c.post("/auth/login", json={"username": "rita", "password": "wrong"}).status_code == 401
        token = c.post("/auth/login", json={"username": "rita", "password": "s3cret-pass"}).json()["token"]
        rita = {"Authorization": f"Bearer {token}"}
        assert c.get("/auth/me", headers=rita).json() == {"user": "rita", "role": "reviewer"}
        viewer = c.post("/auth/login", json={"username": "victor", "password": "s3cret-pass"}).json()["token"]
        row = c.get("/buildings/hq/points", headers=rita).json()["items"][0]
        refused = c.post(
            "/buildings/hq/decisions",
            json={"decisions": [{"point": row["iri"], "action": "reject"}]},
            headers={"Authorization": f"Bearer {viewer}"},
        )
        assert refused.status_code == 403
        ok = c.post(
            "/buildings/hq/decisions",
            json={"decisions": [{"point": row["iri"], "action": "reject"}]},
            headers=rita,
        )
        assert ok.status_code == 200
        assert (
            c.get("/buildings/hq/history", params={"point": row["iri"]}, headers=rita).json()[0]["who"]
            == "rita"
        )
        c.post("/auth/logout", headers=rita)
        assert c.get("/buildings", headers=rita).status_code == 401


def test_password_hashes_are_salted_and_checked() -> None:
    a, b = hash_password("same"), hash_password("same")
    assert a != b and verify_password("same", a) and not verify_password("other", a)
    assert not verify_password("same", "garbage")


def test_decisions_and_history_survive_a_restart(tmp_path: Path, ontology: Ontology) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    settings.agent.retrieval = False
    first = Platform(settings, ontology=ontology)
    first.import_points("hq", read_points(FIXTURES / "small_building.csv"))
    first.decide(
        "hq", [Decision(point="AHU-1.SF-STS", action="correct", brick_class="Fan_On_Off_Status")], "rita"
    )
    first.close()
    again = Platform(settings, ontology=ontology)
    try:
        _, rows = again.points("hq", text="SF-STS")
        assert (rows[0].status, rows[0].brick_class) == ("corrected", "Fan_On_Off_Status")
        history = again.history("hq", rows[0].iri)
        assert [(h["who"], h["action"], h["brick_class"]) for h in history] == [
            ("rita", "correct", "Fan_On_Off_Status")
        ]
    finally:
        again.close()


def test_a_10000_point_building_is_served_a_page_at_a_time(platform: Platform, ontology: Ontology) -> None:
    points = [
        LabeledPoint(
            RawPoint(f"B{i // 40}.VAV-{i // 10}.P{i % 10}", unit="°F"),
            Suggestion("Zone_Air_Temperature_Sensor", round((i % 97) / 97, 3)),
            "suggested",
        )
        for i in range(10_000)
    ]
    platform.store.replace_graph(platform.graph_iri("big"), build_model("big", points, ontology))
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        page = c.get(
            "/buildings/big/points", params={"limit": 100, "offset": 9_950, "sort": "confidence"}
        ).json()
        assert page["total"] == 10_000 and len(page["items"]) == 50
        confs = [r["confidence"] for r in page["items"]]
        assert confs == sorted(confs) and confs[-1] == round(96 / 97, 3)
        low = c.get("/buildings/big/points", params={"max_confidence": 0.0, "limit": 1}).json()
        assert low["total"] == len([i for i in range(10_000) if i % 97 == 0])


def test_user_cli_adds_lists_and_removes(tmp_path: Path) -> None:
    def osed(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run_osed(*args, cwd=tmp_path, stdin=stdin)

    assert (
        osed(
            "user", "add", "rita", "--role", "reviewer", "--password-stdin", stdin="long-enough\n"
        ).returncode
        == 0
    )
    assert osed("user", "list").stdout.strip() == "rita\treviewer"
    short = osed("user", "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "8 characters" in short.stderr
    assert UserStore(tmp_path / "var" / "users.json").check("rita", "long-enough") == "reviewer"
    assert osed("user", "remove", "rita").returncode == 0
    assert osed("user", "list").stdout.strip() == ""


# -- every point reachable -------------------------------------------------------------------
# A building mixing what real exports hold: described and undescribed points, with and
# without unit and equipment, opaque controller codes the agent abstains on, a repeated
# name, and values a foreign model may state twice (two equipment labels, two Brick types,
# two descriptions). Paging must reach each point exactly once whatever the sort or filter.
SORTS = ("name", "confidence", "status", "class", "equipment")


@pytest.fixture(scope="module")
def mixed(ontology: Ontology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("mixed") / "var")
    settings.agent.retrieval = False
    platform = Platform(settings, store=OxigraphStore(None, settings.store), ontology=ontology)
    points = [*synthetic_points(260, seed=7), RawPoint("QX-0001"), RawPoint("QX-0001", unit="%")]
    result = platform.import_points("mixed", points)
    assert result.abstained >= 10
    graph = platform.building_graph("mixed")
    zone = next(graph.subjects(RDF.type, BRICK.Zone_Air_Temperature_Sensor))
    undescribed = next(
        p for p in graph.subjects(OSED.rawName, None) if (p, OSED.rawDescription, None) not in graph
    )
    ahu = next(graph.subjects(RDFS.label, Literal("AHU-1")))
    other = next(graph.subjects(RDFS.label, Literal("AHU-2")))
    platform.store.update(
        f"""INSERT DATA {{ GRAPH <{platform.graph_iri("mixed")}> {{
            <{ahu}> <{RDFS.label}> "CTA-1" .
            <{zone}> a <{BRICK.Temperature_Sensor}> ; <{BRICK.isPointOf}> <{other}> .
            <{undescribed}> <{OSED.rawDescription}> "first", "second" . }} }}"""
    )
    with TestClient(create_app(settings, platform=platform)) as client:
        client.platform = platform  # type: ignore[attr-defined]
        yield client
    platform.close()


def _page_through(c: TestClient, limit: int = 23, **params: object) -> tuple[list[int], list[dict]]:
    """Every page until an empty one (not trusting ``total``): the totals and the rows."""
    totals: list[int] = []
    rows: list[dict] = []
    for offset in range(0, 2_000, limit):
        page = c.get("/buildings/mixed/points", params={**params, "offset": offset, "limit": limit}).json()
        totals.append(page["total"])
        if not page["items"]:
            break
        assert len(page["items"]) == limit or offset + len(page["items"]) == page["total"], offset
        rows.extend(page["items"])
    return totals, rows


def _sort_key(sort: str, row: dict) -> object:
    value = {"name": row["name"], "confidence": row["confidence"], "status": row["status"]}.get(sort)
    if sort == "class":
        value = row["brick_class"] or ""
    if sort == "equipment":
        value = row["equipment"] or ""
    return -1.0 if value is None else value


def test_paging_reaches_every_point_once_under_every_sort(mixed: TestClient) -> None:
    held = stored_points(mixed.platform, "mixed")  # type: ignore[attr-defined]
    assert len(held) >= 262
    for sort in SORTS:
        for order in ("asc", "desc"):
            totals, rows = _page_through(mixed, sort=sort, order=order)
            iris = [r["iri"] for r in rows]
            assert set(totals) == {len(held)}, (sort, order)
            assert len(iris) == len(set(iris)) == len(held) and set(iris) == set(held), (sort, order)
            keys = [_sort_key(sort, r) for r in rows]
            assert keys == sorted(keys, reverse=order == "desc"), (sort, order)


def test_paging_reaches_every_matching_point_under_every_filter(mixed: TestClient) -> None:
    held = stored_points(mixed.platform, "mixed")  # type: ignore[attr-defined]
    equipment = {e for p in held.values() for e in p["equipment"]}
    assert {"AHU-1", "CTA-1"} <= equipment

    def matches(p: dict, f: dict) -> bool:
        text = str(f.get("q", "")).lower()
        return (
            ("status" not in f or p["status"] == f["status"])
            and (not text or any(text in s.lower() for s in p["names"] | p["descriptions"]))
            and ("brick_class" not in f or f["brick_class"] in p["classes"])
            and ("equipment" not in f or f["equipment"] in p["equipment"])
            and p["confidence"] >= f.get("min_confidence", 0.0)
            and p["confidence"] <= f.get("max_confidence", 1.0)
        )

    filters: list[dict] = [{"status": s} for s in ("suggested", "abstained")]
    filters += [{"q": "zone"}, {"q": "second"}, {"q": "qx-"}, {"brick_class": "Zone_Air_Temperature_Sensor"}]
    filters += [{"brick_class": "Temperature_Sensor"}, {"equipment": "AHU-1"}, {"equipment": "CTA-1"}]
    filters += [{"min_confidence": 0.5, "max_confidence": 0.9}, {"max_confidence": 0.0}]
    filters += [{"status": "abstained", "q": "x"}]
    for f in filters:
        expected = {iri for iri, p in held.items() if matches(p, f)}
        assert expected, f
        for sort, order in (("name", "asc"), ("confidence", "desc")):
            totals, rows = _page_through(mixed, limit=17, sort=sort, order=order, **f)
            iris = [r["iri"] for r in rows]
            assert set(totals) == {len(expected)}, f
            assert len(iris) == len(set(iris)) and set(iris) == expected, f
        # By-filter decisions see the same points.
        assert sorted(mixed.platform.point_iris("mixed", PointFilter(**f))) == sorted(expected)  # type: ignore[attr-defined]


def test_summary_queue_similar_and_equipment_count_each_point_once(mixed: TestClient) -> None:
    held = stored_points(mixed.platform, "mixed")  # type: ignore[attr-defined]
    summary = mixed.get("/buildings/mixed/summary").json()
    assert summary["total"] == sum(summary["by_status"].values()) == len(held)
    for status in ("suggested", "abstained"):
        assert summary["by_status"].get(status, 0) == sum(1 for p in held.values() if p["status"] == status)
    # The queue, "similar" and links to a point fetch their rows by IRI: every one comes back.
    iris = sorted(held)
    _, by_iri = mixed.platform.points("mixed", iris=iris, limit=len(iris))  # type: ignore[attr-defined]
    assert sorted(r.iri for r in by_iri) == iris
    queue = mixed.get("/buildings/mixed/review-queue", params={"k": 60}).json()
    assert len(queue) == len({q["iri"] for q in queue}) >= 20  # one per group of look-alike points
    for name in ("QX-0001", "AHU-1.VAV-1-01.ZN-T"):
        iri = next(i for i, p in held.items() if name in p["names"])
        similar = mixed.get("/buildings/mixed/similar", params={"point": iri}).json()["points"]
        signature = point_signature(name)
        alike = {i for i, p in held.items() if any(point_signature(n) == signature for n in p["names"])}
        assert {r["iri"] for r in similar} == alike and len(similar) == len(alike)
    tree = mixed.get("/buildings/mixed/equipment").json()
    for node in tree:
        assert len(node["points"]) == len({p["iri"] for p in node["points"]})
    listed = {p["iri"] for node in tree for p in node["points"]}
    assert listed == {i for i, p in held.items() if p["equipment"]}


def test_abstained_points_are_listed_and_decided_like_any_other(mixed: TestClient) -> None:
    held = stored_points(mixed.platform, "mixed")  # type: ignore[attr-defined]
    abstained = mixed.get("/buildings/mixed/points", params={"status": "abstained", "limit": 1000}).json()
    expected = {i for i, p in held.items() if p["status"] == "abstained"}
    assert abstained["total"] == len(abstained["items"]) == len(expected)
    assert {r["iri"] for r in abstained["items"]} == expected
    first, second = abstained["items"][:2]
    assert first["brick_class"] is None and first["status"] == "abstained"

    def decide(row: dict[str, Any], action: str, cls: str | None = None) -> Any:
        seen = {"expected_status": row["status"], "expected_class": row["brick_class"] or ""}
        body = {"decisions": [{"point": row["iri"], "action": action, "brick_class": cls, **seen}]}
        return mixed.post("/buildings/mixed/decisions", json=body)

    refused = decide(first, "confirm")  # nothing was suggested: there is nothing to confirm
    assert refused.status_code == 400 and "correct it instead" in refused.json()["detail"]
    assert decide(first, "correct", "Occupancy_Sensor").status_code == 200
    # The relabeling after a decision may have given the second one a suggestion meanwhile.
    second = mixed.get("/buildings/mixed/points", params={"point": second["iri"]}).json()["items"][0]
    assert decide(second, "reject").status_code == 200
    now = stored_points(mixed.platform, "mixed")  # type: ignore[attr-defined]
    assert (now[first["iri"]]["status"], now[first["iri"]]["classes"]) == ("corrected", {"Occupancy_Sensor"})
    assert now[second["iri"]]["status"] == "rejected"
    shown = mixed.get("/buildings/mixed/points", params={"point": first["iri"]}).json()["items"]
    assert [(r["status"], r["brick_class"]) for r in shown] == [("corrected", "Occupancy_Sensor")]
    left = mixed.get("/buildings/mixed/points", params={"status": "abstained", "limit": 1000}).json()
    assert left["total"] == len(left["items"]) == sum(1 for p in now.values() if p["status"] == "abstained")


def test_the_point_index_follows_the_model_however_it_was_written(mixed: TestClient) -> None:
    platform: Platform = mixed.platform  # type: ignore[attr-defined]
    iri = platform.graph_iri("mixed")
    mixed.get("/buildings/mixed/points", params={"limit": 1})

    # Ranked from the store (the fixture's SPARQL update) as from the model in memory.
    def values(graph: Graph) -> set[tuple[object, ...]]:  # 0.5 and 0.500000 are one decimal
        return {(s, p, o.toPython()) for s, p, o in graph}

    stored = values(platform.store.get_graph(platform.index_iri(iri)))
    assert stored == values(_paging.index_graph(_paging.keys_in(platform.building_graph("mixed"))))

    def names(**params: object) -> list[str]:
        return [r["name"] for r in _page_through(mixed, limit=50, **params)[1]]

    # A model written past the platform: the next page ranks its points anew.
    model = platform.building_graph("mixed")
    new = URIRef(f"{iri}/point/AAA-first")
    model.add((new, OSED.rawName, Literal("AAA first")))
    platform.store.replace_graph(iri, model)
    assert names()[0] == "AAA first" and len(names()) == len(stored_points(platform, "mixed"))
    assert "AAA first" in names(status="suggested")  # no status stated: shown and found as suggested
    # A point another client of a shared store added, unseen by this one: the counts differ,
    # and the order is rebuilt.
    raw_store = platform.store._store  # type: ignore[attr-defined]
    raw_store.update(
        f'INSERT DATA {{ GRAPH <{iri}> {{ <{iri}/point/ZZZ-last> <{OSED.rawName}> "ZZZ last" }} }}'
    )
    assert names(order="desc")[0] == "ZZZ last"
    assert len(names(sort="status")) == len(stored_points(platform, "mixed"))


def test_a_request_refused_half_way_leaves_the_others_and_the_state_intact(platform: Platform) -> None:
    platform.import_points("b", [RawPoint(f"VAV-{i}.ZN-T", unit="°F") for i in range(4)])
    # Held so the requests below wait and are applied together in one relabel.
    with platform.write_lock:
        ahead = platform.submit_decisions("b", [Decision(point="VAV-3.ZN-T", action="confirm")], "u0")
        ok = platform.submit_decisions("b", [Decision(point="VAV-0.ZN-T", action="reject")], "u1")
        # Its first decision is applied to the building's state before its second is refused.
        half = platform.submit_decisions(
            "b",
            [
                Decision(point="VAV-1.ZN-T", action="reject"),
                Decision(point="VAV-2.ZN-T", action="correct", brick_class="Flux_Capacitor"),
            ],
            "u2",
        )
        after = platform.submit_decisions("b", [Decision(point="VAV-2.ZN-T", action="reject")], "u3")
    assert ahead.result(60).decided == ok.result(60).decided == after.result(60).decided == 1
    with pytest.raises(OsedError, match="Flux_Capacitor"):
        half.result(60)
    statuses = {r.name: r.status for r in platform.points("b", limit=10)[1]}
    assert statuses == {
        "VAV-0.ZN-T": "rejected",
        "VAV-1.ZN-T": "suggested",
        "VAV-2.ZN-T": "rejected",
        "VAV-3.ZN-T": "confirmed",
    }
    history = platform.store.query(
        f"SELECT ?d WHERE {{ GRAPH <{platform.provenance_iri('b')}> {{ ?d <{OSED.point}> ?p . "
        f'?p <{OSED.rawName}> "VAV-1.ZN-T" }} }}'
    )
    assert not history.rows
    # What the platform keeps of the building agrees: the point is still as the page shows it.
    again = platform.decide(
        "b", [Decision(point="VAV-1.ZN-T", action="confirm", expected_status="suggested")], "u2"
    )
    assert again.decided == 1


def test_a_page_after_a_write_shows_the_new_state(platform: Platform) -> None:
    with _client(platform) as c:
        row = c.get("/buildings/hq/points", params={"q": "ZN-T"}).json()["items"][0]
        assert row["status"] == "suggested"
        c.get("/buildings/hq/points")  # every row read once and kept
        assert (
            c.post(
                "/buildings/hq/decisions", json={"decisions": [{"point": row["iri"], "action": "reject"}]}
            ).status_code
            == 200
        )
        shown = {r["iri"]: r for r in c.get("/buildings/hq/points").json()["items"]}
        assert shown[row["iri"]]["status"] == "rejected"
        assert c.post("/buildings/hq/undo").status_code == 200
        assert (
            c.get("/buildings/hq/points", params={"point": row["iri"]}).json()["items"][0]["status"]
            == "suggested"
        )
        # A SPARQL update (any graph) and a new import are writes too.
        platform.store.update(
            f"DELETE {{ GRAPH ?g {{ <{row['iri']}> <{OSED.rawDescription}> ?d }} }} "
            f'INSERT {{ GRAPH ?g {{ <{row["iri"]}> <{OSED.rawDescription}> "moved" }} }} '
            f"WHERE {{ GRAPH ?g {{ <{row['iri']}> <{OSED.rawName}> ?n OPTIONAL {{ <{row['iri']}> "
            f"<{OSED.rawDescription}> ?d }} }} }}"
        )
        assert (
            c.get("/buildings/hq/points", params={"point": row["iri"]}).json()["items"][0]["description"]
            == "moved"
        )
        platform.import_points("hq", [RawPoint(row["name"], description="imported again")])
        assert [r["description"] for r in c.get("/buildings/hq/points").json()["items"]] == ["imported again"]


def test_a_shared_store_is_read_for_every_page(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    with _client(platform) as c:
        c.get("/buildings/hq/points")
        iri = c.get("/buildings/hq/points", params={"q": "ZN-T"}).json()["items"][0]["iri"]
        # As another client of a remote store would: a write this platform does not see.
        monkeypatch.setattr(type(platform.store), "exclusive", False)
        raw_store = platform.store._store  # type: ignore[attr-defined]
        raw_store.update(
            f'INSERT DATA {{ GRAPH <{platform.graph_iri("hq")}> {{ <{iri}> <{OSED.rawUnit}> "furlong" }} }}'
        )
        unit = c.get("/buildings/hq/points", params={"point": iri}).json()["items"][0]["unit"]
        assert "furlong" in unit


def test_the_class_search_is_asked_once_per_text(ontology: Ontology, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def search(self: object, texts: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        asked.append(list(texts))
        return [[(f"{t}/{k}", 0.5)] for t in texts]

    monkeypatch.setattr(ClassRetriever, "search", search)
    retriever = _RememberingRetriever(ontology, None)
    assert retriever.search(["a", "b", "a"]) == [[("a/10", 0.5)], [("b/10", 0.5)], [("a/10", 0.5)]]
    assert retriever.search(["b", "c"]) == [[("b/10", 0.5)], [("c/10", 0.5)]]
    assert retriever.search(["c"], k=3) == [[("c/3", 0.5)]]
    assert asked == [["a", "b"], ["c"], ["c"]]
    retriever.search(["a"])[0].append(("changed by a caller", 1.0))
    assert retriever.search(["a"]) == [[("a/10", 0.5)]]


def test_a_stored_model_that_cannot_be_read_back_is_a_sentence_not_a_500(platform: Platform) -> None:
    with _client(platform) as c:
        iri = platform.graph_iri("hq")
        # Written past the readers: BACnet references that lost their device.
        platform.store.update(
            f"DELETE {{ GRAPH <{iri}> {{ ?r <http://data.ashrae.org/bacnet/2020#device-identifier> ?d }} }} "
            f"WHERE {{ GRAPH <{iri}> {{ ?r <http://data.ashrae.org/bacnet/2020#device-identifier> ?d }} }}"
        )
        row = c.get("/buildings/hq/points").json()["items"][0]
        r = c.post("/buildings/hq/decisions", json={"decisions": [{"point": row["iri"], "action": "reject"}]})
        assert r.status_code == 400
        assert (
            "cannot be read back" in r.json()["detail"] and "bacnet:device-identifier" in r.json()["detail"]
        )
