"""Confidence calibration: a monotone map from the agent's raw score to a probability.

The raw confidence (softmax over class scores, scaled by how much of the name was
understood) ranks suggestions well but is not a probability. An isotonic map fitted on
labeled buildings turns it into one: among suggestions at calibrated confidence c, about
c are right. The map is data (``data/calibration.json``), refitted by
``osed eval --fit-calibration``; the benchmark reports its error on buildings left out
of the fit.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from core.errors import LabelingError


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear monotone map through (raw, calibrated) knots."""

    raw: tuple[float, ...] = (0.0, 1.0)
    calibrated: tuple[float, ...] = (0.0, 1.0)
    fitted_on: tuple[str, ...] = ()

    def __call__(self, value: float) -> float:
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
            return cls(
                raw=tuple(float(x) for x in data["raw"]),
                calibrated=tuple(float(y) for y in data["calibrated"]),
                fitted_on=tuple(data.get("fitted_on", ())),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabelingError(f"cannot read the calibration map: {exc}") from exc

    def save(self, path: Path) -> None:
        payload = {
            "about": "isotonic map raw -> calibrated confidence; refit with osed eval --fit-calibration",
            "fitted_on": list(self.fitted_on),
            "raw": [round(x, 4) for x in self.raw],
            "calibrated": [round(y, 4) for y in self.calibrated],
        }
        path.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")


def fit_isotonic(
    pairs: Sequence[tuple[float, bool]], fitted_on: Sequence[str] = (), bins: int = 40
) -> Calibration:
    """Pool-adjacent-violators on (raw confidence, correct), summarised into knots."""
    if not pairs:
        return Calibration.identity()
    ordered = sorted(pairs)
    # Blocks of (sum of raw, sum of correct, count), merged while they violate monotonicity.
    blocks: list[list[float]] = []
    for raw, ok in ordered:
        blocks.append([raw, 1.0 if ok else 0.0, 1.0])
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
