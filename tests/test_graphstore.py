from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rdflib import Graph, Literal, URIRef

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore import GraphStore, OxigraphStore, RemoteSparqlStore, StoreSettings
from tests.conftest import free_port

EX = "http://example.org/"


def _graph(n: int, tag: str = "a") -> Graph:
    g = Graph()
    for i in range(n):
        g.add((URIRef(f"{EX}{tag}{i}"), URIRef(f"{EX}p"), Literal(i)))
    return g


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


def test_named_graph_per_building_and_union_queries(store: GraphStore) -> None:
    assert store.replace_graph("urn:b:one", _graph(3, "a")) == 3
    store.replace_graph("urn:b:two", _graph(2, "b"))
    assert store.graphs() == ["urn:b:one", "urn:b:two"]
    assert store.count("urn:b:one") == 3
    rows = store.query(f"SELECT ?s WHERE {{ ?s <{EX}p> ?o }}").rows
    assert len(rows) == 5
    assert len(store.get_graph("urn:b:two")) == 2


def test_replace_is_whole_and_invalid_data_changes_nothing(store: GraphStore) -> None:
    store.replace_graph("urn:b:one", _graph(10, "a"))
    store.replace_graph("urn:b:one", _graph(4, "c"))
    assert store.count("urn:b:one") == 4
    bad = Graph()
    bad.add((URIRef("not an iri with spaces"), URIRef(f"{EX}p"), Literal(1)))
    with pytest.raises(GraphStoreError):
        store.replace_graph("urn:b:one", bad)
    assert store.count("urn:b:one") == 4
    assert store.graphs() == ["urn:b:one"]


def test_result_limit_truncates_and_says_so(store: GraphStore) -> None:
    store.replace_graph("urn:b:one", _graph(50))
    result = store.query("SELECT ?s WHERE { ?s ?p ?o }", limit=10)
    assert len(result.rows) == 10 and result.truncated


def test_malformed_queries_and_updates_are_refused(store: GraphStore) -> None:
    with pytest.raises(QueryError):
        store.query("SELEC ?x WHERE {")
    with pytest.raises(QueryError, match="read-only"):
        store.query("INSERT DATA { <urn:a> <urn:b> <urn:c> }")


def test_embedded_query_timeout_stops_a_long_query(tmp_path: Path) -> None:
    # No row limit: only the deadline can stop this 27-billion-row query.
    store = OxigraphStore(None, StoreSettings(query_timeout_s=0.5, result_limit=10**12))
    store.replace_graph("urn:b:one", _graph(3000))
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        store.query("SELECT * WHERE { ?a ?p ?x . ?b ?p ?y . ?c ?p ?z }")
    assert time.monotonic() - start < 3
    store.close()


def test_embedded_store_persists_on_disk(tmp_path: Path) -> None:
    s = OxigraphStore(tmp_path / "db")
    s.replace_graph("urn:b:one", _graph(3))
    s.close()
    del s
    again = OxigraphStore(tmp_path / "db")
    assert again.count("urn:b:one") == 3
    again.close()
