"""Property-based tests: readers either return points or raise IngestError, never crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import IngestError
from mapper import read_points

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _read(name: str, data: bytes, fmt: str | None = None) -> None:
    try:
        points = read_points(name, data=data, fmt=fmt)
    except IngestError as exc:
        assert str(exc)  # a sentence, naming the file
        assert name in str(exc)
        return
    assert all(isinstance(p.name, str) and p.name for p in points)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["csv", "ede", "zinc", "haystack-json", None]))
def test_random_bytes_never_crash_a_reader(data: bytes, fmt: str | None) -> None:
    _read("random.bin", data, fmt)


@FUZZ
@given(
    st.lists(st.lists(cell, min_size=1, max_size=6), min_size=1, max_size=8),
    st.sampled_from([",", ";", "\t"]),
)
def test_csv_like_tables_never_crash(rows: list[list[str]], delimiter: str) -> None:
    header = delimiter.join(["name", "unit", "min", "max", "bacnet_device", "bacnet_object"])
    body = "\n".join(delimiter.join(r) for r in rows)
    _read("table.csv", (header + "\n" + body).encode("utf-8"), "csv")


@FUZZ
@given(
    st.lists(
        st.tuples(cell, st.integers(-5, 70000), st.integers(-5, 30), cell, st.integers(-3, 300)), max_size=6
    )
)
def test_ede_like_files_never_crash(objects: list[tuple[str, int, int, str, int]]) -> None:
    lines = [
        "PROJECT_NAME;fuzz",
        "# keyname;device obj.-instance;object-name;object-type;object-instance;description;"
        "present-value-default;min-present-value;max-present-value;settable;supports COV;hi-limit;"
        "low-limit;state-text-reference;unit-code;vendor-specific-address",
    ]
    for name, device, otype, desc, unit in objects:
        lines.append(f"k;{device};{name};{otype};1;{desc};;;;Y;N;;;;{unit};")
    _read("fuzz.ede.csv", "\n".join(lines).encode("utf-8"), "ede")


@FUZZ
@given(
    st.lists(
        st.lists(
            st.sampled_from(["M", '"x"', "@a", "72°F", "N", "T", "", '@b "B"', "1e3kW", "?"]),
            min_size=1,
            max_size=4,
        ),
        max_size=5,
    )
)
def test_zinc_like_grids_never_crash(rows: list[list[str]]) -> None:
    text = 'ver:"3.0"\nid,dis,point,unit\n' + "\n".join(",".join(r) for r in rows)
    _read("fuzz.zinc", text.encode("utf-8"), "zinc")


def test_mutated_real_files_of_every_reader_are_read_or_refused_never_crash(ontology) -> None:
    """A short pass of eval/fuzz_readers.py (the long one is in docs/ingest.md): damaged
    XLSX (the XML inside), Turtle, EDE, Haystack, Zinc, vendor exports."""
    import random

    from eval.fuzz_readers import fuzz_reader, seeds

    rng = random.Random(7)
    for reader, (name, seed) in seeds(ontology).items():
        result = fuzz_reader(reader, name, seed, 60, rng)
        assert not result.crashes, (reader, result.crashes, result.examples)
        assert result.refused > 0  # the mutations do damage the files
