"""The standards' own checks on exported models: 223P's shapes and brickschema's validate
(docs/standards.md; ``eval/standards.py`` runs the same checks on more buildings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import RDF, Graph, URIRef

from api._service import Platform
from eval import standards
from mapper import LabeledPoint, RawPoint, Suggestion, build_model, serialize_model
from ontology import QK, QUDT, S223, UNIT, Ontology


def _dimensions(graph: Graph) -> dict[object, object]:
    return dict(graph.subject_objects(QUDT.hasDimensionVector))


def test_every_unit_the_mapper_can_emit_is_declared_with_a_default_quantity_of_its_dimensions(
    ontology: Ontology,
) -> None:
    qudt = ontology.declarations.qudt
    dims = _dimensions(qudt)
    for unit in ontology.units.units():
        iri = URIRef(unit.iri)
        assert (iri, RDF.type, QUDT.Unit) in qudt, unit.iri
        assert iri in dims, unit.iri
        assert unit.default_quantity_kind, unit.iri
        kind = URIRef(unit.default_quantity_kind)
        assert (kind, RDF.type, QUDT.QuantityKind) in qudt, kind
        assert dims[kind] == dims[iri], (unit.iri, kind)


def test_every_brick_quantity_maps_to_a_declared_qudt_quantity_kind(ontology: Ontology) -> None:
    qudt = ontology.declarations.qudt
    for brick_quantity in sorted(ontology.index.quantity_kinds()):
        found = ontology.units.property_quantity(brick_quantity, None)
        assert found is not None and found.kind.startswith(str(QK)), brick_quantity
        assert (URIRef(found.kind), RDF.type, QUDT.QuantityKind) in qudt, brick_quantity


def test_a_quantifiable_property_states_one_quantity_kind_and_one_unit_of_its_dimensions(
    ontology: Ontology,
) -> None:
    points = [
        (RawPoint(name="SA-T", unit="°F"), "Supply_Air_Temperature_Sensor"),
        (RawPoint(name="DAT-DELTA", unit="°F"), "Supply_Air_Temperature_Sensor"),
        (RawPoint(name="FAN-SPD", unit="%"), "Fan_Speed_Command"),
        (RawPoint(name="ZN-T"), "Zone_Air_Temperature_Sensor"),
    ]
    model = build_model("b", [LabeledPoint(p, Suggestion(c, 0.9)) for p, c in points], ontology)
    dims = _dimensions(model)
    for prop in set(model.subjects(RDF.type, S223.QuantifiableObservableProperty)) | set(
        model.subjects(RDF.type, S223.QuantifiableActuatableProperty)
    ):
        kinds = list(model.objects(prop, QUDT.hasQuantityKind))
        units = list(model.objects(prop, QUDT.hasUnit))
        assert len(kinds) == 1 and len(units) <= 1, prop
        assert (kinds[0], RDF.type, QUDT.QuantityKind) in model
        for unit in units:
            assert (unit, RDF.type, QUDT.Unit) in model
            assert dims[unit] == dims[kinds[0]], prop
    assert ontology.declarations.undeclared(model) == []
    # Only what the model uses, not the whole subset: a unit it does not use is left out.
    assert (UNIT["MegaW-HR"], RDF.type, QUDT.Unit) not in model


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory, ontology: Ontology) -> Path:
    """The demo building as ``osed label --model`` exports it (same platform calls)."""
    from api.demo import demo_points
    from api.settings import Settings
    from graphstore import OxigraphStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("var"))
    settings.agent.retrieval = False
    platform = Platform(settings, store=OxigraphStore(None, settings.store), ontology=ontology)
    try:
        model = platform.model("demo", platform.label(demo_points()))
    finally:
        platform.close()
    path = tmp_path_factory.mktemp("export") / "demo.ttl"
    path.write_bytes(serialize_model(model, "turtle"))
    return path


def test_demo_export_alone_passes_brickschema_validate(demo_export: Path) -> None:
    assert standards.check_brick(demo_export) == {}


def test_demo_export_alone_passes_223p_shapes(demo_export: Path) -> None:
    from ontology import _paths

    s223 = Graph().parse(_paths.s223_ttl(), format="turtle")
    found = standards.check_223p(Graph().parse(demo_export, format="turtle"), s223)
    assert sum(found.values()) == 0, found
