"""The REST calls behind the review page: filters, decisions with conflict detection, undo,
sign-in, provenance across a restart. Everything the page does can be scripted this way."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from fastapi.testclient import TestClient

from api._service import Decision, Platform
from api._users import UserStore, hash_password, verify_password
from api.app import create_app
from api.settings import Settings
from mapper import LabeledPoint, RawPoint, Suggestion, build_model, read_points
from ontology import Ontology
from tests.conftest import FIXTURES
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
