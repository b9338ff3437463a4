"""Labeling benchmark on the dataset layout of shared/datasets/dev (name,...,brick_class)."""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from agent import AgentConfig, Example, LabelingAgent
from mapper import RawPoint, decode_text
from ontology import Ontology


@dataclass
class LabelingResult:
    dataset: str
    rows: int
    scored_rows: int
    exact: float
    parent_or_exact: float
    top3: float
    coverage: float
    precision: float
    macro_f1: float
    points_per_s: float
    examples: int


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(decode_text(path.read_bytes(), str(path)).splitlines()))


def evaluate(
    path: Path,
    *,
    examples_per_building: int = 0,
    ontology: Ontology | None = None,
    config: AgentConfig | None = None,
) -> LabelingResult:
    """Label a dataset and score it; with examples, the first distinct names are confirmed
    and scoring covers the other rows."""
    ontology = ontology or Ontology.load()
    rows = _read(path)
    truth = [ontology.index.canonical(r["brick_class"]) for r in rows]
    agent = LabelingAgent(ontology, config=config)
    confirmed: set[str] = set()
    if examples_per_building:
        for r, cls in zip(rows, truth, strict=True):
            if len(confirmed) >= examples_per_building:
                break
            if r["name"] not in confirmed:
                confirmed.add(r["name"])
                agent.learn([Example(r["name"], cls)])
    points = [
        RawPoint(
            name=r["name"],
            description=r.get("description", ""),
            unit=r.get("unit", ""),
            object_type=r.get("object_type", ""),
        )
        for r in rows
    ]
    start = time.perf_counter()
    suggestions = agent.suggest(points)
    elapsed = time.perf_counter() - start
    scored = [(s, t) for r, s, t in zip(rows, suggestions, truth, strict=True) if r["name"] not in confirmed]
    n = len(scored) or 1
    exact = sum(1 for s, t in scored if s.brick_class == t)
    parent = sum(1 for s, t in scored if s.brick_class and ontology.index.is_subclass(t, s.brick_class))
    top3 = sum(1 for s, t in scored if t in (s.brick_class, *s.alternatives[:2]))
    covered = [(s, t) for s, t in scored if s.brick_class]
    precision = sum(1 for s, t in covered if s.brick_class == t) / (len(covered) or 1)
    return LabelingResult(
        dataset=path.stem,
        rows=len(rows),
        scored_rows=len(scored),
        exact=exact / n,
        parent_or_exact=parent / n,
        top3=top3 / n,
        coverage=len(covered) / n,
        precision=precision,
        macro_f1=_macro_f1([(s.brick_class, t) for s, t in scored]),
        points_per_s=len(rows) / elapsed if elapsed > 0 else float("inf"),
        examples=len(confirmed),
    )


def _macro_f1(pairs: list[tuple[str | None, str]]) -> float:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for pred, true in pairs:
        if pred == true:
            tp[true] += 1
        else:
            fn[true] += 1
            if pred:
                fp[pred] += 1
    classes = set(fn) | set(tp)
    if not classes:
        return 0.0
    scores = []
    for c in classes:
        p = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 0.0
        r = tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else 0.0
        scores.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(scores) / len(scores)


def format_table(results: list[LabelingResult]) -> str:
    head = (
        "| dataset | rows | examples | exact | parent-or-exact | top-3 | coverage | precision "
        "| macro-F1 | points/s |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        lines.append(
            f"| {r.dataset} | {r.rows} | {r.examples} | {r.exact:.3f} | {r.parent_or_exact:.3f} | "
            f"{r.top3:.3f} | {r.coverage:.3f} | {r.precision:.3f} | {r.macro_f1:.3f} | "
            f"{r.points_per_s:,.0f} |"
        )
    if len(results) > 1:
        mean = lambda attr: sum(getattr(r, attr) for r in results) / len(results)  # noqa: E731
        lines.append(
            f"| **mean** | | | {mean('exact'):.3f} | {mean('parent_or_exact'):.3f} | "
            f"{mean('top3'):.3f} | {mean('coverage'):.3f} | {mean('precision'):.3f} | "
            f"{mean('macro_f1'):.3f} | |"
        )
    return "\n".join(lines)
