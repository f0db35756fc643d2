"""Market shocks: deterministic transforms of a block of market paths (the stresses' shocks).

A `Shock` (read from a stress file by `simkit.scenario.load_stress`) is one or more components,
each starting on a trading day `day`; `apply_shock` applies it to every path's arrays. The
semantics of each component are in `simkit.stress`'s docstring (the shock library's
documentation); this module is the arithmetic, NumPy only (no JAX), so that reading a stress
file loads neither JAX nor the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from simkit.schema.market import garch_persistence

__all__ = [
    "BASELINE",
    "DT",
    "LIQUIDITY_FIELDS",
    "SIGNAL_FIELDS",
    "IVShock",
    "RealizedVolShock",
    "SetShock",
    "Shock",
    "SpotShock",
    "StressSpec",
    "ThesisShock",
    "apply_shock",
    "expected_variance",
    "ramp",
]

BASELINE = "none"  # the reserved name of the unstressed run (a stress file cannot take it)
DT = 1.0 / 252.0  # years per step
LIQUIDITY_FIELDS = ("bid_ask_spread", "open_interest", "option_volume", "liquidity_score")
SIGNAL_FIELDS = ("short_interest", "vix", "btc_correlation", "borrow_cost", "volume_ratio")


# --------------------------------------------------------------------------- the shocks


@dataclasses.dataclass(frozen=True)
class SpotShock:
    """A level shift of the spot: `(1 + change) ** w(t)` from `day` on."""

    day: int  # first trading day of the move, >= 1
    change: float  # fraction, > -1 (-0.6 = -60 %)
    days: int = 1  # trading days the move is spread over (1: a gap)


@dataclasses.dataclass(frozen=True)
class RealizedVolShock:
    """The spot's log-return deviations scaled by `scale` from `day` on."""

    day: int
    scale: float  # > 0 (2.0 doubles the realized volatility)


@dataclasses.dataclass(frozen=True)
class IVShock:
    """IV multiplied by `multiply ** w(t)`, or brought to `level` over `days` (one of the two)."""

    day: int
    multiply: float | None = None  # > 0
    level: float | None = None  # annual fraction, > 0 (1.0 = 100 %)
    days: int = 1


@dataclasses.dataclass(frozen=True)
class SetShock:
    """Market inputs replaced by constants from `day` on."""

    day: int
    values: tuple[tuple[str, float], ...]  # (market field, value), e.g. ("bid_ask_spread", 0.5)


@dataclasses.dataclass(frozen=True)
class ThesisShock:
    """A thesis-break event on `day`."""

    day: int


@dataclasses.dataclass(frozen=True)
class Shock:
    """A stress's market shock: any of its components (None: not shocked)."""

    realized_vol: RealizedVolShock | None = None
    spot: SpotShock | None = None
    iv: IVShock | None = None
    liquidity: SetShock | None = None
    signals: SetShock | None = None
    thesis: ThesisShock | None = None

    def components(self) -> list[Any]:
        return [getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name)]

    @property
    def first_day(self) -> int:
        """The earliest day any component starts (-1 for no shock)."""
        days = [c.day for c in self.components()]
        return min(days) if days else -1

    @property
    def last_day(self) -> int:
        """The latest day any component starts (-1 for no shock)."""
        days = [c.day for c in self.components()]
        return max(days) if days else -1


@dataclasses.dataclass(frozen=True)
class StressSpec:
    """One stress of the library: its name (the file's stem), what it is, its shock."""

    name: str
    description: str
    shock: Shock
    path: str | None = None  # the file it was read from


def ramp(n_days: int, day: int, days: int) -> np.ndarray:
    """`w(t)` for `t = 0 ... n_days - 1`: 0 before `day`, rising linearly to 1 on day
    `day + days - 1`, 1 after (float64, `(n_days,)`)."""
    t = np.arange(n_days, dtype=np.float64)
    return np.clip((t - day + 1.0) / float(days), 0.0, 1.0)


def _from(n_days: int, day: int) -> np.ndarray:
    """`(n_days,)` bool: steps on or after `day`."""
    return np.arange(n_days) >= day


def expected_variance(mkt: Any, steps: np.ndarray, dt: float = DT) -> np.ndarray:
    """E[v] (annual) of the diffusion behind the log return of each step in `steps` (the
    return from step t - 1 to t), under the market's own law: `sigma^2` for GBM and Merton (and
    a history, read through its moments); for Heston and Bates the CIR mean at the step's
    middle, `theta_v + (v0 - theta_v) e^{-kappa_v (t - 1/2) dt}`; for GJR-GARCH the mean of the
    day's conditional variance, `252 (h_bar + p^{t-1} (h_1 - h_bar))` with `h_1 = v0 dt`,
    persistence `p = alpha + gamma / 2 + beta` and `h_bar = omega / (1 - p)`."""
    t = np.asarray(steps, dtype=np.float64)
    model = getattr(mkt, "model", "gbm")
    if model in ("heston", "bates"):
        theta, v0, kappa = float(mkt.theta_v), float(mkt.v0), float(mkt.kappa_v)
        return theta + (v0 - theta) * np.exp(-kappa * (t - 0.5) * dt)
    if model == "garch":
        p = float(garch_persistence(mkt.garch_alpha, mkt.garch_gamma, mkt.garch_beta))
        h_bar = float(mkt.garch_omega) / (1.0 - p)
        h_1 = float(mkt.v0) * dt
        return (h_bar + p ** np.maximum(t - 1.0, 0.0) * (h_1 - h_bar)) / dt
    return np.full(t.shape, float(mkt.sigma) ** 2)


def apply_shock(
    market: Mapping[str, Any], shock: Shock, mkt: Any, dt: float = DT
) -> dict[str, np.ndarray]:
    """The shocked market: `market`'s arrays with `shock` applied (module docstring).

    Args:
      market: market inputs, each `(paths, steps + 1)` (NumPy or JAX arrays; the names of
        `simkit.paths.market.Market`; fields the shock does not touch are passed through).
      shock: the shock.
      mkt: the `MarketParams` the paths were generated with (the drift `mu`/`rate` and the
        variance law, `expected_variance`, for the realized-vol shock).
      dt: years per step. Default value: 1/252.

    Returns:
      a new dict of NumPy arrays, each in its input's dtype; the input is not modified.
    """
    out = {name: np.array(value) for name, value in market.items()}
    spot = out["spot"]
    n_days = spot.shape[-1]
    dtype = spot.dtype

    if shock.realized_vol is not None and shock.realized_vol.day < n_days:
        c = shock.realized_vol
        log_spot = np.log(spot.astype(np.float64))
        returns = np.diff(log_spot, axis=-1)[..., c.day - 1 :]  # r_day ... r_N
        drift = float(mkt.rate if getattr(mkt, "risk_neutral", False) else mkt.mu)
        variance = expected_variance(mkt, np.arange(c.day, n_days), dt)  # of r_day ... r_N
        mean = (drift - 0.5 * variance) * dt
        mean_k = (drift - 0.5 * c.scale**2 * variance) * dt
        scaled = mean_k + c.scale * (returns - mean)
        spot = spot.astype(np.float64)  # a copy; the days before the shock stay as they were
        spot[..., c.day :] = spot[..., c.day - 1 : c.day] * np.exp(np.cumsum(scaled, axis=-1))
    if shock.spot is not None:
        c = shock.spot
        spot = spot.astype(np.float64) * (1.0 + c.change) ** ramp(n_days, c.day, c.days)
    out["spot"] = np.asarray(spot, dtype=dtype)

    if shock.iv is not None:
        c = shock.iv
        iv = out["iv"].astype(np.float64)
        w = ramp(n_days, c.day, c.days)
        if c.multiply is not None:
            factor = np.full(iv.shape[:-1] + (1,), c.multiply)
        else:
            last = min(c.day + c.days - 1, n_days - 1)
            factor = c.level / iv[..., last : last + 1]
        out["iv"] = np.asarray(iv * factor**w, dtype=out["iv"].dtype)

    for group in (shock.liquidity, shock.signals):
        if group is None:
            continue
        after = _from(n_days, group.day)
        for name, value in group.values:
            array = out[name]
            out[name] = np.where(after, np.asarray(value, dtype=array.dtype), array)

    if shock.thesis is not None and shock.thesis.day < n_days:
        event = out["thesis_event"].copy()
        event[..., shock.thesis.day] = True
        out["thesis_event"] = event
    return out
