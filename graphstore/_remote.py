"""A remote SPARQL 1.1 endpoint: Protocol for query/update, Graph Store Protocol for graphs."""

from __future__ import annotations

import httpx
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Identifier

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore._base import GraphStore, QueryResult, StoreSettings, is_update, query_form, to_ntriples

_NT = "application/n-triples"


class RemoteSparqlStore(GraphStore):
    """Talks to any SPARQL 1.1 server (Oxigraph, Fuseki, GraphDB, Virtuoso...).

    The server must be configured so its default graph is the union of named graphs
    (Oxigraph: ``--union-default-graph``), as the embedded store behaves.
    """

    def __init__(self, settings: StoreSettings, client: httpx.Client | None = None) -> None:
        if not settings.query_url:
            raise GraphStoreError("the remote store needs store.query_url")
        super().__init__()
        self.settings = settings
        auth = (settings.username, settings.password) if settings.username else None
        self._client = client or httpx.Client(auth=auth, timeout=settings.http_timeout_s)
        self._update_url = settings.update_url or settings.query_url
        self._gsp_url = settings.gsp_url

    # -- writes -----------------------------------------------------------------------
    def replace_graphs(self, graphs: dict[str, Graph], add: dict[str, Graph] | None = None) -> int:
        payloads = {g: to_ntriples(data, g) for g, data in graphs.items()}
        additions = {g: to_ntriples(data, g) for g, data in (add or {}).items()}
        try:
            self._replace(payloads, additions)
        finally:
            self._wrote([*graphs, *additions])
        return sum(len(data) for data in graphs.values())

    def _replace(self, payloads: dict[str, bytes], additions: dict[str, bytes]) -> None:
        if self._gsp_url and len(payloads) == 1 and not additions:
            # Graph Store Protocol PUT replaces one graph in one request.
            ((graph_iri, payload),) = payloads.items()
            self._send(
                "PUT",
                self._gsp_url,
                params={"graph": graph_iri},
                content=payload,
                headers={"Content-Type": _NT},
            )
        else:
            # Several graphs or additions: one SPARQL update request, applied atomically.
            parts = []
            for graph_iri, payload in payloads.items():
                parts.append(f"DROP SILENT GRAPH <{graph_iri}>")
                parts.append(f"INSERT DATA {{ GRAPH <{graph_iri}> {{\n{payload.decode('utf-8')}\n}} }}")
            for graph_iri, payload in additions.items():
                parts.append(f"INSERT DATA {{ GRAPH <{graph_iri}> {{\n{payload.decode('utf-8')}\n}} }}")
            self._post_update(" ;\n".join(parts))

    def _put_ntriples(self, graph_iri: str, payload: bytes) -> None:
        self._replace({graph_iri: payload}, {})  # one graph: a Graph Store PUT where there is one

    def drop_graph(self, graph_iri: str) -> None:
        try:
            self._post_update(f"DROP SILENT GRAPH <{graph_iri}>")
        finally:
            self._wrote([graph_iri])

    def update(self, sparql: str) -> None:
        try:
            self._post_update(sparql)
        finally:
            self._wrote(None)

    def _post_update(self, sparql: str) -> None:
        self._send(
            "POST",
            self._update_url,
            content=sparql.encode("utf-8"),
            headers={"Content-Type": "application/sparql-update"},
        )

    # -- reads ------------------------------------------------------------------------
    def get_graph(self, graph_iri: str) -> Graph:
        if self._gsp_url:
            response = self._client.get(self._gsp_url, params={"graph": graph_iri}, headers={"Accept": _NT})
            if response.status_code == 404:
                return Graph()
            self._check(response)
            return Graph().parse(data=response.text, format="nt")
        result = self.query(
            f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph_iri}> {{ ?s ?p ?o }} }}",
            limit=10**9,
        )
        return result.graph if result.graph is not None else Graph()

    def graphs(self) -> list[str]:
        result = self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }", limit=10**6)
        return sorted(str(r["g"]) for r in result.rows if "g" in r)

    def query(self, sparql: str, *, timeout_s: float | None = None, limit: int | None = None) -> QueryResult:
        if is_update(sparql):
            raise QueryError("this endpoint is read-only: SPARQL updates are not accepted here")
        timeout = timeout_s or self.settings.query_timeout_s
        max_rows = limit or self.settings.result_limit
        form = query_form(sparql)
        accept = _NT if form in ("CONSTRUCT", "DESCRIBE") else "application/sparql-results+json"
        try:
            response = self._client.post(
                self.settings.query_url,
                content=sparql.encode("utf-8"),
                headers={"Content-Type": "application/sparql-query", "Accept": accept},
                timeout=timeout,
            )
        except httpx.TimeoutException:
            raise QueryTimeoutError(f"query stopped after the {timeout:g} s timeout") from None
        except httpx.HTTPError as exc:
            raise GraphStoreError(f"SPARQL endpoint unreachable: {exc}") from exc
        self._check(response)
        if accept == _NT:
            g = Graph().parse(data=response.text, format="nt")
            truncated = len(g) > max_rows
            return QueryResult(kind="graph", graph=g, truncated=truncated)
        try:
            body = response.json()
        except ValueError as exc:
            raise GraphStoreError(f"SPARQL endpoint sent invalid JSON: {exc}") from exc
        if "boolean" in body:
            return QueryResult(kind="ask", boolean=bool(body["boolean"]))
        variables = list(body.get("head", {}).get("vars", []))
        bindings = body.get("results", {}).get("bindings", [])
        rows = [{k: _term(v) for k, v in b.items()} for b in bindings[:max_rows]]
        return QueryResult(kind="select", variables=variables, rows=rows, truncated=len(bindings) > max_rows)

    def close(self) -> None:
        self._client.close()

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise GraphStoreError(f"SPARQL endpoint unreachable: {exc}") from exc
        self._check(response)
        return response

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.is_success:
            return
        text = response.text.strip()[:500]
        if response.status_code == 400:
            raise QueryError(f"the SPARQL endpoint rejected the request: {text}")
        raise GraphStoreError(f"SPARQL endpoint answered {response.status_code}: {text}")


def _term(binding: dict[str, str]) -> Identifier:
    kind = binding.get("type")
    value = binding.get("value", "")
    if kind == "uri":
        return URIRef(value)
    if kind == "bnode":
        return BNode(value)
    if "xml:lang" in binding:
        return Literal(value, lang=binding["xml:lang"])
    datatype = binding.get("datatype")
    if datatype == "http://www.w3.org/2001/XMLSchema#string":
        datatype = None
    return Literal(value, datatype=URIRef(datatype) if datatype else None)
