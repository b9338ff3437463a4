"""SPARQL 1.1 Protocol results: JSON, XML, CSV and TSV for SELECT/ASK; RDF for graphs."""

from __future__ import annotations

import csv
import io
import json
from xml.sax.saxutils import escape, quoteattr

from rdflib import BNode, Literal, URIRef
from rdflib.term import Identifier

from graphstore import QueryResult
from mapper import serialize_model

JSON = "application/sparql-results+json"
XML = "application/sparql-results+xml"
CSV = "text/csv"
TSV = "text/tab-separated-values"
TURTLE = "text/turtle"
NTRIPLES = "application/n-triples"
JSONLD = "application/ld+json"
RDFXML = "application/rdf+xml"

SOLUTION_TYPES = (JSON, XML, CSV, TSV)
GRAPH_TYPES = (TURTLE, NTRIPLES, JSONLD, RDFXML)
_GRAPH_FORMATS = {TURTLE: "turtle", NTRIPLES: "nt", JSONLD: "json-ld", RDFXML: "xml"}
_ALIASES = {
    "json": JSON,
    "xml": XML,
    "csv": CSV,
    "tsv": TSV,
    "turtle": TURTLE,
    "ttl": TURTLE,
    "nt": NTRIPLES,
    "json-ld": JSONLD,
    "jsonld": JSONLD,
    "application/json": JSON,
    "text/plain": NTRIPLES,
}


def negotiate(accept: str | None, graph: bool, explicit: str | None = None) -> str:
    """Pick the response type from ``format=`` or the Accept header (q-values honoured)."""
    offered = GRAPH_TYPES if graph else SOLUTION_TYPES
    if explicit:
        wanted = _ALIASES.get(explicit.lower(), explicit.lower())
        if wanted in offered:
            return wanted
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept or "").split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        media = _ALIASES.get(media.lower(), media.lower())
        if media in offered and q > 0:
            choices.append((-q, i, media))
    if choices:
        return sorted(choices)[0][2]
    return offered[0]


def results_json(result: QueryResult) -> dict[str, object]:
    if result.kind == "ask":
        return {"head": {}, "boolean": bool(result.boolean)}
    return {
        "head": {"vars": result.variables},
        "results": {"bindings": [{k: _json_term(v) for k, v in row.items()} for row in result.rows]},
    }


def _json_term(term: Identifier) -> dict[str, str]:
    if isinstance(term, URIRef):
        return {"type": "uri", "value": str(term)}
    if isinstance(term, BNode):
        return {"type": "bnode", "value": str(term)}
    assert isinstance(term, Literal)
    out = {"type": "literal", "value": str(term)}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype:
        out["datatype"] = str(term.datatype)
    return out


def serialize(result: QueryResult, media: str) -> bytes:
    if result.kind == "graph":
        assert result.graph is not None
        return serialize_model(result.graph, _GRAPH_FORMATS[media])
    if media == JSON:
        return json.dumps(results_json(result)).encode("utf-8")
    if media == XML:
        return _xml(result).encode("utf-8")
    if result.kind == "ask":
        return (("true" if result.boolean else "false") + "\n").encode("utf-8")
    buf = io.StringIO()
    if media == CSV:
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(result.variables)
        for row in result.rows:
            writer.writerow([str(row[v]) if v in row else "" for v in result.variables])
    else:
        buf.write("\t".join(f"?{v}" for v in result.variables) + "\n")
        for row in result.rows:
            buf.write("\t".join(row[v].n3() if v in row else "" for v in result.variables) + "\n")
    return buf.getvalue().encode("utf-8")


def _xml(result: QueryResult) -> str:
    out = ['<?xml version="1.0"?>', '<sparql xmlns="http://www.w3.org/2005/sparql-results#">']
    if result.kind == "ask":
        out.append("<head/>")
        out.append(f"<boolean>{'true' if result.boolean else 'false'}</boolean>")
    else:
        out.append(
            "<head>" + "".join(f"<variable name={quoteattr(v)}/>" for v in result.variables) + "</head>"
        )
        out.append("<results>")
        for row in result.rows:
            out.append("<result>")
            for var, term in row.items():
                out.append(f"<binding name={quoteattr(var)}>{_xml_term(term)}</binding>")
            out.append("</result>")
        out.append("</results>")
    out.append("</sparql>")
    return "\n".join(out)


def _xml_term(term: Identifier) -> str:
    if isinstance(term, URIRef):
        return f"<uri>{escape(str(term))}</uri>"
    if isinstance(term, BNode):
        return f"<bnode>{escape(str(term))}</bnode>"
    assert isinstance(term, Literal)
    if term.language:
        return f"<literal xml:lang={quoteattr(term.language)}>{escape(str(term))}</literal>"
    if term.datatype:
        return f"<literal datatype={quoteattr(str(term.datatype))}>{escape(str(term))}</literal>"
    return f"<literal>{escape(str(term))}</literal>"
