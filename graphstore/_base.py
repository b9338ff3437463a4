"""The one interface every graph store backend implements, and its result types."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from rdflib import Graph
from rdflib.term import Identifier

from core.errors import GraphStoreError

QueryKind = Literal["select", "ask", "graph"]

_KEYWORD = re.compile(
    r"^\s*(?:(?:PREFIX\s+[^\s:]*:\s*<[^>]*>|BASE\s+<[^>]*>)\s*)*(SELECT|ASK|CONSTRUCT|DESCRIBE"
    r"|INSERT|DELETE|LOAD|CLEAR|CREATE|DROP|COPY|MOVE|ADD|WITH)\b",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"(?m)#[^\n<>\"']*$")
#: The triple a graph loaded by ``ensure_graph`` carries about itself: the key of its content.
CONTENT_KEY = "https://w3id.org/osed/ns#contentKey"


class StoreSettings(BaseModel):
    """The ``store`` section of the settings."""

    backend: Literal["oxigraph", "sparql"] = "oxigraph"
    #: Embedded store folder; empty means "store" below the data folder.
    path: str = ""
    #: Remote SPARQL 1.1 endpoint (backend "sparql"): query, update and Graph Store URLs.
    query_url: str = ""
    update_url: str = ""
    gsp_url: str = ""
    username: str = ""
    password: str = ""
    #: Query timeout and result limit applied to every query, in seconds and rows.
    query_timeout_s: float = Field(default=10.0, gt=0)
    result_limit: int = Field(default=10_000, gt=0)
    #: Embedded store: worker processes for queries from outside the platform (the SPARQL
    #: endpoint, ``osed query``), each killed at its query's timeout; a query waits for a
    #: free one until its timeout.
    query_workers: int = Field(default=4, ge=1)
    #: Address space a query worker may use, in MB (0: no limit): a query that needs more
    #: fails instead of exhausting the machine's memory.
    query_memory_mb: int = Field(default=4096, ge=0)
    http_timeout_s: float = Field(default=30.0, gt=0)


@dataclass
class QueryResult:
    """What a query returned, independent of the backend."""

    kind: QueryKind
    variables: list[str] = field(default_factory=list)
    rows: list[dict[str, Identifier]] = field(default_factory=list)
    boolean: bool | None = None
    graph: Graph | None = None
    truncated: bool = False


def to_ntriples(data: Graph, graph_iri: str) -> bytes:
    """Serialise for storage; rdflib raises a bare Exception on an invalid IRI."""
    try:
        out = data.serialize(format="nt", encoding="utf-8")
    except Exception as exc:
        raise GraphStoreError(f"graph <{graph_iri}> not stored: invalid RDF: {exc}") from exc
    return out if isinstance(out, bytes) else out.encode("utf-8")


def is_sparql_key(key: str) -> bool:
    """A key that can stand inside a SPARQL string as it is."""
    return re.fullmatch(r"[A-Za-z0-9._:-]{1,200}", key) is not None


def query_form(sparql: str) -> str:
    """The SPARQL form (SELECT, ASK, CONSTRUCT, DESCRIBE, or an update keyword), upper-case."""
    match = _KEYWORD.match(_COMMENT.sub("", sparql))
    return match.group(1).upper() if match else ""


def is_update(sparql: str) -> bool:
    return query_form(sparql) not in ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE", "")


class GraphStore(ABC):
    """Named graphs of RDF with SPARQL 1.1 query and update.

    ``replace_graph`` is all-or-nothing: after it either the whole new graph is stored, or
    the old one is untouched. Queries see the union of all named graphs as their default
    graph, so ``?p a brick:Point`` finds points in every building.
    """

    settings: StoreSettings

    #: Whether every write to the store goes through this object, so ``version`` sees all
    #: of them (the embedded store, which one process opens at a time); a remote store is
    #: shared with other clients.
    exclusive: bool = False

    def __init__(self) -> None:
        self._versions_lock = threading.Lock()
        self._updates = 0
        self._writes: dict[str, int] = {}
        self._generation = 0

    def version(self, graph_iri: str) -> tuple[int, int]:
        """Changes whenever this object writes the named graph or runs an update (which may
        write any graph), so what a reader derived from the graph can be kept until then.
        Writes by other clients of a shared remote store are not seen."""
        with self._versions_lock:
            return self._updates, self._writes.get(graph_iri, 0)

    def generation(self) -> int:
        """Counts every write this object made, to any graph."""
        with self._versions_lock:
            return self._generation

    def _wrote(self, graph_iris: Iterable[str] | None) -> None:
        """Record a write to these graphs (None: an update, any graph)."""
        with self._versions_lock:
            self._generation += 1
            if graph_iris is None:
                self._updates += 1
            else:
                for graph_iri in graph_iris:
                    self._writes[graph_iri] = self._writes.get(graph_iri, 0) + 1

    def replace_graph(self, graph_iri: str, data: Graph) -> int:
        """Replace one named graph with ``data``; returns the number of triples stored."""
        return self.replace_graphs({graph_iri: data})

    @abstractmethod
    def replace_graphs(self, graphs: dict[str, Graph], add: dict[str, Graph] | None = None) -> int:
        """Replace several named graphs, and add the triples of ``add`` to theirs, in one
        transaction: all of it or none, also across a crash, and no reader ever sees a
        part. Returns the number of triples of ``graphs``."""

    @abstractmethod
    def get_graph(self, graph_iri: str) -> Graph:
        """A copy of one named graph (empty when it does not exist)."""

    @abstractmethod
    def drop_graph(self, graph_iri: str) -> None: ...

    @abstractmethod
    def graphs(self) -> list[str]:
        """The IRIs of all non-empty named graphs."""

    def ensure_graph(self, graph_iri: str, key: str, content: Callable[[], bytes]) -> bool:
        """Make the named graph hold ``content()`` (N-Triples), unless it already holds the
        content ``key`` names: a graph derived from files (the ontologies) is written once,
        and again only when the files change. The key triple is written with the content (in
        the same load), so a graph left without its key by a killed write is written again.
        Returns whether it was written."""
        if not is_sparql_key(key):
            raise GraphStoreError(f"invalid content key {key[:80]!r}")
        stored = self.query(f'ASK {{ GRAPH <{graph_iri}> {{ <{graph_iri}> <{CONTENT_KEY}> "{key}" }} }}')
        if stored.boolean:
            return False
        payload = content()
        marker = f'<{graph_iri}> <{CONTENT_KEY}> "{key}" .\n'.encode()
        try:
            self._put_ntriples(graph_iri, payload + (b"" if payload.endswith(b"\n") else b"\n") + marker)
        finally:
            self._wrote([graph_iri])
        return True

    @abstractmethod
    def _put_ntriples(self, graph_iri: str, payload: bytes) -> None:
        """Replace one named graph with N-Triples; its new content arrives whole."""

    def has_graph(self, graph_iri: str) -> bool:
        """Whether the named graph holds a triple (``graph_iri in graphs()``, without listing
        every graph: that alone took 25 ms on a disk store)."""
        return bool(self.query(f"ASK {{ GRAPH <{graph_iri}> {{ ?s ?p ?o }} }}").boolean)

    @abstractmethod
    def query(self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None) -> QueryResult:
        """Run a read-only query the platform wrote (its cost bounded by the data it reads).
        Raises QueryError (malformed, or an update) or QueryTimeoutError. Queries from
        outside go through :meth:`user_query`."""

    def user_query(
        self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None
    ) -> QueryResult:
        """Run a read-only query the platform did not write (the SPARQL endpoint, ``osed
        query``): it may cost anything, so its timeout must stop the work itself, not only
        the wait for it. A backend whose ``query`` already does that needs no more."""
        return self.query(sparql, timeout_s=timeout_s, limit=limit)

    @abstractmethod
    def update(self, sparql: str) -> None:
        """Run a SPARQL update in one transaction."""

    def count(self, graph_iri: str) -> int:
        result = self.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph_iri}> {{ ?s ?p ?o }} }}")
        return int(result.rows[0]["n"]) if result.rows else 0

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release files, threads and connections."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
