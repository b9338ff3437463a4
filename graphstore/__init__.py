"""Where building models live: one ``GraphStore`` interface, embedded or remote."""

from __future__ import annotations

from pathlib import Path

from graphstore._base import GraphStore, QueryResult, StoreSettings, is_update, query_form
from graphstore._oxigraph import OxigraphStore
from graphstore._remote import RemoteSparqlStore


def open_store(settings: StoreSettings, embedded_path: Path) -> GraphStore:
    """The store the settings name: embedded Oxigraph at ``embedded_path`` (default) or a
    remote SPARQL endpoint."""
    if settings.backend == "sparql":
        return RemoteSparqlStore(settings)
    return OxigraphStore(embedded_path, settings)


__all__ = [
    "GraphStore",
    "OxigraphStore",
    "QueryResult",
    "RemoteSparqlStore",
    "StoreSettings",
    "is_update",
    "open_store",
    "query_form",
]
