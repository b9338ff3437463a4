"""A query worker process: runs one SPARQL query at a time over a snapshot of the store.

Started by ``graphstore._workers`` as a script (``python _query_worker.py MEMORY_MB``) so
that it imports pyoxigraph and nothing else. pyoxigraph cannot cancel a query, so the
store runs queries it did not write here, where the parent can kill them at their
deadline (SIGKILL) without losing anything: a worker only ever reads a snapshot.

Requests and answers are pickles, each preceded by its length (4 bytes, big-endian), on
stdin and stdout. A request is ``(kind, path, sparql, max_rows)``: ``kind`` "dir" is a
store folder (a checkpoint of the on-disk store, opened read-only), "nquads" an N-Quads
dump (of an in-memory store) loaded into memory. An answer is ``("select", variables,
rows, truncated)``, ``("ask", boolean)``, ``("graph", triples, truncated)`` or
``("error", "syntax" | "store", message)``; a term is ``("u", iri)``, ``("b", id)`` or
``("l", value, language, datatype)``.
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys
from typing import Any, BinaryIO

import pyoxigraph as ox

_HEADER = struct.Struct(">I")
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def term(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, ox.NamedNode):
        return ("u", value.value)
    if isinstance(value, ox.BlankNode):
        return ("b", value.value)
    if isinstance(value, ox.Literal):
        datatype = value.datatype.value
        return ("l", value.value, value.language or "", "" if datatype == _XSD_STRING else datatype)
    raise ValueError(f"RDF-star terms are not supported: {value}")


def answer(store: ox.Store, sparql: str, max_rows: int) -> tuple[Any, ...]:
    try:
        result = store.query(sparql, use_default_graph_as_union=True)
    except SyntaxError as exc:
        return ("error", "syntax", str(exc))
    try:
        if isinstance(result, ox.QueryBoolean):
            return ("ask", bool(result))
        if isinstance(result, ox.QueryTriples):
            triples: list[tuple[Any, ...]] = []
            for t in result:
                if len(triples) >= max_rows:
                    return ("graph", triples, True)
                triples.append((term(t.subject), term(t.predicate), term(t.object)))
            return ("graph", triples, False)
        variables = [v.value for v in result.variables]
        rows: list[list[tuple[str, ...] | None]] = []
        for solution in result:
            if len(rows) >= max_rows:
                return ("select", variables, rows, True)
            rows.append([term(solution[v]) for v in variables])
        return ("select", variables, rows, False)
    except (OSError, ValueError) as exc:
        return ("error", "store", str(exc))


def read_message(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def main() -> None:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Answers go to a private copy of stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    opened: tuple[str, ox.Store] | None = None
    while True:
        request = read_message(requests)
        if request is None:
            return
        kind, path, sparql, max_rows = request
        try:
            if opened is None or opened[0] != path:
                opened = None  # the previous snapshot is closed before the next one opens
                if kind == "dir":
                    store = ox.Store.read_only(path)
                else:
                    store = ox.Store()
                    store.bulk_load(path=path, format=ox.RdfFormat.N_QUADS)
                opened = (path, store)
            reply = answer(opened[1], sparql, max_rows)
        except (OSError, ValueError, SyntaxError) as exc:
            reply = ("error", "store", f"cannot read the store snapshot: {exc}")
        except MemoryError:
            reply = ("error", "memory", "the query needed more memory than a query worker may use")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    main()
