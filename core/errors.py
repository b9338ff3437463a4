"""One error tree for the whole project.

Third-party errors (pyoxigraph, httpx, rdflib, csv) are translated into these where they
enter our code; HTTP status codes are chosen only in ``api/``.
"""

from __future__ import annotations


class OsedError(Exception):
    """Base of every error OSED raises on purpose."""


class OntologyError(OsedError):
    """The ontology files could not be loaded or a class name is unknown."""


class IngestError(OsedError):
    """A point source could not be read. Names the file, row and field where known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if source:
            where.append(source)
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class LabelingError(OsedError):
    """The labeling agent could not run (bad examples file, unknown class...)."""


class GraphStoreError(OsedError):
    """The graph store refused or failed an operation; nothing was written."""


class QueryError(GraphStoreError):
    """A SPARQL query or update is malformed or not allowed."""


class QueryTimeoutError(GraphStoreError):
    """A SPARQL query ran longer than its configured timeout and was stopped."""


class ValidationFailed(OsedError):
    """A model did not conform to its shapes and the caller asked for conformance."""
