from __future__ import annotations

import time

from rdflib import RDF, Graph, Literal, URIRef

from agent import Example
from mapper import LabeledPoint, RawPoint, Suggestion, build_model, read_points_csv
from ontology import BRICK, OSED, QUDT, ClassIndex, Ontology
from tests.conftest import FIXTURES


def test_class_index_has_brick_points_with_labels_definitions_parents_tags(ontology: Ontology) -> None:
    cls = ontology.index.get("Zone_Air_Temperature_Sensor")
    assert cls.label == "Zone Air Temperature Sensor"
    assert "temperature" in cls.definition.lower()
    assert cls.parents == ("Air_Temperature_Sensor",)
    assert {"Zone", "Air", "Temperature", "Sensor"} <= set(cls.tags)
    assert ontology.index.point_kind(cls.name) == "Sensor"
    assert ontology.index.quantity_kind(cls.name).endswith("quantitykind/Temperature")
    assert ontology.index.canonical("Discharge_Air_Temperature_Sensor") == "Supply_Air_Temperature_Sensor"
    assert ontology.index.canonical("Zone_Air_Temperature_Setpoint") == "Target_Zone_Air_Temperature_Setpoint"
    assert len(list(ontology.index.point_classes())) > 700


def test_class_index_cache_makes_second_start_fast(tmp_path) -> None:
    first = ClassIndex.load(tmp_path)
    assert list(tmp_path.glob("class-index-*.json"))
    start = time.perf_counter()
    second = ClassIndex.load(tmp_path)
    assert time.perf_counter() - start < 0.5
    assert second.brick.keys() == first.brick.keys()


def test_units_are_read_in_bms_spellings(ontology: Ontology) -> None:
    assert ontology.units.lookup("°F").iri.endswith("DEG_F")
    assert ontology.units.lookup("degrees-fahrenheit").iri.endswith("DEG_F")
    assert ontology.units.lookup("CFM").iri.endswith("FT3-PER-MIN")
    assert ontology.units.lookup("inH₂O").iri.endswith("IN_H2O")
    assert ontology.units.lookup("furlongs") is None


def _model(ontology: Ontology, points: list[tuple[RawPoint, str]]) -> Graph:
    labeled = [LabeledPoint(p, Suggestion(cls, 0.9)) for p, cls in points]
    return build_model("b1", labeled, ontology)


def test_correct_model_validates_with_zero_violations(ontology: Ontology) -> None:
    raw = read_points_csv(FIXTURES / "small_building.csv")
    classes = [
        "Supply_Air_Temperature_Sensor",
        "Supply_Air_Temperature_Setpoint",
        "Zone_Air_Temperature_Sensor",
        "Supply_Air_Flow_Sensor",
        "Fan_Status",
        "Cooling_Temperature_Setpoint",
    ]
    report = ontology.validator.validate(_model(ontology, list(zip(raw, classes, strict=True))))
    assert report.conforms, report.to_text()
    assert report.violations == ()
    assert report.points_checked == 6


def test_point_typed_as_equipment_is_reported_on_that_point(ontology: Ontology) -> None:
    model = _model(ontology, [(RawPoint(name="AHU-1.SA-T", unit="°F"), "Supply_Air_Temperature_Sensor")])
    point = next(model.subjects(OSED.rawName, Literal("AHU-1.SA-T")))
    model.add((point, RDF.type, BRICK.AHU))
    report = ontology.validator.validate(model)
    assert not report.conforms
    messages = [r.message for r in report.by_point()[str(point)]]
    assert any("cannot be Equipment" in m for m in messages), messages
    assert any("exactly one Brick class" in m for m in messages), messages


def test_writable_point_without_adapter_reference_is_reported(ontology: Ontology) -> None:
    model = _model(
        ontology, [(RawPoint(name="SA-T-SP", unit="°F", writable=True), "Supply_Air_Temperature_Setpoint")]
    )
    report = ontology.validator.validate(model)
    assert not report.conforms
    assert any("no writable adapter reference" in r.message for r in report.violations)


def test_unit_that_does_not_measure_the_class_quantity_is_reported(ontology: Ontology) -> None:
    model = _model(ontology, [(RawPoint(name="ZN-T", unit="°F"), "Zone_Air_Temperature_Sensor")])
    point = next(model.subjects(OSED.rawName, None))
    model.set((point, QUDT.hasUnit, URIRef("http://qudt.org/vocab/unit/FT3-PER-MIN")))
    report = ontology.validator.validate(model)
    assert any("does not measure quantity kind" in r.message for r in report.violations)
    _ = Example  # the agent package is importable beside the ontology


def test_a_unit_the_class_cannot_be_measured_in_is_reported_from_the_list(ontology: Ontology) -> None:
    """A zone temperature in cfm: the model states the unit's quantity kind (223P wants them to
    agree) and the validator says the unit does not fit the class."""
    model = _model(ontology, [(RawPoint(name="ZN-T", unit="cfm"), "Zone_Air_Temperature_Sensor")])
    report = ontology.validator.validate(model)
    found = [r.message for r in report.violations if "does not fit the class" in r.message]
    assert found and "Temperature" in found[0] and "Zone_Air_Temperature_Sensor" in found[0]
