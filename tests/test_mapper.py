from __future__ import annotations

from pathlib import Path

import pytest
from rdflib.compare import isomorphic

from core.errors import IngestError
from mapper import (
    BACnetAddress,
    EquipmentRef,
    HomeAssistantAddress,
    LabeledPoint,
    Suggestion,
    build_model,
    read_points_csv,
)
from ontology import BRICK, S223, Ontology
from tests.conftest import FIXTURES


def test_reads_points_with_addresses() -> None:
    points = read_points_csv(FIXTURES / "small_building.csv")
    assert [p.name for p in points][:2] == ["AHU-1.SA-T", "AHU-1.SA-T-SP"]
    sp = points[1]
    assert sp.writable is True and sp.minimum == 50 and sp.maximum == 65
    assert sp.address == BACnetAddress(1001, "analog-value", 1, priority=8)
    assert points[-1].address == HomeAssistantAddress("climate.lobby")
    assert sp.source is not None and sp.source.row == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"description,unit\nfoo,degF\n", "no point-name column"),
        (b"name,unit\nA,degF\nB,degF,extra\n", "row 3: ragged row"),
        (b"\x00\x01\x02\xff\xfe\x00binary", "unknown encoding"),
        (b"name,unit\n", "no points"),
        (b"name,min,max\nA,10,5\n", "row 2, field 'min'"),
    ],
)
def test_bad_csv_gets_an_error_naming_file_row_and_problem(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(content)
    with pytest.raises(IngestError) as err:
        read_points_csv(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_size_limit_refuses_large_files(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"name\n" + b"x\n" * 600_000)
    with pytest.raises(IngestError, match="more than the 1 MB limit"):
        read_points_csv(path, max_bytes=1_000_000)


def test_semicolon_windows_1252_french_export(tmp_path: Path) -> None:
    path = tmp_path / "fr.csv"
    path.write_bytes("Nom;Unité;Description\nTEMP_ALIM;°C;Température d'alimentation\n".encode("cp1252"))
    (point,) = read_points_csv(path)
    assert (point.name, point.unit, point.description) == ("TEMP_ALIM", "°C", "Température d'alimentation")


def _labeled(ontology: Ontology) -> list[LabeledPoint]:
    points = read_points_csv(FIXTURES / "small_building.csv")
    ahu = EquipmentRef("AHU", "AHU-1")
    return [
        LabeledPoint(p, Suggestion("Supply_Air_Temperature_Sensor", 0.8, equipment=ahu)) for p in points[:1]
    ] + [LabeledPoint(p, Suggestion(None, 0.1)) for p in points[1:]]


def test_model_has_brick_223p_equipment_and_references(ontology: Ontology) -> None:
    g = build_model("b1", _labeled(ontology), ontology)
    rows = list(
        g.query(
            """SELECT ?p ?e ?ref ?obj WHERE {
                 ?p a brick:Supply_Air_Temperature_Sensor, s223:QuantifiableObservableProperty ;
                    rdfs:label "AHU-1.SA-T" ; brick:isPointOf ?e ; qudt:hasQuantityKind ?qk ;
                    s223:hasExternalReference ?ref .
                 ?e a brick:AHU . ?ref bacnet:object-identifier ?obj ; osed:adapter "bacnet" }""",
            initNs={
                "brick": BRICK,
                "s223": S223,
                "qudt": "http://qudt.org/schema/qudt/",
                "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
                "bacnet": "http://data.ashrae.org/bacnet/2020#",
                "osed": "https://w3id.org/osed/ns#",
            },
        )
    )
    assert len(rows) == 1
    assert str(rows[0][3]) == "analog-input,1"


def test_same_list_twice_gives_the_same_graph(ontology: Ontology) -> None:
    assert isomorphic(
        build_model("b1", _labeled(ontology), ontology), build_model("b1", _labeled(ontology), ontology)
    )
