"""Confidence that means what it says: a probability that the suggestion is right.

The agent describes each suggestion by a few factors (how much of the name it understood,
how far the best class leads, whether the point kind or the measured quantity was stated
or assumed, whether a human confirmed a look-alike, what the export's object type, unit
and value say). A logistic model over those factors, followed by a monotone (isotonic)
correction, turns them into a probability. The model is data (``data/calibration.json``),
fitted by ``osed eval --fit-calibration`` on labeled buildings; the benchmark reports its
error on each building left out of the fit, which is what a building never seen gets.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from core.errors import LabelingError

#: The factors the model weighs, in a fixed order (missing ones count as 0).
FACTORS = (
    "logit",  # logit of the softmax share of the best class among the ten best
    "margin",  # lead of the best class over the second, in score units / 5 (clipped)
    "known",  # share of the name's words the knowledge base understood
    "unknown_inside",  # share of the point-function words it did not understand
    "no_tags",  # nothing in the name or description gave a Brick tag
    "tags",  # number of evidence tags / 5 (clipped)
    "kind_unstated",  # no word or object type said the point kind
    "kind_conflict",  # a word said a kind the object type rules out
    "quantity_assumed",  # the class measures a quantity nothing stated
    "missing",  # tags the class has that the evidence lacks / 3
    "unexplained",  # evidence tags the class does not have / 3
    "unit",  # the unit was understood
    "unit_unknown",  # a unit was given and not understood
    "object_type",  # a BACnet object type was given and understood
    "value_kind",  # the export showed a present value (analog, binary...)
    "borrowed_same",  # a reviewer confirmed a point with this point function
    "borrowed_local",  # ... in this building
    "borrowed_sim",  # similarity of the confirmed look-alike that agrees
    "borrowed_disagrees",  # a confirmed look-alike points elsewhere
    "retrieved",  # the tags could not decide and the ontology search was asked
    "convention",  # a building convention moved the suggestion
    "agreement",  # how much more than usual this building's reviewers agree with the agent
    "decided",  # a reviewer confirmed this very name
    "decided_share",  # ... and the share of its confirmations that agree
)
#: The factors the shipped model weighs. Chosen by leave-one-building-out error on the dev
#: buildings (docs/benchmarks.md): the others rank suggestions well within a building but
#: their effect differs between buildings, so on a building never seen they make the
#: confidence wrong more often than right. The agent still reports them as doubts.
MODEL_FACTORS = ("borrowed_local", "unknown_inside", "quantity_assumed")


@dataclass(frozen=True)
class Calibration:
    """Logistic model over some factors, then a piecewise-linear monotone map."""

    #: factor -> weight; empty = no model (the agent's raw softmax share is used).
    weights: tuple[tuple[str, float], ...] = ()
    bias: float = 0.0
    raw: tuple[float, ...] = (0.0, 1.0)
    calibrated: tuple[float, ...] = (0.0, 1.0)
    fitted_on: tuple[str, ...] = ()

    def __call__(self, factors: Mapping[str, float]) -> float:
        """The probability that a suggestion with these factors is right."""
        if factors.get("decided"):
            return self.linear(factors)
        return self._monotone(self.linear(factors))

    def linear(self, factors: Mapping[str, float]) -> float:
        """The logistic model's probability before the monotone correction; without a
        fitted model, the agent's own raw confidence (the softmax share)."""
        if factors.get("decided"):
            # A reviewer confirmed this very name: as sure as that name's decisions agree.
            return 0.97 * factors.get("decided_share", 1.0)
        if not self.weights:
            logit = factors.get("logit", 0.0)
            return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))
        z = self.bias + sum(w * factors.get(name, 0.0) for name, w in self.weights)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def _monotone(self, value: float) -> float:
        xs, ys = self.raw, self.calibrated
        if value <= xs[0]:
            return ys[0]
        if value >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, value)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (value - x0) / (x1 - x0)

    @classmethod
    def identity(cls) -> Calibration:
        return cls()

    @classmethod
    def load(cls, path: Path | None = None) -> Calibration:
        try:
            text = (
                path.read_text("utf-8")
                if path
                else (resources.files("agent") / "data" / "calibration.json").read_text("utf-8")
            )
            data = json.loads(text)
            weights = data.get("weights", {})
            if set(weights) - set(FACTORS):
                raise ValueError(f"unknown factors {sorted(set(weights) - set(FACTORS))}")
            return cls(
                weights=tuple((name, float(w)) for name, w in weights.items()),
                bias=float(data.get("bias", 0.0)),
                raw=tuple(float(x) for x in data["raw"]),
                calibrated=tuple(float(y) for y in data["calibrated"]),
                fitted_on=tuple(data.get("fitted_on", ())),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabelingError(f"cannot read the calibration map: {exc}") from exc

    def save(self, path: Path) -> None:
        payload = {
            "about": "logistic model over the agent's confidence factors, then an isotonic map; "
            "refit with osed eval --fit-calibration",
            "fitted_on": list(self.fitted_on),
            "bias": round(self.bias, 5),
            "weights": {name: round(w, 5) for name, w in self.weights},
            "raw": [round(x, 4) for x in self.raw],
            "calibrated": [round(y, 4) for y in self.calibrated],
        }
        path.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")


Sample = tuple[Mapping[str, float], bool]


def fit_calibration(
    samples: Sequence[Sample],
    fitted_on: Sequence[str] = (),
    l2: float = 1.0,
    weights: Sequence[float] | None = None,
    factors: Sequence[str] = MODEL_FACTORS,
) -> Calibration:
    """Fit the logistic model (L2-regularised, Newton's method) and the monotone map on
    (factors, correct) samples; ``weights`` per sample (so that each building counts the
    same however many points it has). Suggestions a reviewer decided by name are left out:
    their confidence is the reviewers' agreement."""
    given = [1.0] * len(samples) if weights is None else [float(v) for v in weights]
    kept = [
        (sample, weight)
        for sample, weight in zip(samples, given, strict=True)
        if not sample[0].get("decided")
    ]
    if not kept:
        return Calibration.identity()
    x = np.array([[f.get(name, 0.0) for name in factors] for (f, _), _ in kept], dtype=float).reshape(
        len(kept), len(factors)
    )
    y = np.array([1.0 if ok else 0.0 for (_, ok), _ in kept])
    w = np.array([weight for _, weight in kept])
    w = w * len(kept) / w.sum()
    x1 = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(x1.shape[1])
    penalty = np.full(x1.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ beta, -30, 30)))
        gradient = x1.T @ (w * (p - y)) + penalty * beta
        hessian = (x1 * (w * p * (1 - p))[:, None]).T @ x1 + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-7:
            break
    model = Calibration(
        weights=tuple(zip(factors, (float(b) for b in beta[1:]), strict=True)), bias=float(beta[0])
    )
    monotone = fit_isotonic([(model.linear(f), ok) for (f, ok), _ in kept], weights=w)
    return Calibration(
        weights=model.weights,
        bias=model.bias,
        raw=monotone.raw,
        calibrated=monotone.calibrated,
        fitted_on=tuple(fitted_on),
    )


def fit_isotonic(
    pairs: Sequence[tuple[float, bool]],
    fitted_on: Sequence[str] = (),
    bins: int = 40,
    weights: Sequence[float] | None = None,
) -> Calibration:
    """Pool-adjacent-violators on (probability, correct), summarised into knots."""
    if not pairs:
        return Calibration.identity()
    w = [1.0] * len(pairs) if weights is None else [float(x) for x in weights]
    # Equal inputs are one block from the start: their order among themselves means nothing.
    tied: dict[float, list[float]] = {}
    for (raw, ok), weight in zip(pairs, w, strict=True):
        block = tied.setdefault(float(raw), [0.0, 0.0, 0.0])
        block[0] += raw * weight
        block[1] += weight if ok else 0.0
        block[2] += weight
    # Blocks of (weighted sum of raw, of correct, weight), merged while not monotone.
    blocks: list[list[float]] = []
    for raw in sorted(tied):
        blocks.append(tied[raw])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            for k in range(3):
                blocks[-1][k] += last[k]
    xs = [b[0] / b[2] for b in blocks]
    ys = [b[1] / b[2] for b in blocks]
    # Keep at most ``bins`` knots, evenly spread over the blocks, plus both ends.
    step = max(1, len(xs) // bins)
    keep = sorted(set(range(0, len(xs), step)) | {len(xs) - 1})
    knots_x = [0.0] + [xs[i] for i in keep] + [1.0]
    knots_y = [min(ys[0], 0.05)] + [ys[i] for i in keep] + [ys[-1]]
    # Knots must be strictly increasing in x for interpolation.
    out_x: list[float] = []
    out_y: list[float] = []
    for x, y in zip(knots_x, knots_y, strict=True):
        if out_x and x <= out_x[-1]:
            out_y[-1] = max(out_y[-1], y)
            continue
        out_x.append(x)
        out_y.append(max(y, out_y[-1]) if out_y else y)
    return Calibration(raw=tuple(out_x), calibrated=tuple(out_y), fitted_on=tuple(fitted_on))
