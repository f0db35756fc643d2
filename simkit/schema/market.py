"""The market record: `MarketParams`, the inputs of one simulated market (no JAX).

The scenario layer builds it from a `[market]` table; `simkit.paths.market` registers it as a
JAX pytree and simulates it. Declared here, in a module without JAX, so that reading a scenario
(and everything that only reads results) never loads JAX.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np

__all__ = ["MODELS", "NUMERIC_FIELDS", "MarketParams"]

MODELS = ("gbm", "merton")


@dataclasses.dataclass(frozen=True)
class MarketParams:
    """Inputs of one simulated market (defaults: STRATEGY.md's baseline market).

    A JAX pytree (registered by `simkit.paths.market`, which every JAX use imports): the numeric
    fields are leaves (traced under `jit`, so a new grid cell does not recompile; they may be
    Python floats or arrays), `model` and `risk_neutral` are static. This module loads no JAX.
    """

    model: str = "gbm"  # "gbm" | "merton"
    s0: float = 3.0  # initial spot, dollars
    mu: float = 0.05  # real-world drift, annual, continuous: E[S_t] = s0 e^{mu t}
    sigma: float = 1.90  # diffusion volatility, annual fraction (realized vol)
    risk_neutral: bool = False  # True: the drift is `rate` (used to check prices)
    rate: float = 0.05  # risk-free rate, annual, continuous
    jump_intensity: float = 4.0  # jumps a year (merton only)
    jump_mean: float = -0.25  # mean log-jump size (merton only)
    jump_std: float = 0.35  # standard deviation of the log-jump size (merton only)
    iv0: float = 4.2517  # initial implied volatility, annual fraction (425.17 %)
    kappa: float = 6.0  # mean-reversion rate of ln IV, per year (half-life ln 2 / 6 ≈ 29 days)
    iv_long_run: float = 2.17  # long-run IV, annual fraction
    eta: float = 1.0  # volatility of ln IV, per sqrt(year)
    iv_spot_corr: float = -0.5  # correlation of IV and spot diffusion shocks
    iv_jump_beta: float = -0.5  # change of ln IV per unit log jump of the spot
    short_interest: float = 42.88  # initial short interest, percent of float
    short_interest_long_run: float = 42.88  # long-run short interest, percent
    short_interest_kappa: float = 0.0  # mean-reversion rate of short interest, per year
    short_interest_eta: float = 0.0  # volatility of short interest, percent per sqrt(year)
    vix: float = 25.0  # VIX level, points
    btc_correlation: float = 0.5  # correlation with bitcoin, in [-1, 1]
    bid_ask_spread: float = 0.10  # option bid-ask spread, dollars
    open_interest: float = 5000.0  # open interest per strike, contracts
    option_volume: float = 1000.0  # option volume per strike, contracts a day
    liquidity_score: float = 8.0  # the seed's liquidity score, 0-10
    borrow_cost: float = 50.0  # stock borrow cost, percent a year
    volume_ratio: float = 1.5  # stock volume over its average
    thesis_break_intensity: float = 0.0  # thesis-break events a year (Poisson)

    def __post_init__(self):
        _validate(self)

    @property
    def drift(self):
        """The spot's drift used in simulation: `rate` when `risk_neutral`, else `mu`."""
        return self.rate if self.risk_neutral else self.mu


_STATIC_FIELDS = ("model", "risk_neutral")
NUMERIC_FIELDS = tuple(
    f.name for f in dataclasses.fields(MarketParams) if f.name not in _STATIC_FIELDS
)

# (lower, upper, inclusive-lower) bounds of the numeric fields; a field not listed must be finite.
_BOUNDS = {
    "s0": (0.0, math.inf, False),
    "sigma": (0.0, math.inf, True),
    "jump_intensity": (0.0, math.inf, True),
    "jump_std": (0.0, math.inf, True),
    "iv0": (0.0, math.inf, False),
    "kappa": (0.0, math.inf, True),
    "iv_long_run": (0.0, math.inf, False),
    "eta": (0.0, math.inf, True),
    "iv_spot_corr": (-1.0, 1.0, True),
    "short_interest": (0.0, 100.0, True),
    "short_interest_long_run": (0.0, 100.0, True),
    "short_interest_kappa": (0.0, math.inf, True),
    "short_interest_eta": (0.0, math.inf, True),
    "bid_ask_spread": (0.0, math.inf, True),
    "open_interest": (0.0, math.inf, True),
    "option_volume": (0.0, math.inf, True),
    "thesis_break_intensity": (0.0, math.inf, True),
}


def _concrete(value) -> np.ndarray | None:
    """The value as a float array, or None for a tracer or any other non-number (left alone)."""
    jax = sys.modules.get("jax")  # a tracer exists only if JAX is loaded; never import it here
    if jax is not None and isinstance(value, getattr(jax.core, "Tracer", ())):
        return None
    try:
        return np.asarray(value, dtype=float)
    except Exception:  # a tracer of another kind, a placeholder JAX passes while rebuilding
        return None


def _validate(params: MarketParams) -> None:
    if params.model not in MODELS:
        raise ValueError(
            f"MarketParams.model must be one of {', '.join(map(repr, MODELS))}; "
            f"got {params.model!r}."
        )
    if not isinstance(params.risk_neutral, bool | np.bool_):
        raise ValueError(
            f"MarketParams.risk_neutral must be True or False; got {params.risk_neutral!r}."
        )
    for name in NUMERIC_FIELDS:
        value = _concrete(getattr(params, name))
        if value is None:
            continue
        lower, upper, inclusive = _BOUNDS.get(name, (-math.inf, math.inf, True))
        ok = (
            np.isfinite(value)
            & (value <= upper)
            & ((value >= lower) if inclusive else (value > lower))
        )
        if not np.all(ok):
            if math.isinf(lower):
                valid = "a finite number"
            elif math.isinf(upper):
                valid = f"a finite number {'>=' if inclusive else '>'} {lower:g}"
            else:
                valid = f"a number in [{lower:g}, {upper:g}]"
            raise ValueError(f"MarketParams.{name} must be {valid}; got {getattr(params, name)!r}.")
