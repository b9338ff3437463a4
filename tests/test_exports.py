"""Vendor exports as sites produce them: every sample in eval/exports is read right on every
row (name, object type, unit, writability), whatever its layout, language and encoding; the
cells of a value column never break a row; a file whose point names cannot be told apart is
refused in one sentence; every column not used is kept and reported."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import IngestError
from eval.exports import short_type
from mapper import ReadReport, read_points
from mapper._values import object_id, parse_value, parse_writable, unescape_niagara
from ontology import Ontology

EXPORTS = Path(__file__).resolve().parents[1] / "eval" / "exports"
SAMPLES = sorted(
    p
    for split in ("dev", "holdout")
    for p in (EXPORTS / split).iterdir()
    if p.suffix in (".csv", ".xlsx") and not p.name.endswith(".truth.csv")
)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_row_of_every_vendor_sample_is_read_right(sample: Path, ontology: Ontology) -> None:
    truth = list(csv.DictReader(sample.with_name(sample.name.rsplit(".", 1)[0] + ".truth.csv").open()))
    report = ReadReport()
    points = read_points(sample, report=report)
    by_row = {p.source.row: p for p in points if p.source and p.source.row}
    offset = report.header_row - 1
    assert len(points) == len(truth)

    def unit(text: str) -> str:
        found = ontology.units.lookup(text)
        return found.iri if found else text

    wrong = []
    for t in truth:
        p = by_row[int(t["row"]) + offset]
        writable = {"yes": True, "no": False, "": None}[t["writable"]]
        got = (p.name, short_type(p.object_type), unit(p.unit), p.writable)
        want = (t["name"], t["object_type"], unit(t["unit"]), writable)
        if got != want:
            wrong.append((t["row"], got, want))
    assert not wrong, wrong[:5]
    # Nothing the reader did not use is dropped: it is reported and kept on the points.
    kept = {column for p in points for column, _ in p.extra}
    assert kept <= set(report.unused) | {c.column for c in report.columns}


def test_niagara_export_reads_object_name_escapes_units_and_priority_lists(tmp_path: Path) -> None:
    path = tmp_path / "niagara.csv"
    path.write_text(
        "Name,Target Name,Object Name,Type,Object Type,Inst Num,Value,Export Ord,Export,Fault Cause,"
        "Description,BACnet Writable\n"
        'analogValue_0,Puissance$20Totale,PUISS_TOT,Bacnet Ai Export,analog-value,0,"264,22 kW {ok} @ 10",'
        'slot:/Drivers/Meters/PuissTot,true,,Puissance active totale,"in8,in10"\n'
        "binaryValue_0,Etat$20Pompe$20P$2d1,,Bacnet Bv Export,binary-value,0,inactive {ok},slot:/P1,true,,,\n",
        "utf-8",
    )
    report = ReadReport()
    first, second = read_points(path, report=report, rejected=[])
    assert (first.name, first.unit, first.present_value, first.value_kind) == (
        "PUISS_TOT",
        "kW",
        "264.22",
        "analog",
    )
    assert (first.object_type, first.writable, first.status) == ("analog-value", True, "ok")
    assert ("Name", "analogValue_0") in first.extra  # the slot is kept, never the name
    assert ("Target Name", "Puissance Totale") in first.extra  # $20 decoded
    assert second.writable is False  # no writable priority level: read-only
    assert second.name == "Etat Pompe P-1"  # no Object Name on that row: the decoded Target Name
    assert "point name <- 'Object Name'" in report.lines()[0]
    assert unescape_niagara("Temp$e9rature$u00e9") == "Températureé"


def test_delta_reference_gives_the_object_type_and_a_bacnet_address(tmp_path: Path) -> None:
    path = tmp_path / "delta.csv"
    path.write_bytes(
        "Référence de l'objet;Alarme;Manuel;Vérifié;Nom;Valeur;Statut;Description;libellé\n"
        "//Site/1000.AI10;;;Oui;TEMP. ALIM. No.3A;20 °C;Normal;;Temp air soufflé\n"
        "//Site/1000.BV12;;;;DEM/ARR VENT. RETOUR;active;Normal;;\n"
        "//Site/1000.AI11;;;;PRESS. STAT.;'-0,5 inWC;Normal;;\n".encode("cp1252")
    )
    report = ReadReport()
    a, b, c = read_points(path, report=report)
    assert (a.object_type, a.unit, a.present_value) == ("analog-input", "°C", "20")
    assert a.address is not None and a.address.identity() == "bacnet:1000:analog-input:10"
    assert (b.object_type, b.value_kind, b.present_value) == ("binary-value", "binary", "active")
    assert (c.unit, c.present_value) == ("inWC", "-0.5")
    # libellé is a label: used as the description when there is none, otherwise reported.
    assert a.description == "Temp air soufflé"
    assert report.unused == ["Alarme", "Manuel", "Vérifié", "Description"]  # empty, yet reported
    assert ("Vérifié", "Oui") in a.extra


@pytest.mark.parametrize(
    ("text", "value", "unit", "status", "kind"),
    [
        ("264,22 kW {ok} @ 10", "264.22", "kW", "ok", "analog"),
        ("20 °C", "20", "°C", "", "analog"),
        ("'-1,06 °C", "-1.06", "°C", "", "analog"),
        ("0 %RH", "0", "%RH", "", "analog"),
        ("1 234,5 kWh", "1234.5", "kWh", "", "analog"),
        ("1,234.5 kWh", "1234.5", "kWh", "", "analog"),
        ("inactive", "inactive", "", "", "binary"),
        ("Marche", "marche", "", "", "binary"),
        ("nan {fault}", "", "", "fault", ""),
        ("{down,stale}", "", "", "down,stale", ""),
        ("", "", "", "", ""),
        ("1,00 in/wc {ok} @ def", "1", "in/wc", "ok", "analog"),
        ("2 Occupé", "2", "", "", "multistate"),
    ],
)
def test_present_values_as_exports_print_them(
    text: str, value: str, unit: str, status: str, kind: str
) -> None:
    parsed = parse_value(text)
    assert (parsed.text, parsed.unit, parsed.status, parsed.kind) == (value, unit, status, kind)


@pytest.mark.parametrize(
    ("text", "object_type"),
    [
        ("1000.AI10", "analog-input"),
        ("//Site/1000.BV12", "binary-value"),
        ("analogValue_3", "analog-value"),
        ("AV-12", "analog-value"),
        ("analog-value:12", "analog-value"),
        ("binaryValue_0", "binary-value"),
        ("Entrée analogique", "analog-input"),
        ("Valeur multi-états", "multi-state-value"),
        ("Bacnet Analog Value Prioritized Descriptor", "analog-value"),
        ("Digital Value", "binary-value"),
        ("Modbus Register", None),
        ("VAV-3", None),
    ],
)
def test_object_types_from_references_slots_and_words(text: str, object_type: str | None) -> None:
    found = object_id(text)
    assert (found.object_type if found else None) == object_type


def test_writable_accepts_yes_no_in_two_languages_and_priority_lists() -> None:
    assert parse_writable("in8,in10").writable is True  # type: ignore[union-attr]
    assert parse_writable("in8,in10").priorities == (8, 10)  # type: ignore[union-attr]
    assert parse_writable("Lecture seule").writable is False  # type: ignore[union-attr]
    assert parse_writable("L/E").writable is True  # type: ignore[union-attr]
    assert parse_writable("maybe") is None


def test_a_value_column_mixing_numbers_states_and_errors_never_breaks_a_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    values = ["21,5 °C", "{fault}", "{down}", "nan", "", "active", "#####", "Auto", "-", "3 (Nuit)"]
    path.write_text("Nom;Valeur\n" + "".join(f"UTA-1 POINT {i};{v}\n" for i, v in enumerate(values)), "utf-8")
    points = read_points(path)
    assert len(points) == len(values)
    assert points[0].unit == "°C" and points[1].status == "fault" and points[5].value_kind == "binary"


def test_a_file_whose_point_names_cannot_be_told_apart_is_refused_in_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text(
        "Code A;Code B;Valeur\n" + "".join(f"AHU-{i} SAT;VAV-{i} ZNT;{i} °C\n" for i in range(20)), "utf-8"
    )
    with pytest.raises(IngestError) as err:
        read_points(path)
    message = str(err.value)
    assert "'Code A' or 'Code B'" in message and "--columns name=" in message and "\n" not in message
    (chosen, *_) = read_points(path, column_map={"name": "Code B"})
    assert chosen.name == "VAV-0 ZNT"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_cell_readers_never_raise(text: str) -> None:
    parse_value(text)
    object_id(text)
    parse_writable(text)
    unescape_niagara(text)


def test_an_integrator_list_with_a_type_column_and_bacnet_addresses(tmp_path: Path) -> None:
    """Found by a user test: 'Adresse BACnet' holding 3100.AI1 is the object, not a network
    address, and the device it names is kept although a Type column gives the type."""
    path = tmp_path / "liste.csv"
    path.write_text(
        "Équipement;Point;Type;Unité;Adresse BACnet;Écriture\n"
        "CH-1;CH-1 M/A;BO;-;3100.BO1;Oui\n"
        "CH-1;CH-1 TEMP. DÉPART;AI;°C;3100.AI1;Non\n",
        "utf-8",
    )
    report = ReadReport()
    command, reading = read_points(path, report=report)
    assert "object reference <- 'Adresse BACnet'" in report.lines()[0]
    assert command.address is not None and command.address.identity() == "bacnet:3100:binary-output:1"
    assert (command.unit, command.writable, command.equipment) == ("", True, "CH-1")
    assert reading.address is not None and reading.address.identity() == "bacnet:3100:analog-input:1"


def test_a_modbus_gateway_list_reads_register_types_writability_and_big_numbers(tmp_path: Path) -> None:
    path = tmp_path / "modbus.txt"
    path.write_bytes(
        "Nom du point\tRegistre Modbus\tType de registre\tUnité\tValeur\tL/E\n"
        "CPT ÉNERGIE ACTIVE\t40003\tHolding\tkWh\t1 284 553,2\tL\n"
        "CE-2 DÉLESTAGE\t40091\tCoil\t\t0\tL/E\n"
        "UTA-1 P.S. GAINE\t40100\tInput Register\tpo.ce\t0,8\tL\n".encode("cp1252")
    )
    report = ReadReport()
    energy, shed, static = read_points(path, report=report)
    assert energy.present_value == "1284553.2" and energy.writable is False
    assert shed.writable is True and shed.address is not None
    assert (shed.address.register_type, shed.address.data_type) == ("coil", "bool")  # type: ignore[union-attr]
    assert static.address.register_type == "input"  # type: ignore[union-attr]
    assert static.unit == "po.ce"
    assert any("unit id 1 is assumed" in note for note in report.lines())


def test_a_broken_quote_is_refused_at_its_row_not_read_as_one_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text('Nom;Type;Valeur\nUTA-1 TEMP;AI;1\n"UTA-1 ;AI;3\nUTA-1 CONS;AV;2\n', "utf-8")
    with pytest.raises(IngestError, match="row 3"):
        read_points(path)
