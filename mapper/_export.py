"""A building model as a file: Turtle, JSON-LD or N-Triples with the standards' prefixes."""

from __future__ import annotations

from typing import Literal

from rdflib import Graph

from ontology.namespaces import EXPORT_PREFIXES, bind_prefixes

ModelFormat = Literal["turtle", "json-ld", "nt"]


def serialize_model(graph: Graph, fmt: ModelFormat | str = "turtle") -> bytes:
    """The model in ``fmt``; Turtle and JSON-LD name namespaces ``brick:``, ``s223:``,
    ``qudt:``, ``unit:``, ``quantitykind:``, ``ref:``, ``osed:``, ``rec:``..., never
    ``ns1:`` (a graph read back from the store has no prefixes of its own)."""
    bind_prefixes(graph)
    if fmt == "json-ld":
        data = graph.serialize(format="json-ld", context=dict(EXPORT_PREFIXES), auto_compact=True)
    else:
        data = graph.serialize(format=fmt)
    return data.encode("utf-8")
