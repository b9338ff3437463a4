from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATASETS, FIXTURES


def osed(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # Retrieval (embedding model) is exercised in test_agent.py; here it would only add
    # a model load to every command.
    env = {**os.environ, "OSED_DATA_DIR": str(cwd / "var"), "OSED_AGENT__RETRIEVAL": "false"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_label_writes_the_predictions_contract(tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    r = osed("label", str(DATASETS / "soda.csv"), "--predictions", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    source = list(csv.DictReader((DATASETS / "soda.csv").open(encoding="utf-8")))
    assert [row["name"] for row in rows] == [row["name"] for row in source]
    assert {"name", "brick_class", "confidence", "alternatives", "reason"} <= set(rows[0])
    assert all(0 <= float(row["confidence"]) <= 1 for row in rows)


def test_label_with_examples_and_model_then_validate(tmp_path: Path) -> None:
    examples = tmp_path / "ex.csv"
    examples.write_text("name,brick_class\nAHU-1.SF-STS,Fan_On_Off_Status\n", "utf-8")
    out, model = tmp_path / "pred.csv", tmp_path / "model.ttl"
    r = osed(
        "label",
        str(FIXTURES / "small_building.csv"),
        "--predictions",
        str(out),
        "--examples",
        str(examples),
        "--model",
        str(model),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["AHU-1.SF-STS"]["brick_class"] == "Fan_On_Off_Status"
    ok = osed("validate", str(model), cwd=tmp_path)
    assert ok.returncode == 0 and "conforms" in ok.stdout
    broken = tmp_path / "broken.ttl"
    broken.write_text(
        model.read_text("utf-8")
        + "\n<urn:osed:building/point/x> a <https://brickschema.org/schema/Brick#Zone_Air_Temperature_Sensor> .\n",
        "utf-8",
    )
    bad = osed("validate", str(broken), cwd=tmp_path)
    assert bad.returncode == 1 and "raw name" in bad.stdout


def test_load_query_export_and_clear_errors(tmp_path: Path) -> None:
    r = osed("load", str(FIXTURES / "small_building.csv"), "--building", "hq", cwd=tmp_path)
    assert r.returncode == 0 and "6 points" in r.stdout, r.stderr
    q = osed(
        "query", "SELECT ?p WHERE { ?p a brick:Zone_Air_Temperature_Sensor }", "--format", "csv", cwd=tmp_path
    )
    assert q.returncode == 0 and len(q.stdout.strip().splitlines()) == 2
    e = osed("export", "--building", "hq", "-o", str(tmp_path / "hq.ttl"), cwd=tmp_path)
    assert e.returncode == 0 and (tmp_path / "hq.ttl").stat().st_size > 1000
    missing = tmp_path / "nocol.csv"
    missing.write_text("unit\nF\n", "utf-8")
    err = osed("load", str(missing), "--building", "hq", cwd=tmp_path)
    assert err.returncode == 2
    assert err.stderr.strip().count("\n") == 0 and "no point-name column" in err.stderr
    again = osed(
        "query", "SELECT (COUNT(?p) AS ?n) WHERE { ?p osed:rawName ?x }", "--format", "csv", cwd=tmp_path
    )
    assert again.stdout.strip().splitlines()[1] == "6"


def test_demo_building_loads_labels_and_validates_with_zero_violations(platform) -> None:
    from api.cli import load_demo
    from api.demo import DEMO_BUILDING, demo_points

    points = demo_points()
    assert 200 <= len(points) <= 500
    load_demo(platform)
    report = platform.validate_building(DEMO_BUILDING)
    assert report.conforms and report.violations == (), report.to_text()
    total, _ = platform.points(DEMO_BUILDING, limit=1)
    assert total == len(points)
    labeled = platform.store.query(
        "PREFIX osed: <https://w3id.org/osed/ns#> SELECT (COUNT(?p) AS ?n) "
        'WHERE { ?p osed:reviewStatus "suggested" }'
    ).rows[0]["n"]
    assert int(labeled) >= 0.95 * len(points)


def test_suggest_review_picks_representatives_that_teach_the_most(tmp_path: Path) -> None:
    out = tmp_path / "picked.csv"
    r = osed("suggest-review", str(DATASETS / "soda.csv"), "-k", "5", "--output", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    picked = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(picked) == 5 and all(row["name"] for row in picked)
    # Five confirmations from the picks label most of the building through their groups.
    truth = {
        row["name"]: row["brick_class"]
        for row in csv.DictReader((DATASETS / "soda.csv").open(encoding="utf-8"))
    }
    examples = tmp_path / "ex.csv"
    with examples.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "brick_class"])
        for row in picked:
            w.writerow([row["name"], truth[row["name"]]])
    pred = tmp_path / "pred.csv"
    r = osed(
        "label",
        str(DATASETS / "soda.csv"),
        "--predictions",
        str(pred),
        "--examples",
        str(examples),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(pred.open(encoding="utf-8")))
    right = sum(1 for row in rows if row["brick_class"] == truth[row["name"]])
    assert right / len(rows) > 0.6
    again = tmp_path / "again.csv"
    r = osed(
        "suggest-review",
        str(DATASETS / "soda.csv"),
        "-k",
        "5",
        "--output",
        str(again),
        "--examples",
        str(examples),
        cwd=tmp_path,
    )
    names = {row["name"] for row in csv.DictReader(again.open(encoding="utf-8"))}
    assert r.returncode == 0 and not names & set(truth_name for truth_name in (row["name"] for row in picked))


def test_label_accepts_every_format_one_row_per_point(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Point Name", "Units"])
    book.active.append(["VAV-1 ZN-T", "°F"])
    book.save(tmp_path / "list.xlsx")
    model = tmp_path / "model.ttl"
    assert (
        osed(
            "label",
            str(FIXTURES / "small_building.csv"),
            "--predictions",
            str(tmp_path / "p.csv"),
            "--model",
            str(model),
            cwd=tmp_path,
        ).returncode
        == 0
    )
    cases = {
        str(FIXTURES / "site.ede.csv"): 4,
        str(FIXTURES / "points.zinc"): 2,
        str(FIXTURES / "site.haystack.json"): 3,  # the site and equipment records are context
        str(FIXTURES / "francais_cp1252.csv"): 4,
        str(tmp_path / "list.xlsx"): 1,
        str(model): 6,
    }
    for source, expected in cases.items():
        out = tmp_path / "out.csv"
        r = osed("label", source, "--predictions", str(out), cwd=tmp_path)
        assert r.returncode == 0, (source, r.stderr)
        assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == expected, source
    bad = tmp_path / "bad.csv"
    bad.write_text("name,min\nA,1\nB,x\n", "utf-8")
    r = osed("label", str(bad), "--predictions", str(tmp_path / "o.csv"), "--skip-bad-rows", cwd=tmp_path)
    assert r.returncode == 0 and "rejected:" in r.stderr and "row 3" in r.stderr


def _benchmark_set(tmp_path: Path) -> Path:
    data = tmp_path / "site_x.csv"
    rows = ["name,description,unit,object_type,brick_class"]
    rows += ["SPACE_TEMP,,°F,,Zone_Air_Temperature_Sensor"] * 3
    rows += [f"X{n}_QQT,,,,Zone_Air_Temperature_Sensor" for n in range(1, 5)]
    data.write_text("\n".join(rows) + "\n", "utf-8")
    return data


def _exact(table: str, dataset: str) -> tuple[int, float]:
    row = next(line for line in table.splitlines() if line.startswith(f"| {dataset} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return int(cells[3]), float(cells[4])


def test_eval_scores_rows_sharing_a_confirmed_name(tmp_path: Path, ontology) -> None:
    from eval.labeling import evaluate

    result = evaluate(_benchmark_set(tmp_path), examples_per_building=1, ontology=ontology)
    # One SPACE_TEMP row was confirmed; its two namesakes are labeled from it and scored.
    assert result.examples == 1 and result.scored_rows == 6


def test_eval_takes_site_abbreviation_files(tmp_path: Path) -> None:
    data = _benchmark_set(tmp_path)
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "site_x.toml").write_text('[tokens]\nqqt = "Zone Air Temperature"\n', "utf-8")
    bare = osed("eval", str(data), cwd=tmp_path)
    with_site = osed("eval", str(data), "--sites", str(sites), cwd=tmp_path)
    assert bare.returncode == 0 and with_site.returncode == 0, bare.stderr + with_site.stderr
    assert _exact(bare.stdout, "site_x") == (0, pytest.approx(3 / 7, abs=1e-3))
    assert _exact(with_site.stdout, "site_x") == (0, 1.0)


def test_label_says_which_column_became_which_field_and_what_was_not_used(tmp_path: Path) -> None:
    export = tmp_path / "niagara.csv"
    export.write_text(
        "Name,Target Name,Object Name,Type,Object Type,Inst Num,Value,Export Ord,Export,Fault Cause,"
        "Description,BACnet Writable\n"
        'analogValue_0,Puissance$20Totale,PUISS_TOT_kW,Bacnet Ai Export,analog-value,0,"264,22 kW {ok} @ 10",'
        'slot:/Drivers/PuissTot,true,,Puissance active totale,"in8,in10"\n',
        "utf-8",
    )
    out = tmp_path / "pred.csv"
    r = osed("label", str(export), "--predictions", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "point name <- 'Object Name'" in r.stderr and "unit <- 'Value' (inside the value)" in r.stderr
    assert "not used (kept on each point as source evidence): 'Name', 'Target Name'" in r.stderr
    (row,) = csv.DictReader(out.open(encoding="utf-8"))
    assert row["name"] == "PUISS_TOT_kW" and row["brick_class"].endswith("Power_Sensor")
