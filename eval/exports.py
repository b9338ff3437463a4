"""Vendor exports with ground truth (``eval/exports/``): are name, object type, unit and
writability read right on every row, and how well are the points labeled?

    python -m eval.exports eval/exports/dev [eval/exports/holdout] [--details]

Each sample ``X.csv``/``X.xlsx`` has ``X.truth.csv`` (``row,name,object_type,unit,writable,
brick_class``, one line per point row, header = row 1). The samples imitate real front ends
(Niagara, Delta, Metasys, Desigo, EcoStruxure, WebCTRL; see ``eval/exports/README.md``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent import Knowledge, LabelingAgent
from agent._scoring import object_type_key
from core.errors import IngestError
from mapper import RawPoint, ReadReport, read_points
from ontology import Ontology

_SHORT = {
    "ai": "AI", "ao": "AO", "av": "AV", "bi": "BI", "bo": "BO", "bv": "BV",
    "msi": "MI", "mso": "MO", "msv": "MV",
}  # fmt: skip


@dataclass
class ExportResult:
    file: str
    rows: int
    read: int
    names: int = 0
    object_types: int = 0
    units: int = 0
    writables: int = 0
    labeled_rows: int = 0  # rows with a truth class
    exact: int = 0
    top3: int = 0
    #: Rows with no truth class (opaque, or no Brick class) the agent abstained on.
    opaque: int = 0
    opaque_abstained: int = 0
    suggested: int = 0
    suggested_right: int = 0
    columns: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    error: str = ""


def short_type(text: str) -> str:
    key = object_type_key(text) if text else None
    return _SHORT.get(key or "", "")


def _unit_key(ontology: Ontology, text: str) -> str:
    unit = ontology.units.lookup(text)
    return unit.iri if unit else text.strip()


def score_export(sample: Path, agent: LabelingAgent, ontology: Ontology) -> ExportResult:
    truth_path = sample.with_name(sample.name.rsplit(".", 1)[0] + ".truth.csv")
    truth = list(csv.DictReader(truth_path.read_text("utf-8").splitlines()))
    result = ExportResult(file=sample.name, rows=len(truth), read=0)
    report = ReadReport()
    try:
        points = read_points(sample, report=report)
    except IngestError as exc:
        result.error = str(exc)
        return result
    result.columns = report.lines()
    by_row: dict[int, RawPoint] = {p.source.row: p for p in points if p.source and p.source.row}
    result.read = len(points)
    # Truth rows count from the header (row 1); the reader gives the file's own line.
    offset = report.header_row - 1
    ordered = [by_row.get(int(t["row"]) + offset) for t in truth]
    present = [p for p in ordered if p is not None]
    suggestions = dict(zip((id(p) for p in present), agent.suggest(present), strict=True))
    for t, p in zip(truth, ordered, strict=True):
        if p is None:
            result.mismatches.append(f"row {t['row']}: not read")
            continue
        checks = (
            ("name", p.name == t["name"], p.name, t["name"]),
            ("object type", short_type(p.object_type) == t["object_type"], p.object_type, t["object_type"]),
            (
                "unit",
                _unit_key(ontology, p.unit) == _unit_key(ontology, t["unit"]),
                p.unit,
                t["unit"],
            ),
            (
                "writable",
                (t["writable"] == "" and p.writable is None)
                or (t["writable"] == "yes" and p.writable is True)
                or (t["writable"] == "no" and p.writable is False),
                p.writable,
                t["writable"],
            ),
        )
        for (label, ok, got, want), counter in zip(
            checks, ("names", "object_types", "units", "writables"), strict=True
        ):
            if ok:
                setattr(result, counter, getattr(result, counter) + 1)
            else:
                result.mismatches.append(f"row {t['row']} {label}: read {got!r}, expected {want!r}")
        s = suggestions[id(p)]
        cls = ontology.index.canonical(t["brick_class"]) if t["brick_class"] else ""
        if s.brick_class:
            result.suggested += 1
            result.suggested_right += s.brick_class == cls
        if cls:
            result.labeled_rows += 1
            result.exact += s.brick_class == cls
            result.top3 += cls in (s.brick_class, *s.alternatives[:2])
            if s.brick_class != cls:
                result.mismatches.append(
                    f"row {t['row']} class: {p.name!r} -> {s.brick_class} ({s.confidence:.2f}), "
                    f"expected {cls}"
                )
        else:
            result.opaque += 1
            result.opaque_abstained += s.brick_class is None
    return result


def samples(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix in (".csv", ".xlsx") and not p.name.endswith(".truth.csv")
    )


def format_results(title: str, results: Sequence[ExportResult]) -> str:
    lines = [
        f"### {title}",
        "",
        "| file | rows | read | name | object type | unit | writable | exact | top-3 | "
        "abstained on opaque | precision of suggestions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(a: int, b: int) -> str:
        return f"{a / b:.3f}" if b else "–"

    for r in results:
        if r.error:
            lines.append(f"| {r.file} | {r.rows} | refused: {r.error} | | | | | | | | |")
            continue
        lines.append(
            f"| {r.file} | {r.rows} | {r.read} | {pct(r.names, r.rows)} | {pct(r.object_types, r.rows)} | "
            f"{pct(r.units, r.rows)} | {pct(r.writables, r.rows)} | {pct(r.exact, r.labeled_rows)} | "
            f"{pct(r.top3, r.labeled_rows)} | {r.opaque_abstained}/{r.opaque} | "
            f"{pct(r.suggested_right, r.suggested)} |"
        )
    done = [r for r in results if not r.error]
    rows = sum(r.rows for r in done)
    labeled = sum(r.labeled_rows for r in done)
    lines.append(
        f"| **all** | {rows} | {sum(r.read for r in done)} | {pct(sum(r.names for r in done), rows)} | "
        f"{pct(sum(r.object_types for r in done), rows)} | {pct(sum(r.units for r in done), rows)} | "
        f"{pct(sum(r.writables for r in done), rows)} | {pct(sum(r.exact for r in done), labeled)} | "
        f"{pct(sum(r.top3 for r in done), labeled)} | {sum(r.opaque_abstained for r in done)}/"
        f"{sum(r.opaque for r in done)} | "
        f"{pct(sum(r.suggested_right for r in done), sum(r.suggested for r in done))} |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--details", action="store_true", help="list every mismatch")
    args = parser.parse_args(argv)
    ontology = Ontology.load()
    agent = LabelingAgent(ontology, Knowledge.load())
    for folder in args.folders:
        results = [score_export(sample, agent, ontology) for sample in samples(folder)]
        print(format_results(str(folder), results))
        print()
        if args.details:
            for r in results:
                print(f"#### {r.file}")
                for line in [*r.columns, *r.mismatches]:
                    print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
