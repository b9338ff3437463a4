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
    fit_confidence,
)
from core.errors import IngestError
from mapper import RawPoint, ReadReport, decode_text, read_points
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


def dataset_name(path: Path) -> str:
    return path.name.rsplit(".", 1)[0]


def truth_file(path: Path) -> Path:
    """A vendor export sample's ground truth (``X.csv`` -> ``X.truth.csv``)."""
    return path.with_name(dataset_name(path) + ".truth.csv")


def load_labeled(path: Path, ontology: Ontology) -> tuple[list[RawPoint], list[str | None]]:
    """Points and their true classes: a dev dataset (``name,...,brick_class``), or a vendor
    export read as a user's upload is, with its ``.truth.csv`` (an empty class = no Brick
    class fits: not scored)."""
    if truth_file(path).is_file():
        truth_rows = list(csv.DictReader(decode_text(truth_file(path).read_bytes(), str(path)).splitlines()))
        report = ReadReport()
        read = read_points(path, report=report)
        by_row = {p.source.row: p for p in read if p.source and p.source.row}
        offset = report.header_row - 1
        points, truth = [], []
        for t in truth_rows:
            point = by_row.get(int(t["row"]) + offset)
            if point is not None:
                points.append(point)
                truth.append(ontology.index.canonical(t["brick_class"]) if t["brick_class"] else None)
        return points, truth
    rows = _read(path)
    points = [
        RawPoint(
            name=r["name"],
            description=r.get("description", ""),
            unit=r.get("unit", ""),
            object_type=r.get("object_type", ""),
        )
        for r in rows
    ]
    return points, [ontology.index.canonical(r["brick_class"]) for r in rows]


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
    samples: list[tuple[dict[str, float], bool, str]] | None = None,
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
    points, truth = load_labeled(path, ontology)
    start = time.perf_counter()
    agent = LabelingAgent(ontology, knowledge, config=config, retriever=retriever, calibration=calibration)
    if llm_for is not None:
        agent.llm = llm_for(agent)
    confirmed: set[int] = set()
    mode = "zero-shot"
    if examples_per_building:
        mode = f"first {examples_per_building} names"
        names: set[str] = set()
        for i, (p, cls) in enumerate(zip(points, truth, strict=True)):
            if len(names) >= examples_per_building:
                break
            if p.name not in names and cls:
                names.add(p.name)
                confirmed.add(i)
                agent.learn([Example(p.name, cls)])
    budget = parse_budget(active, len(points)) if active else 0
    if budget:
        mode = f"active {active}"
        picked = agent.suggest_review(points, budget)
        # A point no Brick class fits is rejected by its reviewer: nothing to learn.
        agent.learn([Example(points[i].name, cls) for i in picked if (cls := truth[i])])
        confirmed.update(picked)
    suggestions = agent.suggest(points)
    elapsed = time.perf_counter() - start
    scored = [
        (s, t)
        for i, (s, t) in enumerate(zip(suggestions, truth, strict=True))
        if i not in confirmed and t is not None
    ]
    n = len(scored) or 1
    exact = sum(1 for s, t in scored if s.brick_class == t)
    parent = sum(1 for s, t in scored if s.brick_class and ontology.index.is_subclass(t, s.brick_class))
    top3 = sum(1 for s, t in scored if t in (s.brick_class, *s.alternatives[:2]))
    covered = [(s, t) for s, t in scored if s.brick_class]
    if samples is not None:
        samples.extend(
            (dict(s.factors), s.brick_class == t, points[i].name)
            for i, (s, t) in enumerate(zip(suggestions, truth, strict=True))
            if i not in confirmed and s.brick_class and t is not None
        )
    precision = sum(1 for s, t in covered if s.brick_class == t) / (len(covered) or 1)
    curve, ece = reliability([(s.confidence, s.brick_class == t) for s, t in covered])
    return LabelingResult(
        dataset=dataset_name(path),
        rows=len(points),
        scored_rows=len(scored),
        exact=exact / n,
        parent_or_exact=parent / n,
        top3=top3 / n,
        coverage=len(covered) / n,
        precision=precision,
        macro_f1=_macro_f1([(s.brick_class, t) for s, t in scored]),
        calibration_error=ece,
        points_per_s=len(points) / elapsed if elapsed > 0 else float("inf"),
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
) -> tuple[Calibration, dict[str, HeldOut]]:
    """Fit the confidence model on zero-shot and active-learning runs of every dataset.

    Returns the model fitted on all of them (the one shipped), and for each dataset how the
    model fitted on the *other* datasets only does on it (leave one building out): what a
    building never seen gets.
    """
    identity = Calibration.identity()
    everything = AgentConfig(abstain_below=0.0)
    per_dataset: dict[str, list[tuple[dict[str, float], bool, str]]] = {}
    rows: dict[str, int] = {}
    for path in paths:
        samples: list[tuple[dict[str, float], bool, str]] = []
        rows[dataset_name(path)] = 0
        for mode in ("", active):
            rows[dataset_name(path)] += evaluate(
                path,
                active=mode,
                ontology=ontology,
                knowledge=knowledge_of(path) if knowledge_of else knowledge,
                retriever=retriever,
                config=everything,
                calibration=identity,
                samples=samples,
            ).scored_rows
        per_dataset[dataset_name(path)] = samples

    def fit(names: Sequence[str]) -> Calibration:
        # Each building counts the same, however many points it has.
        chosen = [(f, ok, 1.0 / len(per_dataset[n])) for n in names for f, ok, _ in per_dataset[n]]
        return fit_confidence(
            [(f, ok) for f, ok, _ in chosen], fitted_on=sorted(names), weights=[w for _, _, w in chosen]
        )

    held_out = {}
    for name, samples in per_dataset.items():
        fitted = fit([other for other in per_dataset if other != name])
        pairs = [(fitted(f), ok) for f, ok, _ in samples]
        curve, ece = reliability(pairs)
        held_out[name] = HeldOut(name, ece, curve, pairs, rows[name])
    return fit(list(per_dataset)), held_out


@dataclass
class HeldOut:
    """A dataset scored under a confidence model fitted without it."""

    dataset: str
    ece: float
    curve: list[tuple[float, float, float, int]]
    #: (confidence, correct) of every suggestion the agent could make.
    pairs: list[tuple[float, bool]]
    #: Rows scored (zero-shot and active runs), those with nothing to suggest included.
    rows: int

    def at(self, threshold: float) -> tuple[float, float]:
        """Coverage and precision when suggestions below ``threshold`` are abstentions."""
        kept = [ok for conf, ok in self.pairs if conf >= threshold]
        return len(kept) / (self.rows or 1), sum(kept) / (len(kept) or 1)


def format_held_out(held_out: dict[str, HeldOut], threshold: float) -> str:
    """Each building under a confidence model fitted on the others: calibration error,
    and coverage and precision at the abstention threshold."""
    lines = [
        "| building left out | suggestions | accuracy | mean confidence | ECE | coverage | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in held_out.values():
        coverage, precision = h.at(threshold)
        accuracy = sum(ok for _, ok in h.pairs) / (len(h.pairs) or 1)
        confidence = sum(c for c, _ in h.pairs) / (len(h.pairs) or 1)
        lines.append(
            f"| {h.dataset} | {len(h.pairs)} | {accuracy:.3f} | {confidence:.3f} | {h.ece:.3f} | "
            f"{coverage:.3f} | {precision:.3f} |"
        )
    n = len(held_out) or 1
    lines.append(
        f"| **mean** | | | | {sum(h.ece for h in held_out.values()) / n:.3f} | "
        f"{sum(h.at(threshold)[0] for h in held_out.values()) / n:.3f} | "
        f"{sum(h.at(threshold)[1] for h in held_out.values()) / n:.3f} |"
    )
    return "\n".join(lines)


def format_held_out_reliability(held_out: dict[str, HeldOut]) -> str:
    """Reliability of the held-out confidences, pooled over the buildings left out."""
    curve, ece = reliability([pair for h in held_out.values() for pair in h.pairs])
    lines = ["| confidence | mean confidence | accuracy | suggestions |", "|---|---|---|---|"]
    for edge, conf, acc, count in curve:
        lines.append(f"| {edge:.1f}-{edge + 0.1:.1f} | {conf:.3f} | {acc:.3f} | {count} |")
    return "\n".join(lines) + f"\n\nPooled ECE: {ece:.3f}."


def reliability_svg(held_out: dict[str, HeldOut], width: int = 640, height: int = 360) -> str:
    """A reliability diagram of the held-out confidences (left) and each building's
    calibration error (right), as a self-contained SVG for the docs."""
    curve, ece = reliability([pair for h in held_out.values() for pair in h.pairs])
    left, top, size = 50, 30, height - 80
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">Held-out reliability (pooled ECE {ece:.3f})</text>',
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
        f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#bbb" '
        'stroke-dasharray="4 3"/>',
    ]
    total = sum(n for *_, n in curve) or 1
    for edge, conf, acc, n in curve:
        x = left + edge * size
        bar = acc * size
        shade = 0.25 + 0.75 * min(1.0, 10 * n / total)
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{top + size - bar:.1f}" width="{size / 10 - 4:.1f}" '
            f'height="{bar:.1f}" fill="#3b6ea5" fill-opacity="{shade:.2f}">'
            f"<title>{edge:.1f}-{edge + 0.1:.1f}: accuracy {acc:.3f}, mean confidence {conf:.3f}, "
            f"{n} suggestions</title></rect>"
        )
        parts.append(
            f'<circle cx="{left + conf * size:.1f}" cy="{top + size - acc * size:.1f}" r="3" fill="#c0392b"/>'
        )
    for tick in range(0, 11, 2):
        v = tick / 10
        parts.append(
            f'<text x="{left + v * size:.1f}" y="{top + size + 14}" text-anchor="middle">{v:.1f}</text>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{top + size - v * size + 4:.1f}" text-anchor="end">{v:.1f}</text>'
        )
    parts.append(
        f'<text x="{left + size / 2}" y="{top + size + 30}" text-anchor="middle">confidence shown</text>'
    )
    parts.append(
        f'<text x="14" y="{top + size / 2}" transform="rotate(-90 14 {top + size / 2})" '
        'text-anchor="middle">share right</text>'
    )
    # Each building left out: its ECE as a bar.
    x0, bar_w = left + size + 60, width - (left + size + 60) - 20
    parts.append(f'<text x="{x0}" y="18" font-size="13">ECE per building left out</text>')
    rows = list(held_out.values())
    step = size / max(1, len(rows))
    scale = bar_w * 0.55 / max(0.25, max((h.ece for h in rows), default=0.25))
    for i, h in enumerate(rows):
        y = top + i * step
        parts.append(
            f'<rect x="{x0}" y="{y + 2:.1f}" width="{h.ece * scale:.1f}" height="{step - 4:.1f}" '
            'fill="#7f8c8d"/>'
        )
        parts.append(
            f'<text x="{x0 + h.ece * scale + 4:.1f}" y="{y + step / 2 + 4:.1f}">'
            f"{h.dataset[:22]} {h.ece:.3f}</text>"
        )
    target = x0 + 0.05 * scale
    parts.append(
        f'<line x1="{target:.1f}" y1="{top}" x2="{target:.1f}" y2="{top + size}" stroke="#c0392b" '
        'stroke-dasharray="3 3"/>'
    )
    parts.append(f'<text x="{target + 3:.1f}" y="{top + size + 14}" fill="#c0392b">0.05</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
