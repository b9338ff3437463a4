"""Building ids map one-to-one to graph IRIs: a strict grammar matched in full, the id written
into the IRI as it is (and read back from it), refusals in one sentence over HTTP and the
CLI, and buildings stored when long ids were cut short moved to their own IRI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from rdflib import Literal, URIRef

from api._service import Decision, Platform
from api.app import create_app
from core.errors import InvalidBuildingId
from graphstore import OxigraphStore
from mapper import (
    BUILDING_ID_RULE,
    EquipmentRef,
    RawPoint,
    building_id,
    building_iri,
    check_building_id,
    equipment_iri,
    point_iri,
    read_points,
    slug,
)
from mapper._rdf import BUILDING_ID
from ontology import OSED, Ontology
from tests.conftest import FIXTURES
from tests.test_cli import osed as run_osed

BASES = ("urn:osed:", "https://example.org/buildings/")
valid_ids = st.from_regex(BUILDING_ID, fullmatch=True).filter(lambda b: b != "topology")


# -- the grammar ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "building",
    ["victim\n", "victim\r\n", "\nvictim", " victim", "victim ", "a/b", "a:b", "a%0Ab", "", "-a", ".a",
     "_a", "a" * 65, "bâtiment", "a\tb", "a#b", "a>b", "topology"],
)  # fmt: skip
def test_an_id_outside_the_grammar_is_refused_in_one_sentence(building: str) -> None:
    with pytest.raises(InvalidBuildingId) as refused:
        check_building_id(building)
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message
    if building != "topology":
        assert message.endswith(BUILDING_ID_RULE)
    with pytest.raises(InvalidBuildingId):
        building_iri("urn:osed:", building)


@pytest.mark.parametrize(
    "building",
    # Every id the project's tests, docs and demo use.
    ["hq", "demo", "building", "b", "b1", "b2", "m", "mixed", "big", "empty", "bare", "annex",
     "site_x", "a_b", "ab", "A.b-c_9", "9", "x" * 64],
)  # fmt: skip
def test_the_ids_in_use_are_valid(building: str) -> None:
    assert check_building_id(building) == building


# -- one-to-one ------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BASES), valid_ids, valid_ids)
def test_distinct_ids_never_share_a_graph_and_the_id_reads_back(base: str, a: str, b: str) -> None:
    ga, gb = building_iri(base, a), building_iri(base, b)
    assert (ga == gb) == (a == b)
    assert building_id(base, str(ga)) == a and building_id(base, str(gb)) == b
    # Nothing a building mints lies in another building's graph namespace.
    if a != b:
        assert not str(point_iri(base, a, "x", "x")).startswith(f"{gb}/")
        assert not str(equipment_iri(base, a, EquipmentRef("AHU-1", "AHU"))).startswith(f"{gb}/")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BASES), valid_ids)
def test_an_id_is_the_iris_last_segment_as_it_is(base: str, building: str) -> None:
    assert str(building_iri(base, building)) == base + building
    # Ids the old slugging kept whole (at most 48 characters, no trailing '_') keep their IRI.
    if len(building) <= 48 and not building.endswith("_"):
        assert str(building_iri(base, building)) == f"{base}{slug(building)}"


def test_the_issues_pairs_are_two_graphs() -> None:
    long_a, long_b = "p" * 48 + "a" * 16, "p" * 48 + "b" * 16
    for a, b in (("a_b", "ab"), (long_a, long_b), ("victim", "Victim")):
        assert building_iri("urn:osed:", a) != building_iri("urn:osed:", b)
    assert building_id("urn:osed:", "urn:osed:topology") is None
    assert building_id("urn:osed:", "urn:osed:hq/provenance") is None
    assert building_id("urn:osed:", "urn:other:hq") is None


def test_point_iris_of_stored_buildings_are_unchanged() -> None:
    """Data stored before this change is still found: a point's IRI for an id of at most
    48 characters is what it was."""
    digest = hashlib.sha1(b"bacnet:1001/analog-input,1").hexdigest()[:10]
    assert point_iri("urn:osed:", "hq", "bacnet:1001/analog-input,1", "AHU-1 ZN-T") == URIRef(
        f"urn:osed:hq/point/AHU-1_ZN-T_{digest}"
    )


# -- refused at the boundaries ---------------------------------------------------------------
def test_the_api_refuses_a_trailing_newline_and_leaves_the_building_alone(platform: Platform) -> None:
    platform.import_points("victim", read_points(FIXTURES / "small_building.csv"))
    before = len(platform.building_graph("victim"))
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        upload = c.post(
            "/buildings/victim%0A/points",
            files={"file": ("p.csv", b"name\nEVIL-1\n", "text/csv")},
        )
        assert upload.status_code == 400, upload.text
        assert upload.json()["detail"] == f"invalid building id 'victim\\n': {BUILDING_ID_RULE}"
        created = c.post("/buildings", json={"id": "victim\n"})
        assert created.status_code == 400 and BUILDING_ID_RULE in created.json()["detail"]
        assert c.get("/buildings/victim%0A/points").status_code == 400
        assert (
            c.get("/gridfunctions/capacity-limit/check", params={"building": "victim\n"}).status_code == 400
        )
        # a_b and ab, and two long ids sharing 48 characters, are four buildings.
        long_a, long_b = "p" * 48 + "a" * 16, "p" * 48 + "b" * 16
        for b in ("a_b", "ab", long_a, long_b):
            assert c.post("/buildings", json={"id": b, "label": b}).status_code == 201
        listed = {b["id"]: b["graph"] for b in c.get("/buildings").json()}
        assert {listed[b] for b in ("a_b", "ab", long_a, long_b)} == {
            f"urn:osed:{b}" for b in ("a_b", "ab", long_a, long_b)
        }
    assert len(platform.building_graph("victim")) == before
    assert "EVIL-1" not in {str(o) for o in platform.building_graph("victim").objects(None, OSED.rawName)}


def test_the_cli_refuses_a_bad_id_with_exit_2_and_one_line(tmp_path: Path) -> None:
    done = run_osed("load", str(FIXTURES / "small_building.csv"), "--building", "victim\n", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"osed: error: invalid building id 'victim\\n': {BUILDING_ID_RULE}"


def test_a_topology_names_a_bad_building_id_by_row() -> None:
    from core.errors import IngestError
    from gridfunctions import topology_graph

    csv = (
        b"id,kind,label,parent,rated_kva\nF-1,feeder,F,,\nT-1,transformer,T,F-1,500\nhq x,building,HQ,T-1,\n"
    )
    with pytest.raises(IngestError) as refused:
        topology_graph(data=csv)
    assert refused.value.row == 4 and refused.value.field == "id"


# -- stored under a cut-short IRI ------------------------------------------------------------
@pytest.mark.parametrize("long_id", ["campus-north-" + "x" * 51, "plant_"])
def test_a_building_stored_under_its_cut_short_iri_is_moved_with_its_history(
    long_id: str, tmp_path: Path, ontology: Ontology
) -> None:
    from api.settings import Settings

    settings = Settings(data_dir=tmp_path / "var")
    settings.agent.retrieval = False
    store = OxigraphStore(None, settings.store)
    short = slug(long_id)
    assert short != long_id
    # What the old code stored: everything under the slug of the id (its first 48
    # characters, trailing '_' dropped).
    old = Platform(settings, store=store, ontology=ontology)
    old.import_points(short, [RawPoint("AHU-1.SF-STS"), RawPoint("AHU-1.ZN-T", unit="°F")])
    old.decide(short, [Decision(point="AHU-1.SF-STS", action="reject")], "rita")
    store.update(
        f"""DELETE {{ GRAPH <urn:osed:{short}> {{ ?b <{OSED.buildingId}> ?id }} }}
            INSERT {{ GRAPH <urn:osed:{short}> {{ ?b <{OSED.buildingId}> {Literal(long_id).n3()} }} }}
            WHERE {{ GRAPH <urn:osed:{short}> {{ ?b <{OSED.buildingId}> ?id }} }}"""
    )
    new = Platform(settings, store=store, ontology=ontology)
    assert [b["id"] for b in new.buildings()] == [long_id]
    assert f"urn:osed:{short}" not in store.graphs()
    _, rows = new.points(long_id, text="SF-STS")
    assert rows[0].iri.startswith(f"urn:osed:{long_id}/point/") and rows[0].status == "rejected"
    assert [h["action"] for h in new.history(long_id, rows[0].iri)] == ["reject"]
    new.undo(long_id, "rita")
    assert new.points(long_id, text="SF-STS")[1][0].status != "rejected"


# -- one caller, one provenance agent --------------------------------------------------------
def test_two_callers_are_never_one_provenance_agent(platform: Platform) -> None:
    from api._service import NothingToUndo

    platform.import_points("hq", [RawPoint("AHU-1.SF-STS"), RawPoint("AHU-1.ZN-T", unit="°F")])
    platform.decide("hq", [Decision(point="AHU-1.SF-STS", action="reject")], "a@b")
    # `a_b` once was the same agent as `a@b` (and a user `token_…` the same as a token).
    with pytest.raises(NothingToUndo):
        platform.undo("hq", "a_b")
    platform.decide("hq", [Decision(point="AHU-1.ZN-T", action="reject")], "token:0123456789")
    with pytest.raises(NothingToUndo):
        platform.undo("hq", "token_0123456789")
    assert platform.undo("hq", "a@b").decided == 1


def test_decisions_recorded_under_a_slugged_agent_are_still_the_users(platform: Platform) -> None:
    platform.import_points("hq", [RawPoint("AHU-1.SF-STS")])
    platform.decide("hq", [Decision(point="AHU-1.SF-STS", action="reject")], "a@b")
    prov = platform.provenance_iri("hq")
    platform.store.update(
        f"""DELETE {{ GRAPH <{prov}> {{ ?s ?p <urn:osed:user:a@b> . <urn:osed:user:a@b> ?q ?o }} }}
            INSERT {{ GRAPH <{prov}> {{ ?s ?p <urn:osed:user:a_b> . <urn:osed:user:a_b> ?q ?o }} }}
            WHERE {{ GRAPH <{prov}> {{ {{ ?s ?p <urn:osed:user:a@b> }} UNION {{ <urn:osed:user:a@b> ?q ?o }} }} }}"""
    )
    assert "urn:osed:user:a@b" not in platform.store.get_graph(prov).serialize(format="nt")
    assert platform.undo("hq", "a@b").decided == 1
