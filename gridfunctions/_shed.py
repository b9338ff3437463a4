"""How much load each kind of asset can give up now, and the value that does it, within the
customer's comfort and service bounds."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from gridfunctions._assets import KINDS
from gridfunctions._framework import AssetState


class ShedBounds(BaseModel):
    """Comfort and minimum-service bounds a curtailment must respect."""

    #: Cooling setpoints go up by at most this much, and never above comfort_max_f.
    setpoint_offset_f: float = Field(default=4.0, ge=0, le=10)
    comfort_max_f: float = Field(default=80.0, ge=60, le=90)
    #: Water heaters: setpoint lowered by at most this much, never below tank_min_f.
    water_offset_f: float = Field(default=15.0, ge=0, le=40)
    tank_min_f: float = Field(default=110.0, ge=90, le=140)
    #: EV chargers keep at least this share of their current charging rate.
    min_service: float = Field(default=0.3, ge=0, le=1)
    #: HVAC fans/pumps slow down by at most this share (power ~ speed^3).
    hvac_speed_cut: float = Field(default=0.3, ge=0, le=0.8)
    #: Equipment on/off commands may be used to shed (off) — only where the site agrees.
    allow_switch_off: bool = False
    #: How fast a zone warms with its cooling held off (°F per minute): how long a raised
    #: setpoint keeps an air conditioner off.
    zone_warm_f_per_min: float = Field(default=0.1, gt=0, le=2)


@dataclass(frozen=True)
class ShedOption:
    value: float | bool
    kw: float  # load given up (positive)


#: The kinds a load-shedding function binds to, least noticeable to the customer first.
SHEDDABLE = ("water_heater", "ev_charger", "battery", "thermostat", "hvac")
#: Lower sheds first.
KIND_ORDER = {**{kind: i for i, kind in enumerate(SHEDDABLE)}, "pv": 9}


def shed_option(s: AssetState, b: ShedBounds, window_s: float = 0.0) -> ShedOption | None:
    """The value that sheds load on this asset and the kW it gives up: right now
    (``window_s`` 0), or on average over a window (a thermostatic load that is off now
    still skips its next cycles; a raised setpoint holds only until the zone warms up)."""
    a = s.asset
    cls = a.point_class
    average = max(s.power_kw * 0.5, KINDS[a.kind].duty * a.rated_kw)
    if a.kind == "thermostat":
        current = s.value if s.value is not None else 74.0
        ceiling = a.maximum if a.maximum is not None else 1e9
        target = min(current + b.setpoint_offset_f, b.comfort_max_f, ceiling)
        if target <= current:
            return None
        if window_s <= 0:
            return ShedOption(round(target, 1), s.power_kw) if s.power_kw > 0 else None
        held_s = (target - current) / b.zone_warm_f_per_min * 60
        return ShedOption(round(target, 1), average * min(1.0, held_s / window_s))
    if a.kind == "water_heater":
        kw = s.power_kw if window_s <= 0 else average
        if "Setpoint" in cls:
            current = s.value if s.value is not None else 125.0
            floor = max(b.tank_min_f, a.minimum if a.minimum is not None else -1e9)
            target = max(current - b.water_offset_f, floor)
            if target >= current or kw <= 0:
                return None
            return ShedOption(round(target, 1), kw)
        return ShedOption(False, kw) if kw > 0 else None
    if a.kind == "ev_charger":
        if "Limit" in cls or "Setpoint" in cls:
            current = s.value if s.value is not None else (a.maximum or 32.0)
            floor = a.minimum if a.minimum is not None else 6.0
            target = max(floor, current * b.min_service)
            if target >= current or s.power_kw <= 0:
                return None
            return ShedOption(round(target, 1), s.power_kw * (1 - target / current))
        return None  # stopping a charge outright is not a minimum service
    if a.kind == "battery":
        if "Setpoint" in cls:
            rated = a.maximum if a.maximum is not None else a.rated_kw
            return ShedOption(round(rated, 2), rated) if rated > 0 else None
        return None
    if a.kind == "hvac":
        if ("Speed" in cls or "Frequency" in cls) and s.value is not None and s.value > 0:
            target = s.value * (1 - b.hvac_speed_cut)
            if a.minimum is not None:
                target = max(target, a.minimum)
            return ShedOption(round(target, 1), s.power_kw * (1 - (target / s.value) ** 3))
        if b.allow_switch_off and ("Enable" in cls or "Start_Stop" in cls):
            return ShedOption(False, s.power_kw)
    return None
