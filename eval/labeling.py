"""Labeling benchmark on the dataset layout of shared/datasets/dev (name,...,brick_class)."""

from __future__ import annotations

import csv
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent import (
    AgentConfig,
    Calibration,
    ClassRetriever,
    Example,
    Knowledge,
    LabelingAgent,
    LLMRefiner,
    fit_isotonic,
)
from core.errors import IngestError
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
    calibration_error: float
    points_per_s: float
    examples: int
    mode: str = "zero-shot"
    #: (bin lower edge, mean confidence, accuracy, count) over suggestions made.
    calibration: list[tuple[float, float, float, int]] = field(default_factory=list)


def _read(path: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader(decode_text(path.read_bytes(), str(path)).splitlines()))
    if not rows or "name" not in rows[0] or "brick_class" not in rows[0]:
        raise IngestError("a benchmark dataset needs columns 'name' and 'brick_class'", source=str(path))
    return rows


def parse_budget(text: str | int, rows: int) -> int:
    """``10`` confirmations, or ``1%`` of the rows (at least one)."""
    if isinstance(text, int):
        return text
    text = text.strip()
    if text.endswith("%"):
        return max(1, math.ceil(float(text[:-1]) / 100 * rows))
    return int(text)


def evaluate(
    path: Path,
    *,
    examples_per_building: int = 0,
    active: str | int = 0,
    ontology: Ontology | None = None,
    config: AgentConfig | None = None,
    knowledge: Knowledge | None = None,
    retriever: ClassRetriever | None = None,
    calibration: Calibration | None = None,
    raw_pairs: list[tuple[float, bool]] | None = None,
    llm_for: Callable[[LabelingAgent], LLMRefiner | None] | None = None,
) -> LabelingResult:
    """Label a dataset and score it.

    ``examples_per_building``: the row of each of the first K distinct names is confirmed.
    ``active``: the agent's own ``suggest_review`` picks K points (or a percentage of the
    rows), they are confirmed with their true class, and the rest is labeled again.
    The confirmed rows (one per name) are left out of the scores; other rows with the same
    name are scored: labeling them from the confirmed one is the agent's job.
    """
    ontology = ontology or Ontology.load()
    rows = _read(path)
    truth = [ontology.index.canonical(r["brick_class"]) for r in rows]
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
    agent = LabelingAgent(ontology, knowledge, config=config, retriever=retriever, calibration=calibration)
    if llm_for is not None:
        agent.llm = llm_for(agent)
    confirmed: set[int] = set()
    mode = "zero-shot"
    if examples_per_building:
        mode = f"first {examples_per_building} names"
        names: set[str] = set()
        for i, (r, cls) in enumerate(zip(rows, truth, strict=True)):
            if len(names) >= examples_per_building:
                break
            if r["name"] not in names:
                names.add(r["name"])
                confirmed.add(i)
                agent.learn([Example(r["name"], cls)])
    budget = parse_budget(active, len(rows)) if active else 0
    if budget:
        mode = f"active {active}"
        picked = agent.suggest_review(points, budget)
        agent.learn([Example(points[i].name, truth[i]) for i in picked])
        confirmed.update(picked)
    suggestions = agent.suggest(points)
    elapsed = time.perf_counter() - start
    scored = [(s, t) for i, (s, t) in enumerate(zip(suggestions, truth, strict=True)) if i not in confirmed]
    n = len(scored) or 1
    exact = sum(1 for s, t in scored if s.brick_class == t)
    parent = sum(1 for s, t in scored if s.brick_class and ontology.index.is_subclass(t, s.brick_class))
    top3 = sum(1 for s, t in scored if t in (s.brick_class, *s.alternatives[:2]))
    covered = [(s, t) for s, t in scored if s.brick_class]
    if raw_pairs is not None:
        raw_pairs.extend((s.confidence, s.brick_class == t) for s, t in covered)
    precision = sum(1 for s, t in covered if s.brick_class == t) / (len(covered) or 1)
    curve, ece = reliability([(s.confidence, s.brick_class == t) for s, t in covered])
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
        calibration_error=ece,
        points_per_s=len(rows) / elapsed if elapsed > 0 else float("inf"),
        examples=len(confirmed),
        mode=mode,
        calibration=curve,
    )


def reliability(
    pairs: list[tuple[float, bool]], bins: int = 10
) -> tuple[list[tuple[float, float, float, int]], float]:
    """Reliability curve and expected calibration error (ECE) of (confidence, correct) pairs."""
    grouped: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for conf, ok in pairs:
        grouped[min(bins - 1, int(conf * bins))].append((conf, ok))
    curve = []
    ece = 0.0
    for b in sorted(grouped):
        items = grouped[b]
        mean_conf = sum(c for c, _ in items) / len(items)
        acc = sum(1 for _, ok in items if ok) / len(items)
        curve.append((b / bins, mean_conf, acc, len(items)))
        ece += abs(acc - mean_conf) * len(items) / max(1, len(pairs))
    return curve, ece


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


def format_table(results: list[LabelingResult], *, mean_row: bool = True) -> str:
    head = (
        "| dataset | mode | rows | confirmed | exact | parent-or-exact | top-3 | coverage | precision "
        "| macro-F1 | ECE | points/s |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        lines.append(
            f"| {r.dataset} | {r.mode} | {r.rows} | {r.examples} | {r.exact:.3f} | "
            f"{r.parent_or_exact:.3f} | {r.top3:.3f} | {r.coverage:.3f} | {r.precision:.3f} | "
            f"{r.macro_f1:.3f} | {r.calibration_error:.3f} | {r.points_per_s:,.0f} |"
        )
    if mean_row and len(results) > 1:

        def mean(attr: str) -> float:
            return sum(getattr(r, attr) for r in results) / len(results)

        lines.append(
            f"| **mean** | | | | {mean('exact'):.3f} | {mean('parent_or_exact'):.3f} | "
            f"{mean('top3'):.3f} | {mean('coverage'):.3f} | {mean('precision'):.3f} | "
            f"{mean('macro_f1'):.3f} | {mean('calibration_error'):.3f} | |"
        )
    return "\n".join(lines)


def format_calibration(results: list[LabelingResult]) -> str:
    """Reliability table pooled over datasets: among suggestions at confidence ~c, how many
    are right."""
    pooled: dict[float, list[tuple[float, float, int]]] = defaultdict(list)
    for r in results:
        for edge, conf, acc, count in r.calibration:
            pooled[edge].append((conf, acc, count))
    lines = ["| confidence | mean confidence | accuracy | suggestions |", "|---|---|---|---|"]
    for edge in sorted(pooled):
        items = pooled[edge]
        total = sum(c for _, _, c in items)
        conf = sum(c * n for c, _, n in items) / total
        acc = sum(a * n for _, a, n in items) / total
        lines.append(f"| {edge:.1f}-{edge + 0.1:.1f} | {conf:.3f} | {acc:.3f} | {total} |")
    return "\n".join(lines)


#: Site abbreviation files the benchmark uses, one per dev building that needs one
#: (``<dataset>.toml``): what an integrator writes for a site's own codes.
SITES = Path(__file__).parent / "sites"


def site_file(path: Path, sites: Path | None = SITES) -> Path | None:
    """The site abbreviation file kept for a dataset, if there is one."""
    if sites is None:
        return None
    candidate = sites / f"{path.stem}.toml"
    return candidate if candidate.is_file() else None


def knowledge_for(path: Path, base: Sequence[Path] = (), sites: Path | None = SITES) -> Knowledge:
    """The knowledge base a dataset is labeled with: shipped, ``base`` files, its site file."""
    site = site_file(path, sites)
    return Knowledge.load(*base, *([site] if site else []))


def fit_calibration(
    paths: Sequence[Path],
    *,
    ontology: Ontology,
    knowledge: Knowledge | None = None,
    retriever: ClassRetriever | None = None,
    active: str = "1%",
    knowledge_of: Callable[[Path], Knowledge] | None = None,
) -> tuple[Calibration, dict[str, float]]:
    """Fit the confidence map on zero-shot and active-learning runs of every dataset.

    Returns the map fitted on all of them, and each dataset's calibration error under a
    map fitted on the others only (leave one building out), which is what a building
    never seen would get.
    """
    identity = Calibration.identity()
    everything = AgentConfig(abstain_below=0.0)
    per_dataset: dict[str, list[tuple[float, bool]]] = {}
    for path in paths:
        pairs: list[tuple[float, bool]] = []
        for mode in ("", active):
            evaluate(
                path,
                active=mode,
                ontology=ontology,
                knowledge=knowledge_of(path) if knowledge_of else knowledge,
                retriever=retriever,
                config=everything,
                calibration=identity,
                raw_pairs=pairs,
            )
        per_dataset[path.stem] = pairs
    held_out = {}
    for name, pairs in per_dataset.items():
        others = [p for other, ps in per_dataset.items() if other != name for p in ps]
        fitted = fit_isotonic(others)
        held_out[name] = reliability([(fitted(c), ok) for c, ok in pairs])[1]
    everything_pairs = [p for ps in per_dataset.values() for p in ps]
    return fit_isotonic(everything_pairs, fitted_on=sorted(per_dataset)), held_out
