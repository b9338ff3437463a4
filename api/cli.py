"""The ``osed`` command line. Acting on a local store, the CLI is the admin."""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError
from tqdm import tqdm

from core.errors import IngestError, OsedError

if TYPE_CHECKING:
    from agent import Example, Knowledge
    from api._service import Platform
    from api.settings import Settings
    from edge import Lease, SafetyLayer
    from mapper import RawPoint

EXIT_INVALID = 1  # osed validate: the model does not conform
EXIT_ERROR = 2  # anything else that went wrong


def _settings() -> Settings:
    from api.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise click.ClickException(f"invalid settings {where}: {first.get('msg')}") from None


def _platform() -> Platform:
    from api._service import Platform

    return Platform(_settings())


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    bar = tqdm(total=total, desc=label, unit="pt", file=sys.stderr, disable=total < 500, leave=False)

    def tick(n: int) -> None:
        bar.update(n)

    try:
        yield tick
    finally:
        bar.close()


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OsedError as exc:
            click.echo(f"osed: error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)
        except OSError as exc:
            click.echo(f"osed: error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def main(verbose: bool) -> None:
    """OSED Semantic: point lists in, a validated Brick + 223P graph out.

    Settings come from OSED_* environment variables (see README). Acting on the local
    store, every command runs with the admin role.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr)


def _source_options(func: Callable[..., None]) -> Callable[..., None]:
    """--format, --sheet and --columns, shared by every command that reads a point list."""
    from mapper import FORMATS

    func = click.option(
        "--columns",
        help="Map our columns to the file's headers: 'name=Object Name,unit=Eng Units'.",
    )(func)
    func = click.option("--sheet", help="XLSX: the sheet to read (default: the first).")(func)
    func = click.option(
        "--skip-bad-rows",
        is_flag=True,
        help="Skip rows that cannot be read and list them, instead of refusing the file.",
    )(func)
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), help="Input format (default: detected from the file)."
    )(func)


def _read_source(
    path: Path, fmt: str | None, sheet: str | None, columns: str | None, skip_bad_rows: bool
) -> list[RawPoint]:
    from mapper import ReadReport, parse_column_map, read_points

    rejected: list[IngestError] | None = [] if skip_bad_rows else None
    report = ReadReport()
    points = read_points(
        path, fmt=fmt, sheet=sheet, column_map=parse_column_map(columns), rejected=rejected, report=report
    )
    # Which column became which field, and what was left unused: an integrator checks this
    # first when a vendor export labels badly.
    for line in report.lines():
        click.echo(line, err=True)
    for problem in rejected or []:
        click.echo(f"rejected: {problem}", err=True)
    if rejected:
        click.echo(f"{len(rejected)} row(s) rejected, {len(points)} read", err=True)
    return points


# -- label -----------------------------------------------------------------------------
@main.command()
@click.argument("points", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV to write: one row per input row, same order.",
)
@click.option(
    "--examples",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Human-confirmed rows (name, brick_class) from the same building to learn from.",
)
@click.option(
    "--model",
    "model_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the validated Brick + 223P model as Turtle.",
)
@click.option("--building", default="building", show_default=True, help="Building id for --model.")
@click.option(
    "--abbreviations",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Site abbreviation file(s) on top of the shipped one.",
)
@click.option("--threshold", type=click.FloatRange(0, 1), help="Abstain below this confidence.")
@_source_options
def label(
    points: Path,
    predictions: Path,
    examples: Path | None,
    model_out: Path | None,
    building: str,
    abbreviations: tuple[Path, ...],
    threshold: float | None,
    fmt: str | None,
    sheet: str | None,
    columns: str | None,
    skip_bad_rows: bool,
) -> None:
    """Label a point list with Brick classes (writes name, brick_class, confidence,
    alternatives, reason, equipment; brick_class is empty where the agent abstains)."""
    from api._service import check_building_id
    from mapper import serialize_model

    platform = _platform()
    if abbreviations:
        platform.settings.agent.abbreviation_files = list(abbreviations)
    if threshold is not None:
        platform.settings.agent.abstain_below = threshold
    try:
        # Before the work, not after it: a path that cannot be written is said at once.
        out = predictions.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise OsedError(f"cannot write the predictions to {predictions}: {exc.strerror}") from exc
    raw = _read_source(points, fmt, sheet, columns, skip_bad_rows)
    learned = read_examples(examples) if examples else []
    with _progress(len(raw), "labeling") as tick:
        labeled = platform.label(raw, learned, progress=tick)
    with out as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "brick_class", "confidence", "alternatives", "reason", "equipment"])
        for p in labeled:
            s = p.suggestion
            writer.writerow(
                [
                    p.raw.name,
                    p.brick_class or "",
                    f"{s.confidence:.3f}",
                    "|".join(s.alternatives[:2]),
                    s.reason,
                    s.equipment.name if s.equipment else "",
                ]
            )
    done = sum(1 for p in labeled if p.brick_class)
    click.echo(
        f"labeled {done} of {len(labeled)} points ({len(labeled) - done} abstained) -> {predictions}",
        err=True,
    )
    if model_out:
        check_building_id(building)
        model = platform.model(building, labeled)
        report = platform.ontology.validator.validate(model)
        model_out.write_bytes(serialize_model(model, "turtle"))
        click.echo(f"model: {len(model)} triples, {report.summary()} -> {model_out}", err=True)
        if not report.conforms:
            click.echo("\n".join(report.to_text().splitlines()[1:12]), err=True)


def _is_osed_model(path: Path) -> bool:
    """An OSED export is loaded as it is; any other Turtle is read as a point source."""
    with path.open("rb") as fh:
        return b"w3id.org/osed/ns#" in fh.read(1 << 20)


def read_examples(path: Path) -> list[Example]:
    """Rows with at least ``name`` and ``brick_class``; other columns are ignored."""
    from agent import Example

    text = path.read_bytes()
    from mapper import decode_text

    rows = list(csv.DictReader(decode_text(text, str(path)).splitlines()))
    out = []
    for row in rows:
        name, cls = (row.get("name") or "").strip(), (row.get("brick_class") or "").strip()
        if not name or not cls:
            if "name" not in row or "brick_class" not in row:
                raise IngestError("examples need columns 'name' and 'brick_class'", source=str(path), row=1)
            continue
        out.append(Example(name=name, brick_class=cls))
    if not out:
        raise IngestError("no usable example rows", source=str(path))
    return out


# -- suggest-review --------------------------------------------------------------------------
@main.command(name="suggest-review")
@click.argument("points", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-k", "count", type=click.IntRange(min=1), required=True, help="How many points to pick.")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV to write."
)
@click.option(
    "--examples",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Points already confirmed (name, brick_class): not picked again, and learned from.",
)
@_source_options
def suggest_review(
    points: Path,
    count: int,
    output: Path,
    examples: Path | None,
    fmt: str | None,
    sheet: str | None,
    columns: str | None,
    skip_bad_rows: bool,
) -> None:
    """Pick the K points whose confirmation teaches the agent most.

    Points sharing a point function (ZN-T on every VAV) form one group; the
    representatives of the largest groups the agent is least sure about come first.
    Writes the input's columns for those rows plus the agent's current suggestion."""

    platform = _platform()
    raw = _read_source(points, fmt, sheet, columns, skip_bad_rows)
    agent = platform.new_agent()
    if examples:
        agent.learn(read_examples(examples))
    with _progress(len(raw), "ranking") as tick:
        suggestions = agent.suggest(raw, progress=tick)
    picked = agent.suggest_review(raw, count, suggestions)
    with output.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["name", "description", "unit", "object_type", "suggested_class", "confidence", "alternatives"]
        )
        for i in picked:
            p, s = raw[i], suggestions[i]
            writer.writerow(
                [
                    p.name,
                    p.description,
                    p.unit,
                    p.object_type,
                    s.brick_class or "",
                    f"{s.confidence:.3f}",
                    "|".join(s.alternatives[:2]),
                ]
            )
    click.echo(f"picked {len(picked)} of {len(raw)} points to review -> {output}", err=True)


# -- discover ----------------------------------------------------------------------------------
@main.command()
@click.argument("kind", type=click.Choice(["bacnet", "edgex", "homeassistant"]))
@click.option("--url", help="EdgeX core-metadata base URL, or the Home Assistant URL.")
@click.option("--address", help="BACnet: the device's IP[:port] (default: broadcast Who-Is).")
@click.option("--device", "device_id", type=int, help="BACnet: only this device instance.")
@click.option(
    "--local", "local_address", default="0.0.0.0:47808", show_default=True, help="BACnet: our own IP:port."
)
@click.option("--token", envvar="OSED_HA_TOKEN", help="Home Assistant long-lived token (or OSED_HA_TOKEN).")
@click.option("--building", help="Label the points and store them in this building.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the points as CSV.")
def discover(
    kind: str,
    url: str | None,
    address: str | None,
    device_id: int | None,
    local_address: str,
    token: str | None,
    building: str | None,
    output: Path | None,
) -> None:
    """Discover points live: BACnet/IP devices (Who-Is, object lists, names, units,
    commandability), EdgeX core-metadata v3 devices and profiles, or Home Assistant entities
    (climate, water_heater, switch, number, sensor, binary_sensor)."""
    from mapper import discover_bacnet, discover_edgex, discover_homeassistant, write_points_csv

    if kind != "bacnet" and not url:
        raise click.UsageError(f"{kind} needs --url")
    if kind == "homeassistant" and not token:
        raise click.UsageError("Home Assistant needs --token (or OSED_HA_TOKEN)")
    if kind == "bacnet":
        warnings: list[str] = []
        points = discover_bacnet(address, device=device_id, local_address=local_address, warnings=warnings)
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
    elif kind == "edgex":
        points = discover_edgex(url or "")
    else:
        points = discover_homeassistant(url or "", token or "")
    click.echo(f"discovered {len(points)} points from {kind} at {url or address or 'broadcast'}", err=True)
    if output:
        write_points_csv(points, output)
        click.echo(f"wrote {output}", err=True)
    if building:
        platform = _platform()
        try:
            with _progress(len(points), "labeling") as tick:
                result = platform.import_points(building, points, progress=tick)
            click.echo(
                f"stored '{building}': {result.points} points ({result.added} new, "
                f"{result.updated} changed), {result.labeled} labeled; {result.report.summary()}"
            )
        finally:
            platform.close()


# -- validate ----------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(model: Path) -> None:
    """Validate a Turtle model with SHACL (Brick 1.5, 223P, OSED shapes).

    Exits 0 when it conforms, 1 with the violations listed when it does not."""
    from rdflib import Graph

    from ontology import Ontology

    settings = _settings()
    try:
        graph = Graph().parse(model, format="turtle")
    except (SyntaxError, ValueError, AssertionError, IndexError, KeyError, UnicodeError) as exc:
        # rdflib's messages span lines and quote the input's bytes: the gist, on one line.
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise OsedError(f"{model}: not valid Turtle: {first[:160]}") from exc
    ontology = Ontology.load(settings.cache_dir)
    report = ontology.validator.validate_all(graph)
    click.echo(report.to_text())
    sys.exit(0 if report.conforms else EXIT_INVALID)


# -- load / export / query ------------------------------------------------------------------
@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--building", required=True, help="Building id (letters, digits, . _ -).")
@click.option("--label", "building_label", help="Human-readable building name.")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_source_options
def load(
    source: Path,
    building: str,
    building_label: str | None,
    examples: Path | None,
    fmt: str | None,
    sheet: str | None,
    columns: str | None,
    skip_bad_rows: bool,
) -> None:
    """Load a point list (CSV: labeled on the way in) or a Turtle model into the store.

    Replaces the building's graph all-or-nothing; human decisions already stored are kept."""
    from api._service import check_building_id

    platform = _platform()
    check_building_id(building)
    try:
        if fmt is None and source.suffix.lower() in (".ttl", ".turtle") and _is_osed_model(source):
            from rdflib import Graph

            try:
                graph = Graph().parse(source, format="turtle")
            except (SyntaxError, ValueError) as exc:
                raise OsedError(f"{source}: not valid Turtle: {exc}") from exc
            n, report = platform.load_model(building, graph)
            click.echo(f"loaded {n} triples into '{building}'; {report.summary()}")
            return

        raw = _read_source(source, fmt, sheet, columns, skip_bad_rows)
        learned = read_examples(examples) if examples else []
        with _progress(len(raw), "labeling") as tick:
            result = platform.import_points(
                building,
                raw,
                examples=learned,
                progress=tick,
                label=building_label,
            )
        click.echo(
            f"loaded '{building}': {result.points} points ({result.added} new, {result.updated} changed, "
            f"{result.unchanged} unchanged), {result.labeled} labeled, {result.abstained} abstained, "
            f"{result.kept_decisions} human decisions kept, {result.triples} triples; "
            f"{result.report.summary()}"
        )
        if result.disappeared:
            click.echo(
                f"{len(result.disappeared)} point(s) no longer in the source: "
                + ", ".join(result.disappeared[:20])
                + (" ..." if len(result.disappeared) > 20 else "")
            )
        if result.kept_missing:
            click.echo(
                "kept because a reviewer decided them (flagged missingFromSource): "
                + ", ".join(result.kept_missing[:20])
            )
    finally:
        platform.close()


@main.command()
@click.option("--building", required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["turtle", "json-ld", "nt"]),
    default="turtle",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
def export(building: str, fmt: str, output: Path | None) -> None:
    """Export a building's model."""
    from mapper import serialize_model

    platform = _platform()
    try:
        graph = platform.building_graph(building)
        data = serialize_model(graph, fmt)
        if output:
            output.write_bytes(data)
            click.echo(f"wrote {len(graph)} triples to {output}", err=True)
        else:
            sys.stdout.buffer.write(data)
    finally:
        platform.close()


@main.command()
@click.argument("sparql", required=False)
@click.option("-f", "--file", "query_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def query(sparql: str | None, query_file: Path | None, fmt: str) -> None:
    """Run a read-only SPARQL query over every building (default graph = union)."""
    import json

    from api._sparql import results_json
    from mapper import serialize_model
    from ontology import sparql_prefixes

    if query_file:
        sparql = query_file.read_text("utf-8")
    if not sparql:
        raise click.UsageError("give a query or --file")
    if "PREFIX" not in sparql.upper():
        sparql = sparql_prefixes() + "\n" + sparql
    platform = _platform()
    try:
        result = platform.store.user_query(sparql)  # in a worker process, killed at the timeout
        if result.kind == "graph":
            assert result.graph is not None
            click.echo(serialize_model(result.graph, "turtle").decode("utf-8"))
        elif result.kind == "ask":
            click.echo("true" if result.boolean else "false")
        elif fmt == "json":
            click.echo(json.dumps(results_json(result), indent=1))
        else:
            writer = csv.writer(sys.stdout, delimiter="\t" if fmt == "table" else ",")
            writer.writerow(result.variables)
            for row in result.rows:
                writer.writerow([str(row.get(v, "")) for v in result.variables])
        if result.truncated:
            click.echo("(results truncated at the result limit)", err=True)
    finally:
        platform.close()


# -- serve ------------------------------------------------------------------------------------
@main.command()
@click.option("--host", help="Address to listen on (default from settings: 127.0.0.1).")
@click.option("--port", type=int, help="Port (default from settings: 8000).")
@click.option("--demo", is_flag=True, help="Load the bundled demo building first (if not stored).")
def serve(host: str | None, port: int | None, demo: bool) -> None:
    """Serve the REST API, the SPARQL endpoint and the OpenAPI docs."""
    import uvicorn

    from api.app import create_app

    platform = _platform()
    settings = platform.settings
    if demo:
        load_demo(platform)
    app = create_app(settings, platform=platform)
    host = host or settings.api.host
    port = port or settings.api.port
    click.echo(f"\nOSED Semantic is serving at http://{host}:{port}/")
    click.echo(f"  API docs:        http://{host}:{port}/docs")
    click.echo(f"  review page:     http://{host}:{port}/ui")
    click.echo(f"  SPARQL endpoint: http://{host}:{port}/sparql")
    if demo:
        click.echo(f"  demo building:   http://{host}:{port}/ui?building=demo")
    click.echo("Press Ctrl+C to stop.\n")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.group()
def user() -> None:
    """The built-in user store of the review page and API (hashed passwords)."""


@user.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "reviewer", "operator", "admin"]),
    default="reviewer",
    show_default=True,
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(name: str, role: str, password_stdin: bool) -> None:
    """Add a user, or set an existing user's password and role."""
    from api._users import UserStore

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    UserStore(settings.users_path()).add(name, password, role)
    click.echo(f"user '{name}' ({role}) saved in {settings.users_path()}")


@user.command(name="list")
def user_list() -> None:
    """List users and their roles."""
    from api._users import UserStore

    for name, role in UserStore(_settings().users_path()).users().items():
        click.echo(f"{name}\t{role}")


@user.command(name="remove")
@click.argument("name")
def user_remove(name: str) -> None:
    """Remove a user; a running server ends their sessions at their next request."""
    from api._users import UserStore

    if not UserStore(_settings().users_path()).remove(name):
        raise OsedError(f"no user '{name}'")
    click.echo(f"user '{name}' removed")


@main.group()
def token() -> None:
    """API tokens for scripts, kept as SHA-256 hashes (default <data_dir>/tokens.json)."""


@token.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "reviewer", "operator", "admin"]),
    default="viewer",
    show_default=True,
)
def token_add(name: str, role: str) -> None:
    """Make a new random token NAME (replacing its old one); it is printed once, only its
    hash is kept. Calls made with it are recorded as token:NAME."""
    from api._users import TokenStore

    settings = _settings()
    secret = TokenStore(settings.tokens_path()).add(name, role)
    click.echo(secret)
    click.echo(f"token '{name}' ({role}) saved as a hash in {settings.tokens_path()}", err=True)


@token.command(name="list")
def token_list() -> None:
    """List tokens (names and roles; the tokens themselves are not kept)."""
    from api._users import TokenStore

    for name, role in TokenStore(_settings().tokens_path()).tokens().items():
        click.echo(f"{name}\t{role}")


@token.command(name="remove")
@click.argument("name")
def token_remove(name: str) -> None:
    """Revoke a token; a running server refuses it from its next request."""
    from api._users import TokenStore

    if not TokenStore(_settings().tokens_path()).remove(name):
        raise OsedError(f"no token '{name}'")
    click.echo(f"token '{name}' removed")


@token.command(name="hash")
def token_hash_command() -> None:
    """Read a token from standard input and print the hash to put in OSED_API__TOKENS."""
    from api._users import token_hash

    secret = sys.stdin.readline().strip()
    if not secret:
        raise OsedError("no token on standard input")
    click.echo(token_hash(secret))


# -- edge: writes through the safety layer ------------------------------------------------
def _safety(platform: Platform, *, keep_store_open: bool = True) -> SafetyLayer:
    """The safety layer on the shared lease store. The graph store is opened only when a
    point must be resolved (leases carry their targets), so ``osed leases``, ``osed audit``
    or ``osed release LEASE`` run while ``osed edge-service`` does; with
    ``keep_store_open=False`` it is closed again after each read (a long-running process
    must not hold an embedded store the others need)."""
    from edge import safety_layer
    from graphstore import GraphStore, open_store

    settings = platform.settings

    def shared() -> GraphStore:
        return platform.store  # closed with the platform

    def briefly() -> GraphStore:
        return open_store(settings.store, settings.store_path())

    return safety_layer(
        settings.edge,
        shared if keep_store_open else briefly,
        settings.base_iri,
        settings.safety_db(),
        keep_store_open=keep_store_open,
    )


def _pass_line(lease: Lease) -> str:
    """What a lease pass did to one lease, for stderr."""
    if lease.status == "expired":
        return f"lease {lease.id} on {lease.name} had expired: reverted"
    if lease.status == "reverting":
        return f"lease {lease.id} on {lease.name} had expired: revert failed ({lease.error})"
    if lease.status == "failed":
        return f"lease {lease.id} on {lease.name}: write without a recorded outcome undone ({lease.error})"
    return f"lease {lease.id} on {lease.name}: {lease.status} ({lease.error})"


def _edge(work: Callable[[Platform], Any]) -> Any:
    """Run a command that drives the platform's safety layer (grid functions, the VEN): a
    lease pass first (a restart's duty: writes a killed process left without an outcome are
    undone, expired leases reverted), then ``work``; adapters are closed at the end."""
    import asyncio

    platform = _platform()

    async def run() -> Any:
        safety = platform.safety
        try:
            for lease in await safety.expire_due():
                click.echo(_pass_line(lease), err=True)
            return await work(platform)
        finally:
            await safety.close()

    try:
        return asyncio.run(run())
    finally:
        platform.close()


def _leases(work: Callable[[SafetyLayer], Any]) -> Any:
    """Run a lease command (write, release, leases, lock, unlock, audit) like ``_edge``, on
    a safety layer that opens the graph store only to resolve a point."""
    import asyncio

    platform = _platform()

    async def run() -> Any:
        safety = _safety(platform)
        try:
            for lease in await safety.expire_due():
                click.echo(_pass_line(lease), err=True)
            return await work(safety)
        finally:
            await safety.close()

    try:
        return asyncio.run(run())
    finally:
        platform.close()


@main.command(name="edge-service")
@click.option(
    "--check-every",
    type=click.FloatRange(min=0.05),
    help="Seconds between looks for new leases (default from settings: edge.expiry_check_s).",
)
def edge_service(check_every: float | None) -> None:
    """Own lease expiry without the API: revert each lease at its expiry, undo writes a
    killed process left without an outcome, retry reverts that failed. Runs until SIGTERM
    or Ctrl+C. Leases from ``osed write`` are handed to it through the lease store."""
    import asyncio
    import signal

    platform = _platform()
    settings = platform.settings
    every = check_every or settings.edge.expiry_check_s

    async def run() -> None:
        safety = _safety(platform, keep_store_open=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(
            f"osed edge-service: leases in {settings.safety_db()}, looked at every {every:g}s "
            "and reverted at expiry; SIGTERM or Ctrl+C stops it",
            err=True,
        )
        try:
            await safety.enforce_leases(
                every, stop=stop, report=lambda lease: click.echo(_pass_line(lease), err=True)
            )
        finally:
            await safety.close()
        click.echo("osed edge-service: stopped", err=True)

    try:
        asyncio.run(run())
    finally:
        platform.close()


def parse_value(text: str) -> float | int | bool | str:
    low = text.strip().lower()
    if low in ("on", "true", "active"):
        return True
    if low in ("off", "false", "inactive"):
        return False
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def _lease_line(lease: Any) -> str:
    import time as _time

    left = max(0, int(lease.expires - _time.time()))
    dry = " (dry-run)" if lease.dry_run else ""
    return (
        f"{lease.id}\t{lease.status}{dry}\t{lease.building}\t{lease.name}\t{lease.value}\t"
        f"owner={lease.owner} priority={lease.priority}\t{left}s left\t{lease.reason}"
    )


@main.command()
@click.argument("point")
@click.argument("value")
@click.option("--building", required=True, help="Building id.")
@click.option("--for", "duration", default="15m", show_default=True, help="Lease length: 90s, 10m, 2h.")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option(
    "--priority", type=click.IntRange(1, 100), help="Lease priority, higher preempts (operator: 90)."
)
@click.option("--owner", default="operator:cli", show_default=True, help="Who holds the lease.")
@click.option("--dry-run", is_flag=True, help="Everything but the protocol write.")
def write(
    point: str,
    value: str,
    building: str,
    duration: str,
    reason: str,
    priority: int | None,
    owner: str,
    dry_run: bool,
) -> None:
    """Write VALUE to POINT (raw name or IRI) as an operator lease that expires on its own."""
    from edge import parse_duration

    seconds = parse_duration(duration)

    async def work(safety: SafetyLayer) -> None:
        result = await safety.write(
            building,
            point,
            parse_value(value),
            owner=owner,
            reason=reason,
            duration_s=seconds,
            priority=priority,
            owner_kind="operator",
            dry_run=dry_run or None,
        )
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        if result.preempted is not None:
            click.echo(f"preempted lease {result.preempted.id} of {result.preempted.owner}", err=True)
        click.echo(_lease_line(result.lease))

    _leases(work)


@main.command()
@click.argument("lease_or_point")
@click.option("--building", help="With a point name: release every lease on it in this building.")
def release(lease_or_point: str, building: str | None) -> None:
    """End a lease (by id), or the leases on a point, and return the point to what it was."""

    async def work(safety: SafetyLayer) -> None:
        if building:
            target = safety.resolve(building, lease_or_point)
            leases = safety.store.leases(point=target.iri, statuses=("active", "reverting"))
            if not leases:
                raise OsedError(f"no active lease on {lease_or_point}")
        else:
            found = safety.store.lease(lease_or_point)
            if found is None:
                raise OsedError(f"no lease '{lease_or_point}'")
            leases = [found]
        for lease in leases:
            done = await safety.release(lease.id, by="operator:cli")
            click.echo(_lease_line(done))
            if done.status == "reverting":
                raise OsedError(f"lease {done.id}: revert failed, will be retried: {done.error}")

    _leases(work)


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Ended leases too.")
def leases(show_all: bool) -> None:
    """Leases (active ones by default); reverts those that expired first."""

    async def work(safety: SafetyLayer) -> None:
        statuses = () if show_all else ("writing", "active", "reverting")
        for lease in safety.store.leases(statuses=statuses):
            click.echo(_lease_line(lease))

    _leases(work)


@main.command()
@click.argument("target")
@click.option("--building", required=True)
@click.option("--for", "duration", required=True, help="How long: 30m, 4h.")
@click.option("--reason", required=True)
@click.option("--operator", default="operator:cli", show_default=True)
def lock(target: str, building: str, duration: str, reason: str, operator: str) -> None:
    """Lock a point (name or IRI) or a device (bacnet:1001, modbus:HOST:UNIT, edgex:NAME…):
    no grid function can write it meanwhile."""
    from edge import parse_duration

    async def work(safety: SafetyLayer) -> None:
        o = safety.lock(
            building, target, operator=operator, reason=reason, duration_s=parse_duration(duration)
        )
        from edge import utc_text

        click.echo(f"{o.id}\tlocked {o.target} until {utc_text(o.until)}")

    _leases(work)


@main.command()
@click.argument("override_id")
def unlock(override_id: str) -> None:
    """End an operator lock early."""

    async def work(safety: SafetyLayer) -> None:
        o = safety.unlock(override_id, by="operator:cli")
        click.echo(f"{o.id}\tunlocked {o.target}")

    _leases(work)


@main.command()
@click.option("--point", help="Only this point (IRI).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
def audit(point: str | None, limit: int) -> None:
    """The audit log of the safety layer, newest first: who, what, old, new, why, result."""

    async def work(safety: SafetyLayer) -> None:
        from edge import utc_text

        for e in safety.store.audit_log(point=point, limit=limit):
            click.echo(
                f"{utc_text(e.at)}\t{e.actor}\t{e.action}\t{e.point}\t{e.old} -> {e.new}\t"
                f"{e.result}\t{e.reason}\t{e.detail}"
            )

    _leases(work)


# -- grid topology and grid functions -------------------------------------------------------
@main.group()
def topology() -> None:
    """The grid topology: feeders, transformers (rated kVA) and the buildings they feed."""


@topology.command(name="load")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def topology_load(source: Path) -> None:
    """Replace the topology with a CSV (id,kind,label,parent,rated_kva) or Turtle file."""
    from gridfunctions import load_topology, read_topology, topology_graph

    platform = _platform()
    try:
        base = platform.settings.base_iri
        triples = load_topology(platform.store, topology_graph(source, base_iri=base), base)
        topo = read_topology(platform.store, base)
        click.echo(
            f"topology: {len(topo.feeders)} feeders, {len(topo.transformers)} transformers, "
            f"{len(topo.building_parents)} buildings ({triples} triples)"
        )
    finally:
        platform.close()


@main.group()
def gridfn() -> None:
    """Grid functions: list, check a building, plan (nothing written), run."""


@gridfn.command(name="list")
def gridfn_list() -> None:
    """Installed grid functions (entry-point group osed.gridfunctions)."""
    from gridfunctions import available

    for name, cls in available().items():
        click.echo(f"{name}\t{cls.title}\tassets: {', '.join(cls.kinds)}")


@gridfn.command(name="check")
@click.argument("name")
@click.option("--building", "buildings", multiple=True, required=True)
def gridfn_check(name: str, buildings: tuple[str, ...]) -> None:
    """Whether NAME can bind each building, and exactly what is missing where not."""
    from gridfunctions import check, get

    platform = _platform()
    try:
        fn = get(name)
        unbindable = 0
        for b in buildings:
            r = check(fn, platform.store, platform.ontology, b, platform.settings.base_iri)
            assets = ", ".join(f"{k} {v}" for k, v in sorted(r.assets.items())) or "none"
            click.echo(f"{b}\t{'bindable' if r.bindable else 'NOT bindable'}\tassets: {assets}")
            for m in r.missing:
                click.echo(f"  missing: {m}")
            unbindable += not r.bindable
        if unbindable:
            sys.exit(EXIT_INVALID)
    finally:
        platform.close()


def _gridfn_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.argument("name"),
            click.option("--building", "buildings", multiple=True, help="A building (repeat for several)."),
            click.option("--under", help="Every building under this transformer or feeder (topology)."),
            click.option("--param", "params", multiple=True, help="NAME=VALUE (JSON values allowed)."),
            click.option("--params-json", help="All parameters as one JSON object."),
            click.option("--load-kw", type=float, help="Measured load at the constraint (default: meters)."),
        ]
    ):
        func = option(func)
    return func


def _parse_params(params: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise OsedError(f"--params-json is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise OsedError("--params-json must be a JSON object")
        out.update(loaded)
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise OsedError(f"--param '{item}': use NAME=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


@gridfn.command(name="plan")
@_gridfn_options
def gridfn_plan(
    name: str,
    buildings: tuple[str, ...],
    under: str | None,
    params: tuple[str, ...],
    params_json: str | None,
    load_kw: float | None,
) -> None:
    """What NAME would do now (reads the assets; writes nothing)."""
    import json

    from gridfunctions import get
    from gridfunctions._runner import prepare, select_buildings, shown

    async def work(platform: Platform) -> None:
        fn = get(name)
        chosen = select_buildings(platform, list(buildings), under)
        prepared = await prepare(platform, fn, _parse_params(params, params_json), chosen, load_kw=load_kw)
        for a in prepared.plan.actions:
            value = "release" if a.value is None else a.value
            click.echo(
                f"+{a.at_s:.0f}s\t{a.building}\t{a.point}\t{value}\t{a.expected_kw:+.2f} kW\t{a.reason}"
            )
        for b, e in prepared.read_errors.items():
            click.echo(f"read failed in {b}: {e}", err=True)
        report = shown(prepared.plan.report)
        click.echo(json.dumps(report, sort_keys=True))

    _edge(work)


@gridfn.command(name="run")
@_gridfn_options
@click.option("--dry-run", is_flag=True, help="Everything but the protocol writes.")
@click.option(
    "--duration",
    help="Run as an event for this long (90s, 15m, 2h): re-planned every --step on what is "
    "measured; Ctrl-C ends it early. Leases end with the event either way.",
)
@click.option("--step", default="60s", show_default=True, help="Decision interval of an event run.")
def gridfn_run(
    name: str,
    buildings: tuple[str, ...],
    under: str | None,
    params: tuple[str, ...],
    params_json: str | None,
    load_kw: float | None,
    dry_run: bool,
    duration: str | None,
    step: str,
) -> None:
    """Plan NAME and carry it out through the safety layer (leases end with the event)."""
    import asyncio
    import json
    import signal
    from dataclasses import asdict

    from edge import parse_duration
    from gridfunctions import get
    from gridfunctions._runner import EventRun, event_progress, run, run_event, select_buildings, shown

    async def once(platform: Platform) -> None:
        fn = get(name)
        chosen = select_buildings(platform, list(buildings), under)
        _prepared, report = await run(
            platform, fn, _parse_params(params, params_json), chosen, load_kw=load_kw, dry_run=dry_run or None
        )
        out = asdict(report)
        out["report"] = shown(out["report"])
        click.echo(json.dumps(out, sort_keys=True))
        if report.failures:
            for b, e in report.failures.items():
                click.echo(f"failed in {b}: {e}", err=True)

    async def event(platform: Platform) -> None:
        fn = get(name)
        chosen = select_buildings(platform, list(buildings), under)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def progress(state: EventRun) -> None:
            left = max(0.0, state.end - time.time())
            report = json.dumps(event_progress(state)["report"], sort_keys=True)
            click.echo(f"step {state.steps}\t{left:.0f}s left\twritten {state.written}\t{report}", err=True)

        state = await run_event(
            platform,
            fn,
            _parse_params(params, params_json),
            chosen,
            duration_s=parse_duration(duration or "0"),
            step_s=parse_duration(step),
            stop=stop,
            dry_run=dry_run or None,
            load_kw=load_kw,
            on_step=progress,
        )
        click.echo(json.dumps(event_progress(state), sort_keys=True))
        for b, e in state.failures.items():
            click.echo(f"failed in {b}: {e}", err=True)
        if state.status == "failed":
            raise OsedError(state.error or "the event run failed")

    _edge(event if duration else once)


@main.command()
@click.option(
    "--vtn", "vtn_url", required=True, help="The VTN's URL, e.g. http://vtn:8080/OpenADR2/Simple/2.0b"
)
@click.option("--ven-name", required=True, help="This VEN's name, as the VTN knows it.")
@click.option("--building", "buildings", multiple=True, help="A stored building (repeat; default: all).")
@click.option("--dry-run", is_flag=True, help="Run events through everything but the protocol writes.")
def ven(vtn_url: str, ven_name: str, buildings: tuple[str, ...], dry_run: bool) -> None:
    """The building side of OpenADR 2.0b: register with a VTN, poll, turn its events into
    grid-function runs (signal table: openadr.signal_table), opt in or out, report power
    and flexibility. Every exchange is logged. Ctrl-C stops it (running events released)."""
    import asyncio
    import signal

    from edge.openadr.ven import Ven

    _openadr_logging()

    async def work(platform: Platform) -> None:
        chosen = list(buildings) or [str(b["id"]) for b in platform.buildings()]
        if not chosen:
            raise OsedError("no building stored: load one first (osed load … --building B)")
        node = Ven(platform, vtn_url=vtn_url, ven_name=ven_name, buildings=chosen, dry_run=dry_run or None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"VEN {ven_name} for {', '.join(chosen)} -> {vtn_url} (Ctrl-C to stop)", err=True)
        await node.run(stop)

    _edge(work)


@main.command()
@click.option("--port", type=int, help="OpenADR port of the VTN (default openadr.vtn_port, 8080).")
@click.option("--api-port", type=int, help="Port of the coordinator REST API (default api.port, 8000).")
@click.option("--host", help="Address of the REST API (default api.host).")
def vtn(port: int | None, api_port: int | None, host: str | None) -> None:
    """The coordinator side of OpenADR 2.0b: a VTN on --port and the REST API with the
    /openadr routes (register VENs, create/modify/cancel events, read opts and reports) on
    --api-port. Every exchange is logged."""
    import uvicorn

    from api.app import create_app
    from edge.openadr.vtn import Vtn

    _openadr_logging()
    platform = _platform()
    settings = platform.settings
    node = Vtn(settings.openadr, settings.data_dir, port=port)
    app = create_app(settings, platform=platform, vtn=node)
    host = host or settings.api.host
    api_port = api_port or settings.api.port
    click.echo(f"OpenADR VTN: {node.url}", err=True)
    click.echo(f"coordinator API: http://{host}:{api_port}/docs#/openadr", err=True)
    uvicorn.run(app, host=host, port=api_port, log_level="warning")


def _openadr_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("osed.openadr", "osed.gridfunctions"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


def load_demo(platform: Platform) -> None:
    from api.demo import DEMO_BUILDING, demo_points

    if platform.graph_iri(DEMO_BUILDING) in platform.store.graphs():
        click.echo(f"demo building '{DEMO_BUILDING}' already stored in {platform.settings.store_path()}")
        return
    points = demo_points()
    with _progress(len(points), "labeling demo") as tick:
        result = platform.import_points(DEMO_BUILDING, points, progress=tick, label="Demo office building")
    click.echo(
        f"demo building: {result.points} points, {result.labeled} labeled, {result.abstained} "
        f"abstained; validation: {result.report.summary()}; stored in {platform.settings.store_path()}"
    )


# -- eval -------------------------------------------------------------------------------------
@main.command(name="eval")
@click.argument(
    "datasets", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--examples-per-building",
    type=int,
    default=0,
    help="Confirm this many rows per dataset (its first distinct names) before labeling.",
)
@click.option(
    "--active", default="", help="Let the agent pick K points to confirm (or e.g. '1%' of the rows) first."
)
@click.option("--calibration", is_flag=True, help="Also print the pooled calibration curve.")
@click.option(
    "--held-out",
    is_flag=True,
    help="Leave each dataset out in turn: its calibration error, coverage and precision under a "
    "confidence model fitted on the others.",
)
@click.option(
    "--fit-calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fit the confidence model on all these datasets and write it here (reports --held-out too).",
)
@click.option(
    "--abbreviations",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Site abbreviation file (TOML) for every dataset; repeatable.",
)
@click.option(
    "--sites",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of per-dataset site abbreviation files: DATASET.csv uses DATASET.toml if present.",
)
def eval_(
    datasets: Sequence[Path],
    examples_per_building: int,
    active: str,
    calibration: bool,
    held_out: bool,
    fit_calibration: Path | None,
    abbreviations: tuple[Path, ...],
    sites: Path | None,
) -> None:
    """Benchmark labeling on datasets with a ground truth: CSVs with a brick_class column, or
    vendor exports X.csv/X.xlsx beside an X.truth.csv (see eval/exports/README.md).

    Prints exact and parent-or-exact accuracy, top-3, coverage and precision at the
    abstention threshold, macro-F1, calibration error (ECE) and points per second."""
    from eval.labeling import evaluate, format_calibration, format_table, knowledge_for

    platform = _platform()
    base = [*platform.settings.agent.abbreviation_files, *abbreviations]

    def knowledge_of(path: Path) -> Knowledge:
        return knowledge_for(path, base, sites)

    if fit_calibration or held_out:
        from eval.labeling import fit_calibration as fit
        from eval.labeling import format_held_out, format_held_out_reliability

        fitted, lobo = fit(
            datasets, ontology=platform.ontology, retriever=platform.retriever, knowledge_of=knowledge_of
        )
        click.echo("Each building under a confidence model fitted on the others (leave one out):")
        click.echo(format_held_out(lobo, platform.settings.agent.abstain_below))
        click.echo("")
        click.echo(format_held_out_reliability(lobo))
        if fit_calibration:
            fitted.save(fit_calibration)
            click.echo(f"confidence model fitted on {len(datasets)} buildings -> {fit_calibration}")
        return
    results = [
        evaluate(
            path,
            examples_per_building=examples_per_building,
            active=active,
            ontology=platform.ontology,
            knowledge=knowledge_of(path),
            retriever=platform.retriever,
            llm_for=platform.llm_for,
        )
        for path in datasets
    ]
    click.echo(format_table(results))
    if calibration:
        click.echo("")
        click.echo(format_calibration(results))


if __name__ == "__main__":
    main()
