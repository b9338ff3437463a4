"""The building side of OpenADR 2.0b: an openleadr VEN that registers with a VTN, polls,
turns each event into a grid-function event run through the signal table, opts in or out
according to what the building can do, and reports its power and available flexibility.

Events run on the VEN's own clock: an event that ends while the VTN is unreachable still
ends (its run stops and every lease is released), and leases are cut to the event end in
the safety layer too. Cancelling or modifying an event stops its run at once (leases
released); a modified event is then considered again as new."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from openleadr import OpenADRClient, objects

from core.errors import EdgeError, OsedError
from edge.openadr.signals import Rule, Translation, load_table, translate

if TYPE_CHECKING:
    from api._service import Platform

log = logging.getLogger("osed.openadr.ven")
_TYPE = re.compile(rb"<(?:\w+:)?(oadr\w+)[\s>]")


def message_type(xml: str | bytes) -> str:
    """The OpenADR message name inside a payload (the first ``oadrX`` element that is not
    the envelope), for the exchange log."""
    data = xml.encode() if isinstance(xml, str) else xml
    names = [m.decode() for m in _TYPE.findall(data[:4000])]
    names = [n for n in names if n not in ("oadrPayload", "oadrSignedObject")]
    return names[0] if names else "?"


@dataclass
class EventState:
    event_id: str
    modification: int
    function: str | None
    opt: str  # optIn / optOut
    reason: str
    start: datetime | None = None
    end: datetime | None = None
    status: str = "scheduled"  # scheduled, running, finished, cancelled, stopped, refused, failed
    run_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Client(OpenADRClient):
    """openleadr's client, polling with backoff while the VTN is unreachable."""

    def __init__(self, *args: Any, retry_max_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_max_s = retry_max_s
        self.failures = 0
        self.retry_at = 0.0

    async def poll(self) -> tuple[Any, Any]:
        if time.monotonic() < self.retry_at:
            return None, {}
        response = await super().poll()
        if response is None or response[0] is None:
            self.failures += 1
            delay = min(self.retry_max_s, 2.0 ** min(self.failures, 16))
            self.retry_at = time.monotonic() + delay
            log.warning(
                "VTN %s unreachable (%d in a row); next poll in %.0f s", self.vtn_url, self.failures, delay
            )
            return None, {}
        if self.failures:
            log.info("VTN %s reachable again after %d failed polls", self.vtn_url, self.failures)
        self.failures = 0
        return response


class Ven:
    """One VEN for one or more stored buildings."""

    def __init__(
        self,
        platform: Platform,
        *,
        vtn_url: str,
        ven_name: str,
        buildings: list[str],
        rules: list[Rule] | None = None,
        dry_run: bool | None = None,
    ) -> None:
        if not buildings:
            raise OsedError("a VEN needs at least one building (--building)")
        self.platform = platform
        self.settings = platform.settings.openadr
        self.vtn_url = vtn_url.rstrip("/")
        self.ven_name = ven_name
        self.buildings = sorted(buildings)
        self.rules = rules if rules is not None else load_table(self.settings.signal_table)
        self.dry_run = dry_run if dry_run is not None else self.settings.dry_run
        self.events: dict[str, EventState] = {}
        self.client: _Client | None = None
        self.registered = asyncio.Event()
        self._flex_cache: tuple[float, float] = (0.0, 0.0)

    # -- connection -----------------------------------------------------------------------
    def _new_client(self) -> _Client:
        s = self.settings
        client = _Client(
            self.ven_name,
            self.vtn_url,
            ven_id=s.ven_id,
            cert=str(s.cert) if s.cert else None,
            key=str(s.key) if s.key else None,
            passphrase=s.passphrase,
            ca_file=str(s.ca_file) if s.ca_file else None,
            vtn_fingerprint=s.vtn_fingerprint,
            show_fingerprint=False,
            retry_max_s=s.retry_max_s,
        )
        client.on_event = self.on_event
        client.on_update_event = self.on_update_event
        client.add_hook("before_send_xml", lambda xml: log.info("VEN -> VTN %s", message_type(xml)))
        client.add_hook("after_receive_xml", lambda xml: log.info("VTN -> VEN %s", message_type(xml)))
        sampling = objects.SamplingRate(
            min_period=timedelta(seconds=s.report_min_s), max_period=timedelta(hours=1), on_change=False
        )
        resource = ",".join(self.buildings)
        for r_id, callback, measurement in (
            ("power", self.power_kw, "power_real"),
            ("flexibility", self.flexibility_kw, "availableFlexibility"),
        ):
            client.add_report(
                callback=callback,
                resource_id=resource,
                measurement=measurement,
                unit="W",
                scale="k",
                report_specifier_id="osed-telemetry",
                r_id=r_id,
                sampling_rate=sampling,
                report_duration=timedelta(hours=1),
            )
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Register (retrying with backoff while the VTN is unreachable), then serve until
        ``stop``; at the end every event run is stopped and its leases released."""
        delay = 1.0
        try:
            while not stop.is_set():
                client = self._new_client()
                try:
                    await client.run()
                except Exception as exc:  # noqa: BLE001 - openleadr raises anything on a bad peer
                    log.warning("registration with %s failed: %s", self.vtn_url, exc)
                if client.registration_id:
                    self.client = client
                    self.registered.set()
                    log.info(
                        "registered with %s as ven_id %s (registration %s); polling every %s",
                        self.vtn_url,
                        client.ven_id,
                        client.registration_id,
                        client.poll_frequency,
                    )
                    await stop.wait()
                    break
                with contextlib.suppress(Exception):
                    await client.stop()
                log.warning(
                    "VTN %s not reachable or refused registration; retry in %.0f s", self.vtn_url, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(self.settings.retry_max_s, delay * 2)
        finally:
            await self.close()

    async def close(self) -> None:
        for state in self.events.values():
            state.stop.set()
        tasks = [s.task for s in self.events.values() if s.task is not None and not s.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.stop()
            self.client = None

    # -- events ---------------------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> str:
        """A new event: opt in and schedule its run, or opt out saying why. Never raises."""
        try:
            return await self._consider(event)
        except Exception as exc:  # noqa: BLE001 - a malformed payload must not crash the VEN
            event_id = _event_id(event)
            log.warning("event %s: opted out: cannot handle it: %r", event_id, exc)
            self.events[event_id] = EventState(event_id, 0, None, "optOut", f"cannot handle it: {exc}")
            return "optOut"

    async def on_update_event(self, event: dict[str, Any]) -> str:
        """A cancelled or modified event: its run stops at once (leases released); a
        modification is then considered again."""
        event_id = _event_id(event)
        status = str((event.get("event_descriptor") or {}).get("event_status", ""))
        old = self.events.get(event_id)
        if old is not None:
            await self._stop(old, "cancelled" if status == "cancelled" else "stopped")
        if status == "cancelled":
            log.info("event %s cancelled: run stopped, leases released", event_id)
            return old.opt if old is not None else "optOut"
        log.info("event %s modified: run stopped, leases released; considering it again", event_id)
        return await self.on_event(event)

    async def _stop(self, state: EventState, status: str) -> None:
        if state.status in ("scheduled", "running"):
            state.status = status
        state.stop.set()
        if state.task is not None and not state.task.done():
            await asyncio.gather(state.task, return_exceptions=True)

    async def _consider(self, event: dict[str, Any]) -> str:
        from gridfunctions import get

        status = str((event.get("event_descriptor") or {}).get("event_status", ""))
        try:
            tr = translate(event, self.rules)
        except OsedError as exc:
            event_id = _event_id(event)
            log.warning("event %s: opted out: %s", event_id, exc)
            self.events[event_id] = EventState(event_id, 0, None, "optOut", str(exc))
            return "optOut"
        state = EventState(tr.event_id, tr.modification, tr.rule.function, "optOut", "", tr.start, tr.end)
        self.events[tr.event_id] = state
        if status in ("cancelled", "completed") or tr.end <= datetime.now(UTC):
            state.status, state.reason = "refused", f"event is {status or 'over'}"
            log.info("event %s: opted out: %s", tr.event_id, state.reason)
            return "optOut"
        try:
            fn = get(tr.rule.function)
        except OsedError as exc:
            state.status, state.reason = "refused", str(exc)
            log.warning("event %s: opted out: %s", tr.event_id, exc)
            return "optOut"
        able, why = await self._able(fn, tr)
        if not able:
            state.status, state.reason = "refused", why
            log.info("event %s (%s): opted out: %s", tr.event_id, fn.name, why)
            return "optOut"
        state.opt, state.reason = "optIn", why
        state.task = asyncio.get_running_loop().create_task(self._run(state, tr))
        log.info(
            "event %s: opted in: %s from %s to %s (%s)",
            tr.event_id,
            fn.name,
            tr.start.isoformat(),
            tr.end.isoformat(),
            why,
        )
        return "optIn"

    async def _able(self, fn: Any, tr: Translation) -> tuple[bool, str]:
        """Can the buildings bind the function, and is there flexibility to offer?"""
        from gridfunctions._framework import bind

        p = self.platform
        missing = []
        assets = 0
        for b in self.buildings:
            result, bound = bind(fn, p.store, p.ontology, b, p.settings.base_iri)
            if result.bindable:
                assets += len(bound)
            else:
                missing.append(f"{b}: {'; '.join(result.missing) or 'no controllable asset'}")
        if missing:
            return False, "cannot bind " + fn.name + " | " + " | ".join(missing)
        flex = await self.flexibility_kw(fresh=True)
        if fn.name in ("demand-response", "capacity-limit") and flex <= 0:
            return False, f"{assets} assets but no flexibility to offer now"
        return True, f"{assets} assets, {flex:.1f} kW flexible"

    async def _run(self, state: EventState, tr: Translation) -> None:
        from gridfunctions import get
        from gridfunctions._runner import event_progress, run_event

        fn = get(tr.rule.function)
        wait = (tr.start - datetime.now(UTC)).total_seconds()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.stop.wait(), wait)
            if state.stop.is_set():
                return
        left = (tr.end - datetime.now(UTC)).total_seconds()
        if left <= 0:
            state.status = "finished"
            return
        load = None
        if tr.rule.param == "limit_share":
            load = await self.power_kw()

        def params(now: float) -> dict[str, Any]:
            return tr.params_at(datetime.fromtimestamp(now, UTC), load_kw=load)

        if state.status != "scheduled":
            return
        state.status = "running"
        state.run_id = f"oadr-{tr.event_id}-{tr.modification}"
        log.info("event %s: %s running for %.0f s (run %s)", tr.event_id, fn.name, left, state.run_id)

        def progress(run: Any) -> None:
            state.result = event_progress(run)

        run = await run_event(
            self.platform,
            fn,
            params,
            self.buildings,
            duration_s=left,
            step_s=tr.rule.step_s,
            stop=state.stop,
            dry_run=self.dry_run,
            run_id=state.run_id,
            on_step=progress,
        )
        state.result = event_progress(run)
        if run.status == "failed":
            state.status = "failed"
            log.warning("event %s: run failed: %s", tr.event_id, run.error)
        elif state.status == "running":
            state.status = "finished" if run.status == "finished" else "stopped"
        log.info(
            "event %s: run %s %s; %d writes, %d leases released",
            tr.event_id,
            state.run_id,
            state.status,
            run.written,
            run.released,
        )

    # -- reports --------------------------------------------------------------------------
    async def power_kw(self) -> float:
        """The buildings' power now: their main meters, else the sum of their assets."""
        from gridfunctions._runner import measure_load

        try:
            load, _errors = await measure_load(self.platform, self.buildings)
        except (OsedError, EdgeError) as exc:
            log.warning("power report: %s", exc)
            load = None
        if load is None:
            states = await self._states()
            load = sum(s.power_kw for s in states)
        return round(float(load), 3)

    async def flexibility_kw(self, fresh: bool = False) -> float:
        """What the buildings could shed now (the demand-response planner's available kW)."""
        at, value = self._flex_cache
        if not fresh and time.monotonic() - at < 5:
            return value
        from gridfunctions import GridState, get

        fn = get("demand-response")
        states = await self._states()
        plan = fn.plan(
            GridState(now=time.time(), assets=states), fn.params({"shed_share": 1.0, "duration_s": 3600})
        )
        value = round(float(plan.report["available_kw"]), 3)
        self._flex_cache = (time.monotonic(), value)
        return value

    async def _states(self) -> list[Any]:
        from gridfunctions import get
        from gridfunctions._framework import bind, read_state

        p = self.platform
        fn = get("demand-response")
        assets = [a for b in self.buildings for a in bind(fn, p.store, p.ontology, b, p.settings.base_iri)[1]]
        states, _errors = await read_state(assets, p.safety.read)
        return states


def _event_id(event: Any) -> str:
    try:
        return str(event["event_descriptor"]["event_id"])
    except (KeyError, TypeError):
        return "?"
