"""Exports as a Brick or 223P user reads them, and the round trip back into a store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, Literal

from api._service import Platform
from ontology import OSED
from tests.conftest import FIXTURES, finished_job

SMALL = FIXTURES / "small_building.csv"
READABLE = ("brick", "s223", "qudt", "unit", "osed", "ref", "rdfs")


def osed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSED_DATA_DIR": str(cwd / "var"), "OSED_AGENT__RETRIEVAL": "false"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _prefixes(turtle: str) -> dict[str, str]:
    return {
        line.split()[1].rstrip(":"): line.split()[2].strip("<>")
        for line in turtle.splitlines()
        if line.startswith("@prefix")
    }


def _check_readable(turtle: str) -> None:
    prefixes = _prefixes(turtle)
    assert not [p for p in prefixes if p.startswith("ns")], prefixes
    assert set(READABLE) <= set(prefixes), prefixes
    assert prefixes["s223"] == "http://data.ashrae.org/standard223#"
    assert prefixes["unit"] == "http://qudt.org/vocab/unit/"


def _check_sources(model: Graph, name: str, data: bytes) -> None:
    files = set(model.objects(None, OSED.sourceFile))
    assert files == {Literal(name)}, files
    assert set(model.objects(None, OSED.sourceSha256)) == {Literal(hashlib.sha256(data).hexdigest())}


def test_cli_exports_have_readable_prefixes_and_no_machine_paths(tmp_path: Path) -> None:
    model_file = tmp_path / "m.ttl"
    r = osed(
        "label",
        str(SMALL),
        "--predictions",
        str(tmp_path / "p.csv"),
        "--model",
        str(model_file),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    labeled = model_file.read_text("utf-8")
    _check_readable(labeled)
    assert str(tmp_path) not in labeled and str(FIXTURES) not in labeled
    _check_sources(Graph().parse(data=labeled, format="turtle"), SMALL.name, SMALL.read_bytes())

    assert osed("load", str(SMALL), "--building", "hq", cwd=tmp_path).returncode == 0
    exported = osed("export", "--building", "hq", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    _check_readable(exported.stdout)
    assert str(FIXTURES) not in exported.stdout
    _check_sources(Graph().parse(data=exported.stdout, format="turtle"), SMALL.name, SMALL.read_bytes())
    as_jsonld = osed("export", "--building", "hq", "--format", "json-ld", cwd=tmp_path)
    context = json.loads(as_jsonld.stdout)["@context"]
    assert context["brick"] == "https://brickschema.org/schema/Brick#" and "quantitykind" in context


def test_api_uploads_record_the_file_name_only_and_models_read_like_the_standards(platform: Platform) -> None:
    from api.app import create_app

    data = SMALL.read_bytes()
    with TestClient(create_app(platform.settings, platform=platform)) as client:
        r = client.post(
            "/buildings/hq/points", files={"file": ("C:\\Users\\me\\Desktop\\list.csv", data, "text/csv")}
        )
        assert r.status_code == 202, r.text
        assert finished_job(client, r.json()["id"])["status"] == "succeeded"
        turtle = client.get("/buildings/hq/model", headers={"Accept": "text/turtle"})
        jsonld = client.get("/buildings/hq/model", headers={"Accept": "application/ld+json"})
    assert turtle.status_code == 200 and jsonld.status_code == 200
    _check_readable(turtle.text)
    _check_sources(Graph().parse(data=turtle.text, format="turtle"), "list.csv", data)
    body = jsonld.json()
    assert {"brick", "s223", "qudt", "unit", "quantitykind", "ref", "osed", "rec"} <= set(body["@context"])
    assert "ns1" not in jsonld.text
    assert len(Graph().parse(data=jsonld.text, format="json-ld")) == len(Graph().parse(data=turtle.text))


@pytest.mark.parametrize("name", ["/home/me/points.csv", "points.csv", "C:\\lists\\points.csv"])
def test_read_points_records_the_name_and_hash_of_the_file(tmp_path: Path, name: str) -> None:
    from mapper import read_points

    data = SMALL.read_bytes()
    points = read_points(name, data=data)
    assert {(p.source.source, p.source.sha256) for p in points if p.source} == {
        ("points.csv", hashlib.sha256(data).hexdigest())
    }


# -- round trip ---------------------------------------------------------------------------------
def _fresh(platform: Platform, tmp_path: Path, name: str) -> Platform:
    from api.settings import Settings
    from graphstore import OxigraphStore

    settings = Settings(data_dir=tmp_path / name)
    settings.agent.retrieval = False
    return Platform(settings, store=OxigraphStore(None, settings.store), ontology=platform.ontology)


def _s223_nodes(model: Graph) -> dict[str, int]:
    from rdflib import RDF

    from ontology import S223

    kinds = ("Connection", "ConnectionPoint", "Equipment", "PhysicalSpace", "DomainSpace")
    counts = {}
    for kind in kinds:
        counts[kind] = len(
            {s for s, t in model.subject_objects(RDF.type) if str(t).startswith(str(S223)) and kind in str(t)}
        )
    counts["hasProperty"] = len(list(model.subject_objects(S223.hasProperty)))
    counts["cnx"] = len(list(model.subject_objects(S223.cnx)))
    return counts


def test_the_exported_demo_reloaded_into_an_empty_store_is_the_same_graph_and_binds_the_same(
    platform: Platform, tmp_path: Path
) -> None:
    from rdflib.compare import isomorphic

    from api.cli import load_demo
    from api.demo import DEMO_BUILDING
    from gridfunctions import find_assets
    from mapper import read_osed_model, serialize_model

    load_demo(platform)
    original = platform.building_graph(DEMO_BUILDING)
    exported = serialize_model(original, "turtle")
    assets = find_assets(platform.store, platform.ontology.index, base_iri=platform.settings.base_iri)
    assert assets

    empty = _fresh(platform, tmp_path, "empty")
    try:
        triples, _report = empty.load_model(DEMO_BUILDING, read_osed_model("model.ttl", exported))
        again = empty.building_graph(DEMO_BUILDING)
        assert triples == len(original) and isomorphic(original, again)
        assert _s223_nodes(again) == _s223_nodes(original)
        assert find_assets(empty.store, empty.ontology.index, base_iri=empty.settings.base_iri) == assets
        assert [b["id"] for b in empty.buildings()] == [DEMO_BUILDING]
        total, _ = empty.points(DEMO_BUILDING, limit=1)
        assert total == len(list(original.subjects(OSED.rawName, None)))
    finally:
        empty.close()


def test_osed_load_of_an_export_under_its_id_or_another_gives_the_same_graph(tmp_path: Path) -> None:
    from rdflib import URIRef
    from rdflib.compare import isomorphic

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert osed("load", str(SMALL), "--building", "hq", cwd=first).returncode == 0
    model = tmp_path / "hq.ttl"
    assert osed("export", "--building", "hq", "-o", str(model), cwd=first).returncode == 0
    original = Graph().parse(model, format="turtle")

    loaded = osed("load", str(model), "--building", "hq", cwd=second)
    assert loaded.returncode == 0, loaded.stderr
    same = Graph().parse(data=osed("export", "--building", "hq", cwd=second).stdout, format="turtle")
    assert isomorphic(original, same)

    moved = osed("load", str(model), "--building", "annex", cwd=second)
    assert moved.returncode == 0, moved.stderr
    annex = Graph().parse(data=osed("export", "--building", "annex", cwd=second).stdout, format="turtle")
    assert len(annex) == len(original)
    assert not [t for t in annex if any(str(x).startswith("urn:osed:hq") for x in t)]
    assert (URIRef("urn:osed:annex"), OSED.buildingId, Literal("annex")) in annex


def test_an_export_uploaded_to_the_api_is_stored_as_it_is(platform: Platform, tmp_path: Path) -> None:
    from rdflib.compare import isomorphic

    from api.app import create_app
    from mapper import serialize_model

    platform.import_points("hq", __import__("mapper").read_points(SMALL), label="Head office")
    original = platform.building_graph("hq")
    exported = serialize_model(original, "turtle")
    empty = _fresh(platform, tmp_path, "empty")
    try:
        with TestClient(create_app(empty.settings, platform=empty)) as client:
            r = client.post("/buildings/hq/points", files={"file": ("hq.ttl", exported, "text/turtle")})
            assert r.status_code == 202, r.text
            job = finished_job(client, r.json()["id"])
            assert job["status"] == "succeeded", job
            back = client.get("/buildings/hq/model", headers={"Accept": "text/turtle"})
        # Compared as Turtle both ways: rdflib writes the decimal 65 as 65.0, which Oxigraph
        # stores as 65 again (the same value, another spelling).
        assert isomorphic(Graph().parse(data=exported), Graph().parse(data=back.text, format="turtle"))
    finally:
        empty.close()
