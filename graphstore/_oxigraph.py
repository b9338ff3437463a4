"""The embedded store: pyoxigraph on disk (or in memory for tests)."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Identifier

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore._base import GraphStore, QueryResult, StoreSettings, is_update, to_ntriples

_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def to_rdflib(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> Identifier:
    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return BNode(term.value)
    if isinstance(term, ox.Literal):
        if term.language:
            return Literal(term.value, lang=term.language)
        if term.datatype.value == _XSD_STRING:
            return Literal(term.value)
        return Literal(term.value, datatype=URIRef(term.datatype.value))
    raise GraphStoreError(f"RDF-star terms are not supported: {term}")


class OxigraphStore(GraphStore):
    """Embedded Oxigraph. ``path=None`` keeps everything in memory."""

    def __init__(self, path: Path | str | None, settings: StoreSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or StoreSettings()
        try:
            if path is None:
                self._store = ox.Store()
            else:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._store = ox.Store(str(path))
        except OSError as exc:
            raise GraphStoreError(f"cannot open the graph store at {path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._workers = threading.BoundedSemaphore(self.settings.query_workers)
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.query_workers, thread_name_prefix="osed-query"
        )

    # -- writes -----------------------------------------------------------------------
    def replace_graphs(self, graphs: dict[str, Graph]) -> int:
        staged: list[tuple[str, ox.NamedNode]] = []
        quads: list[ox.Quad] = []
        for graph_iri, data in graphs.items():
            payload = to_ntriples(data, graph_iri)
            staging = ox.NamedNode(f"urn:osed:staging:{uuid.uuid4().hex}")
            try:
                quads.extend(
                    ox.Quad(t.subject, t.predicate, t.object, staging)
                    for t in ox.parse(payload, format=ox.RdfFormat.N_TRIPLES)
                )
            except SyntaxError as exc:
                raise GraphStoreError(f"graph <{graph_iri}> not stored: invalid RDF: {exc}") from exc
            staged.append((graph_iri, staging))
        with self._write_lock:
            try:
                # Staged in graphs of their own (one transaction), then moved over the
                # targets in a single update: readers see all old graphs or all new ones.
                self._store.extend(quads)
                self._store.update(" ;\n".join(f"MOVE SILENT <{s.value}> TO <{g}>" for g, s in staged))
            except (OSError, SyntaxError, ValueError) as exc:
                raise GraphStoreError(f"graphs {', '.join(graphs)} not stored: {exc}") from exc
            finally:
                self._wrote(graphs)
                for _g, staging in staged:
                    if self._store.contains_named_graph(staging):
                        self._store.remove_graph(staging)
        return len(quads)

    def drop_graph(self, graph_iri: str) -> None:
        with self._write_lock:
            node = ox.NamedNode(graph_iri)
            try:
                if self._store.contains_named_graph(node):
                    self._store.remove_graph(node)
            finally:
                self._wrote([graph_iri])

    def update(self, sparql: str) -> None:
        with self._write_lock:
            try:
                self._store.update(sparql)
            except SyntaxError as exc:
                raise QueryError(f"malformed SPARQL update: {exc}") from exc
            except (OSError, ValueError) as exc:
                raise GraphStoreError(f"update failed, nothing written: {exc}") from exc
            finally:
                self._wrote(None)

    # -- reads ------------------------------------------------------------------------
    def get_graph(self, graph_iri: str) -> Graph:
        g = Graph()
        for q in self._store.quads_for_pattern(None, None, None, ox.NamedNode(graph_iri)):
            g.add((to_rdflib(q.subject), to_rdflib(q.predicate), to_rdflib(q.object)))
        return g

    def graphs(self) -> list[str]:
        return sorted(
            g.value
            for g in self._store.named_graphs()
            if isinstance(g, ox.NamedNode) and not g.value.startswith("urn:osed:staging:")
        )

    def query(self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None) -> QueryResult:
        if is_update(sparql):
            raise QueryError("this endpoint is read-only: SPARQL updates are not accepted here")
        timeout = timeout_s or self.settings.query_timeout_s
        max_rows = limit or self.settings.result_limit
        if not self._workers.acquire(blocking=False):
            raise QueryTimeoutError(
                "all query workers are busy with earlier long-running queries; try again later"
            )
        deadline = time.monotonic() + timeout
        future = self._pool.submit(self._run, sparql, deadline, max_rows)
        future.add_done_callback(lambda _f: self._workers.release())
        try:
            return future.result(timeout=timeout)
        except FuturesTimeout:
            raise QueryTimeoutError(f"query stopped after the {timeout:g} s timeout") from None

    def _run(self, sparql: str, deadline: float, max_rows: int) -> QueryResult:
        try:
            result = self._store.query(sparql, use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise QueryError(f"malformed SPARQL query: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise GraphStoreError(f"query failed: {exc}") from exc
        collected: QueryResult | Exception | None
        try:
            collected = _collect(result, deadline, max_rows)
        except (OSError, ValueError) as exc:
            collected = exc
        # pyoxigraph's result objects belong to this thread: release them here, before an
        # exception (whose traceback would hold them) travels to the waiting thread.
        del result
        if collected is None:
            raise QueryTimeoutError("query stopped at its timeout")
        if isinstance(collected, Exception):
            raise GraphStoreError(f"query failed: {collected}") from None
        return collected

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError, AttributeError):
            self._store.flush()
        # Drop the store so its lock on the folder goes now, not at garbage collection:
        # the same process may open the folder again (a restart within a server or test).
        self._store = None  # type: ignore[assignment]
        gc.collect()


def _collect(
    result: ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples, deadline: float, max_rows: int
) -> QueryResult | None:
    """Rows or triples of a result; None when the deadline passed (checked every 256 rows)."""
    if isinstance(result, ox.QueryBoolean):
        return QueryResult(kind="ask", boolean=bool(result))
    if isinstance(result, ox.QueryTriples):
        g = Graph()
        for n, t in enumerate(result):
            if n >= max_rows:
                return QueryResult(kind="graph", graph=g, truncated=True)
            if n % 256 == 0 and time.monotonic() > deadline:
                return None
            g.add((to_rdflib(t.subject), to_rdflib(t.predicate), to_rdflib(t.object)))
        return QueryResult(kind="graph", graph=g)
    variables = [v.value for v in result.variables]
    rows: list[dict[str, Identifier]] = []
    for n, solution in enumerate(result):
        if n >= max_rows:
            return QueryResult(kind="select", variables=variables, rows=rows, truncated=True)
        if n % 256 == 0 and time.monotonic() > deadline:
            return None
        row = {}
        for var in variables:
            value = solution[var]
            if value is not None:
                row[var] = to_rdflib(value)
        rows.append(row)
    return QueryResult(kind="select", variables=variables, rows=rows)
