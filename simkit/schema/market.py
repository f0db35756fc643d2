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

__all__ = [
    "HISTORY_MODELS",
    "IV_MODELS",
    "LINKED_IV_MODELS",
    "MODELS",
    "NUMERIC_FIELDS",
    "STOCHASTIC_VOL_MODELS",
    "MarketParams",
    "garch_persistence",
]

MODELS = ("gbm", "merton", "heston", "bates", "garch", "replay", "bootstrap")
HISTORY_MODELS = ("replay", "bootstrap")  # the spot (and IV, inputs) come from a history CSV
STOCHASTIC_VOL_MODELS = ("heston", "bates")  # the spot has a CIR variance process v_t (QE)
LINKED_IV_MODELS = ("heston", "bates", "garch")  # a variance process IV can be linked to
IV_MODELS = ("linked", "independent")


@dataclasses.dataclass(frozen=True)
class MarketParams:
    """Inputs of one simulated market (defaults: the baseline market, docs/MODELLING.md "The
    baseline market").

    A JAX pytree (registered by `simkit.paths.market`, which every JAX use imports): the numeric
    fields are leaves (traced under `jit`, so a new grid cell does not recompile; they may be
    Python floats or arrays), `model` and `risk_neutral` are static. This module loads no JAX.
    """

    model: str = "gbm"  # "gbm" | "merton" | "heston" | "bates" | "garch" | "replay" | "bootstrap"
    s0: float = 3.0  # initial spot, dollars
    mu: float = 0.05  # real-world drift, annual, continuous: E[S_t] = s0 e^{mu t}
    sigma: float = 1.90  # diffusion volatility, annual fraction (realized vol)
    risk_neutral: bool = False  # True: the drift is `rate` (used to check prices)
    rate: float = 0.05  # risk-free rate, annual, continuous
    jump_intensity: float = 4.0  # jumps a year (merton and bates only)
    jump_mean: float = -0.25  # mean log-jump size (merton and bates only)
    jump_std: float = 0.35  # standard deviation of the log-jump size (merton and bates only)
    # The spot's variance (heston and bates only): CIR, dv = kappa_v (theta_v - v) dt
    # + xi sqrt(v) dW_v, corr(dW_v, dW_S) = rho. Calibrated to the baseline's levels: theta_v =
    # sigma^2 = 1.9^2; kappa_v as the IV's kappa (half-life 29 trading days); xi = 3 gives the
    # stock's vol a vol of xi / (2 sqrt(theta_v)) = 79 % a year at theta_v, and ln IV (linked) a
    # stationary std. dev. of 0.28, as the baseline IV process's 0.29 (Feller 2 kappa_v theta_v
    # / xi^2 = 4.8 > 1: v stays away from 0); rho = -0.7: leverage, the stock falls as vol rises.
    v0: float = 3.61  # initial variance, annual (vol^2: 3.61 = 190 % vol); heston, bates, garch
    kappa_v: float = 6.0  # mean-reversion rate of the variance, per year
    theta_v: float = 3.61  # long-run variance, annual (vol^2)
    xi: float = 3.0  # volatility of the variance, per sqrt(year) (dv = ... + xi sqrt(v) dW)
    rho: float = -0.7  # correlation of the variance and spot shocks
    # GJR-GARCH(1,1) (garch only), daily units of log returns as fractions (not percent): the
    # day's log return is (mu dt - h/2) + eps, eps = sqrt(h) z, and the next day's variance
    # h' = garch_omega + (garch_alpha + garch_gamma [eps < 0]) eps^2 + garch_beta h. Defaults at
    # the baseline's levels: a long-run vol of 190 % (omega / (1 - persistence) = 1.9^2 / 252 a
    # day); persistence alpha + gamma/2 + beta = 0.97 (a variance shock's half-life ln 2 /
    # -ln 0.97 = 23 trading days, near the heston default's 29); a single stock's usual split
    # (ARCH effect alpha 0.06, leverage gamma 0.08: a down day raises tomorrow's variance 2.3
    # times as much as an up day; beta 0.87); the fourth moment exists (kurtosis finite).
    garch_omega: float = 4.2976190476190474e-4  # daily variance (fraction^2): 0.03 * 3.61 / 252
    garch_alpha: float = 0.06  # ARCH coefficient of eps^2
    garch_gamma: float = 0.08  # leverage: extra ARCH coefficient on down days (eps < 0)
    garch_beta: float = 0.87  # GARCH coefficient of yesterday's variance
    # IV linked to the variance (iv_model "linked"): IV = sqrt(v) e^z, z a log-OU process.
    iv_model: str | None = None  # "linked" | "independent"; None: linked for heston, bates, garch
    vrp_long_run: float = 1.15  # long-run (median) ratio of IV to the stock's vol, e^{E z}
    vrp_kappa: float = 6.0  # mean-reversion rate of z = ln(IV / sqrt(v)), per year
    vrp_eta: float = 0.5  # volatility of z, per sqrt(year)
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
    # A history CSV (replay and bootstrap only; `simkit.paths.history_csv` has its format):
    history: str | None = None  # path of the CSV (static); the scenario resolves it
    block_len: float = 20.0  # mean block length of the bootstrap, trading days (>= 1)

    def __post_init__(self):
        _validate(self)

    @property
    def linked_iv(self) -> bool:
        """IV is `sqrt(v) e^z` (iv_model "linked", the default for heston, bates and garch), not
        the independent log-OU process of `iv_long_run`, `kappa`, `eta`."""
        if self.iv_model is None:
            return self.model in LINKED_IV_MODELS
        return self.iv_model == "linked"

    @property
    def drift(self):
        """The spot's drift used in simulation: `rate` when `risk_neutral`, else `mu`."""
        return self.rate if self.risk_neutral else self.mu


_STATIC_FIELDS = ("model", "risk_neutral", "iv_model", "history")
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
    "v0": (0.0, math.inf, True),
    "kappa_v": (0.0, math.inf, True),
    "theta_v": (0.0, math.inf, False),
    "xi": (0.0, math.inf, True),
    "rho": (-1.0, 1.0, True),
    "vrp_long_run": (0.0, math.inf, False),
    "vrp_kappa": (0.0, math.inf, True),
    "vrp_eta": (0.0, math.inf, True),
    "garch_omega": (0.0, math.inf, False),
    "garch_alpha": (0.0, math.inf, True),
    "garch_beta": (0.0, math.inf, True),
    "short_interest": (0.0, 100.0, True),
    "short_interest_long_run": (0.0, 100.0, True),
    "short_interest_kappa": (0.0, math.inf, True),
    "short_interest_eta": (0.0, math.inf, True),
    "bid_ask_spread": (0.0, math.inf, True),
    "open_interest": (0.0, math.inf, True),
    "option_volume": (0.0, math.inf, True),
    "thesis_break_intensity": (0.0, math.inf, True),
    "block_len": (1.0, math.inf, True),
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
    if params.iv_model is not None and params.iv_model not in IV_MODELS:
        raise ValueError(
            f"MarketParams.iv_model must be one of {', '.join(map(repr, IV_MODELS))} or None "
            f"(linked for heston, bates and garch, independent for gbm and merton); "
            f"got {params.iv_model!r}."
        )
    if params.iv_model == "linked" and params.model not in LINKED_IV_MODELS:
        raise ValueError(
            f"MarketParams.iv_model 'linked' needs a stochastic-variance model "
            f"({', '.join(map(repr, LINKED_IV_MODELS))}); got model {params.model!r}."
        )
    if params.model in HISTORY_MODELS and not params.history:
        raise ValueError(
            f"MarketParams.history must name a history CSV for model {params.model!r}; "
            f"got {params.history!r}."
        )
    if params.history is not None and not isinstance(params.history, str):
        raise ValueError(
            f"MarketParams.history must be a file path (a string) or None; got {params.history!r}."
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
    if params.model == "garch":
        _validate_garch(params)
    if params.linked_iv:
        # The IV percentile is read in the stationary law of IV: both processes must have one
        # (GARCH's variance is stationary by `_validate_garch`).
        names = ("vrp_kappa",) if params.model == "garch" else ("kappa_v", "vrp_kappa")
        for name in names:
            value = _concrete(getattr(params, name))
            if value is not None and not np.all(value > 0):
                raise ValueError(
                    f"MarketParams.{name} must be > 0 with linked IV (the IV percentile is read "
                    f"in the stationary law); got {getattr(params, name)!r}."
                )


def garch_persistence(alpha, gamma, beta):
    """`alpha + gamma / 2 + beta`: E[h_{t+1}] = omega + persistence E[h_t] under GJR-GARCH(1,1)
    with symmetric innovations (a down day has probability 1/2). Below 1 the variance has a
    stationary law with mean omega / (1 - persistence)."""
    return alpha + 0.5 * gamma + beta


def _validate_garch(params: MarketParams) -> None:
    """GJR-GARCH's own constraints (model "garch"): the variance stays positive (alpha + gamma
    >= 0; omega > 0, alpha >= 0, beta >= 0 are field bounds) and is stationary."""
    alpha, gamma, beta = (
        _concrete(getattr(params, name)) for name in ("garch_alpha", "garch_gamma", "garch_beta")
    )
    if alpha is None or gamma is None or beta is None:
        return
    if not np.all(alpha + gamma >= 0):
        raise ValueError(
            f"MarketParams.garch_gamma must be >= -garch_alpha (a down day's ARCH coefficient "
            f"alpha + gamma must not be negative); got {params.garch_gamma!r} with garch_alpha "
            f"{params.garch_alpha!r}."
        )
    persistence = garch_persistence(alpha, gamma, beta)
    if not np.all(persistence < 1):
        raise ValueError(
            f"MarketParams.garch_beta must keep the persistence garch_alpha + garch_gamma / 2 + "
            f"garch_beta below 1 (a stationary variance); got {np.max(persistence):.6g} with "
            f"garch_beta {params.garch_beta!r}."
        )
