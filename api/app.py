"""The FastAPI app: REST for buildings and points, the SPARQL 1.1 Protocol endpoint, jobs.

Routes that touch rdflib, pyshacl or the store are plain ``def`` (FastAPI runs them in
a thread pool), so no blocking call sits inside ``async def``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from api import _openadr, _review
from api._jobs import Job, JobManager
from api._limits import ClientSlots, TooManyAtOnce
from api._security import SecurityHeaders, redoc_page, swagger_page
from api._service import (
    BuildingNotFound,
    Decision,
    DecisionConflict,
    DecisionResult,
    IdempotencyKeyReused,
    NothingToUndo,
    Platform,
    PointFilter,
    PointRow,
    check_building_id,
    request_digest,
)
from api._sparql import JSONLD, TURTLE, negotiate, serialize
from api._throttle import LoginThrottle, ThrottlePolicy
from api._users import ApiTokens, Sessions, TokenStore, UserStore
from api.settings import Role, Settings
from core.errors import (
    EdgeError,
    GraphStoreError,
    IngestError,
    OsedError,
    QueryError,
    QueryTimeoutError,
    SafetyRefused,
)
from graphstore import is_update

if TYPE_CHECKING:
    from edge.openadr.vtn import Vtn
from mapper import (
    BUILDING_ID_RULE,
    ReadReport,
    discover_bacnet,
    discover_edgex,
    discover_homeassistant,
    parse_column_map,
    read_osed_model,
    read_points,
    serialize_model,
)
from ontology import S223Kind

log = logging.getLogger("osed.api")
_RANK: dict[str, int] = {"viewer": 0, "reviewer": 1, "operator": 2, "admin": 3}


class BuildingIn(BaseModel):
    id: str = Field(description=BUILDING_ID_RULE, examples=["hq"])
    label: str | None = Field(default=None, examples=["Headquarters"])


class Building(BaseModel):
    id: str
    label: str
    graph: str
    points: int


class PointPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[PointRow]


class DiscoverIn(BaseModel):
    kind: Literal["bacnet", "edgex", "homeassistant"]
    url: str = Field(default="", examples=["http://127.0.0.1:59881"], description="EdgeX or Home Assistant")
    token: str | None = Field(default=None, description="Home Assistant long-lived access token")
    address: str | None = Field(default=None, description="BACnet device IP[:port]; empty = broadcast")
    device: int | None = Field(default=None, description="BACnet device instance")
    local_address: str = Field(default="0.0.0.0:47808", description="BACnet: our own IP:port")


class DecisionsIn(BaseModel):
    decisions: list[Decision] = Field(min_length=1, max_length=10_000)


class FilterDecisionIn(BaseModel):
    """One decision for every point a filter matches (the page's "confirm all matching")."""

    action: Literal["confirm", "correct", "reject"]
    brick_class: str | None = None
    filter: PointFilter = Field(default_factory=PointFilter)


class LeaseIn(BaseModel):
    building: str
    point: str = Field(description="raw name or IRI")
    value: float | int | bool | str
    duration_s: float = Field(gt=0, description="the lease expires on its own after this")
    reason: str = Field(min_length=1, max_length=500)
    priority: int | None = Field(default=None, ge=1, le=100, description="higher preempts lower")
    owner: str | None = Field(default=None, max_length=200, description="default: the caller")
    dry_run: bool | None = None


class OverrideIn(BaseModel):
    building: str
    target: str = Field(description="a point (raw name or IRI) or a device key such as bacnet:1001")
    duration_s: float = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)


class GridRunIn(BaseModel):
    buildings: list[str] = Field(default_factory=list)
    under: str | None = Field(default=None, description="every building under this transformer or feeder")
    params: dict[str, Any] = Field(default_factory=dict)
    load_kw: float | None = Field(
        default=None, description="measured load at the constraint (default: meters)"
    )
    dry_run: bool | None = None
    duration_s: float | None = Field(
        default=None,
        gt=0,
        le=7 * 86400,
        description="run as an event for this long, re-planned every step_s on what is measured "
        "(leases end with the event); without it the plan is carried out once",
    )
    step_s: float = Field(default=60.0, ge=1, le=3600)


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class LoginOut(BaseModel):
    token: str
    user: str
    role: str


class Me(BaseModel):
    user: str
    role: str


class ValidationItem(BaseModel):
    severity: str
    message: str
    focus: str
    point: str | None
    path: str | None
    value: str | None


class ValidationOut(BaseModel):
    conforms: bool
    points_checked: int
    violations: int
    results: list[ValidationItem]


def create_app(settings: Settings, *, platform: Platform | None = None, vtn: Vtn | None = None) -> FastAPI:
    """The REST API; with ``vtn`` (``osed vtn``) it also runs the OpenADR VTN and serves the
    coordinator routes under /openadr."""
    platform = platform or Platform(settings)
    jobs = JobManager()

    tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Threads for the routes that block (pages, models, validation): few, so the event
        # loop and the decisions' committer keep their share of the interpreter lock.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api.threads
        # The server owns lease expiry while it runs: the first pass undoes writes left
        # without an outcome and reverts what expired while it was down; then each lease
        # is reverted at its expiry, leases other processes add are seen within
        # edge.expiry_check_s.
        stop = asyncio.Event()
        expiry = asyncio.create_task(platform.safety.enforce_leases(settings.edge.expiry_check_s, stop=stop))
        if vtn is not None:
            await vtn.start()
        yield
        if vtn is not None:
            await vtn.stop()
        stop.set()  # a pass under way finishes (its device calls are bounded by edge.timeout_s)
        try:
            await asyncio.wait_for(expiry, settings.edge.timeout_s * 2)
        except TimeoutError:
            log.warning("lease expiry pass did not finish in time: cancelled")
        await platform.safety.close()
        platform.__dict__.pop("safety", None)
        jobs.close()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served below, under a policy of their own
        redoc_url=None,
        title="OSED Semantic",
        version="0.1.0",
        description="Brick + ASHRAE 223P building models for grid functions: ingest, label, "
        "validate, store, query.",
    )
    app.state.platform = platform
    app.state.jobs = jobs

    app.add_middleware(SecurityHeaders)

    users = UserStore(settings.users_path())
    sessions = Sessions(users, settings.api.session_hours * 3600)
    tokens = ApiTokens(settings.api.tokens, TokenStore(settings.tokens_path()))
    conf = settings.api
    throttle = LoginThrottle(
        ThrottlePolicy(
            free_failures=conf.login_free_failures,
            first_delay_s=conf.login_first_delay_s,
            max_delay_s=conf.login_max_delay_s,
            lock_after=conf.login_lock_after,
            lock_s=conf.login_lock_minutes * 60,
        )
    )
    app.state.sessions = sessions
    app.state.login_throttle = throttle

    def caller(request: Request) -> tuple[str, Role]:
        """Who is asking and with which role: a signed-in user, an API token, or (in
        development) anonymous."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            session = sessions.get(token)
            if session is not None:
                return session.user, session.role  # type: ignore[return-value]
            found = tokens.identify(token)
            if found is None:
                raise HTTPException(401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
            return found  # type: ignore[return-value]
        if settings.api.anonymous_role:
            return "anonymous (development)", settings.api.anonymous_role
        raise HTTPException(401, "sign in or send a bearer token", headers={"WWW-Authenticate": "Bearer"})

    def caller_role(request: Request) -> Role:
        return caller(request)[1]

    def caller_name(request: Request) -> str:
        """Who made the request, for provenance: the user, a token's fingerprint, or anonymous."""
        return caller(request)[0]

    def need(role: Role) -> Any:
        def check(request: Request) -> Role:
            have = caller_role(request)
            if _RANK[have] < _RANK[role]:
                raise HTTPException(403, f"this needs the {role} role; you are {have}")
            return have

        return Depends(check)

    @app.exception_handler(BuildingNotFound)
    def _not_found(_r: Request, exc: BuildingNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(IngestError)
    def _bad_input(_r: Request, exc: IngestError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "source": exc.source, "row": exc.row, "field": exc.field},
            status_code=400,
        )

    @app.exception_handler(QueryError)
    def _bad_query(_r: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(QueryTimeoutError)
    def _timeout(_r: Request, exc: QueryTimeoutError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(GraphStoreError)
    def _store(_r: Request, exc: GraphStoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)

    @app.exception_handler(DecisionConflict)
    def _conflict(_r: Request, exc: DecisionConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=409)

    @app.exception_handler(NothingToUndo)
    def _nothing(_r: Request, exc: NothingToUndo) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(IdempotencyKeyReused)
    def _key_reused(_r: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SafetyRefused)
    def _refused(_r: Request, exc: SafetyRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "kind": type(exc).__name__}, status_code=409)

    @app.exception_handler(EdgeError)
    def _edge(_r: Request, exc: EdgeError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "kind": type(exc).__name__, "device": exc.device, "point": exc.point},
            status_code=502,
        )

    @app.exception_handler(OsedError)
    def _osed(_r: Request, exc: OsedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    _openadr.add_routes(app, vtn, need)

    # -- pages ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        rows = "".join(
            f"<li><a href='/buildings/{html.escape(str(b['id']))}/points'>"
            f"{html.escape(str(b['label']))}</a> ({b['points']} points) — "
            f"<a href='/buildings/{html.escape(str(b['id']))}/model'>Turtle</a> · "
            f"<a href='/buildings/{html.escape(str(b['id']))}/validation'>validation</a></li>"
            for b in platform.buildings()
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>OSED Semantic</title>"
            "<link rel='stylesheet' href='/ui/home.css'></head><body>"
            "<h1>OSED Semantic</h1><p>Brick 1.5 + ASHRAE 223P building models.</p>"
            f"<h2>Buildings</h2><ul>{rows or '<li>none yet</li>'}</ul>"
            "<p><a href='/ui'>Review page</a> · <a href='/docs'>REST API (OpenAPI)</a> · "
            "SPARQL endpoint: <code>/sparql</code></p>"
            "</body></html>"
        )

    static = Path(__file__).parent / "static"

    @app.get("/ui", include_in_schema=False)
    def review_page() -> FileResponse:
        return FileResponse(static / "review.html", media_type="text/html; charset=utf-8")

    @app.get("/ui/{asset}", include_in_schema=False)
    def review_asset(asset: Literal["review.js", "review.css", "home.css"]) -> FileResponse:
        media = "text/javascript" if asset.endswith(".js") else "text/css"
        return FileResponse(static / asset, media_type=f"{media}; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return swagger_page(app.openapi_url or "/openapi.json", app.title)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return redoc_page(app.openapi_url or "/openapi.json", app.title)

    # -- sign-in --------------------------------------------------------------------------
    @app.post(
        "/auth/login",
        response_model=LoginOut,
        tags=["auth"],
        responses={429: {"description": "too many failed sign-ins: wait Retry-After seconds"}},
    )
    def login(body: LoginIn, request: Request) -> LoginOut:
        """Sign in with a user of the built-in store (``osed user add``); the token it
        returns is a bearer token for every other call. Failed sign-ins are throttled per
        user name and per client address (429 with ``Retry-After``, then a lock)."""
        keys = throttle.keys(body.username, request.client.host if request.client else "")
        wait = throttle.begin(keys)
        if wait > 0:
            seconds = str(math.ceil(wait))
            raise HTTPException(
                429, f"too many failed sign-ins: try again in {seconds} s", headers={"Retry-After": seconds}
            )
        found = users.authenticate(body.username, body.password)
        if found is None:
            throttle.failed(keys)
            raise HTTPException(401, "wrong user name or password")
        throttle.succeeded(keys, reset=keys[:1])
        role, stamp = found
        return LoginOut(token=sessions.open(body.username, role, stamp), user=body.username, role=role)

    @app.post("/auth/logout", status_code=204, tags=["auth"])
    def logout(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            sessions.close(header[7:].strip())
        return Response(status_code=204)

    @app.get("/auth/me", response_model=Me, tags=["auth"])
    def me(request: Request) -> Me:
        user, role = caller(request)
        return Me(user=user, role=role)

    @app.get(
        "/classes", response_model=list[_review.ClassInfo], tags=["ontology"], dependencies=[need("viewer")]
    )
    def classes(
        q: Annotated[str, Query(max_length=200)] = "",
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        ontology: Literal["brick", "s223"] = "brick",
        kind: S223Kind | Literal[""] = "",
    ) -> list[_review.ClassInfo]:
        """Classes matching words in their name, label or definition: Brick point classes,
        or with ``ontology=s223`` ASHRAE 223P classes (``kind``: equipment, property,
        medium, enumeration, connection, connection_point, space, other)."""
        return _review.search_classes(platform, q, limit, ontology, kind)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # -- buildings ------------------------------------------------------------------------
    @app.get(
        "/buildings",
        response_model=list[Building],
        tags=["buildings"],
        dependencies=[need("viewer")],
    )
    def list_buildings() -> list[dict[str, object]]:
        return platform.buildings()

    @app.post(
        "/buildings",
        response_model=Building,
        status_code=201,
        tags=["buildings"],
        dependencies=[need("reviewer")],
    )
    def create_building(body: BuildingIn) -> dict[str, object]:
        graph = platform.create_building(body.id, body.label)
        return {"id": body.id, "label": body.label or body.id, "graph": graph, "points": 0}

    @app.get(
        "/buildings/{building}",
        response_model=Building,
        tags=["buildings"],
        dependencies=[need("viewer")],
    )
    def get_building(building: str) -> dict[str, object]:
        platform.require_building(building)
        for b in platform.buildings():
            if b["id"] == building:
                return b
        raise BuildingNotFound(f"no building '{building}'")

    @app.post(
        "/buildings/{building}/points",
        status_code=202,
        response_model=Job,
        tags=["buildings"],
        dependencies=[need("reviewer")],
    )
    async def upload_points(
        building: str,
        file: UploadFile,
        skip_bad_rows: bool = False,
        columns: str | None = None,
        format: str | None = None,
        sheet: str | None = None,
    ) -> Job:
        """Upload a point list (CSV, XLSX, EDE, Niagara, Haystack JSON/Zinc, Turtle; detected,
        or ``format``); labeling runs as a job (poll ``/jobs/{id}``). The job result says which
        column became which field and which were not used (``columns``). ``columns`` maps
        fields to the file's headers (``name=Object Name,unit=Eng Units``) where the reader
        cannot tell; ``sheet`` picks an XLSX sheet. With ``skip_bad_rows`` rows that cannot
        be read are skipped and listed in the job result instead of refusing the file."""
        check_building_id(building)
        limit = int(settings.api.max_upload_mb * 1_000_000)
        data = await file.read(limit + 1)
        name = file.filename or "upload.csv"
        if len(data) > limit:
            raise IngestError(
                f"upload is larger than the {settings.api.max_upload_mb:g} MB limit", source=name
            )
        return await _start_import(
            building, name, data, skip_bad_rows, parse_column_map(columns), format, sheet
        )

    async def _start_import(
        building: str,
        name: str,
        data: bytes,
        skip_bad_rows: bool,
        column_map: dict[str, str] | None = None,
        fmt: str | None = None,
        sheet: str | None = None,
    ) -> Job:
        from starlette.concurrency import run_in_threadpool

        model = await run_in_threadpool(
            lambda: read_osed_model(name, data) if fmt in (None, "turtle") else None
        )
        if model is not None:
            # An OSED export is stored as it is, as ``osed load`` does: no relabel.
            def load(_tick: Callable[[int], None]) -> dict[str, object]:
                triples, validation = platform.load_model(building, model)
                return {"building": building, "triples": triples, "conforms": validation.conforms}

            return jobs.submit("import", load, total=1, building=building)
        rejected: list[IngestError] | None = [] if skip_bad_rows else None
        report = ReadReport()
        points = await run_in_threadpool(
            lambda: read_points(
                name, data=data, rejected=rejected, column_map=column_map, fmt=fmt, sheet=sheet, report=report
            )
        )

        def work(tick: Callable[[int], None]) -> dict[str, object]:
            summary = platform.import_points(building, points, progress=tick).summary()
            summary["columns"] = report.as_dict()
            summary["rejected"] = [
                {"source": r.source, "row": r.row, "field": r.field, "reason": r.reason}
                for r in (rejected or [])[:1000]
            ]
            return summary

        return jobs.submit("import", work, total=len(points), building=building)

    @app.post(
        "/buildings/{building}/discover",
        status_code=202,
        response_model=Job,
        tags=["buildings"],
        dependencies=[need("operator")],
    )
    def discover(building: str, body: DiscoverIn) -> Job:
        """Discover points live (EdgeX core-metadata v3, Home Assistant) and store them,
        labeled, as a job. Operator role: it reaches out to the site's systems."""
        check_building_id(building)
        if body.kind == "homeassistant" and not body.token:
            raise HTTPException(400, "Home Assistant discovery needs a token")

        def work(tick: Callable[[int], None]) -> dict[str, object]:
            if body.kind == "bacnet":
                points = discover_bacnet(body.address, device=body.device, local_address=body.local_address)
            elif body.kind == "edgex":
                points = discover_edgex(body.url)
            else:
                points = discover_homeassistant(body.url, body.token or "")
            return platform.import_points(building, points, progress=tick).summary()

        return jobs.submit("discover", work, total=0, building=building)

    @app.get("/jobs/{job_id}", response_model=Job, tags=["jobs"], dependencies=[need("viewer")])
    def get_job(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job '{job_id}'")
        return job

    @app.get(
        "/buildings/{building}/points",
        response_model=PointPage,
        tags=["points"],
        dependencies=[need("viewer")],
    )
    def list_points(
        building: str,
        where: Annotated[PointFilter, Query()],
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        sort: Literal["name", "confidence", "status", "class", "equipment"] = "name",
        order: Literal["asc", "desc"] = "asc",
    ) -> PointPage:
        """A page of points, filtered (status, text in name or description, class,
        equipment, confidence range) and sorted in the store."""
        total, items = platform.points(
            building, offset=offset, limit=limit, where=where, sort=sort, descending=order == "desc"
        )
        return PointPage(total=total, offset=offset, limit=limit, items=items)

    @app.get(
        "/buildings/{building}/summary",
        response_model=_review.ReviewSummary,
        tags=["review"],
        dependencies=[need("viewer")],
    )
    def review_summary(
        building: str, threshold: Annotated[float, Query(ge=0, le=1)] = 0.8
    ) -> _review.ReviewSummary:
        """Review progress: points by status, decided, suggestions above a confidence
        threshold, and the estimated accuracy of the model as it stands."""
        return _review.summary(platform, building, threshold)

    @app.get(
        "/buildings/{building}/review-queue",
        response_model=list[PointRow],
        tags=["review"],
        dependencies=[need("viewer")],
    )
    def review_queue(building: str, k: Annotated[int, Query(ge=1, le=200)] = 10) -> list[PointRow]:
        """The undecided points whose confirmation teaches the agent most (active learning)."""
        return _review.review_queue(platform, building, k)

    @app.get(
        "/buildings/{building}/similar",
        response_model=_review.Similar,
        tags=["review"],
        dependencies=[need("viewer")],
    )
    def similar_points(building: str, point: str) -> _review.Similar:
        """Points with the same name pattern as ``point`` (its IRI): what "apply to similar"
        would decide, shown before it is applied."""
        return _review.similar(platform, building, point)

    @app.get(
        "/buildings/{building}/equipment",
        response_model=list[_review.EquipmentNode],
        tags=["review"],
        dependencies=[need("viewer")],
    )
    def equipment(building: str) -> list[_review.EquipmentNode]:
        """Equipment inferred from point names, what feeds it (``parents``) and its points."""
        return _review.equipment_tree(platform, building)

    @app.get(
        "/buildings/{building}/model",
        tags=["buildings"],
        dependencies=[need("viewer")],
        responses={200: {"content": {TURTLE: {}, JSONLD: {}}}},
    )
    def get_model(request: Request, building: str, format: str | None = None) -> Response:
        media = negotiate(request.headers.get("accept"), graph=True, explicit=format)
        graph = platform.building_graph(building)
        fmt = {"text/turtle": "turtle", JSONLD: "json-ld"}.get(media, "turtle")
        media = media if media in (TURTLE, JSONLD) else TURTLE
        return Response(serialize_model(graph, fmt), media_type=media)

    @app.get(
        "/buildings/{building}/validation",
        response_model=ValidationOut,
        tags=["buildings"],
        dependencies=[need("viewer")],
    )
    def get_validation(building: str) -> ValidationOut:
        report = platform.validate_building(building)
        return ValidationOut(
            conforms=report.conforms,
            points_checked=report.points_checked,
            violations=len(report.violations),
            results=[
                ValidationItem(
                    severity=r.severity,
                    message=r.message,
                    focus=r.focus,
                    point=r.point,
                    path=r.path,
                    value=r.value,
                )
                for r in report.results
            ],
        )

    key_header: Any = Header(
        default=None,
        alias="Idempotency-Key",
        max_length=200,
        description="a new key (a UUID) per request: a request retried with the same key is "
        "answered as the first time and not applied again (another request under a used key: 422)",
    )

    @app.post(
        "/buildings/{building}/decisions",
        response_model=DecisionResult,
        tags=["points"],
        dependencies=[need("reviewer")],
        responses={422: {"description": "the Idempotency-Key was used for another request"}},
    )
    async def decide(
        building: str,
        body: DecisionsIn,
        request: Request,
        idempotency_key: str | None = key_header,
    ) -> DecisionResult:
        """Confirm, correct or reject points (by IRI, or every point with a raw name).

        Decisions are stored with who and when, and the building is relabeled with them
        at once: a confirmed ZN-T labels every other ZN-T. Decisions that arrive while a
        relabel runs wait for it and are applied together in the next one; the request
        waits without holding a server thread."""
        from starlette.concurrency import run_in_threadpool

        user = await run_in_threadpool(caller_name, request)
        future = platform.submit_decisions(building, body.decisions, user, idempotency_key=idempotency_key)
        return await asyncio.wrap_future(future)

    @app.post(
        "/buildings/{building}/decisions/by-filter",
        response_model=DecisionResult,
        tags=["points"],
        dependencies=[need("reviewer")],
        responses={422: {"description": "the Idempotency-Key was used for another request"}},
    )
    def decide_by_filter(
        building: str,
        body: FilterDecisionIn,
        request: Request,
        idempotency_key: str | None = key_header,
    ) -> DecisionResult:
        """The same decision for every point the filter matches; confirming skips points
        with no suggestion (abstained) and points a human already decided."""
        user = caller_name(request)
        digest = request_digest(body.model_dump())
        if idempotency_key is not None:
            # Before the filter is read again: what it matched then is decided by now.
            replay = platform.replayed_decision(building, user, idempotency_key, digest)
            if replay is not None:
                return replay
        iris = platform.point_iris(building, body.filter)
        if body.action == "confirm":
            confirmable = set(
                platform.point_iris(building, body.filter.model_copy(update={"status": "suggested"}))
            )
            iris = [i for i in iris if i in confirmable]
        if not iris:
            raise HTTPException(400, "no point matches that filter")
        decisions = [Decision(point=i, action=body.action, brick_class=body.brick_class) for i in iris]
        return platform.decide(building, decisions, user, idempotency_key=idempotency_key, digest=digest)

    @app.post(
        "/buildings/{building}/undo",
        response_model=DecisionResult,
        tags=["points"],
        dependencies=[need("reviewer")],
    )
    def undo(building: str, request: Request) -> DecisionResult:
        """Undo your most recent decision (or bulk decision) in this building."""
        return platform.undo(building, caller_name(request))

    @app.get("/buildings/{building}/history", tags=["points"], dependencies=[need("viewer")])
    def history(building: str, point: str) -> list[dict[str, str]]:
        """Every decision recorded for one point (by IRI), oldest first."""
        return platform.history(building, point)

    # -- edge: leases, overrides, audit ------------------------------------------------------
    @app.get("/edge/leases", tags=["edge"], dependencies=[need("viewer")])
    def list_leases(all: bool = False, point: str | None = None) -> list[dict[str, Any]]:
        """Leases: active (and failing to revert) by default, every one with ``all``."""
        statuses = () if all else ("active", "reverting")
        return [asdict(lease) for lease in platform.safety.store.leases(point=point, statuses=statuses)]

    @app.post("/edge/leases", status_code=201, tags=["edge"], dependencies=[need("operator")])
    async def create_lease(body: LeaseIn, request: Request) -> dict[str, Any]:
        """Write a value to a point as a lease through the safety layer (operator role)."""
        result = await platform.safety.write(
            body.building,
            body.point,
            body.value,
            owner=body.owner or caller_name(request),
            reason=body.reason,
            duration_s=body.duration_s,
            priority=body.priority,
            owner_kind="operator",
            dry_run=body.dry_run,
        )
        return {
            "lease": asdict(result.lease),
            "notes": result.notes,
            "preempted": asdict(result.preempted) if result.preempted else None,
        }

    @app.delete("/edge/leases/{lease_id}", tags=["edge"], dependencies=[need("operator")])
    async def end_lease(lease_id: str, request: Request) -> dict[str, Any]:
        """Release a lease now: the point returns to what it was."""
        return asdict(await platform.safety.release(lease_id, by=caller_name(request)))

    @app.get("/edge/overrides", tags=["edge"], dependencies=[need("viewer")])
    def list_overrides(all: bool = False) -> list[dict[str, Any]]:
        return [asdict(o) for o in platform.safety.store.overrides(time.time(), include_ended=all)]

    @app.post("/edge/overrides", status_code=201, tags=["edge"], dependencies=[need("operator")])
    def create_override(body: OverrideIn, request: Request) -> dict[str, Any]:
        """Lock a point or a whole device: no grid function can write it meanwhile."""
        o = platform.safety.lock(
            body.building,
            body.target,
            operator=caller_name(request),
            reason=body.reason,
            duration_s=body.duration_s,
        )
        return asdict(o)

    @app.delete("/edge/overrides/{override_id}", tags=["edge"], dependencies=[need("operator")])
    def end_override(override_id: str, request: Request) -> dict[str, Any]:
        return asdict(platform.safety.unlock(override_id, by=caller_name(request)))

    @app.get("/edge/audit", tags=["edge"], dependencies=[need("viewer")])
    def audit_log(
        point: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Every write, revert, refusal, lock and unlock: who, what, old, new, why, result."""
        return [
            asdict(e)
            for e in platform.safety.store.audit_log(point=point, actor=actor, since=since, limit=limit)
        ]

    # -- grid topology and grid functions ----------------------------------------------------
    runs: dict[str, dict[str, Any]] = {}
    stops: dict[str, asyncio.Event] = {}

    @app.post("/topology", tags=["grid"], dependencies=[need("operator")])
    async def upload_topology(file: UploadFile) -> dict[str, Any]:
        """Replace the grid topology (CSV id,kind,label,parent,rated_kva, or Turtle)."""
        from gridfunctions import load_topology, read_topology, topology_graph

        data = await file.read(10_000_001)
        name = file.filename or "topology.csv"
        base = settings.base_iri
        graph = topology_graph(Path(name), data=data, base_iri=base)
        triples = load_topology(platform.store, graph, base)
        topo = read_topology(platform.store, base)
        return {"triples": triples, "feeders": topo.feeders, "transformers": topo.transformers,
                "buildings": topo.building_parents}  # fmt: skip

    @app.get("/gridfunctions", tags=["grid"], dependencies=[need("viewer")])
    def list_gridfunctions() -> list[dict[str, Any]]:
        """Installed grid functions with their parameters (JSON schema), the SPARQL they bind
        to and the SHACL shape of what a building needs."""
        from gridfunctions import available

        return [
            {
                "name": name,
                "title": cls.title,
                "kinds": list(cls.kinds),
                "params": cls.Params.model_json_schema(),
                "requirements": cls.requirements(platform.ontology.index),
                "shape": cls.shape(),
            }
            for name, cls in available().items()
        ]

    @app.get("/gridfunctions/{name}/check", tags=["grid"], dependencies=[need("viewer")])
    def check_gridfunction(name: str, building: str) -> dict[str, Any]:
        """Can the function bind this building, and what is missing if not."""
        from gridfunctions import check, get

        return asdict(check(get(name), platform.store, platform.ontology, building, settings.base_iri))

    @app.post("/gridfunctions/{name}/plan", tags=["grid"], dependencies=[need("viewer")])
    async def plan_gridfunction(name: str, body: GridRunIn) -> dict[str, Any]:
        """What the function would do now; nothing is written."""
        from gridfunctions import get
        from gridfunctions._runner import prepare, select_buildings

        fn = get(name)
        chosen = select_buildings(platform, body.buildings, body.under)
        prepared = await prepare(platform, fn, body.params, chosen, load_kw=body.load_kw)
        return {
            "buildings": chosen,
            "actions": [asdict(a) for a in prepared.plan.actions],
            "report": prepared.plan.report,
            "read_errors": prepared.read_errors,
        }

    @app.post("/gridfunctions/{name}/run", status_code=202, tags=["grid"], dependencies=[need("operator")])
    async def run_gridfunction(name: str, body: GridRunIn) -> dict[str, Any]:
        """Run the function through the safety layer; poll ``/gridfunctions/runs/{run}``."""
        from gridfunctions import get, new_run_id
        from gridfunctions._runner import EventRun, event_progress, run, run_event, select_buildings

        fn = get(name)
        chosen = select_buildings(platform, body.buildings, body.under)
        fn.params(body.params)  # refuse bad parameters now, not in the background
        run_id = new_run_id()
        runs[run_id] = {"run": run_id, "function": name, "buildings": chosen, "status": "running"}

        async def once() -> None:
            try:
                _prepared, report = await run(
                    platform,
                    fn,
                    body.params,
                    chosen,
                    load_kw=body.load_kw,
                    dry_run=body.dry_run,
                    run_id=run_id,
                )
                runs[run_id].update(status="finished", result=asdict(report))
            except OsedError as exc:
                runs[run_id].update(status="failed", error=str(exc))

        async def event(duration_s: float) -> None:
            stop = asyncio.Event()
            stops[run_id] = stop

            def progress(state: EventRun) -> None:
                runs[run_id].update(event_progress(state))

            try:
                state = await run_event(
                    platform,
                    fn,
                    body.params,
                    chosen,
                    duration_s=duration_s,
                    step_s=body.step_s,
                    stop=stop,
                    dry_run=body.dry_run,
                    run_id=run_id,
                    load_kw=body.load_kw,
                    on_step=progress,
                )
                runs[run_id].update(event_progress(state))
            finally:
                stops.pop(run_id, None)

        task = asyncio.create_task(event(body.duration_s) if body.duration_s else once())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return runs[run_id]

    @app.get("/gridfunctions/runs/{run_id}", tags=["grid"], dependencies=[need("viewer")])
    def get_run(run_id: str) -> dict[str, Any]:
        if run_id not in runs:
            raise HTTPException(404, f"no run '{run_id}'")
        return runs[run_id]

    @app.delete("/gridfunctions/runs/{run_id}", tags=["grid"], dependencies=[need("operator")])
    async def stop_run(run_id: str, request: Request) -> dict[str, Any]:
        """End a run now: every lease it holds is released (the points return to what they were)."""
        if run_id not in runs:
            raise HTTPException(404, f"no run '{run_id}'")
        owner = f"gridfn:{runs[run_id]['function']}:{run_id}"
        if run_id in stops:
            stops[run_id].set()  # the event loop ends its run itself (finish, then release)
            for _ in range(300):
                if run_id not in stops:
                    break
                await asyncio.sleep(0.1)
        released = await platform.safety.release_owner(owner, by=caller_name(request), reason="run stopped")
        runs[run_id]["status"] = "stopped"
        return {"run": run_id, "released": [lease.id for lease in released]}

    # -- SPARQL 1.1 Protocol -----------------------------------------------------------------
    sparql_slots = ClientSlots(settings.api.sparql_per_client)
    sparql_threads: list[anyio.CapacityLimiter] = []

    def sparql_limiter() -> anyio.CapacityLimiter:
        """Threads of the SPARQL endpoint's own, apart from those every other route shares:
        queries waiting for a query worker never hold the threads pages are answered in."""
        if not sparql_threads:
            sparql_threads.append(anyio.CapacityLimiter(settings.store.query_workers + 8))
        return sparql_threads[0]

    def sparql_client(request: Request) -> str:
        """Whose queries count together against the per-client limit."""
        who, _role = caller(request)
        if who.startswith("anonymous"):
            return f"{who}@{request.client.host if request.client else ''}"
        return who

    def answer_query(query: str, accept: str | None, explicit: str | None) -> Response:
        result = platform.store.user_query(query)
        media = negotiate(accept, graph=result.kind == "graph", explicit=explicit)
        headers = {"X-OSED-Truncated": "true"} if result.truncated else {}
        return Response(serialize(result, media), media_type=media, headers=headers)

    def run_update(request: Request, update: str) -> Response:
        role = caller_role(request)
        if not settings.api.allow_sparql_update:
            raise HTTPException(403, "SPARQL update is disabled (api.allow_sparql_update)")
        if role != "admin":
            raise HTTPException(403, "SPARQL update needs the admin role")
        platform.store.update(update)
        return Response(status_code=204)

    async def run_sparql(
        request: Request, query: str | None, update: str | None, explicit: str | None
    ) -> Response:
        from starlette.concurrency import run_in_threadpool

        if update is not None:
            return await run_in_threadpool(run_update, request, update)
        if not query:
            raise HTTPException(400, "missing 'query' parameter")
        if is_update(query):
            raise QueryError("updates go in the 'update' parameter (and need the admin role)")
        client = await run_in_threadpool(sparql_client, request)
        try:
            with sparql_slots.hold(client):
                return await anyio.to_thread.run_sync(
                    answer_query, query, request.headers.get("accept"), explicit, limiter=sparql_limiter()
                )
        except TooManyAtOnce as exc:
            raise HTTPException(
                429,
                f"too many SPARQL queries at once ({exc}): wait for an answer before the next query",
                headers={"Retry-After": "1"},
            ) from None

    @app.get(
        "/sparql",
        tags=["sparql"],
        summary="SPARQL 1.1 query via GET",
        responses={429: {"description": "the client has api.sparql_per_client queries in progress"}},
    )
    async def sparql_get(request: Request, query: str | None = None, format: str | None = None) -> Response:
        return await run_sparql(request, query, None, format)

    @app.post("/sparql", tags=["sparql"], summary="SPARQL 1.1 query or update via POST")
    async def sparql_post(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        query = update = explicit = None
        if ctype == "application/sparql-query":
            query = (await request.body()).decode("utf-8", "replace")
        elif ctype == "application/sparql-update":
            update = (await request.body()).decode("utf-8", "replace")
        else:
            form = await request.form()
            q, u, f = form.get("query"), form.get("update"), form.get("format")
            query = q if isinstance(q, str) else None
            update = u if isinstance(u, str) else None
            explicit = f if isinstance(f, str) else None
        explicit = explicit or request.query_params.get("format")
        return await run_sparql(request, query, update, explicit)

    return app
