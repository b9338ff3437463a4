"""Dynamic tariff: schedule thermostats (first-order thermal model per zone, learned from
history or given), water heaters (tank energy and draw profile), batteries and EV charging
(energy by departure) to minimise cost within comfort and equipment bounds. Each asset is
one LP solved with HiGHS (scipy); the plan is recomputed every step (receding horizon) and
only its first step is acted on."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from gridfunctions._framework import Action, AssetState, GridFunction, GridState, Plan
from gridfunctions._shed import ShedBounds


class TariffParams(ShedBounds):
    prices: list[float] = Field(min_length=2, max_length=24 * 12, description="price per kWh for each step")
    step_s: float = Field(default=900, gt=0)
    outdoor_f: list[float] = Field(default_factory=lambda: [90.0], description="outdoor temperature per step")
    #: Comfort band of zones (°F) when the asset gives none.
    comfort_low_f: float = Field(default=70.0, ge=50, le=85)
    #: Default zone model T' = a T + (1-a) T_out - b P (per step) when none is given/learned.
    zone_a: float = Field(default=0.9, gt=0, lt=1)
    zone_b_f_per_kw: float = Field(default=0.8, gt=0)
    #: Water heaters: tank energy bounds and use per step (kWh) when the asset gives none.
    tank_kwh: float = Field(default=12.0, gt=0)
    draw_kwh: list[float] = Field(default_factory=lambda: [0.3])
    battery_kwh: float = Field(default=13.5, gt=0)
    battery_efficiency: float = Field(default=0.92, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> TariffParams:
        if self.comfort_low_f >= self.comfort_max_f:
            raise ValueError("comfort_low_f must be below comfort_max_f")
        return self


def fit_zone(temps: list[float], outdoor: list[float], power_kw: list[float]) -> tuple[float, float]:
    """(a, b) of T[t+1] = a T[t] + (1-a) T_out[t] - b P[t], least squares over history."""
    t, o, p = (np.asarray(x, dtype=float) for x in (temps, outdoor, power_kw))
    if len(t) < 3 or not (len(t) == len(o) == len(p)):
        raise ValueError("history needs at least 3 aligned samples of temperature, outdoor and power")
    y = t[1:] - o[:-1]
    x = np.column_stack([t[:-1] - o[:-1], -p[:-1]])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(min(max(a, 0.01), 0.999)), float(max(b, 1e-3))


def _series(values: list[float], n: int) -> np.ndarray:
    v = np.asarray(values or [0.0], dtype=float)
    return np.resize(v, n) if len(v) < n else v[:n]


class DynamicTariff(GridFunction):
    name = "dynamic-tariff"
    title = "Dynamic tariff scheduling"
    Params = TariffParams
    kinds = ("thermostat", "water_heater", "battery", "ev_charger")
    priority = 30

    def plan(self, state: GridState, params: Any) -> Plan:
        p: TariffParams = params
        prices = np.asarray(state.prices or p.prices, dtype=float)
        n = len(prices)
        dt_h = p.step_s / 3600
        actions: list[Action] = []
        cost = base_cost = 0.0
        schedules: dict[str, list[float]] = {}
        for s in state.assets:
            solved = self._solve(s, p, prices, dt_h, n)
            if solved is None:
                continue
            power, value, baseline = solved
            schedules[s.asset.id] = [round(float(x), 3) for x in power]
            cost += float(prices @ power) * dt_h
            base_cost += float(prices @ baseline) * dt_h
            if value is not None:
                a = s.asset
                actions.append(
                    Action(
                        a.building,
                        a.point,
                        a.id,
                        value,
                        "dynamic tariff",
                        float(power[0] - baseline[0]),
                        duration_s=p.step_s * 2,
                    )
                )
        return Plan(
            actions=actions,
            report={
                "cost": round(cost, 4),
                "baseline_cost": round(base_cost, 4),
                "saved": round(base_cost - cost, 4),
                "schedules_kw": schedules,
            },
        )

    def _solve(
        self, s: AssetState, p: TariffParams, prices: np.ndarray, dt_h: float, n: int
    ) -> tuple[np.ndarray, float | bool | None, np.ndarray] | None:
        kind = s.asset.kind
        if kind == "thermostat":
            return self._zone(s, p, prices, n)
        if kind == "water_heater":
            return self._tank(s, p, prices, dt_h, n)
        if kind == "battery":
            return self._battery(s, p, prices, dt_h, n)
        if kind == "ev_charger":
            return self._ev(s, p, prices, dt_h, n)
        return None

    def _zone(self, s: AssetState, p: TariffParams, prices: np.ndarray, n: int) -> Any:
        x = s.extra
        a, b = x.get("a", p.zone_a), x.get("b", p.zone_b_f_per_kw)
        low, high = x.get("low", p.comfort_low_f), x.get("high", p.comfort_max_f)
        t0 = x.get("zone_f", s.value if s.value is not None else (low + high) / 2)
        rated = s.asset.rated_kw
        out = _series(p.outdoor_f, n)
        # Variables: P[0..n-1], T[1..n]. T[t+1] - a T[t] + b P[t] = (1-a) out[t].
        m = lil_matrix((n, 2 * n))
        rhs = np.empty(n)
        for t in range(n):
            m[t, t] = b
            m[t, n + t] = 1.0
            if t > 0:
                m[t, n + t - 1] = -a
            rhs[t] = (1 - a) * out[t] + (a * t0 if t == 0 else 0.0)
        lo_t = min(low, t0) if t0 < low else low
        bounds = [(0, rated)] * n + [(lo_t, max(high, t0))] * n
        c = np.concatenate([prices, np.zeros(n)])
        res = linprog(c, A_eq=m.tocsr(), b_eq=rhs, bounds=bounds, method="highs")
        if res.status != 0:
            return None
        power = res.x[:n]
        temps = res.x[n:]
        # Baseline: a thermostat holding the middle of the band.
        mid = x.get("setpoint", (low + high) / 2)
        baseline = np.clip(((1 - a) * out + a * mid - mid) / b, 0, rated)
        setpoint = round(float(min(max(temps[0], low), high)), 1)
        return power, setpoint, baseline

    def _tank(self, s: AssetState, p: TariffParams, prices: np.ndarray, dt_h: float, n: int) -> Any:
        x = s.extra
        cap = x.get("cap_kwh", p.tank_kwh)
        e_min = x.get("min_kwh", 0.2 * cap)
        e0 = min(max(x.get("energy_kwh", 0.8 * cap), 0.0), cap)
        draw = _series([x["draw_kwh"]] if "draw_kwh" in x else p.draw_kwh, n)
        rated = s.asset.rated_kw
        # E[t+1] = E[t] + P dt - draw  ->  cumulative: E0 + dt*cumsum(P) - cumsum(draw) in [e_min, cap].
        lower = np.tril(np.ones((n, n))) * dt_h
        cum_draw = np.cumsum(draw)
        a_ub = np.vstack([lower, -lower])
        b_ub = np.concatenate([cap - e0 + cum_draw, -(e_min - e0 + cum_draw)])
        res = linprog(prices, A_ub=a_ub, b_ub=b_ub, bounds=[(0, rated)] * n, method="highs")
        if res.status != 0:
            return None
        power = res.x
        baseline = np.minimum(draw / dt_h, rated)  # reheat as water is used
        on = power[0] > rated * 0.5
        if "Setpoint" in s.asset.point_class:
            value: float | bool = (
                p.tank_min_f + p.water_offset_f if not on else max(p.tank_min_f + p.water_offset_f, 140.0)
            )
            if s.asset.maximum is not None:
                value = min(float(value), s.asset.maximum)
        else:
            value = bool(on)
        return power, value, baseline

    def _battery(self, s: AssetState, p: TariffParams, prices: np.ndarray, dt_h: float, n: int) -> Any:
        x = s.extra
        cap = x.get("cap_kwh", p.battery_kwh)
        soc0 = x.get("soc_kwh", 0.5 * cap)
        rated = s.asset.rated_kw
        eff = p.battery_efficiency
        # Variables: charge C[t] >= 0, discharge D[t] >= 0; SoC = soc0 + dt*cumsum(eff C - D/eff).
        lower = np.tril(np.ones((n, n))) * dt_h
        a_soc = np.hstack([lower * eff, -lower / eff])
        a_ub = np.vstack([a_soc, -a_soc])
        b_ub = np.concatenate([np.full(n, cap - soc0), np.full(n, soc0 - 0.1 * cap)])
        wear = 0.01
        c = np.concatenate([prices + wear, -prices + wear])
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=[(0, rated)] * (2 * n), method="highs")
        if res.status != 0:
            return None
        power = res.x[:n] - res.x[n:]  # net draw from the grid
        value = round(float(res.x[n] - res.x[0]), 2) if "Setpoint" in s.asset.point_class else None
        return power, value, np.zeros(n)

    def _ev(self, s: AssetState, p: TariffParams, prices: np.ndarray, dt_h: float, n: int) -> Any:
        x = s.extra
        rated = s.asset.rated_kw
        arrive = int(x.get("arrive_step", 0))
        depart = int(min(x.get("depart_step", n), n))
        need = x.get("need_kwh", rated * dt_h * max(1, (depart - arrive) // 2))
        bounds = [(0, rated if arrive <= t < depart else 0) for t in range(n)]
        need = min(need, rated * dt_h * max(0, depart - arrive))
        res = linprog(prices, A_ub=-np.ones((1, n)) * dt_h, b_ub=[-need], bounds=bounds, method="highs")
        if res.status != 0:
            return None
        power = res.x
        baseline = np.zeros(n)
        left = need
        for t in range(arrive, depart):  # charge at full rate on arrival until done
            baseline[t] = min(rated, left / dt_h)
            left -= baseline[t] * dt_h
        amps = s.asset.maximum or 32.0
        value: float | None = None
        if "Limit" in s.asset.point_class or "Setpoint" in s.asset.point_class:
            floor = s.asset.minimum if s.asset.minimum is not None else 6.0
            value = round(max(floor, amps * power[0] / rated), 1) if power[0] > 1e-6 else floor
        return power, value, baseline


__all__ = ["DynamicTariff", "TariffParams", "fit_zone"]
