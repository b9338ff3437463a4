"""The ontologies in the store: one named graph, loaded once, queried with the buildings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rdflib import Graph

from api._service import Platform
from api.settings import Settings
from graphstore import GraphStore
from ontology import Ontology, OntologyGraph, ontology_graph_iri, sparql_prefixes
from tests.conftest import FIXTURES

SUBCLASS_QUERY = sparql_prefixes() + "SELECT ?p WHERE { ?p a/rdfs:subClassOf* brick:Temperature_Sensor }"


def test_the_ontology_graph_is_written_once_and_again_when_the_files_change(
    store: GraphStore, ontology: Ontology
) -> None:
    iri = ontology_graph_iri("urn:osed:")
    graph = ontology.graph
    calls: list[int] = []

    def content() -> bytes:
        calls.append(1)
        return graph.ntriples

    assert store.ensure_graph(iri, graph.key, content) is True
    assert store.ensure_graph(iri, graph.key, content) is False  # the stored key matches
    assert len(calls) == 1
    n = store.count(iri)
    assert n > 60_000  # Brick 1.5 alone is 62,083 triples
    brick = store.query(
        sparql_prefixes() + "ASK { brick:Zone_Air_Temperature_Sensor rdfs:subClassOf+ brick:Point }"
    )
    s223 = store.query(sparql_prefixes() + "ASK { s223:Fan rdfs:subClassOf+ s223:Equipment }")
    assert brick.boolean and s223.boolean
    # Another key (an upgraded brickschema): replaced, not added to.
    assert store.ensure_graph(iri, "other-key", content) is True
    assert store.count(iri) == n and len(calls) == 2


def test_the_key_follows_the_files(tmp_path: Path) -> None:
    a = tmp_path / "a.ttl"
    a.write_text("<urn:x> <urn:p> 1 .\n", "utf-8")
    before = OntologyGraph((a,)).key
    a.write_text("<urn:x> <urn:p> 2 .\n", "utf-8")
    assert OntologyGraph((a,)).key != before
    assert OntologyGraph((a,)).ntriples.strip().endswith(b".")


def test_a_stored_ontology_graph_is_not_loaded_again_by_the_next_platform(
    tmp_path: Path, ontology: Ontology
) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    first = Platform(settings, ontology=ontology)
    iri = ontology_graph_iri(settings.base_iri)
    assert first.store.has_graph(iri)
    version = first.store.version(iri)
    first.close()
    second = Platform(settings, ontology=ontology)
    assert second.store.has_graph(iri)
    assert second.store.version(iri) == (0, 0)  # nothing written by this one
    assert version != (0, 0)
    second.close()


def _temperature_sensors(platform: Platform, building: str) -> set[str]:
    index = platform.ontology.index
    return {
        iri
        for iri, row in _classes(platform, building).items()
        if row and index.is_subclass(row, "Temperature_Sensor")
    }


def _classes(platform: Platform, building: str) -> dict[str, str]:
    rows = platform.store.query(
        sparql_prefixes()
        + f"""SELECT ?p ?c WHERE {{ GRAPH <{platform.graph_iri(building)}> {{
            ?p osed:rawName ?n ; a ?c FILTER(STRSTARTS(STR(?c), STR(brick:))) }} }}""",
        limit=10**6,
    ).rows
    return {str(r["p"]): str(r["c"]).rsplit("#", 1)[1] for r in rows}


def test_subclass_queries_find_the_demo_temperature_sensors_and_the_graph_stays_out_of_buildings(
    platform: Platform,
) -> None:
    from api.cli import load_demo
    from api.demo import DEMO_BUILDING

    load_demo(platform)
    expected = _temperature_sensors(platform, DEMO_BUILDING)
    assert len(expected) > 30
    found = {str(r["p"]) for r in platform.store.user_query(SUBCLASS_QUERY).rows}
    assert found == expected
    # Not a building, not in the building's export.
    assert [b["id"] for b in platform.buildings()] == [DEMO_BUILDING]
    model = platform.building_graph(DEMO_BUILDING)
    ontology_iri = ontology_graph_iri(platform.settings.base_iri)
    assert not any(str(s).startswith("https://brickschema.org/schema/Brick#") for s in model.subjects())
    assert platform.store.count(ontology_iri) > 60_000
    assert len(model) < 20_000


def test_the_sparql_endpoint_sees_the_ontology(platform: Platform) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    platform.import_points("hq", _small_points(platform))
    with TestClient(create_app(platform.settings, platform=platform)) as client:
        r = client.post(
            "/sparql",
            content=SUBCLASS_QUERY,
            headers={"Content-Type": "application/sparql-query", "Accept": "application/sparql-results+json"},
        )
    assert r.status_code == 200, r.text
    rows = r.json()["results"]["bindings"]
    assert {b["p"]["value"] for b in rows} == _temperature_sensors(platform, "hq")
    assert rows


def _small_points(platform: Platform):  # type: ignore[no-untyped-def]
    from mapper import read_points

    return read_points(FIXTURES / "small_building.csv")


def test_osed_query_sees_the_ontology(tmp_path: Path) -> None:
    env = {**os.environ, "OSED_DATA_DIR": str(tmp_path / "var"), "OSED_AGENT__RETRIEVAL": "false"}

    def osed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )

    assert osed("load", str(FIXTURES / "small_building.csv"), "--building", "hq").returncode == 0
    start = time.monotonic()
    q = osed("query", "SELECT ?p WHERE { ?p a/rdfs:subClassOf* brick:Temperature_Sensor }", "--format", "csv")
    assert q.returncode == 0, q.stderr
    assert len(q.stdout.strip().splitlines()) - 1 == 2  # AHU-1.SA-T and ZN-T
    assert time.monotonic() - start < 30
    exported = osed("export", "--building", "hq")
    assert exported.returncode == 0
    assert "Temperature_Sensor rdfs:subClassOf" not in exported.stdout
    assert len(Graph().parse(data=exported.stdout, format="turtle")) < 2000
