"""The VEN's signal-to-function table: which OpenADR signal runs which grid function with
which parameters. Kept as data (a JSON file can replace it, ``openadr.signal_table``) so a
utility's program can be mapped without code, and so an OpenADR 3 VEN can reuse it
(docs/openadr.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import OsedError

#: How a signal's payload becomes the function's parameter.
PAYLOAD_PARAMS = ("shed_share", "shed_kw", "limit_kw", "limit_share", "prices")

DEFAULT_TABLE: list[dict[str, Any]] = [
    # SIMPLE levels 0..3 (normal, moderate, high, special): shed that share of the flexibility.
    {"signal": "SIMPLE", "function": "demand-response", "param": "shed_share",
     "levels": {"0": 0.0, "1": 0.33, "2": 0.66, "3": 1.0}, "step_s": 60},
    # Prices for each interval: a receding-horizon schedule.
    {"signal": "ELECTRICITY_PRICE", "function": "dynamic-tariff", "param": "prices", "step_s": 900},
    # A load the site may draw (kW): a capacity limit; a reduction (kW): demand response.
    {"signal": "LOAD_DISPATCH", "type": "setpoint", "function": "capacity-limit", "param": "limit_kw",
     "step_s": 60},
    {"signal": "LOAD_DISPATCH", "type": "delta", "function": "demand-response", "param": "shed_kw",
     "step_s": 60},
    # Load-control capacity (share of the load when the event begins).
    {"signal": "LOAD_CONTROL", "type": "x-loadControlCapacity", "function": "capacity-limit",
     "param": "limit_share", "step_s": 60},
]  # fmt: skip


@dataclass(frozen=True)
class Rule:
    signal: str
    function: str
    param: str
    type: str | None = None  # None: any signal type
    levels: dict[str, float] = field(default_factory=dict)
    step_s: float = 60.0
    #: Fixed parameters added to every run of this rule.
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, name: str, type_: str) -> bool:
        return self.signal == name and (self.type is None or self.type == type_)


def load_table(path: Path | None = None) -> list[Rule]:
    """The default table, or the one in ``path`` (a JSON list of the same objects)."""
    rows: Any = DEFAULT_TABLE
    where = "the default signal table"
    if path is not None:
        where = str(path)
        try:
            rows = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise OsedError(f"{path}: cannot read the OpenADR signal table: {exc}") from None
    if not isinstance(rows, list):
        raise OsedError(f"{where}: the signal table must be a JSON list")
    rules = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise OsedError(f"{where}: entry {i} is not an object")
        for key in ("signal", "function", "param"):
            if not isinstance(row.get(key), str):
                raise OsedError(f"{where}: entry {i}: field '{key}' is missing")
        if row["param"] not in PAYLOAD_PARAMS:
            raise OsedError(f"{where}: entry {i}: field 'param' must be one of {', '.join(PAYLOAD_PARAMS)}")
        unknown = set(row) - {"signal", "type", "function", "param", "levels", "step_s", "params"}
        if unknown:
            raise OsedError(f"{where}: entry {i}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            rules.append(
                Rule(
                    row["signal"],
                    row["function"],
                    row["param"],
                    row.get("type"),
                    {str(k): float(v) for k, v in (row.get("levels") or {}).items()},
                    float(row.get("step_s", 60.0)),
                    dict(row.get("params") or {}),
                )
            )
        except (TypeError, ValueError) as exc:
            raise OsedError(f"{where}: entry {i}: {exc}") from None
    return rules


@dataclass(frozen=True)
class Interval:
    start: datetime
    duration: timedelta
    value: float

    @property
    def end(self) -> datetime:
        return self.start + self.duration


@dataclass
class Translation:
    """What an event means for the building: run ``function`` from ``start`` to ``end``,
    with parameters that follow the signal's intervals."""

    event_id: str
    modification: int
    rule: Rule
    intervals: list[Interval]
    start: datetime
    end: datetime
    static: dict[str, Any]

    def params_at(self, when: datetime, *, load_kw: float | None = None) -> dict[str, Any]:
        """The function's parameters at ``when`` (the interval in force then)."""
        now = next((iv for iv in self.intervals if iv.start <= when < iv.end), self.intervals[-1])
        rule = self.rule
        out = {**self.static, **rule.params}
        if rule.param == "shed_share":
            key = str(int(now.value)) if float(now.value).is_integer() else str(now.value)
            out["shed_share"] = (
                rule.levels.get(key, min(1.0, max(0.0, now.value))) if rule.levels else now.value
            )
            out.setdefault("duration_s", self._left(when))
        elif rule.param == "shed_kw":
            out["shed_kw"] = now.value
            out.setdefault("duration_s", self._left(when))
        elif rule.param == "limit_kw":
            out["limit_kw"] = now.value
            out.setdefault("event_s", self._left(when))
        elif rule.param == "limit_share":
            if not load_kw:
                raise OsedError("a load-control capacity needs the building's measured load")
            out["limit_kw"] = now.value * load_kw
            out.setdefault("event_s", self._left(when))
        elif rule.param == "prices":
            ahead = [iv for iv in self.intervals if iv.end > when]
            step = min(iv.duration for iv in ahead).total_seconds()
            prices: list[float] = []
            for iv in ahead:
                prices += [iv.value] * max(1, round(iv.duration.total_seconds() / step))
            if len(prices) < 2:
                prices = prices * 2
            out["prices"] = prices[: 24 * 12]
            out["step_s"] = step
        return out

    def _left(self, when: datetime) -> float:
        return max(1.0, min(24 * 3600.0, (self.end - when).total_seconds()))


def translate(
    event: dict[str, Any], rules: list[Rule], default_static: dict[str, Any] | None = None
) -> Translation:
    """An openleadr event dict -> Translation; OsedError saying why when it cannot be run
    (no signal, unknown signal, no intervals, payloads that are not numbers)."""
    try:
        descriptor = event["event_descriptor"]
        event_id = str(descriptor["event_id"])
        modification = int(descriptor.get("modification_number") or 0)
        signals = event["event_signals"]
        if isinstance(signals, dict):
            signals = signals.get("event_signals", [signals])
    except (KeyError, TypeError, ValueError) as exc:
        raise OsedError(f"malformed event: {exc!r} missing or wrong") from None
    if not signals:
        raise OsedError(f"event {event_id}: no signal")
    reasons = []
    for signal in signals:
        name = str(signal.get("signal_name", ""))
        type_ = str(signal.get("signal_type", ""))
        rule = next((r for r in rules if r.matches(name, type_)), None)
        if rule is None:
            reasons.append(f"signal {name}/{type_} is not in the signal table")
            continue
        intervals = _intervals(event_id, event, signal)
        return Translation(
            event_id,
            modification,
            rule,
            intervals,
            intervals[0].start,
            intervals[-1].end,
            dict(default_static or {}),
        )
    raise OsedError(f"event {event_id}: " + "; ".join(reasons))


def _intervals(event_id: str, event: dict[str, Any], signal: dict[str, Any]) -> list[Interval]:
    active = event.get("active_period") or {}
    start = active.get("dtstart")
    if not isinstance(start, datetime):
        raise OsedError(f"event {event_id}: the active period has no start")
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    raw = signal.get("intervals") or []
    if not raw:
        raise OsedError(f"event {event_id}: signal {signal.get('signal_name')} has no intervals")
    out = []
    at = start
    for i, iv in enumerate(sorted(raw, key=lambda x: int(x.get("uid", 0) or 0))):
        duration = iv.get("duration")
        value = iv.get("signal_payload")
        if not isinstance(duration, timedelta) or duration.total_seconds() <= 0:
            raise OsedError(f"event {event_id}: interval {i} has no duration")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OsedError(f"event {event_id}: interval {i} payload {value!r} is not a number")
        begins = iv.get("dtstart") if isinstance(iv.get("dtstart"), datetime) else at
        if begins.tzinfo is None:
            begins = begins.replace(tzinfo=UTC)
        out.append(Interval(begins, duration, float(value)))
        at = begins + duration
    return out
