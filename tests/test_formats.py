from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import IngestError
from mapper import BACnetAddress, detect_format, read_points
from tests.conftest import DATASETS, FIXTURES

RAW = DATASETS.parent / "raw" / "haystack"


def test_ede_objects_with_decoded_types_units_and_addresses() -> None:
    points = read_points(FIXTURES / "site.ede.csv")
    assert detect_format("x.csv", (FIXTURES / "site.ede.csv").read_bytes()) == "ede"
    assert [p.name for p in points] == ["AHU-1.SA-T", "AHU-1.SA-T-SP", "AHU-1.SF-CMD", "AHU-1.SA-FLOW"]
    sp = points[1]
    assert sp.object_type == "analog-value" and sp.unit == "degrees-fahrenheit"
    assert sp.writable is True and (sp.minimum, sp.maximum) == (50.0, 65.0)
    assert sp.address == BACnetAddress(1001, "analog-value", 1)
    assert points[3].unit == "cubic-feet-per-minute"


def test_ede_with_an_unknown_unit_code_names_the_row(tmp_path: Path) -> None:
    text = (FIXTURES / "site.ede.csv").read_text("utf-8").replace(";64;\n", ";99999;\n", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text(text, "utf-8")
    with pytest.raises(IngestError, match=r"row 10, field 'unit-code'"):
        read_points(bad)


def test_haystack_json_v3_real_export_keeps_tags_and_units() -> None:
    points = read_points(RAW / "bravo.json")
    assert len(points) == 918
    valve = points[0]
    assert valve.name == "Bravo BCU-1 Cooling Valve Output"
    assert {"chilled", "valve", "sensor", "water"} <= set(valve.tags) and "point" not in valve.tags
    assert valve.unit == "%" and valve.source is not None and valve.source.row == 3


def test_haystack_json_v4_and_zinc() -> None:
    v4 = {
        "_kind": "grid",
        "rows": [
            {
                "id": {"_kind": "ref", "val": "p1"},
                "dis": "Discharge Temp",
                "point": {"_kind": "marker"},
                "discharge": {"_kind": "marker"},
                "temp": {"_kind": "marker"},
                "unit": "°F",
                "maxVal": {"_kind": "number", "val": 90, "unit": "°F"},
            },
        ],
    }
    (point,) = read_points("grid.json", data=json.dumps(v4).encode())
    assert point.tags == ("discharge", "temp") and point.maximum == 90.0
    zinc = read_points(FIXTURES / "points.zinc")
    assert [p.name for p in zinc] == ["Zone Temp", "VAV-2 ZN-T-SP"]  # dis, else the id's display
    assert zinc[1].writable is True and zinc[1].unit == "°F" and "sp" in zinc[1].tags
    assert zinc[0].description == "VAV-2: Zone Temp"


def test_xlsx_first_or_named_sheet(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Cover"
    book.active.append(["nothing here"])
    ws = book.create_sheet("Points")
    ws.append(["Point Name", "Units", "Description"])
    ws.append(["VAV-1 ZN-T", "°F", "Zone temperature"])
    ws.append(["VAV-1 FLOW", "cfm", None])
    path = tmp_path / "list.xlsx"
    book.save(path)
    points = read_points(path, sheet="Points")
    assert [(p.name, p.unit) for p in points] == [("VAV-1 ZN-T", "°F"), ("VAV-1 FLOW", "cfm")]
    assert points[0].source is not None and "Points" in points[0].source.source
    with pytest.raises(IngestError, match="no sheet 'Nope'"):
        read_points(path, sheet="Nope")


def test_niagara_export_and_user_column_mapping(tmp_path: Path) -> None:
    points = read_points(FIXTURES / "niagara_export.csv", fmt="niagara")
    assert [(p.name, p.object_type, p.writable) for p in points][:2] == [
        ("VAV3_ZN_T", "analog-input", False),  # the BACnet object name, not the Niagara slot
        ("VAV3_ZN_CLG_SP", "analog-value", True),
    ]
    rtu = read_points(FIXTURES / "rtu.xlsx", sheet="Points")
    assert [p.name for p in rtu][:2] == ["RTU-2.ZN-T", "RTU-2.ZN-T-CLG-SP"]
    assert rtu[1].writable is True and rtu[1].maximum == 80.0
    odd = tmp_path / "odd.csv"
    odd.write_text("Tag Label;Eng Units\nAHU1 SAT;degF\n", "utf-8")
    (p,) = read_points(odd, column_map={"name": "Tag Label", "unit": "Eng Units"})
    assert (p.name, p.unit) == ("AHU1 SAT", "degF")


def test_turtle_reimport_of_an_osed_model_and_a_foreign_brick_model(ontology, tmp_path: Path) -> None:
    from mapper import LabeledPoint, Suggestion, build_model

    source = read_points(FIXTURES / "small_building.csv")
    model = build_model("b", [LabeledPoint(p, Suggestion(None, 0.1)) for p in source], ontology)
    back = read_points("m.ttl", data=model.serialize(format="turtle").encode())
    assert back == source
    foreign = b"""@prefix brick: <https://brickschema.org/schema/Brick#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix unit: <http://qudt.org/vocab/unit/> .
<urn:x:ahu1> a brick:AHU .
<urn:x:sat> a brick:Supply_Air_Temperature_Sensor ; rdfs:label "AHU1 SAT" ; brick:hasUnit unit:DEG_F .
"""
    (point,) = read_points("foreign.ttl", data=foreign)
    assert point.name == "AHU1 SAT" and point.tags == ("brick:Supply_Air_Temperature_Sensor",)


def test_french_windows_1252_export_is_read_and_labeled(ontology) -> None:
    from agent import LabelingAgent

    points = read_points(FIXTURES / "francais_cp1252.csv")
    assert points[0].name == "AHU1_TEMP_ALIM" and points[0].unit == "°C"
    assert points[0].description == "Température d'air soufflé"
    got = [s.brick_class for s in LabelingAgent(ontology).suggest(points)]
    assert got[0] == "Supply_Air_Temperature_Sensor"
    assert got[2] is not None and "Damper" in got[2]


def test_bad_rows_are_skipped_and_reported_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("name,unit,min,max\nA,°F,1,2\n,°F,,\nB,°F,9,3\nC,cfm,,\n", "utf-8")
    with pytest.raises(IngestError, match="row 3"):
        read_points(path)
    rejected: list[IngestError] = []
    points = read_points(path, rejected=rejected)
    assert [p.name for p in points] == ["A", "C"]
    assert [(r.row, r.field) for r in rejected] == [(3, "name"), (4, "min")]


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"%PDF-1.7\n...", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n....", "a PNG image"),
        (b"\xff\xd8\xff\xe0..", "a JPEG image"),
    ],
)
def test_files_that_are_not_point_lists_are_refused_in_one_sentence(data: bytes, what: str) -> None:
    with pytest.raises(IngestError, match=f"this is {what}, not a point list"):
        read_points("upload.csv", data=data)
