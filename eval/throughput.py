"""Throughput benchmark: label 10,000 real points in a fresh process, model load included.

    python -m eval.throughput [--points 10000] [DATASET.csv ...]

Concatenates the given datasets (default: shared/datasets/dev/*.csv) up to the point
count, runs ``osed label`` on them as a new process, and reports wall time and peak
memory of that process (so imports, ontology and embedding-model loading all count).
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dev"


def build_input(datasets: list[Path], points: int, out: Path) -> int:
    rows: list[dict[str, str]] = []
    while len(rows) < points:
        before = len(rows)
        for path in datasets:
            with path.open(encoding="utf-8") as fh:
                rows.extend(csv.DictReader(fh))
        if len(rows) == before:
            raise SystemExit("no rows in the datasets")
    rows = rows[:points]
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["name", "description", "unit", "object_type"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in writer.fieldnames})
    return len(rows)


def run(points: int, datasets: list[Path], data_dir: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "points.csv"
        n = build_input(datasets, points, src)
        env_cmd = [
            sys.executable,
            "-m",
            "api.cli",
            "label",
            str(src),
            "--predictions",
            str(Path(tmp) / "out.csv"),
        ]
        import os

        env = {**os.environ, "OSED_DATA_DIR": str(data_dir)}
        start = time.perf_counter()
        subprocess.run(env_cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"points": n, "seconds": wall, "points_per_s": n / wall, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    args = parser.parse_args()
    datasets = args.datasets or sorted(DEFAULT_DATASETS.glob("*.csv"))
    result = run(args.points, datasets, args.data_dir)
    print(
        f"{result['points']:.0f} points labeled in {result['seconds']:.1f} s "
        f"({result['points_per_s']:,.0f} points/s, whole process); "
        f"peak memory {result['peak_rss_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
