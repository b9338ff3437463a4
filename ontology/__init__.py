"""Brick 1.5 and ASHRAE 223P, loaded offline: class index, units, SHACL validation.

Other packages use only the names in ``__all__``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ontology._declarations import Declarations
from ontology._graph import ONTOLOGY_GRAPH_NAME, OntologyGraph, ontology_graph_iri
from ontology._index import POINT_KINDS, BrickClass, ClassIndex, qk_local
from ontology._paths import BRICK_VERSION
from ontology._s223_classes import S223_KINDS, S223Class, S223Kind, read_s223_classes
from ontology._units import PropertyQuantity, Unit, UnitTable, normalise_unit_text
from ontology._validate import ValidationReport, ValidationResult, Validator
from ontology.namespaces import (
    BACNET,
    BRICK,
    OSED,
    PREFIXES,
    PROV,
    QK,
    QUDT,
    REF,
    S223,
    TAG,
    UNIT,
    is_sparql_iri,
    sparql_iri,
    sparql_prefixes,
    sparql_string,
)


@dataclass
class Ontology:
    """Everything the other packages need from the ontologies, loaded once and passed in."""

    index: ClassIndex
    units: UnitTable

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> Ontology:
        return cls(index=ClassIndex.load(cache_dir), units=UnitTable())

    @cached_property
    def s223_classes(self) -> dict[str, S223Class]:
        """Every 223P class with its label, comment and kind, by local name."""
        return read_s223_classes()

    @cached_property
    def graph(self) -> OntologyGraph:
        """The ontologies as the store's ontology graph holds them."""
        return OntologyGraph.installed()

    @cached_property
    def validator(self) -> Validator:
        return Validator(self.index, self.units)

    @cached_property
    def declarations(self) -> Declarations:
        """The QUDT and vocabulary declarations a model carries for the standards' shapes."""
        return Declarations()


__all__ = [
    "BACNET",
    "BRICK",
    "BRICK_VERSION",
    "ONTOLOGY_GRAPH_NAME",
    "OSED",
    "POINT_KINDS",
    "PREFIXES",
    "PROV",
    "QK",
    "QUDT",
    "REF",
    "S223",
    "S223_KINDS",
    "TAG",
    "UNIT",
    "BrickClass",
    "ClassIndex",
    "Declarations",
    "Ontology",
    "OntologyGraph",
    "PropertyQuantity",
    "S223Class",
    "S223Kind",
    "Unit",
    "UnitTable",
    "ValidationReport",
    "ValidationResult",
    "Validator",
    "is_sparql_iri",
    "normalise_unit_text",
    "ontology_graph_iri",
    "qk_local",
    "read_s223_classes",
    "sparql_iri",
    "sparql_prefixes",
    "sparql_string",
]
