"""The ontologies as one graph for the store: Brick 1.5, ASHRAE 223P and the QUDT subset.

Brick applications query with the class hierarchy (``?p a/rdfs:subClassOf*
brick:Temperature_Sensor``), so the store holds the ontologies beside the buildings, in a
named graph of their own that no export or building list includes. The files are those
brickschema installs and the project ships, as they are; ``key`` changes whenever one of
them does, so the store reloads the graph only then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyoxigraph as ox

from core.errors import OntologyError
from ontology import _paths

#: Bump when what goes into the graph changes without a file changing.
_LAYOUT = 1
#: The graph's last segment below the platform's base IRI (``urn:osed:ontology``).
ONTOLOGY_GRAPH_NAME = "ontology"
_QUDT_SUBSET = "qudt_subset.ttl"


def ontology_graph_iri(base_iri: str) -> str:
    return f"{base_iri}{ONTOLOGY_GRAPH_NAME}"


def ontology_files() -> list[Path]:
    """Brick, 223P and, when the project ships it, the QUDT subset."""
    files = [_paths.brick_ttl(), _paths.s223_ttl()]
    qudt = _paths.own_data(_QUDT_SUBSET)
    if qudt.is_file():
        files.append(qudt)
    return files


@dataclass(frozen=True)
class OntologyGraph:
    """What the store's ontology graph holds, and a key that names that content."""

    files: tuple[Path, ...]

    @classmethod
    def installed(cls) -> OntologyGraph:
        return cls(tuple(ontology_files()))

    @cached_property
    def key(self) -> str:
        """sha256 over the files' names and bytes (2.7 MB: ~5 ms)."""
        digest = hashlib.sha256(f"layout {_LAYOUT}\n".encode())
        for path in self.files:
            digest.update(path.name.encode("utf-8") + b"\n")
            try:
                digest.update(path.read_bytes())
            except OSError as exc:
                raise OntologyError(f"cannot read {path}: {exc}") from exc
        return digest.hexdigest()

    @cached_property
    def ntriples(self) -> bytes:
        """Every triple of the files as N-Triples (blank nodes kept apart per file); kept,
        since every store a process opens may need it (parsing takes 0.8 s)."""
        merged = ox.Store()
        for n, path in enumerate(self.files):
            try:
                merged.load(
                    path=str(path),
                    format=ox.RdfFormat.TURTLE,
                    to_graph=ox.NamedNode(f"urn:osed:file:{n}"),
                )
            except (SyntaxError, OSError) as exc:
                raise OntologyError(f"cannot parse {path}: {exc}") from exc
        out = merged.dump(format=ox.RdfFormat.N_QUADS)
        assert out is not None
        # The per-file graphs only kept each file's blank nodes apart: drop their names.
        return b"".join(
            line[: line.rindex(b" <urn:osed:file:")] + b" .\n" for line in out.splitlines() if line
        )
