"""The embedded store: pyoxigraph on disk (or in memory for tests)."""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Identifier

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore._base import GraphStore, QueryResult, StoreSettings, is_update, to_ntriples
from graphstore._workers import QueryWorkers, Snapshots

log = logging.getLogger("osed.graphstore")
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
#: Where versions before 0.2 staged imports (see OxigraphStore._drop_leftover_staging).
_STAGING = "urn:osed:staging:"
#: A blank node object at the end of an N-Triples line (a literal ends in ", > or a tag).
_BLANK_OBJECT = re.compile(rb" _:\S+ \.$")
#: Graphs whose last written triples are remembered (a building's model and index...).
_REMEMBERED_GRAPHS = 16


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

    exclusive = True

    def __init__(self, path: Path | str | None, settings: StoreSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or StoreSettings()
        self._path = Path(path) if path is not None else None
        try:
            if self._path is None:
                self._store = ox.Store()
            else:
                self._path.mkdir(parents=True, exist_ok=True)
                self._store = ox.Store(str(self._path))
        except OSError as exc:
            raise GraphStoreError(f"cannot open the graph store at {path}: {exc}") from exc
        self._write_lock = threading.Lock()
        #: Graph -> (its version, its triples as N-Triples lines) as this object last wrote
        #: them, so a replacement writes only the difference (a decision changes a few
        #: triples of a 20,000-triple model).
        self._lines: OrderedDict[str, tuple[tuple[int, int], frozenset[bytes]]] = OrderedDict()
        self._drop_leftover_staging()
        self._workers = QueryWorkers(self.settings.query_workers, self.settings.query_memory_mb)
        self._snapshots: Snapshots | None = None
        self._snapshots_lock = threading.Lock()

    def _drop_leftover_staging(self) -> None:
        """Earlier versions staged an import in a graph of its own and then moved it over
        its target in a second transaction; a process killed in between left the staged
        graph behind, which every query over all graphs saw (a phantom building)."""
        for graph in list(self._store.named_graphs()):
            if isinstance(graph, ox.NamedNode) and graph.value.startswith(_STAGING):
                log.warning("removing <%s>, left by an import that was interrupted", graph.value)
                self._store.remove_graph(graph)

    # -- writes -----------------------------------------------------------------------
    def replace_graphs(self, graphs: dict[str, Graph], add: dict[str, Graph] | None = None) -> int:
        add = add or {}
        if set(graphs) & set(add):
            raise GraphStoreError(f"graphs both replaced and added to: {', '.join(set(graphs) & set(add))}")
        new = {g: _canonical(to_ntriples(data, g), g) for g, data in graphs.items()}
        extra = {g: _canonical(to_ntriples(data, g), g) for g, data in add.items()}
        with self._write_lock:
            try:
                drops: list[str] = []
                deletes: dict[str, frozenset[bytes]] = {}
                inserts: dict[str, frozenset[bytes]] = {}
                for graph_iri, lines in new.items():
                    old = self._stored_lines(graph_iri)
                    if _has_blank_node(old) or _has_blank_node(lines):
                        # Blank nodes cannot be deleted by value: the graph is rewritten.
                        if old:
                            drops.append(graph_iri)
                        if lines:
                            inserts[graph_iri] = lines
                        continue
                    if old - lines:
                        deletes[graph_iri] = old - lines
                    if lines - old:
                        inserts[graph_iri] = lines - old
                inserts.update((g, lines) for g, lines in extra.items() if lines)
                self._commit(drops, deletes, inserts)
            except (OSError, SyntaxError, ValueError) as exc:
                for graph_iri in (*graphs, *add):
                    self._lines.pop(graph_iri, None)
                raise GraphStoreError(f"graphs {', '.join(graphs)} not stored: {exc}") from exc
            finally:
                self._wrote([*graphs, *add])
            for graph_iri, lines in new.items():
                self._remember(graph_iri, lines)
            for graph_iri, lines in extra.items():
                known = self._lines.pop(graph_iri, None)
                if known is not None and known[0] == self._previous_version(graph_iri):
                    self._remember(graph_iri, known[1] | lines)
        return sum(len(lines) for lines in new.values())

    def _commit(
        self, drops: list[str], deletes: dict[str, frozenset[bytes]], inserts: dict[str, frozenset[bytes]]
    ) -> None:
        """One transaction: a load when it only adds (the fast path), else one update."""
        if not drops and not deletes:
            if inserts:
                quads = b"".join(
                    line[: line.rindex(b".")] + b"<" + graph_iri.encode("utf-8") + b"> .\n"
                    for graph_iri, lines in inserts.items()
                    for line in lines
                )
                self._store.load(quads, format=ox.RdfFormat.N_QUADS)
            return
        parts = [f"DROP SILENT GRAPH <{g}>" for g in drops]
        for keyword, data in (("DELETE", deletes), ("INSERT", inserts)):
            if data:
                blocks = " ".join(f"GRAPH <{g}> {{\n{_text(lines)}}}" for g, lines in data.items())
                parts.append(f"{keyword} DATA {{ {blocks} }}")
        self._store.update(" ;\n".join(parts))

    def _stored_lines(self, graph_iri: str) -> frozenset[bytes]:
        known = self._lines.get(graph_iri)
        if known is not None and known[0] == self.version(graph_iri):
            self._lines.move_to_end(graph_iri)
            return known[1]
        node = ox.NamedNode(graph_iri)
        if not self._store.contains_named_graph(node):
            return frozenset()
        return _lines(self._store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=node))

    def _remember(self, graph_iri: str, lines: frozenset[bytes]) -> None:
        self._lines[graph_iri] = (self.version(graph_iri), lines)
        self._lines.move_to_end(graph_iri)
        while len(self._lines) > _REMEMBERED_GRAPHS:
            self._lines.popitem(last=False)

    def _previous_version(self, graph_iri: str) -> tuple[int, int]:
        updates, writes = self.version(graph_iri)
        return updates, writes - 1

    def _put_ntriples(self, graph_iri: str, payload: bytes) -> None:
        """Two transactions when the graph exists: its removal, then the load (a SPARQL
        update of ``DROP`` and 72,000 triples of ``INSERT DATA`` took 8.5 s, these 2 s).
        The load carries the content key, so a process killed in between leaves a graph
        without its key, which the next ``ensure_graph`` writes again."""
        with self._write_lock:
            self._lines.pop(graph_iri, None)
            node = ox.NamedNode(graph_iri)
            try:
                if self._store.contains_named_graph(node):
                    self._store.remove_graph(node)
                self._store.load(payload, format=ox.RdfFormat.N_TRIPLES, to_graph=node)
            except (OSError, SyntaxError, ValueError) as exc:
                raise GraphStoreError(f"graph <{graph_iri}> not stored: {exc}") from exc

    def drop_graph(self, graph_iri: str) -> None:
        with self._write_lock:
            node = ox.NamedNode(graph_iri)
            self._lines.pop(graph_iri, None)
            try:
                if self._store.contains_named_graph(node):
                    self._store.remove_graph(node)
            finally:
                self._wrote([graph_iri])

    def update(self, sparql: str) -> None:
        with self._write_lock:
            self._lines.clear()  # an update may change any graph
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
        return sorted(g.value for g in self._store.named_graphs() if isinstance(g, ox.NamedNode))

    def query(self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None) -> QueryResult:
        """In the calling thread (pyoxigraph lets other threads run meanwhile); the deadline
        is checked between result rows, which bounds the platform's own queries. Queries
        from outside go to :meth:`user_query`."""
        if is_update(sparql):
            raise QueryError("this endpoint is read-only: SPARQL updates are not accepted here")
        timeout = timeout_s or self.settings.query_timeout_s
        deadline = time.monotonic() + timeout
        try:
            result = self._store.query(sparql, use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise QueryError(f"malformed SPARQL query: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise GraphStoreError(f"query failed: {exc}") from exc
        collected: QueryResult | Exception | None
        try:
            collected = _collect(result, deadline, limit or self.settings.result_limit)
        except (OSError, ValueError) as exc:
            collected = exc
        # pyoxigraph's result objects belong to this thread: release them now, before an
        # exception (whose traceback would hold them) travels to another thread.
        del result
        if collected is None:
            raise QueryTimeoutError(f"query stopped after the {timeout:g} s timeout")
        if isinstance(collected, Exception):
            raise GraphStoreError(f"query failed: {collected}") from None
        return collected

    def user_query(
        self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None
    ) -> QueryResult:
        """In a worker process over a snapshot of the store, killed at the deadline (see
        ``graphstore/_workers.py``)."""
        if is_update(sparql):
            raise QueryError("this endpoint is read-only: SPARQL updates are not accepted here")
        timeout = timeout_s or self.settings.query_timeout_s
        deadline = time.monotonic() + timeout
        snapshots = self._snapshot_source()
        snapshot = snapshots.acquire(self.generation())
        try:
            return self._workers.run(snapshot, sparql, limit or self.settings.result_limit, deadline, timeout)
        finally:
            snapshots.release(snapshot)

    @property
    def query_workers(self) -> QueryWorkers:
        return self._workers

    def _snapshot_source(self) -> Snapshots:
        with self._snapshots_lock:
            if self._snapshots is None:
                folder = self._path.with_name(self._path.name + "-snapshots") if self._path else None
                self._snapshots = Snapshots(self._store, self._path is not None, folder)
            return self._snapshots

    def close(self) -> None:
        self._workers.close()
        if self._snapshots is not None:
            self._snapshots.close()
        with contextlib.suppress(OSError, AttributeError):
            self._store.flush()
        # Drop the store so its lock on the folder goes now, not at garbage collection:
        # the same process may open the folder again (a restart within a server or test).
        self._store = None  # type: ignore[assignment]
        gc.collect()


def _canonical(payload: bytes, graph_iri: str) -> frozenset[bytes]:
    """The triples of an N-Triples payload as Oxigraph writes them (one spelling per
    term, so lines compare with what the store holds)."""
    scratch = ox.Store()
    try:
        scratch.load(payload, format=ox.RdfFormat.N_TRIPLES)
    except SyntaxError as exc:
        raise GraphStoreError(f"graph <{graph_iri}> not stored: invalid RDF: {exc}") from exc
    return _lines(scratch.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.DefaultGraph()))


def _lines(ntriples: bytes | None) -> frozenset[bytes]:
    return frozenset(line for line in (ntriples or b"").split(b"\n") if line)


def _text(lines: frozenset[bytes]) -> str:
    return b"".join(line + b"\n" for line in lines).decode("utf-8")


def _has_blank_node(lines: frozenset[bytes]) -> bool:
    return any(line.startswith(b"_:") or _BLANK_OBJECT.search(line) for line in lines)


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
