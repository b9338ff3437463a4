"""Mutation fuzzing of every point-list reader: each mutated file is either read or refused
with an ``IngestError`` naming it; anything else is a crash.

    python -m eval.fuzz_readers [--inputs 100000] [--seed 1] [--reader xlsx ...]

Seeds are real files of each format (the test fixtures, an OSED Turtle export, vendor
export samples); mutations flip, delete and insert bytes, and for XLSX mutate one member of
the zip (so the XML inside is damaged, not only the archive). The suite runs a short pass
(``tests/test_formats_fuzz.py``); the long one's figures are in ``docs/ingest.md``.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import IngestError
from mapper import LabeledPoint, Suggestion, build_model, read_points
from ontology import Ontology

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
EXPORTS = ROOT / "eval" / "exports" / "dev"


def seeds(ontology: Ontology) -> dict[str, tuple[str, bytes]]:
    """One real file per reader: (file name the reader sees, bytes)."""
    small = read_points(FIXTURES / "small_building.csv")
    model = build_model("b", [LabeledPoint(p, Suggestion(None, 0.1)) for p in small], ontology)
    return {
        "csv": ("points.csv", (FIXTURES / "small_building.csv").read_bytes()),
        "vendor-csv": ("export.csv", _head(EXPORTS / "delta_enteliweb_cegep_pavillon-b.csv")),
        "niagara": ("niagara.csv", _head(EXPORTS / "niagara_export_complexe_sportif_st-romuald.csv")),
        "xlsx": ("points.xlsx", (FIXTURES / "rtu.xlsx").read_bytes()),
        "ede": ("site.ede.csv", (FIXTURES / "site.ede.csv").read_bytes()),
        "haystack-json": ("site.json", (FIXTURES / "site.haystack.json").read_bytes()),
        "zinc": ("points.zinc", (FIXTURES / "points.zinc").read_bytes()),
        "turtle": ("model.ttl", model.serialize(format="turtle").encode("utf-8")),
    }


def _head(path: Path, lines: int = 40) -> bytes:
    """The first lines of a long export: every kind of cell it has, at a tenth of the cost."""
    return b"".join(path.read_bytes().splitlines(keepends=True)[:lines])


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not b:
            b.extend(rng.randbytes(rng.randint(1, 8)))
            continue
        i = rng.randrange(len(b))
        op = rng.random()
        if op < 0.35:
            b[i] = rng.randrange(256)
        elif op < 0.6:
            del b[i : i + rng.randint(1, 24)]
        elif op < 0.85:
            b[i:i] = rng.randbytes(rng.randint(1, 12))
        else:  # a structural character where it hurts
            b[i:i] = rng.choice([b'"', b";", b",", b"\n", b"{", b"}", b"<", b">", b".", b"\x00", b"\xff"])
    return bytes(b)


def mutate_zip_member(data: bytes, rng: random.Random) -> bytes:
    """Damage the XML inside one member of an XLSX, keeping the archive valid."""
    with zipfile.ZipFile(io.BytesIO(data)) as zin:
        names = zin.namelist()
        victim = rng.choice(names)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
            for name in names:
                member = zin.read(name)
                zout.writestr(name, mutate(member, rng) if name == victim else member)
    return out.getvalue()


@dataclass
class FuzzResult:
    reader: str
    inputs: int = 0
    read: int = 0
    refused: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def fuzz_reader(
    reader: str,
    name: str,
    seed: bytes,
    inputs: int,
    rng: random.Random,
    tick: Callable[[], None] | None = None,
) -> FuzzResult:
    result = FuzzResult(reader)
    start = time.perf_counter()
    for _ in range(inputs):
        inside = reader == "xlsx" and rng.random() < 0.7
        data = mutate_zip_member(seed, rng) if inside else mutate(seed, rng)
        result.inputs += 1
        try:
            read_points(name, data=data)
            result.read += 1
        except IngestError as exc:
            if name not in str(exc):
                result.crashes["IngestError without the file name"] += 1
            result.refused += 1
        except Exception as exc:  # noqa: BLE001 - a crash is what is being counted
            kind = f"{type(exc).__name__}"
            result.crashes[kind] += 1
            result.examples.setdefault(kind, "".join(traceback.format_exception(exc)[-2:])[-500:])
        if tick is not None:
            tick()
    result.seconds = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="mutated files per reader")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reader", action="append", help="only these readers (repeatable)")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("rdflib").setLevel(logging.ERROR)  # bad IRIs in mutated Turtle are logged
    ontology = Ontology.load()
    rng = random.Random(args.seed)
    print("| reader | inputs | read | refused (IngestError) | crashes | seconds |")
    print("|---|---|---|---|---|---|")
    failed = 0
    for reader, (name, seed) in seeds(ontology).items():
        if args.reader and reader not in args.reader:
            continue
        r = fuzz_reader(reader, name, seed, args.inputs, rng)
        crashes = sum(r.crashes.values())
        failed += crashes
        shown = ", ".join(f"{k} {n}" for k, n in r.crashes.items()) or "0"
        print(
            f"| {reader} | {r.inputs:,} | {r.read:,} | {r.refused:,} | {shown} | {r.seconds:.0f} |",
            flush=True,
        )
        for kind, example in r.examples.items():
            print(f"\n    {kind}:\n    " + example.replace("\n", "\n    "), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
