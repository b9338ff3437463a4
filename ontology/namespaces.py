"""RDF namespaces used across the project."""

from __future__ import annotations

import re

from rdflib import Graph, Namespace

from core.errors import QueryError

BRICK = Namespace("https://brickschema.org/schema/Brick#")
TAG = Namespace("https://brickschema.org/schema/BrickTag#")
REF = Namespace("https://brickschema.org/schema/Brick/ref#")
S223 = Namespace("http://data.ashrae.org/standard223#")
BACNET = Namespace("http://data.ashrae.org/bacnet/2020#")
QUDT = Namespace("http://qudt.org/schema/qudt/")
QK = Namespace("http://qudt.org/vocab/quantitykind/")
UNIT = Namespace("http://qudt.org/vocab/unit/")
PROV = Namespace("http://www.w3.org/ns/prov#")
#: The project's own vocabulary (provenance of labels, adapter references, review state).
OSED = Namespace("https://w3id.org/osed/ns#")
#: RealEstateCore: the location classes Brick 1.5 uses (rec:Building, rec:Room, rec:Level).
REC = Namespace("https://w3id.org/rec#")

PREFIXES: dict[str, str] = {
    "brick": str(BRICK),
    "tag": str(TAG),
    "ref": str(REF),
    "s223": str(S223),
    "bacnet": str(BACNET),
    "qudt": str(QUDT),
    "quantitykind": str(QK),
    # The name earlier queries used for quantity kinds (kept so they still run).
    "qudtqk": str(QK),
    "unit": str(UNIT),
    "prov": str(PROV),
    "osed": str(OSED),
    "rec": str(REC),
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
}


#: The prefixes an export is written with, one per namespace: the names the Brick and 223P
#: documentation uses, so a model reads as their examples do.
EXPORT_PREFIXES: dict[str, str] = {p: iri for p, iri in PREFIXES.items() if p != "qudtqk"}


def bind_prefixes(graph: Graph) -> Graph:
    """``graph`` with every export prefix bound (replacing rdflib's ``ns1``... and any other
    name a namespace had), for Turtle and JSON-LD that read like the standards' examples."""
    for prefix, iri in EXPORT_PREFIXES.items():
        graph.bind(prefix, Namespace(iri), override=True, replace=True)
    return graph


def sparql_prefixes() -> str:
    """The PREFIX lines for every namespace above, for queries built in code."""
    return "\n".join(f"PREFIX {p}: <{iri}>" for p, iri in PREFIXES.items())


#: An absolute IRI as SPARQL writes it between '<' and '>' (IRIREF): a scheme, then none of
#: the characters that would end the IRI or start query text (controls, space, <>"{}|^`\).
_SPARQL_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*:[^\x00-\x20<>"{}|^`\\]*')


def is_sparql_iri(value: str) -> bool:
    return _SPARQL_IRI.fullmatch(value) is not None


def sparql_iri(value: str) -> str:
    """``<value>``, to place a caller's IRI in a query; :class:`QueryError` if ``value`` is
    not an absolute IRI (nothing it holds can end the IRI and become query text)."""
    if not is_sparql_iri(value):
        raise QueryError(f"not an absolute IRI: {value[:200]!r}")
    return f"<{value}>"


def sparql_string(text: str) -> str:
    """A SPARQL string literal whose value is exactly ``text``: every character that could
    end it (quote, backslash, line breaks) escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'
