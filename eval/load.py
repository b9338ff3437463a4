"""Load benchmark: many concurrent clients against a real ``osed serve --demo`` process.

    python -m eval.load [--clients 200] [--seconds 60] [--think 0] [--timeout 30]

Starts ``osed serve --demo`` as a subprocess on 127.0.0.1 (a port of its own, a fresh data
folder unless ``--data-dir``), gives every client a bearer token of its own (reviewer role,
so per-client limits apply to each client, as they would to 200 users), and lets each
client loop until the time is up: 70 % reads (points pages under a random sort and offset,
sometimes filtered, and cheap SPARQL queries, half each) and 30 % decisions (confirm,
correct or reject a random point, each with an ``Idempotency-Key``). A client waits for
its answer (at most ``--timeout`` seconds: a client timeout) and then ``--think`` seconds
(uniform between 0 and twice that) before its next request. It prints a Markdown report:
throughput, per-route p50/p99/max latency, server errors (5xx), client timeouts and other
refusals (4xx), and the server's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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

import httpx

BUILDING = "demo"
SORTS = ("name", "confidence", "status", "class", "equipment")
PREFIXES = (
    "PREFIX brick: <https://brickschema.org/schema/Brick#> "
    "PREFIX osed: <urn:osed:schema#> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> "
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
) -> Iterator[subprocess.Popen[bytes]]:
    """``osed serve`` on 127.0.0.1:``port`` over ``data_dir`` until the block ends (SIGTERM,
    then SIGKILL after 20 s)."""
    environment = {**os.environ, "OSED_DATA_DIR": str(data_dir), **(env or {})}
    command = [osed_binary(), "serve", "--host", "127.0.0.1", "--port", str(port)]
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


async def client_loop(
    http: httpx.AsyncClient, token: str, run: Run, until: float, think: float, rng: random.Random
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        pick = rng.random()
        if pick < 0.35:
            name = "points"
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
            request = http.build_request(
                "GET", f"/buildings/{BUILDING}/points", params=params, headers=headers
            )
        elif pick < 0.70:
            name = "sparql"
            request = http.build_request(
                "POST",
                "/sparql",
                content=PREFIXES + rng.choice(QUERIES),
                headers={**headers, "Content-Type": "application/sparql-query", "Accept": "application/json"},
            )
        else:
            name = "decision"
            action = rng.choice(("confirm", "correct", "reject"))
            decision: dict[str, str] = {"point": rng.choice(run.points), "action": action}
            if action == "correct":
                decision["brick_class"] = rng.choice(
                    ("Zone_Air_Temperature_Sensor", "Damper_Position_Command")
                )
            request = http.build_request(
                "POST",
                f"/buildings/{BUILDING}/decisions",
                json={"decisions": [decision]},
                headers={**headers, "Idempotency-Key": secrets.token_hex(16)},
            )
        route = run.routes[name]
        start = time.monotonic()
        try:
            response = await http.send(request)
            route.statuses[response.status_code] += 1
        except httpx.TimeoutException:
            route.timeouts += 1
        except httpx.HTTPError as exc:
            route.failures[type(exc).__name__] += 1
        route.latencies.append(time.monotonic() - start)
        if think:
            await asyncio.sleep(rng.uniform(0, 2 * think))


async def drive(base: str, tokens: list[str], seconds: float, think: float, client_timeout: float) -> Run:
    run = Run()
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=base, timeout=client_timeout, limits=limits) as http:
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        total = (await http.get(f"/buildings/{BUILDING}/points", params={"limit": 1}, headers=headers)).json()
        for offset in range(0, int(total["total"]), 1000):
            page = await http.get(
                f"/buildings/{BUILDING}/points", params={"offset": offset, "limit": 1000}, headers=headers
            )
            run.points.extend(item["iri"] for item in page.json()["items"])
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(client_loop(http, token, run, until, think, random.Random(n)) for n, token in enumerate(tokens))
        )
    return run


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
    parser.add_argument("--data-dir", type=Path, help="reuse this data folder (default: a fresh one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osed-load-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "var"
        tokens = [secrets.token_urlsafe(24) for _ in range(args.clients)]
        env = {"OSED_API__TOKENS": json.dumps(dict.fromkeys(tokens, "reviewer"))}
        port = free_port()
        log = Path(tmp) / "serve.log"
        started = time.monotonic()
        with serve(data_dir, port, env=env, log=log) as proc:
            startup = time.monotonic() - started
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            run = asyncio.run(
                drive(f"http://127.0.0.1:{port}", tokens, args.seconds, args.think, args.timeout)
            )
            wall = time.monotonic() - wall0
            cpu = (cpu_seconds(proc.pid) - cpu0) / wall
        report(args, run, wall, cpu, startup)


def report(args: argparse.Namespace, run: Run, wall: float, cpu: float, startup: float) -> None:
    done = sum(sum(r.statuses.values()) for r in run.routes.values())
    server_errors = sum(n for r in run.routes.values() for s, n in r.statuses.items() if s >= 500)
    timeouts = sum(r.timeouts for r in run.routes.values())
    command = f"python -m eval.load --clients {args.clients} --seconds {args.seconds:g}"
    if args.think:
        command += f" --think {args.think:g}"
    print(f"# Load benchmark ({args.clients} clients, {args.seconds:g} s)\n")
    print(
        f"`{command}`: `osed serve --demo` ({len(run.points)} points) in its own process on "
        f"127.0.0.1 (started in {startup:.0f} s), {args.clients} clients with a token each, "
        f"client timeout {args.timeout:g} s, pause between a client's requests "
        f"{'none' if not args.think else f'0–{2 * args.think:g} s'}; {os.cpu_count()} cores, "
        "clients and server on the same machine.\n"
    )
    print(
        f"**{done / wall:.1f} requests/s** answered ({done} in {wall:.1f} s), "
        f"{server_errors} server errors, {timeouts} client timeouts; server CPU {100 * cpu:.0f} % "
        "(100 % = one core).\n"
    )
    print("| route | requests | per s | p50 s | p99 s | max s | statuses | client timeouts |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, route in run.routes.items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(route.statuses.items()))
        failures = ", ".join(f"{k}: {n}" for k, n in route.failures.items())
        count = sum(route.statuses.values())
        print(
            f"| {name} | {count} | {count / wall:.1f} | {percentile(route.latencies, 0.5):.2f} | "
            f"{percentile(route.latencies, 0.99):.2f} | {max(route.latencies, default=0):.2f} | "
            f"{statuses}{'; ' + failures if failures else ''} | {route.timeouts} |"
        )
    everything = [x for r in run.routes.values() for x in r.latencies]
    print(
        f"\nAll routes: p50 {percentile(everything, 0.5):.2f} s, p99 {percentile(everything, 0.99):.2f} s, "
        f"mean {statistics.fmean(everything) if everything else 0:.2f} s."
    )


if __name__ == "__main__":
    main()
