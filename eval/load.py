"""Load benchmark: many concurrent clients against a real ``osed serve --demo`` process.

    python -m eval.load [--clients 200] [--seconds 60] [--think 0] [--timeout 30]

Starts ``osed serve --demo`` as a subprocess on 127.0.0.1 (a port of its own, a fresh data
folder unless ``--data-dir``), gives every client a bearer token of its own (reviewer role,
so per-client limits apply to each client, as they would to 200 users), and lets each
client loop until the time is up: 70 % reads (points pages under a random sort and offset,
sometimes filtered, and cheap SPARQL queries, half each) and 30 % decisions (confirm,
correct or reject a random point, each with an ``Idempotency-Key``, sent again with the
same key after a client timeout or a lost connection). A client waits for its answer (at
most ``--timeout`` seconds: a client timeout) and then ``--think`` seconds (uniform between
0 and twice that) before its next request. When the time is up it reads the server's
provenance graph for the keys stored, and prints a Markdown report: throughput, per-route
p50/p95/p99/max latency, errors by kind (status and what the server said, client timeouts,
lost connections), decisions applied after their client gave up and applied twice, and the
server's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

BUILDING = "demo"
#: How often a decision is sent again, with its key, after its client gave up waiting.
RETRIES = 1
SORTS = ("name", "confidence", "status", "class", "equipment")
PREFIXES = (
    "PREFIX brick: <https://brickschema.org/schema/Brick#> "
    "PREFIX osed: <https://w3id.org/osed/ns#> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> "
)
#: Cheap queries a dashboard or a script sends: a few patterns over one building.
QUERIES = (
    "SELECT ?p ?name WHERE { ?p a brick:Zone_Air_Temperature_Sensor ; osed:rawName ?name }",
    "SELECT ?cls (COUNT(?p) AS ?n) WHERE { GRAPH <urn:osed:demo> { ?p osed:rawName ?x ; a ?cls } }"
    " GROUP BY ?cls",
    'SELECT ?p ?name WHERE { ?p brick:isPointOf ?e ; osed:rawName ?name . ?e rdfs:label "AHU-1" }',
    "ASK { ?p a brick:Supply_Air_Temperature_Sensor }",
    "SELECT ?p ?status WHERE { ?p osed:reviewStatus ?status } LIMIT 50",
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def osed_binary() -> str:
    here = Path(sys.executable).with_name("osed")
    return str(here) if here.exists() else "osed"


@contextmanager
def serve(
    data_dir: Path,
    port: int,
    *,
    demo: bool = True,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    startup_s: float = 300.0,
    verbose: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """``osed serve`` on 127.0.0.1:``port`` over ``data_dir`` until the block ends (SIGTERM,
    then SIGKILL after 20 s); ``verbose``: its INFO log too."""
    environment = {**os.environ, "OSED_DATA_DIR": str(data_dir), **(env or {})}
    command = [
        osed_binary(),
        *(["-v"] if verbose else []),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*command, *(["--demo"] if demo else [])], env=environment, stdout=out, stderr=out
    )
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"osed serve exited with {proc.returncode} (log: {log})")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"osed serve did not answer within {startup_s:g} s")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log and not isinstance(out, int):
            out.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Route:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class Run:
    routes: dict[str, Route] = field(
        default_factory=lambda: {k: Route() for k in ("points", "sparql", "decision")}
    )
    points: list[str] = field(default_factory=list)
    #: Decisions sent again (same Idempotency-Key) after a client timeout or a broken
    #: connection, and how many of those were answered as already applied.
    retried: int = 0
    replayed: int = 0
    #: Idempotency-Key -> what its client last saw: "answered" (2xx), "refused" (another
    #: status) or "gave up" (every attempt timed out or lost its connection).
    outcomes: dict[str, str] = field(default_factory=dict)
    #: Keys whose first attempt got no answer (a client without a key that retried would
    #: have sent these twice as new decisions).
    unanswered_first: set[str] = field(default_factory=set)
    #: (route, status, what the server said) of every answer that was not a 2xx.
    refusals: Counter[tuple[str, int, str]] = field(default_factory=Counter)


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams. httpx's async pool costs
    about 8 ms of CPU a request at 200 connections (119 requests/s of ``/health`` at 91 %
    of a core, against 1,666/s at 17 % with this): the benchmark would measure itself."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.headers = {"Host": f"{host}:{port}", "Authorization": f"Bearer {token}"}
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        lines = [f"{method} {path} HTTP/1.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get(b"transfer-encoding") == b"chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                chunks.append(await reader.readexactly(size + 2))
            await reader.readuntil(b"\r\n")
            data = b"".join(c[:-2] for c in chunks)
        else:
            data = await reader.readexactly(int(fields.get(b"content-length", b"0")))
        if fields.get(b"connection") == b"close":
            self.close()
        return status, data

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def client_loop(
    conn: Connection,
    run: Run,
    until: float,
    think: float,
    rng: random.Random,
    client_timeout: float,
    decisions: float,
) -> None:
    while time.monotonic() < until:
        pick = rng.random()
        headers: dict[str, str] = {}
        body = b""
        reads = (1 - decisions) / 2
        if pick < reads:
            name, method = "points", "GET"
            params: dict[str, str | int] = {
                "offset": rng.randrange(0, len(run.points)),
                "limit": 100,
                "sort": rng.choice(SORTS),
                "order": rng.choice(("asc", "desc")),
            }
            if rng.random() < 0.3:
                params["status"] = "suggested"
            elif rng.random() < 0.2:
                params["q"] = rng.choice(("temp", "fan", "valve", "kW"))
            path = f"/buildings/{BUILDING}/points?{urlencode(params)}"
        elif pick < 2 * reads:
            name, method, path = "sparql", "POST", "/sparql"
            body = (PREFIXES + rng.choice(QUERIES)).encode("utf-8")
            headers = {"Content-Type": "application/sparql-query", "Accept": "application/json"}
        else:
            name, method, path = "decision", "POST", f"/buildings/{BUILDING}/decisions"
            action = rng.choice(("confirm", "correct", "reject"))
            decision: dict[str, str] = {"point": rng.choice(run.points), "action": action}
            if action == "correct":
                decision["brick_class"] = rng.choice(
                    ("Zone_Air_Temperature_Sensor", "Damper_Position_Command")
                )
            body = json.dumps({"decisions": [decision]}).encode("utf-8")
            headers = {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(16)}
        route = run.routes[name]
        key = headers.get("Idempotency-Key")
        for attempt in range(RETRIES + 1):
            start = time.monotonic()
            try:
                status, data = await asyncio.wait_for(
                    conn.request(method, path, body, headers), client_timeout
                )
            except TimeoutError:
                conn.close()  # an answer arriving later would be read as the next one's
                route.timeouts += 1
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                route.failures[type(exc).__name__] += 1
            else:
                route.statuses[status] += 1
                route.latencies.append(time.monotonic() - start)
                if status >= 300:
                    run.refusals[(name, status, _detail(data))] += 1
                if key is not None:
                    run.outcomes[key] = "answered" if status < 300 else "refused"
                    if attempt and status == 200 and json.loads(data).get("replayed"):
                        run.replayed += 1
                break
            if key is None:
                break
            run.outcomes[key] = "gave up"
            if attempt == 0:
                run.unanswered_first.add(key)
            if attempt == RETRIES or time.monotonic() >= until:
                break
            run.retried += 1  # a decision is sent again with its key: applied once
        if think:
            await asyncio.sleep(rng.uniform(0, 2 * think))


def _detail(data: bytes) -> str:
    """What an error answer says, without the names it quotes, to group answers by."""
    try:
        detail = json.loads(data).get("detail", "")
    except (ValueError, AttributeError):
        detail = data.decode("utf-8", "replace")
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return re.sub(r"'[^']*'", "'…'", " ".join(text.split()))[:120]


async def drive(
    base: str, tokens: list[str], seconds: float, think: float, client_timeout: float, decisions: float
) -> Run:
    run = Run()
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    async with httpx.AsyncClient(base_url=base, timeout=client_timeout) as http:
        total = (await http.get(f"/buildings/{BUILDING}/points", params={"limit": 1}, headers=headers)).json()
        for offset in range(0, int(total["total"]), 1000):
            page = await http.get(
                f"/buildings/{BUILDING}/points", params={"offset": offset, "limit": 1000}, headers=headers
            )
            run.points.extend(item["iri"] for item in page.json()["items"])
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connections = [Connection(host, int(port), token) for token in tokens]
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            client_loop(conn, run, until, think, random.Random(n), client_timeout, decisions)
            for n, conn in enumerate(connections)
        )
    )
    for conn in connections:
        conn.close()
    return run


def stored_keys(base: str, token: str, settle_s: float = 180.0) -> tuple[Counter[str], float]:
    """Idempotency-Key -> how many decision batches the server stored under it, once the
    decisions still queued when the clients stopped have been applied (the count holds
    still for 3 s), and how long that took."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/sparql-query",
        "Accept": "application/sparql-results+json",
    }
    prov = f"urn:osed:{BUILDING}/provenance"

    def select(query: str) -> list[dict[str, dict[str, str]]]:
        answer = httpx.post(f"{base}/sparql", content=PREFIXES + query, headers=headers, timeout=60)
        answer.raise_for_status()
        return list(answer.json()["results"]["bindings"])

    count = f"SELECT (COUNT(?b) AS ?n) WHERE {{ GRAPH <{prov}> {{ ?b osed:idempotencyKey ?k }} }}"
    started = time.monotonic()
    last, still_since = -1, time.monotonic()
    while time.monotonic() - started < settle_s:
        n = int(select(count)[0]["n"]["value"])
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since >= 3:
            break
        time.sleep(0.5)
    settled = time.monotonic() - started
    keys: Counter[str] = Counter()
    for offset in range(0, max(last, 0) + 1, 5000):
        for row in select(
            f"SELECT ?k (COUNT(?b) AS ?n) WHERE {{ GRAPH <{prov}> {{ ?b osed:idempotencyKey ?k }} }} "
            f"GROUP BY ?k ORDER BY ?k LIMIT 5000 OFFSET {offset}"
        ):
            keys[row["k"]["value"]] = int(row["n"]["value"])
    return keys, settled


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between a client's requests, s")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, s")
    parser.add_argument("--decisions", type=float, default=0.3, help="share of requests that are decisions")
    parser.add_argument("--data-dir", type=Path, help="reuse this data folder (default: a fresh one)")
    parser.add_argument("--server-log", type=Path, help="keep the server's output here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osed-load-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "var"
        tokens = [secrets.token_urlsafe(24) for _ in range(args.clients)]
        env = {"OSED_API__TOKENS": json.dumps(dict.fromkeys(tokens, "reviewer"))}
        port = free_port()
        log = args.server_log or Path(tmp) / "serve.log"
        machine = _machine()
        started = time.monotonic()
        with serve(data_dir, port, env=env, log=log, verbose=True) as proc:
            startup = time.monotonic() - started
            cpu0, wall0, own0 = cpu_seconds(proc.pid), time.monotonic(), _own_cpu()
            base = f"http://127.0.0.1:{port}"
            run = asyncio.run(drive(base, tokens, args.seconds, args.think, args.timeout, args.decisions))
            wall = time.monotonic() - wall0
            cpu = (cpu_seconds(proc.pid) - cpu0) / wall
            clients_cpu = (_own_cpu() - own0) / wall
            keys, settled = stored_keys(base, tokens[0])
        relabels = _relabels(log.read_text("utf-8", "replace"))
        report(args, run, wall, cpu, startup, clients_cpu, keys, settled, machine, relabels)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def report(
    args: argparse.Namespace,
    run: Run,
    wall: float,
    cpu: float,
    startup: float,
    clients_cpu: float,
    keys: Counter[str],
    settled: float,
    machine: str,
    relabels: list[tuple[int, float]],
) -> None:
    done = sum(sum(r.statuses.values()) for r in run.routes.values())
    server_errors = sum(n for r in run.routes.values() for s, n in r.statuses.items() if s >= 500)
    timeouts = sum(r.timeouts for r in run.routes.values())
    broken = sum(sum(r.failures.values()) for r in run.routes.values())
    everything = [x for r in run.routes.values() for x in r.latencies]
    command = f"python -m eval.load --clients {args.clients} --seconds {args.seconds:g}"
    if args.think:
        command += f" --think {args.think:g}"
    if args.timeout != 30:
        command += f" --timeout {args.timeout:g}"
    if args.decisions != 0.3:
        command += f" --decisions {args.decisions:g}"
    pause = "none" if not args.think else f"0–{2 * args.think:g} s (uniform)"
    reads = 50 * (1 - args.decisions)
    title = f"{args.clients} clients, {args.seconds:g} s"
    if args.timeout != 30:
        title += f", client timeout {args.timeout:g} s"
    if args.decisions != 0.3:
        title += f", {100 * args.decisions:.0f} % decisions"
    print(f"# Load benchmark ({title})\n")
    print(
        f"`{command}` (`make eval`): `osed serve --demo` ({len(run.points)} points) in its own "
        f"process on 127.0.0.1 (a free port; started in {startup:.0f} s, its data folder new), "
        f"{args.clients} clients in one process with a reviewer token and a keep-alive "
        f"connection each, each sending its next request when the last was answered (pause "
        f"{pause}); {reads:.0f} % points pages (100 rows, a random sort, order and offset, some "
        f"filtered), {reads:.0f} % SPARQL (cheap SELECT/ASK), {100 * args.decisions:.0f} % "
        "decisions (one point confirmed, "
        f"corrected or rejected, each with a new `Idempotency-Key`, sent again with it "
        f"{RETRIES}× after a client timeout or a lost connection). Client timeout "
        f"{args.timeout:g} s. Machine: {machine}; clients and server on it together.\n"
    )
    print(
        f"**{done / wall:.1f} requests/s** answered ({done} in {wall:.1f} s); {server_errors} "
        f"server errors (5xx), {timeouts} client timeouts, {broken} lost connections. CPU: "
        f"server {100 * cpu:.0f} %, clients {100 * clients_cpu:.0f} % (100 % = one core).\n"
    )
    p99 = percentile(everything, 0.99)
    print("| target (issue 15) | measured | met |")
    print("|---|---:|---|")
    for what, measured, met in (
        ("0 server errors", f"{server_errors}", server_errors == 0),
        (f"0 client timeouts at {args.timeout:g} s", f"{timeouts}", timeouts == 0),
        ("p99 ≤ 2 s (all routes)", f"{p99:.2f} s", p99 <= 2),
        ("≥ 50 requests/s", f"{done / wall:.1f}", done / wall >= 50),
    ):
        print(f"| {what} | {measured} | {'yes' if met else '**no**'} |")
    print()
    print("| route | answered | per s | p50 s | p95 s | p99 s | max s | statuses | client timeouts |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, route in run.routes.items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(route.statuses.items()))
        failures = ", ".join(f"{k}: {n}" for k, n in route.failures.items())
        count = sum(route.statuses.values())
        lat = route.latencies
        print(
            f"| {name} | {count} | {count / wall:.1f} | {percentile(lat, 0.5):.2f} | "
            f"{percentile(lat, 0.95):.2f} | {percentile(lat, 0.99):.2f} | {max(lat, default=0):.2f} | "
            f"{statuses}{'; ' + failures if failures else ''} | {route.timeouts} |"
        )
    mean = statistics.fmean(everything) if everything else 0.0
    print(
        f"| all | {done} | {done / wall:.1f} | {percentile(everything, 0.5):.2f} | "
        f"{percentile(everything, 0.95):.2f} | {p99:.2f} | {max(everything, default=0):.2f} | "
        f"mean {mean:.2f} s | {timeouts} |"
    )
    print("\nLatency of answered requests (a client timeout is no answer).\n")
    print("## Errors by kind\n")
    print(
        "Answers other than 2xx (a 4xx is the server refusing what the client asked: a random "
        "confirm of a point already rejected has no suggestion to confirm), client timeouts "
        "and lost connections.\n"
    )
    kinds: list[tuple[str, str, int]] = [
        (f"{route} {status}", detail or "(no detail)", n)
        for (route, status, detail), n in run.refusals.items()
    ]
    kinds += [(name, f"client timeout ({args.timeout:g} s)", r.timeouts) for name, r in run.routes.items()]
    kinds += [
        (name, f"lost connection ({k})", n) for name, r in run.routes.items() for k, n in r.failures.items()
    ]
    kinds = [k for k in kinds if k[2]]
    if not kinds:
        print("None: every request was answered with a 2xx.\n")
    else:
        print("| route, status | what | count |")
        print("|---|---|---:|")
        for where, what, n in sorted(kinds, key=lambda k: -k[2]):
            print(f"| {where} | {what} | {n} |")
        print()
    sent = len(run.outcomes)
    outcome = Counter(run.outcomes.values())
    gave_up = {k for k, o in run.outcomes.items() if o == "gave up"}
    print("## Decisions\n")
    print(
        f"{sent} decision requests, each with its own key: {outcome['answered']} answered 2xx, "
        f"{outcome['refused']} refused, {outcome['gave up']} whose client gave up (every attempt "
        f"unanswered); {run.retried} sent again with their key, {run.replayed} of those answered "
        f"as already applied. After the run the server's provenance graph was read (the "
        f"decisions still queued were applied within {settled:.0f} s):\n"
    )
    print("| | count |")
    print("|---|---:|")
    print(f"| requests stored (one batch per key) | {len(keys)} |")
    print(f"| stored under a key more than once (applied twice) | {sum(1 for n in keys.values() if n > 1)} |")
    print(f"| applied after their client gave up | {len(gave_up & set(keys))} |")
    print(
        "| applied though their first attempt got no answer (a retry without a key would have "
        f"applied them twice) | {len(run.unanswered_first & set(keys))} |"
    )
    lost = sum(1 for k, o in run.outcomes.items() if o == "answered" and k not in keys)
    print(f"| answered 2xx but not stored | {lost} |")
    if relabels:
        requests = [n for n, _ in relabels]
        seconds = [t for _, t in relabels]
        print(
            f"\nThe server applied them in {len(relabels)} relabels of the whole building (its log): "
            f"{statistics.fmean(requests):.0f} requests each on average (at most {max(requests)}), "
            f"{statistics.fmean(seconds):.2f} s each (median {statistics.median(seconds):.2f} s, "
            f"at most {max(seconds):.2f} s). A decision waits for the relabel running when it "
            "arrives and then for its own, so its latency is one to two relabels. The relabels "
            f"took {sum(seconds):.0f} s of the {wall:.0f} s run ({100 * sum(seconds) / wall:.0f} %), "
            "in Python (labeling, building and serializing the model), in the server process "
            "beside the threads answering pages."
        )
    print(
        "\nBefore (issue 15, the same mix against the code of then, 120 s client timeout): "
        '3.6 requests/s, points page p50 44 s, 207 errors (503 "all query workers are busy", '
        "client timeouts at 120 s), 51 decisions applied after their clients had given up."
    )


#: The server's log line for each relabel that applied waiting decisions (api/_service.py).
_RELABEL = re.compile(r"building \S+: (\d+) decision requests applied in one relabel in ([0-9.]+) s")


def _relabels(log: str) -> list[tuple[int, float]]:
    """(requests applied, seconds) of each relabel the server logged."""
    return [(int(n), float(t)) for n, t in _RELABEL.findall(log)]


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores{model} (load average before the run {load})"


if __name__ == "__main__":
    main()
