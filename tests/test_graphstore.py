from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore import GraphStore, OxigraphStore, StoreSettings

EX = "http://example.org/"


def _graph(n: int, tag: str = "a") -> Graph:
    g = Graph()
    for i in range(n):
        g.add((URIRef(f"{EX}{tag}{i}"), URIRef(f"{EX}p"), Literal(i)))
    return g


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


def test_replace_writes_the_new_graph_exactly_with_additions_and_blank_nodes(store: GraphStore) -> None:
    from rdflib import BNode
    from rdflib.compare import isomorphic

    store.replace_graph("urn:b:one", _graph(20, "a"))
    changed = _graph(18, "a") + _graph(3, "z")  # two triples gone, three new
    changed.add((URIRef(f"{EX}a1"), URIRef(f"{EX}label"), Literal('tab\tquote" é', lang="fr")))
    log = _graph(2, "log")
    store.replace_graphs({"urn:b:one": changed}, add={"urn:b:log": log})
    store.replace_graphs({"urn:b:one": changed}, add={"urn:b:log": _graph(3, "log")})
    assert isomorphic(store.get_graph("urn:b:one"), changed)
    assert isomorphic(store.get_graph("urn:b:log"), _graph(3, "log"))  # added to, not replaced
    with_blank = Graph()
    node = BNode()
    with_blank.add((URIRef(f"{EX}a0"), URIRef(f"{EX}field"), node))
    with_blank.add((node, URIRef(f"{EX}value"), Literal("x")))
    store.replace_graph("urn:b:one", with_blank)
    store.replace_graph("urn:b:one", with_blank)
    assert isomorphic(store.get_graph("urn:b:one"), with_blank)
    store.replace_graph("urn:b:one", _graph(2, "c"))
    assert isomorphic(store.get_graph("urn:b:one"), _graph(2, "c"))


def test_a_replacement_after_a_restart_writes_only_what_differs(tmp_path: Path) -> None:
    from rdflib.compare import isomorphic

    first = OxigraphStore(tmp_path / "db")
    first.replace_graph("urn:b:one", _graph(50, "a"))
    first.close()
    again = OxigraphStore(tmp_path / "db")  # nothing remembered: the stored graph is read
    newer = _graph(45, "a") + _graph(5, "n")
    again.replace_graph("urn:b:one", newer)
    assert isomorphic(again.get_graph("urn:b:one"), newer)
    again.close()


_CRASH_INSIDE_A_WRITE = """
import os, sys
from rdflib import Graph, Literal, URIRef
from graphstore import OxigraphStore

store = OxigraphStore(sys.argv[1])
real = store._store
WRITES = {"add", "extend", "bulk_extend", "load", "bulk_load", "update", "remove", "remove_graph",
          "clear_graph", "clear"}

class KilledAfterFirstWrite:
    def __getattr__(self, name):
        attr = getattr(real, name)
        if name not in WRITES:
            return attr
        def write(*args, **kwargs):
            attr(*args, **kwargs)
            os._exit(9)  # as a kill -9 right after this step of the replacement
        return write

def graph(tag, n):
    g = Graph()
    for i in range(n):
        g.add((URIRef(f"urn:x:{tag}{i}"), URIRef("urn:x:p"), Literal(i)))
    return g

store._store = KilledAfterFirstWrite()
store.replace_graphs({"urn:b:one": graph("new", 500), "urn:b:two": graph("new", 300)})
"""


def test_a_process_killed_inside_a_replacement_leaves_all_old_or_all_new_graphs(tmp_path: Path) -> None:
    path = tmp_path / "db"
    before = OxigraphStore(path)
    before.replace_graphs({"urn:b:one": _graph(40, "old"), "urn:b:two": _graph(30, "old")})
    before.close()
    del before
    done = subprocess.run([sys.executable, "-c", _CRASH_INSIDE_A_WRITE, str(path)], timeout=60)
    assert done.returncode == 9
    after = OxigraphStore(path)
    # What any query over all graphs sees (the building list reads GRAPH ?g): only the two.
    seen = {str(r["g"]) for r in after.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }").rows}
    assert seen == {"urn:b:one", "urn:b:two"}
    counts = (after.count("urn:b:one"), after.count("urn:b:two"))
    assert counts in ((40, 30), (500, 300))
    after.close()


def test_staging_graphs_a_killed_import_left_are_removed_at_open(tmp_path: Path) -> None:
    import pyoxigraph as ox

    path = tmp_path / "db"
    raw = ox.Store(str(path))
    staging = ox.NamedNode("urn:osed:staging:0123456789abcdef")
    raw.add(ox.Quad(ox.NamedNode("urn:x:b"), ox.NamedNode("urn:x:p"), ox.Literal("1"), staging))
    raw.add(
        ox.Quad(ox.NamedNode("urn:x:b"), ox.NamedNode("urn:x:p"), ox.Literal("1"), ox.NamedNode("urn:b:one"))
    )
    del raw
    store = OxigraphStore(path)
    assert store.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }").rows == [
        {"g": URIRef("urn:b:one")}
    ]
    store.close()


RUNAWAY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@pytest.mark.parametrize("on_disk", [True, False])
def test_a_user_query_past_its_timeout_is_killed_and_its_worker_freed(tmp_path: Path, on_disk: bool) -> None:
    settings = StoreSettings(query_timeout_s=1.0, query_workers=2)
    store = OxigraphStore(tmp_path / "db" if on_disk else None, settings)
    store.replace_graph("urn:b:one", _graph(3000))
    killed: list[int] = []
    store.query_workers.on_kill = killed.append
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        store.user_query(RUNAWAY)  # one aggregate step: no result row to stop between
    assert time.monotonic() - start < 3
    assert len(killed) == 1 and not _alive(killed[0])
    # The next queries answer at once and see a write made after the last snapshot.
    store.replace_graph("urn:b:two", _graph(5, "b"))
    start = time.monotonic()
    count = store.user_query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH <urn:b:two> { ?s ?p ?o } }")
    assert int(count.rows[0]["n"]) == 5
    assert store.user_query("ASK { <http://example.org/b4> ?p ?o }").boolean is True
    assert time.monotonic() - start < 3
    with pytest.raises(QueryError, match="malformed"):
        store.user_query("SELECT ?x WHERE {")
    store.close()
    if on_disk:
        assert not (tmp_path / "db-snapshots").exists()
