from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rdflib import RDF, RDFS

from agent import ClassRetriever
from api._service import Platform
from api.settings import Settings
from graphstore import GraphStore, OxigraphStore, RemoteSparqlStore, StoreSettings
from ontology import BRICK, OSED, Ontology

FIXTURES = Path(__file__).parent / "fixtures"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dev"


@pytest.fixture(scope="session")
def ontology(tmp_path_factory: pytest.TempPathFactory) -> Ontology:
    return Ontology.load(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def retriever(ontology: Ontology, tmp_path_factory: pytest.TempPathFactory) -> ClassRetriever:
    return ClassRetriever(ontology, tmp_path_factory.mktemp("chroma"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "var")
    settings.agent.retrieval = False  # exercised once, in test_agent.py
    return settings


@pytest.fixture
def platform(settings: Settings, ontology: Ontology) -> Platform:
    p = Platform(settings, store=OxigraphStore(None, settings.store), ontology=ontology)
    yield p
    p.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def finished_job(client: Any, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll a job through the API until it succeeds or fails; the job's JSON."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def stored_points(platform: Platform, building: str) -> dict[str, dict[str, Any]]:
    """Every point the store holds for a building, read from its graph (not through the
    paging queries under test): IRI -> names, descriptions, status, Brick classes,
    equipment labels and confidence, each as the graph states it (several values kept)."""
    graph = platform.building_graph(building)
    brick = str(BRICK)
    out: dict[str, dict[str, Any]] = {}
    for point in set(graph.subjects(OSED.rawName, None)):
        confidence = graph.value(point, OSED.confidence)
        out[str(point)] = {
            "names": {str(n) for n in graph.objects(point, OSED.rawName)},
            "descriptions": {str(d) for d in graph.objects(point, OSED.rawDescription)},
            "status": str(graph.value(point, OSED.reviewStatus) or "suggested"),
            "classes": {
                str(c)[len(brick) :] for c in graph.objects(point, RDF.type) if str(c).startswith(brick)
            },
            "equipment": {
                str(label)
                for e in graph.objects(point, BRICK.isPointOf)
                for label in graph.objects(e, RDFS.label)
            },
            "confidence": float(confidence) if confidence is not None else 0.0,
        }
    return out


# Graph stores for the tests that run against both: embedded, and a real `oxigraph serve`.
@pytest.fixture
def oxigraph_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    # The server binary ships in the `oxigraph` PyPI package, beside this interpreter.
    binary = Path(sys.executable).with_name("oxigraph")
    proc = subprocess.Popen(
        [
            str(binary if binary.exists() else "oxigraph"),
            "serve",
            "--location",
            str(tmp_path / "ox"),
            "--bind",
            f"127.0.0.1:{port}",
            "--union-default-graph",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/query", params={"query": "ASK {}"}, timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["embedded", "remote"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    if request.param == "embedded":
        s: GraphStore = OxigraphStore(tmp_path / "store")
    else:
        url = request.getfixturevalue("oxigraph_server")
        s = RemoteSparqlStore(
            StoreSettings(
                backend="sparql", query_url=url + "/query", update_url=url + "/update", gsp_url=url + "/store"
            )
        )
    yield s
    s.close()
