"""Against real processes: ``osed serve`` and ``osed load`` as subprocesses on loopback,
stopped (or killed) by the test, as an outside tester runs them."""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import os
import re
import signal
import subprocess
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from rdflib import Graph, Literal, URIRef

from api._service import Platform
from api.settings import Settings
from eval.load import cpu_seconds, osed_binary, serve
from eval.paging import synthetic_points
from mapper import LabeledPoint, Suggestion, build_model, read_points
from ontology import Ontology
from tests.conftest import FIXTURES, free_port
from tests.test_cli import osed as run_osed

RUNAWAY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
ENV = {"OSED_AGENT__RETRIEVAL": "false"}


def _data_dir(tmp_path: Path, ontology: Ontology, filler: int = 0) -> Path:
    """A data folder holding the small building (and ``filler`` more triples)."""
    data = tmp_path / "var"
    settings = Settings(data_dir=data)
    settings.agent.retrieval = False
    platform = Platform(settings, ontology=ontology)
    platform.import_points("hq", read_points(FIXTURES / "small_building.csv"))
    if filler:
        g = Graph()
        for i in range(filler):
            g.add((URIRef(f"urn:x:{i}"), URIRef("urn:x:p"), Literal(i)))
        platform.store.replace_graph("urn:x:filler", g)
    platform.close()
    return data


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (the server's query workers), zombies left out."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children so far."""
    total = cpu_seconds(pid)
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


@pytest.fixture
def tokens() -> dict[str, str]:
    return {f"load-test-client-{i}-0123456789abcdef": "viewer" for i in range(5)}


@pytest.fixture
def server(tmp_path: Path, ontology: Ontology, tokens: dict[str, str]) -> Iterator[tuple[str, int]]:
    data = _data_dir(tmp_path, ontology, filler=3000)
    env = {**ENV, "OSED_STORE__QUERY_TIMEOUT_S": "2", "OSED_API__TOKENS": json.dumps(tokens)}
    port = free_port()
    with serve(data, port, demo=False, env=env, log=tmp_path / "serve.log") as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


def test_runaway_queries_are_stopped_at_their_timeout_and_the_server_answers_at_once(
    server: tuple[str, int], tokens: dict[str, str]
) -> None:
    base, pid = server
    clients = [{"Authorization": f"Bearer {t}", "Content-Type": "application/sparql-query"} for t in tokens]

    def ask(headers: dict[str, str], query: str) -> tuple[int, float]:
        start = time.monotonic()
        r = httpx.post(f"{base}/sparql", content=query, headers=headers, timeout=60)
        return r.status_code, time.monotonic() - start

    with ThreadPoolExecutor(8) as pool:
        # Four clients with one runaway each; a fifth sends three at once (its limit is two).
        runaways = [pool.submit(ask, c, RUNAWAY) for c in clients[:4]]
        runaways += [pool.submit(ask, clients[4], RUNAWAY) for _ in range(3)]
        time.sleep(1.0)
        busy = _children(pid)
        # Pages are the platform's own queries: they answer while the runaways run.
        start = time.monotonic()
        page = httpx.get(f"{base}/buildings/hq/points", headers=clients[0], timeout=30)
        assert page.status_code == 200 and page.json()["total"] == 6
        assert time.monotonic() - start < 3
        answers = [f.result() for f in runaways]
    statuses = sorted(status for status, _ in answers)
    assert statuses == [429] + [503] * 6, answers
    assert max(elapsed for _, elapsed in answers) < 8
    # The work stopped: the workers that ran them are gone and the server is idle.
    assert busy and not busy & _children(pid)
    cpu = _tree_cpu(pid)
    time.sleep(1.0)
    assert _tree_cpu(pid) - cpu < 0.3
    # Cheap queries and pages answer at once.
    for _ in range(3):
        status, elapsed = ask(
            clients[0], "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <urn:osed:hq> { ?s ?p ?o } }"
        )
        assert status == 200 and elapsed < 3
        start = time.monotonic()
        page = httpx.get(f"{base}/buildings/hq/points", headers=clients[1], timeout=30)
        assert page.status_code == 200 and time.monotonic() - start < 3


def _wal_bytes(store: Path) -> int:
    total = 0
    for f in store.glob("*.log"):
        with contextlib.suppress(FileNotFoundError):
            total += f.stat().st_size
    return total


def _kill_in_write(proc: subprocess.Popen[bytes], store: Path, when: str) -> None:
    """kill -9 ``proc`` once it writes to the store's log (RocksDB's WAL, where every
    transaction is written before it counts): ``inside`` the first write, or ``after`` it,
    the moment the log has not grown for 5 ms (a transaction written whole, the next not
    begun: the tester's 4 trials in 18 that left half an import)."""
    # From the smallest the log gets: opening the store may flush what an earlier process
    # wrote (the ontology graph) and start a new, empty log.
    low = _wal_bytes(store)
    while proc.poll() is None:
        now = _wal_bytes(store)
        low = min(low, now)
        if now >= low + 256 * 1024:
            break
        time.sleep(0.001)
    if when == "after":
        size, still = _wal_bytes(store), time.monotonic()
        while proc.poll() is None and time.monotonic() - still < 0.005:
            time.sleep(0.0005)
            if _wal_bytes(store) != size:
                size, still = _wal_bytes(store), time.monotonic()
    proc.send_signal(signal.SIGKILL)


@pytest.mark.parametrize("when", ["inside", "after"])
def test_an_import_killed_in_its_store_write_leaves_no_part_of_it(
    tmp_path: Path, ontology: Ontology, when: str
) -> None:
    data = _data_dir(tmp_path, ontology)
    big = tmp_path / "big.csv"
    with big.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "description", "unit", "object_type"])
        for p in synthetic_points(600):
            writer.writerow([p.name, p.description, p.unit, p.object_type])
    proc = subprocess.Popen(
        [osed_binary(), "load", str(big), "--building", "big"],
        env={**os.environ, **ENV, "OSED_DATA_DIR": str(data)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _kill_in_write(proc, data / "store", when)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import ended before the test could kill it"
    port = free_port()
    with serve(data, port, demo=False, env=ENV, log=tmp_path / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        listed = {b["id"]: b for b in httpx.get(f"{base}/buildings", timeout=30).json()}
        graphs = httpx.post(
            f"{base}/sparql",
            content="SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }",
            headers={"Content-Type": "application/sparql-query", "Accept": "application/json"},
            timeout=30,
        ).json()["results"]["bindings"]
        # The building list is as before, or holds the whole new building: never a part.
        assert set(listed) in ({"hq"}, {"hq", "big"})
        assert listed["hq"]["points"] == 6 and listed["hq"]["graph"] == "urn:osed:hq"
        if "big" in listed:
            assert listed["big"]["graph"] == "urn:osed:big" and listed["big"]["points"] == 600
            page = httpx.get(f"{base}/buildings/big/points", params={"limit": 1}, timeout=30).json()
            assert page["total"] == 600
        allowed = {f"urn:osed:{b}{tail}" for b in listed for tail in ("", "/index", "/provenance")}
        allowed.add("urn:osed:ontology")  # Brick, 223P and QUDT, written when a store is first opened
        assert {g["g"]["value"] for g in graphs} <= allowed


def _damaged_xlsx() -> bytes:
    """The fixture workbook with the XML of its sheets cut in half (lxml/ElementTree raised)."""
    out = io.BytesIO()
    with zipfile.ZipFile(FIXTURES / "rtu.xlsx") as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = data[: len(data) // 2]
            zout.writestr(item, data)
    return out.getvalue()


def _hand_edited_model(ontology: Ontology) -> bytes:
    """An OSED export whose BACnet references lost their device (``int('')`` was raised by
    ``osed label``; an upload stored it, and every decision on the building was a 500)."""
    points = read_points(FIXTURES / "small_building.csv")
    model = build_model("b", [LabeledPoint(p, Suggestion(None, 0.1)) for p in points], ontology)
    text, lost = re.subn(r'\n\s*bacnet:device-identifier "[^"]*" ;', "", model.serialize(format="turtle"))
    assert lost
    return text.encode("utf-8")


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "osed-test-boundary-1b2c3d"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_damaged_files_are_400_on_a_connection_that_stays_open_and_exit_2_in_the_cli(
    tmp_path: Path, ontology: Ontology
) -> None:
    files = {"rtu.xlsx": _damaged_xlsx(), "model.ttl": _hand_edited_model(ontology)}
    data = _data_dir(tmp_path, ontology)
    port = free_port()
    with serve(data, port, demo=False, env=ENV, log=tmp_path / "serve.log"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for name, content in files.items():
                body, kind = _multipart(name, content)
                conn.request("POST", "/buildings/hq/points", body=body, headers={"Content-Type": kind})
                answer = conn.getresponse()
                detail = json.loads(answer.read()).get("detail")
                assert answer.status == 400 and name in detail, (answer.status, detail)
                assert not answer.will_close
                sock = conn.sock
                # The next request on that connection is answered, on the same socket.
                conn.request("GET", "/buildings/hq/points?limit=1")
                after = conn.getresponse()
                assert after.status == 200 and json.loads(after.read())["total"] == 6
                assert conn.sock is sock
        finally:
            conn.close()
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        label = ("label", str(path), "--predictions", str(tmp_path / "p.csv"))
        for command in (label, ("load", str(path), "--building", "hq2")):
            r = run_osed(*command, cwd=tmp_path)
            assert r.returncode == 2, (command, r.stderr)
            assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
            # The file, or (a model loaded as it is) the point and the field.
            unreadable = "': bacnet:device-identifier holds no instance number"
            assert name in r.stderr or unreadable in r.stderr, r.stderr
