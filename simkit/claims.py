"""The claims check: the seed document's numbers against computations and a simulation.

`check_claims(scenario)` runs the scenario (`simkit.simulate`, with per-path figures) and
returns a `ClaimsReport`: one `Row` per claim of the seed document with what the seed says,
what simkit computes, a verdict and the rule that decided it. Every verdict is the output of a
rule applied to numbers (`interval_verdict`, `tolerance_verdict`, `share_verdict`, ...); no
verdict is written into a row by hand.

The claims, where they stand in the seed (`/seed/000_...txt`):

- "Expected Implementation Results" (conclusion): annual return 135 %, Sharpe 4.20, win rate
  89.2 %, maximum drawdown −26.6 % "worst-case scenario".
- "Kelly Criterion Implementation": `calculate_kelly_fraction(0.892, 0.123, 0.087)` printed as
  `{'kelly_fraction': 0.247, 'conservative_kelly': 0.062, ...}`, its inputs "from Monte Carlo".
- "Strike Selection & Allocation Matrix": premiums, IV thresholds, assignment probabilities and
  annual yields of the five strikes, at IV 425.17 %, r 5 %, spot 3.00 (the baseline's s0; the
  seed gives no spot) and 30-45 DTE (the scenario's `dte_calendar`, 37 by default).
- "Premium Allocation Framework": `compound_position_size`, transcribed here as written
  (`SeedPremiumAllocation`), whose loop replaces the capital by the reinvested premium.
- docs/STRATEGY.md's notes: the stop-loss that cannot fire at 425 % IV, the "hedge" calls that add
  to the book's delta, the allocation and leverage limits that collide, the fill assumption.

Pure computations (`premium_table`, `implied_spot`, `annual_yield`, `assignment_probabilities`,
`compound_*`) take plain numbers and are tested against independent formulas;
`build_rows(scenario, ds, fill_runs)` turns result datasets into rows without simulating.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from simkit import metrics
from simkit.claims_markets import Claim, judge_across_markets
from simkit.formats import percent
from simkit.paths.history_csv import history_moments
from simkit.precision import x64
from simkit.pricing import bs_greeks, bs_price, implied_vol
from simkit.run import simulate as run_simulate
from simkit.scenario import ScenarioError, parse_scenario
from simkit.schema.market import HISTORY_MODELS
from simkit.strategy.config import steps_for_calendar_days

__all__ = [
    "SEED",
    "ClaimsReport",
    "Row",
    "SeedPremiumAllocation",
    "annual_yield",
    "assignment_probabilities",
    "build_rows",
    "check_claims",
    "compound_corrected",
    "compound_seed",
    "expected_put_payoff",
    "implied_dte",
    "implied_spot",
    "interval_verdict",
    "premium_table",
    "share_verdict",
    "threshold_verdict",
    "tolerance_verdict",
    "to_json",
    "to_markdown",
]

CONF = 0.95
WORST_CASE_LEVEL = 0.95  # a "worst case" must hold on at least this share of simulated years
ASSIGNMENT_TOL = 0.10  # |seed − model| probability within which a quoted probability is consistent
YIELD_TOL = 0.01  # 1 percentage point: the seed's yields are written as whole percents
KELLY_TOL = 0.0005  # the seed prints Kelly numbers to three decimals
DEFAULT_PATHS = 10_000  # paths of the claims run unless --paths (or a smaller scenario) says


@dataclasses.dataclass(frozen=True)
class SeedClaims:
    """The seed document's numbers, as it writes them (fractions: 1.35 = 135 %)."""

    annual_return: float = 1.35
    sharpe: float = 4.20
    win_rate: float = 0.892
    max_drawdown: float = -0.266
    kelly_p: float = 0.892
    kelly_avg_win: float = 0.123
    kelly_avg_loss: float = 0.087
    kelly_printed: float = 0.247
    kelly_conservative_printed: float = 0.062
    kelly_multiplier: float = 0.25
    kelly_cap: float = 0.20
    iv: float = 4.2517  # "current: 425.17% - 99th percentile"
    rate: float = 0.05
    spot: float = (
        3.00  # not in the seed: the baseline's s0 (docs/MODELLING.md "The baseline market")
    )
    dte_min: float = 30.0
    dte_max: float = 45.0
    strikes: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0, 5.0)
    premiums: tuple[float, ...] = (0.60, 1.05, 1.63, 2.78, 3.60)
    weights: tuple[float, ...] = (0.15, 0.25, 0.30, 0.20, 0.10)
    iv_thresholds: tuple[float, ...] = (3.00, 3.50, 4.00, 4.50, 5.00)
    assignment_prob: tuple[float, ...] = (0.95, 0.85, 0.75, 0.45, 0.25)
    annual_yield: tuple[float, ...] = (3.60, 5.04, 6.52, 8.35, 8.64)
    reinvest: float = 0.80  # the 80/20 rule
    months: int = 12


SEED = SeedClaims()

# The performance claims judged across the family of markets (`simkit.claims_markets`).
MARKET_CLAIMS = (
    Claim("annual_return", "annual return (mean over paths)", SEED.annual_return, "pct"),
    Claim("sharpe", "Sharpe ratio (median path)", SEED.sharpe, "ratio"),
    Claim("win_rate", "trade win rate", SEED.win_rate, "pct"),
    Claim(
        "max_drawdown",
        "worst-case drawdown (5 % quantile of the max drawdown)",
        SEED.max_drawdown,
        "pct",
    ),
)


@dataclasses.dataclass
class Row:
    """One claim: what the seed says, what simkit finds, the verdict and the rule behind it."""

    topic: str
    claim: str
    seed: str
    simkit: str
    verdict: str
    rule: str
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    claim_id: str = ""  # the market claim it is (`MARKET_CLAIMS`), "" for the others
    markets: str = ""  # the verdict across the family of markets (`simkit.claims_markets`)


@dataclasses.dataclass
class ClaimsReport:
    rows: list[Row]
    meta: dict[str, Any]
    markets: Any = None  # simkit.claims_markets.MarketVerdicts, when judged across markets


# --------------------------------------------------------------------------- formatting


def pct(x: float, digits: int = 1) -> str:
    """`simkit.formats.percent`: "12.3 %", a nonzero share below the last digit "<0.1 %"."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("+inf" if x > 0 else "-inf")
    return percent(x, digits)


def num(x: float, digits: int = 3) -> str:
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("+inf" if x > 0 else "-inf")
    return f"{x:.{digits}f}" if abs(x) < 1e4 else f"{x:,.0f}"


def _num4(x: float) -> str:
    return num(x, 4)


def usd(x: float) -> str:
    x = float(x)
    return f"${x:,.0f}" if math.isfinite(x) else "nan"


def _days(x: float) -> str:
    return f"{float(x):.1f} d" if math.isfinite(float(x)) else "none (no maturity gives it)"


def _never(x: float) -> str:
    return pct(x, 0) if math.isfinite(float(x)) else "none (never)"


def _ci(value: float, lo: float, hi: float, fmt: Callable[[float], str] = pct) -> str:
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


# --------------------------------------------------------------------------- verdict rules


def interval_verdict(
    claim: float, lo: float, hi: float, fmt: Callable[[float], str] = pct
) -> tuple[str, str]:
    """`consistent` when the claim lies in the 95 % interval [lo, hi], else `refuted`."""
    if not (math.isfinite(lo) or math.isfinite(hi)) or math.isnan(lo) or math.isnan(hi):
        return "undecided", f"no interval (lo {fmt(lo)}, hi {fmt(hi)})"
    if claim < lo:
        return "refuted", f"claim {fmt(claim)} < lower 95 % bound {fmt(lo)}"
    if claim > hi:
        return "refuted", f"claim {fmt(claim)} > upper 95 % bound {fmt(hi)}"
    return "consistent", f"claim {fmt(claim)} inside the 95 % interval [{fmt(lo)}, {fmt(hi)}]"


def tolerance_verdict(
    claim: float,
    value: float,
    tol: float,
    fmt: Callable[[float], str] = num,
    good: str = "reproduced",
    bad: str = "not reproduced",
) -> tuple[str, str]:
    """`good` when |claim − value| <= tol, else `bad`."""
    diff = abs(float(claim) - float(value))
    if math.isnan(diff):
        return "undecided", f"{fmt(value)} is undefined"
    if diff <= tol:
        return good, f"|{fmt(claim)} - {fmt(value)}| = {fmt(diff)} <= tolerance {fmt(tol)}"
    return bad, f"|{fmt(claim)} - {fmt(value)}| = {fmt(diff)} > tolerance {fmt(tol)}"


def threshold_verdict(
    value: float, tol: float, what: str, good: str, bad: str, fmt: Callable[[float], str] = num
) -> tuple[str, str]:
    """`good` when `value` <= `tol`, else `bad` (`what` names the value in the rule)."""
    value = float(value)
    if math.isnan(value):
        return "undecided", f"{what} is undefined"
    if value <= tol:
        return good, f"{what} {fmt(value)} <= {fmt(tol)}"
    return bad, f"{what} {fmt(value)} > {fmt(tol)}"


def share_verdict(share_lo: float, share_hi: float, level: float, what: str) -> tuple[str, str]:
    """A bound meant to hold on at least `level` of paths: `consistent` when the share's
    interval lies at or above `level`, `refuted` when it lies below, else `undecided`."""
    if share_hi < level:
        return "refuted", f"{what} on {pct(share_hi)} of paths at most (95 % bound) < {pct(level)}"
    if share_lo >= level:
        return "consistent", f"{what} on at least {pct(share_lo)} of paths >= {pct(level)}"
    return "undecided", f"share of paths [{pct(share_lo)}, {pct(share_hi)}] straddles {pct(level)}"


# --------------------------------------------------------------------------- pricing pieces


def _bs_put(spot: Any, strike: Any, t: Any, rate: float, vol: Any) -> np.ndarray:
    """`simkit.pricing.bs_price` of a put in float64."""

    with x64(True):
        return np.asarray(bs_price(spot, strike, t, rate, vol, 0.0, False), dtype=np.float64)


def _implied_vol(price: Any, spot: Any, strike: Any, t: Any, rate: float) -> np.ndarray:

    with x64(True):
        return np.asarray(implied_vol(price, spot, strike, t, rate, 0.0, False), dtype=np.float64)


def implied_spot(quote: float, strike: float, t: float, rate: float, vol: float) -> float:
    """The spot S at which the Black-Scholes put value equals `quote` (brentq on S).

    A put's value falls from `K e^{-rt}` (S → 0) to 0 (S → ∞), so a root exists exactly
    when `0 < quote < K e^{-rt}`; NaN otherwise.
    """
    upper = strike * math.exp(-rate * t)
    if not 0.0 < quote < upper:
        return math.nan

    def gap(s: float) -> float:
        return float(_bs_put(s, strike, t, rate, vol)) - quote

    lo, hi = 1e-9 * strike, strike
    while gap(hi) > 0:
        hi *= 4.0
        if hi > 1e12 * strike:
            return math.nan
    if gap(lo) < 0:
        return math.nan
    return float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=200))


def implied_dte(
    quote: float, spot: float, strike: float, rate: float, vol: float, max_days: float = 3650.0
) -> float:
    """The shortest calendar days to expiry at which the Black-Scholes put value equals
    `quote` (T = days / 365); NaN when no maturity up to `max_days` gives it (with r > 0 a
    put's value peaks at some maturity and falls towards 0 after it)."""

    def gap(days: float) -> float:
        return float(_bs_put(spot, strike, days / 365.0, rate, vol)) - quote

    grid = np.geomspace(1e-3, max_days, 400)
    gaps = _bs_put(spot, strike, grid / 365.0, rate, vol) - quote
    above = np.flatnonzero(gaps >= 0)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(grid[0]) if gaps[0] == 0 else math.nan
    return float(optimize.brentq(gap, grid[i - 1], grid[i], xtol=1e-9, maxiter=200))


def premium_table(
    strikes: Sequence[float],
    quotes: Sequence[float],
    *,
    spot: float,
    vol: float,
    rate: float,
    dte: float,
    dte_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Black-Scholes puts at `vol` against quoted premiums, per strike.

    Returns float64 arrays: `bs` (at `dte` calendar days, T = dte / 365), `bs_lo` and `bs_hi`
    (at the ends of `dte_range`), `intrinsic` max(K − S, 0), `upper` K e^{-rT}, `implied_spot`
    (S with BS(S) = quote), `implied_vol` (at `spot`; NaN outside the no-arbitrage bounds
    [max(K e^{-rT} − S, 0), K e^{-rT})), `implied_dte` (days with BS = quote at `spot`).
    """
    k = np.asarray(strikes, dtype=np.float64)
    q = np.asarray(quotes, dtype=np.float64)
    t = dte / 365.0
    return {
        "strike": k,
        "quote": q,
        "bs": _bs_put(spot, k, t, rate, vol),
        "bs_lo": _bs_put(spot, k, dte_range[0] / 365.0, rate, vol),
        "bs_hi": _bs_put(spot, k, dte_range[1] / 365.0, rate, vol),
        "intrinsic": np.maximum(k - spot, 0.0),
        "lower_bound": np.maximum(k * math.exp(-rate * t) - spot, 0.0),
        "upper": k * math.exp(-rate * t),
        "implied_spot": np.array(
            [implied_spot(qi, ki, t, rate, vol) for qi, ki in zip(q, k, strict=True)]
        ),
        "implied_vol": _implied_vol(q, spot, k, t, rate),
        "implied_dte": np.array(
            [implied_dte(qi, spot, ki, rate, vol) for qi, ki in zip(q, k, strict=True)]
        ),
    }


def annual_yield(premiums: Sequence[float], strikes: Sequence[float], periods: float = 12.0):
    """The seed's "annual yield": premium / strike × periods (simple, on notional)."""
    return np.asarray(premiums, dtype=np.float64) / np.asarray(strikes, np.float64) * periods


def _log_spot_mixture(spot: float, t: float, market: Any):
    """(weights, means, variances) of ln S_t: one normal for GBM, the Poisson mixture for
    Merton (`_CLOSED_FORM`); drift compensated so that E[S_t] = S_0 e^{mu t} (docs/MODELLING.md
    "Market model")."""
    mu = float(market.rate if market.risk_neutral else market.mu)
    sigma = float(market.sigma)
    base = math.log(spot) + (mu - 0.5 * sigma**2) * t
    if market.model != "merton":
        return np.array([1.0]), np.array([base]), np.array([sigma**2 * t])
    lam, m, s = float(market.jump_intensity), float(market.jump_mean), float(market.jump_std)
    k = math.exp(m + 0.5 * s**2) - 1.0
    rate = lam * t
    n = np.arange(int(math.ceil(rate + 10 * math.sqrt(rate) + 10)) + 1)  # Poisson tail < 1e-15
    weights = stats.poisson.pmf(n, lam * t)
    return weights, base - lam * k * t + n * m, sigma**2 * t + n * s**2


# Models whose ln S_t has a closed-form law (one normal, or Merton's Poisson mixture of normals).
_CLOSED_FORM = ("gbm", "merton")
# Paths of the Monte Carlo law of S_t for the other models: the standard error of a probability
# is at most 0.5 / sqrt(n) = 0.0011.
TERMINAL_PATHS = 200_000
_TERMINAL_BLOCK = 50_000
_terminal_cache: dict[tuple, np.ndarray] = {}


def terminal_spots(spot: float, t: float, market: Any, n_paths: int = TERMINAL_PATHS):
    """S_t on `n_paths` paths of the scenario's own market generator (seed 0, cell 0), started at
    `spot`, over round(252 t) trading days: the real-world law of the spot for models with no
    closed form (Heston, Bates and any later model). Cached per (spot, t, market)."""
    from simkit.paths.market import simulate_market  # JAX: only for these models

    cache_key = (float(spot), float(t), repr(market), int(n_paths))
    if cache_key not in _terminal_cache:
        params = dataclasses.replace(market, s0=float(spot))
        steps = max(int(round(t * 252.0)), 1)
        blocks = []
        for start in range(0, n_paths, _TERMINAL_BLOCK):
            size = min(_TERMINAL_BLOCK, n_paths - start)
            path = simulate_market(params, seed=0, cell=0, path_start=start, n_paths=size,
                                   n_steps=steps)  # fmt: skip
            blocks.append(np.asarray(path.spot[:, -1], dtype=np.float64))
        _terminal_cache[cache_key] = np.concatenate(blocks)
    return _terminal_cache[cache_key]


def prob_below(spot: float, strike: Any, t: float, market: Any) -> np.ndarray:
    """Real-world P(S_t < K) under the scenario's market model: closed form for GBM and Merton,
    the share of `terminal_spots` below K otherwise."""
    if market.model not in _CLOSED_FORM:
        s_t = terminal_spots(spot, t, market)
        return (s_t < np.asarray(strike, np.float64)[..., None]).mean(axis=-1)
    w, m, v = _log_spot_mixture(spot, t, market)
    z = (np.log(np.asarray(strike, np.float64))[..., None] - m) / np.sqrt(v)
    return (w * stats.norm.cdf(z)).sum(axis=-1)


def expected_put_payoff(spot: float, strike: Any, t: float, market: Any) -> np.ndarray:
    """Real-world E[(K − S_t)^+] under the scenario's market model (undiscounted): closed form
    for GBM and Merton, the mean over `terminal_spots` otherwise."""
    if market.model not in _CLOSED_FORM:
        s_t = terminal_spots(spot, t, market)
        k = np.asarray(strike, np.float64)[..., None]
        return np.maximum(k - s_t, 0.0).mean(axis=-1)
    w, m, v = _log_spot_mixture(spot, t, market)
    log_k = np.log(np.asarray(strike, np.float64))[..., None]
    sd = np.sqrt(v)
    k = np.asarray(strike, np.float64)[..., None]
    value = k * stats.norm.cdf((log_k - m) / sd) - np.exp(m + v / 2) * stats.norm.cdf(
        (log_k - m - v) / sd
    )
    return (w * value).sum(axis=-1)


def _real_world_law(market: Any) -> str:
    """How `prob_below` reads the market, for the table's text."""
    if market.model in _CLOSED_FORM:
        return f"{market.model}, sigma {pct(market.sigma, 0)}"
    return f"{market.model}, {TERMINAL_PATHS:,} simulated paths"


def assignment_probabilities(
    strikes: Sequence[float], *, spot: float, vol: float, rate: float, dte: float, market: Any
) -> dict[str, np.ndarray]:
    """Probability that each put expires in the money.

    `risk_neutral`: N(−d2) at implied vol `vol`, T = dte / 365 (what the option price
    implies). `real_world`: P(S_T < K) under the scenario's model over the engine's clock,
    T = round(dte · 252 / 365) / 252.
    """

    k = np.asarray(strikes, dtype=np.float64)
    t = dte / 365.0
    d2 = (np.log(spot / k) + (rate - 0.5 * vol**2) * t) / (vol * math.sqrt(t))
    t_real = steps_for_calendar_days(dte) / 252.0
    return {
        "risk_neutral": stats.norm.cdf(-d2),
        "real_world": prob_below(spot, k, t_real, market),
        "t_real": np.float64(t_real),
    }


# --------------------------------------------------------------------------- compounding


class SeedPremiumAllocation:
    """The seed's `PremiumAllocation`, transcribed as written ("Premium Allocation
    Framework"). The seed never defines `calculate_premium_income`; it is passed in."""

    def __init__(self, premium_income: Callable[[float], float]):
        self.call_allocation = 0.20  # 20% to long calls
        self.put_reinvestment = 0.80  # 80% to additional puts
        self._premium_income = premium_income

    def calculate_premium_income(self, capital: float) -> float:
        return self._premium_income(capital)

    def allocate_premium(self, total_premium):
        call_budget = total_premium * self.call_allocation
        put_budget = total_premium * self.put_reinvestment

        return {
            "call_allocation": call_budget,
            "put_reinvestment": put_budget,
            "total_allocated": call_budget + put_budget,
        }

    def compound_position_size(self, month, initial_capital, monthly_addition):
        """Calculate compounding effect over time"""
        position_sizes = []
        current_capital = initial_capital

        for m in range(1, month + 1):
            # Calculate premium based on current position size
            premium_income = self.calculate_premium_income(current_capital)

            # Allocate premiums
            allocation = self.allocate_premium(premium_income)

            # Add new capital and reinvested premiums
            current_capital = allocation["put_reinvestment"] + monthly_addition

            position_sizes.append(
                {
                    "month": m,
                    "capital": current_capital,
                    "premium_income": premium_income,
                    "call_allocation": allocation["call_allocation"],
                    "compounding_factor": current_capital / initial_capital,
                }
            )

        return position_sizes


def compound_seed(
    months: int, initial: float, addition: float, monthly_yield: float, reinvest: float = 0.8
) -> np.ndarray:
    """Capital after each month by the seed's `compound_position_size` as written, with
    premium income = capital × `monthly_yield`."""
    alloc = SeedPremiumAllocation(lambda capital: capital * monthly_yield)
    alloc.put_reinvestment = reinvest
    alloc.call_allocation = 1.0 - reinvest
    return np.array([r["capital"] for r in alloc.compound_position_size(months, initial, addition)])


def compound_corrected(
    months: int, initial: float, addition: float, monthly_yield: float, reinvest: float = 0.8
) -> np.ndarray:
    """Capital after each month when the capital is kept: c ← c + reinvest · yield · c + A."""
    out, capital = [], float(initial)
    for _ in range(months):
        capital = capital + reinvest * monthly_yield * capital + addition
        out.append(capital)
    return np.array(out)


# --------------------------------------------------------------------------- rows


def _scalar(ds: Any, name: str) -> float:
    return float(ds[name].values) if name in ds else math.nan


def _per_path(ds: Any, name: str) -> np.ndarray:
    if name not in ds or "path" not in ds[name].dims:
        raise ValueError(f"the claims check needs the per-path variable {name!r} (per_path=True)")
    return np.asarray(ds[name].values, dtype=np.float64)


def _path_share(hits: np.ndarray) -> tuple[float, float, float]:

    est = metrics.proportion_ci(hits.sum(), hits.size, CONF)
    return float(est.estimate), float(est.lo), float(est.hi)


def _performance_rows(ds: Any) -> list[Row]:
    """The four performance claims (`MARKET_CLAIMS`, in order): annual return, Sharpe ratio,
    win rate and worst-case drawdown against the run's figures."""
    rows = [_annual_return_row(ds), _sharpe_row(ds), _win_rate_row(ds), _drawdown_row(ds)]
    for row, claim in zip(rows, MARKET_CLAIMS, strict=True):  # the same four, in order
        row.claim_id = claim.name
    return rows


def _annual_return_row(ds: Any) -> Row:
    """The seed's annual return against the mean over paths (and the median, and how many
    simulated years reach it)."""
    annual = _per_path(ds, "annual_return")
    mean, lo, hi = (_scalar(ds, f"annual_return_mean{s}") for s in ("", "_lo", "_hi"))
    med, med_lo, med_hi = (_scalar(ds, f"annual_return_median{s}") for s in ("", "_lo", "_hi"))
    reach, reach_lo, reach_hi = _path_share(annual >= SEED.annual_return)
    verdict, rule = interval_verdict(SEED.annual_return, lo, hi)
    return Row(
        "performance",
        "annual return (mean over simulated years)",
        pct(SEED.annual_return),
        f"mean {_ci(mean, lo, hi)}; median {_ci(med, med_lo, med_hi)}; "
        f"P(year >= {pct(SEED.annual_return, 0)}) {_ci(reach, reach_lo, reach_hi)}",
        verdict,
        rule,
        dict(mean=mean, lo=lo, hi=hi, median=med, median_lo=med_lo, median_hi=med_hi,
             p_reach=reach, p_reach_lo=reach_lo, p_reach_hi=reach_hi),
    )  # fmt: skip


def _sharpe_row(ds: Any) -> Row:
    """The seed's Sharpe ratio against the median path's (and the pooled one)."""
    sharpe = _per_path(ds, "path_sharpe")
    sharpe = sharpe[np.isfinite(sharpe)]
    if sharpe.size:
        est = metrics.quantile_ci(sharpe, 0.5, CONF)
        s_med, s_lo, s_hi = float(est.estimate), float(est.lo), float(est.hi)
        s_reach, s_reach_lo, s_reach_hi = _path_share(sharpe >= SEED.sharpe)
    else:
        s_med = s_lo = s_hi = s_reach = s_reach_lo = s_reach_hi = math.nan
    pooled = _scalar(ds, "sharpe_pooled")
    verdict, rule = interval_verdict(SEED.sharpe, s_lo, s_hi, num)
    return Row(
        "performance",
        "Sharpe ratio (median simulated year; daily returns, no risk-free rate)",
        num(SEED.sharpe, 2),
        f"median {_ci(s_med, s_lo, s_hi, num)}; pooled {num(pooled)}; "
        f"P(year >= {num(SEED.sharpe, 2)}) {_ci(s_reach, s_reach_lo, s_reach_hi)}",
        verdict,
        rule,
        dict(median=s_med, lo=s_lo, hi=s_hi, pooled=pooled, p_reach=s_reach,
             p_reach_lo=s_reach_lo, p_reach_hi=s_reach_hi),
    )  # fmt: skip


def _win_rate_row(ds: Any) -> Row:
    """The seed's win rate against the share of closed trades that made money."""
    p, p_lo, p_hi = (_scalar(ds, f"win_rate_trade{s}") for s in ("", "_lo", "_hi"))
    wp, wp_lo, wp_hi = (_scalar(ds, f"win_rate_path{s}") for s in ("", "_lo", "_hi"))
    verdict, rule = interval_verdict(SEED.win_rate, p_lo, p_hi)
    return Row(
        "performance",
        "win rate (share of closed trades with P&L > 0)",
        pct(SEED.win_rate),
        f"trades {_ci(p, p_lo, p_hi)}; paths (years) {_ci(wp, wp_lo, wp_hi)}",
        verdict,
        rule,
        dict(trade=p, trade_lo=p_lo, trade_hi=p_hi, path=wp, path_lo=wp_lo, path_hi=wp_hi),
    )


def _drawdown_row(ds: Any) -> Row:
    """The seed's 'worst-case' drawdown against the share of simulated years no worse."""
    dd = _per_path(ds, "max_drawdown")
    held, held_lo, held_hi = _path_share(dd >= SEED.max_drawdown)
    q05, q01 = (float(np.quantile(dd, q)) for q in (0.05, 0.01))
    verdict, rule = share_verdict(
        held_lo, held_hi, WORST_CASE_LEVEL, f"drawdown no worse than {pct(SEED.max_drawdown)}"
    )
    return Row(
        "performance",
        "maximum drawdown, 'worst-case scenario'",
        pct(SEED.max_drawdown),
        f"years no worse than {pct(SEED.max_drawdown)}: {_ci(held, held_lo, held_hi)}; "
        f"median {pct(float(np.median(dd)))}, 5 % quantile {pct(q05)}, 1 % {pct(q01)}, "
        f"worst {pct(float(dd.min()))}",
        verdict,
        rule,
        dict(share_held=held, share_lo=held_lo, share_hi=held_hi,
             median=float(np.median(dd)), q05=q05, q01=q01, worst=float(dd.min())),
    )  # fmt: skip


def _kelly_rows(ds: Any, strategy: Any) -> list[Row]:

    topic = "Kelly"
    seed = metrics.kelly(SEED.kelly_p, SEED.kelly_avg_win, SEED.kelly_avg_loss,
                         multiplier=SEED.kelly_multiplier, cap=SEED.kelly_cap)  # fmt: skip
    fraction = float(seed["seed_fraction"])
    growth = float(seed["growth_optimal"])
    conservative = float(seed["conservative"])
    recommended = float(seed["recommended"])
    rows = []
    verdict, rule = tolerance_verdict(SEED.kelly_printed, fraction, KELLY_TOL, _num4)
    rows.append(
        Row(
            topic,
            "Kelly fraction p - (1-p) b/a on the seed's inputs (0.892, 0.123, 0.087)",
            num(SEED.kelly_printed),
            f"formula gives {num(fraction)}; growth-optimal p/b - (1-p)/a = {num(growth, 2)} "
            f"(capital at risk per unit of bankroll)",
            verdict,
            rule,
            dict(recomputed=fraction, printed=SEED.kelly_printed, growth_optimal=growth),
        )
    )
    verdict, rule = tolerance_verdict(
        SEED.kelly_conservative_printed, conservative, KELLY_TOL, _num4
    )
    rows.append(
        Row(
            topic,
            f"conservative Kelly = {SEED.kelly_multiplier:g} x Kelly; sizing rule "
            f"min(conservative, {SEED.kelly_cap:g})",
            num(SEED.kelly_conservative_printed),
            f"{SEED.kelly_multiplier:g} x {num(fraction)} = {num(conservative)} -> sleeve "
            f"{pct(recommended)} of the portfolio (the printed "
            f"{num(SEED.kelly_conservative_printed)} is "
            f"{SEED.kelly_multiplier:g} x {num(SEED.kelly_printed)} = "
            f"{num(SEED.kelly_multiplier * SEED.kelly_printed, 4)})",
            verdict,
            rule,
            dict(recomputed=conservative, recommended=recommended),
        )
    )
    for name, claim, what in (
        ("kelly_p", SEED.kelly_p, "p, win probability of a trade ('from Monte Carlo')"),
        ("kelly_avg_win", SEED.kelly_avg_win, "a, average win on capital at risk"),
        ("kelly_avg_loss", SEED.kelly_avg_loss, "b, average loss on capital at risk"),
    ):
        value, lo, hi = (_scalar(ds, f"{name}{s}") for s in ("", "_lo", "_hi"))
        verdict, rule = interval_verdict(claim, lo, hi)
        rows.append(
            Row(topic, f"Kelly input {what}", pct(claim), f"measured {_ci(value, lo, hi)}",
                verdict, rule, dict(value=value, lo=lo, hi=hi))
        )  # fmt: skip
    value, lo, hi = (_scalar(ds, f"kelly_fraction{s}") for s in ("", "_lo", "_hi"))
    g, g_lo, g_hi = (_scalar(ds, f"kelly_growth_optimal{s}") for s in ("", "_lo", "_hi"))
    rec = _scalar(ds, "kelly_recommended")
    verdict, rule = interval_verdict(SEED.kelly_printed, lo, hi, num)
    rows.append(
        Row(
            topic,
            "Kelly fraction implied by the simulated trades (seed formula)",
            num(SEED.kelly_printed),
            f"seed formula {_ci(value, lo, hi, num)}; growth-optimal {_ci(g, g_lo, g_hi, num)}; "
            f"sizing rule -> sleeve {pct(rec)} (scenario uses kelly_fraction "
            f"{num(strategy.kelly_fraction)})",
            verdict,
            rule,
            dict(value=value, lo=lo, hi=hi, growth_optimal=g, growth_optimal_lo=g_lo,
                 growth_optimal_hi=g_hi, recommended=rec),
        )
    )  # fmt: skip
    rows.append(_sleeve_kelly_row(ds))
    return rows


def _sleeve_kelly_row(ds: Any) -> Row:
    """The seed's sleeve share against the Kelly of the whole sleeve (simkit.kelly_sleeve)."""
    f, lo, hi = (_scalar(ds, f"kelly_sleeve_fraction{s}") for s in ("", "_lo", "_hi"))
    f21, lo21, hi21 = (_scalar(ds, f"kelly_sleeve_fraction_21d{s}") for s in ("", "_lo", "_hi"))
    share = _scalar(ds, "kelly_sleeve_share_seed")
    growth, at_share, cash = (
        _scalar(ds, f"kelly_sleeve_growth{s}") for s in ("", "_seed", "_cash")
    )
    if math.isnan(lo) or math.isnan(hi):
        verdict, rule = "undecided", "the sleeve Kelly is undefined"
    elif share > hi:
        verdict = "refuted"
        rule = (
            f"the sleeve share {pct(share)} > upper 95 % bound {num(hi)} of the growth-optimal "
            "share: the seed over-bets" + ("; f* = 0: do not allocate" if f == 0 else "")
        )
    elif share < lo:
        verdict, rule = "consistent", f"the sleeve share {pct(share)} < f* lower bound {num(lo)}"
    else:
        verdict = "undecided"
        rule = f"the sleeve share {pct(share)} inside f*'s interval [{num(lo)}, {num(hi)}]"
    return Row(
        "Kelly",
        "the sleeve the seed's Kelly rule sizes is at most the growth-optimal share (a "
        "fractional Kelly bet)",
        pct(share),
        f"sleeve Kelly f* {_ci(f, lo, hi, num)} (21-day returns {_ci(f21, lo21, hi21, num)}); "
        f"expected log growth of the portfolio over the horizon: {num(at_share, 4)} at "
        f"{pct(share)}, {num(growth, 4)} at f*, {num(cash, 4)} in cash",
        verdict,
        rule,
        dict(value=f, lo=lo, hi=hi, fraction_21d=f21, fraction_21d_lo=lo21,
             fraction_21d_hi=hi21, share=share, growth=growth, growth_at_share=at_share,
             growth_cash=cash),
    )  # fmt: skip


def _market_law(market: Any) -> tuple[Any, str]:
    """The market whose law the real-world probabilities read, and its words: a history's is
    the GBM with the history's drift and volatility (`history_moments`)."""
    if market.model in HISTORY_MODELS:
        law = dataclasses.replace(history_moments(market), model="gbm")
        return law, (
            f"{market.model} of the history: GBM at its drift {pct(law.mu)}, vol {pct(law.sigma)}"
        )
    return market, _real_world_law(market)


def _strike_rows(ds: Any, scenario: Any) -> list[Row]:
    """The seed's strike table against Black-Scholes and the model: each quote, the quotes as
    one chain, the IV thresholds, the 'annual yield' column and the assignment
    probabilities."""
    market, law_text = _market_law(scenario.market)
    dte = float(scenario.strategy.dte_calendar)
    half_spread = float(market.bid_ask_spread) / 2
    table = premium_table(SEED.strikes, SEED.premiums, spot=SEED.spot, vol=SEED.iv,
                          rate=SEED.rate, dte=dte, dte_range=(SEED.dte_min, SEED.dte_max))  # fmt: skip
    rows = [_premium_row(i, table, dte, half_spread) for i in range(len(SEED.strikes))]
    rows.append(_one_chain_row(table))
    rows.append(_iv_threshold_row())
    rows += _yield_rows(ds, scenario, table, dte, market)
    rows += _assignment_rows(ds, scenario, dte, market, law_text)
    return rows


def _premium_row(i: int, table: dict[str, np.ndarray], dte: float, half_spread: float) -> Row:
    """The seed's quote at strike `i` against Black-Scholes over its DTE range (`table`:
    `premium_table`): consistent when it is within half a spread of that range."""
    k, q = SEED.strikes[i], SEED.premiums[i]
    where = f"S {SEED.spot:.2f}, IV {pct(SEED.iv, 2)}, r {pct(SEED.rate, 0)}"
    lo_bs, hi_bs = float(table["bs_lo"][i]), float(table["bs_hi"][i])
    distance = max(lo_bs - q, q - hi_bs, 0.0)  # from the quote to [BS(30 d), BS(45 d)]
    verdict, rule = threshold_verdict(
        distance,
        half_spread,
        f"distance from the quote to BS over {SEED.dte_min:g}-{SEED.dte_max:g} DTE "
        f"[{num(lo_bs)}, {num(hi_bs)}] vs the half spread:",
        "consistent",
        "inconsistent",
    )
    iv_q = float(table["implied_vol"][i])
    iv_text = (
        pct(iv_q)
        if math.isfinite(iv_q)
        else (
            f"none (quote outside [{num(table['lower_bound'][i])}, "
            f"{num(table['upper'][i])}), the no-arbitrage bounds)"
        )
    )
    return Row(
        "premium table",
        f"${k:.2f} put premium at {where}",
        f"${q:.2f}",
        f"BS {dte:g} d {num(table['bs'][i])} ({SEED.dte_min:g} d {num(lo_bs)}, "
        f"{SEED.dte_max:g} d {num(hi_bs)}); implied spot {num(table['implied_spot'][i])}; "
        f"implied IV at S {SEED.spot:.2f}: {iv_text}; "
        f"implied DTE {_days(table['implied_dte'][i])}",
        verdict,
        rule,
        {key: float(v[i]) for key, v in table.items()},
    )


def _one_chain_row(table: dict[str, np.ndarray]) -> Row:
    """Whether the five quotes price as one Black-Scholes chain: their implied spots agree."""
    spots = table["implied_spot"]
    spread = float(np.nanmax(spots) - np.nanmin(spots))
    verdict, rule = threshold_verdict(
        spread, 0.01, "range of the implied spots vs $0.01:", "one spot", "no single spot", num
    )
    return Row(
        "premium table",
        "the five quotes as one Black-Scholes chain (one spot, IV 425.17 %)",
        f"spot {SEED.spot:.2f} (baseline)",
        f"implied spots {', '.join(num(s, 2) for s in spots)} (range {num(spread, 2)})",
        verdict,
        rule,
        dict(implied_spots=spots.tolist(), range=spread),
    )


def _iv_threshold_row() -> Row:
    """The seed's IV threshold per strike against its own allocation of all five strikes at
    today's IV."""
    ok = [k for k, th in zip(SEED.strikes, SEED.iv_thresholds, strict=True) if SEED.iv > th]
    n_bad = len(SEED.strikes) - len(ok)
    verdict, rule = threshold_verdict(
        n_bad, 0, "allocated strikes failing their threshold:", "consistent",
        "contradicts the allocation", lambda x: f"{x:g}",
    )  # fmt: skip
    return Row(
        "premium table",
        "IV thresholds (>300 % ... >500 %) with all five strikes allocated at IV 425.17 %",
        ", ".join(f">{pct(t, 0)}" for t in SEED.iv_thresholds),
        f"threshold met for strikes {', '.join(f'${k:g}' for k in ok)}; "
        f"{n_bad} of {len(SEED.strikes)} allocated strikes fail their own threshold "
        "(the simulated ladder sells all five)",
        verdict,
        rule,
        dict(strikes_ok=ok, n_failing=n_bad),
    )


def _yield_rows(
    ds: Any, scenario: Any, table: dict[str, np.ndarray], dte: float, market: Any
) -> list[Row]:
    """The "annual yield" column: each strike's figure recomputed and against the model's
    expected P&L of the quote, then the ladder's against the simulated annual return."""
    recomputed = annual_yield(SEED.premiums, SEED.strikes, 12)
    t_real = assignment_probabilities(SEED.strikes, spot=SEED.spot, vol=SEED.iv, rate=SEED.rate,
                                      dte=dte, market=market)["t_real"]  # fmt: skip
    payoff = expected_put_payoff(SEED.spot, SEED.strikes, float(t_real), market)
    periods = 365.0 / dte
    expected_yield = (np.asarray(SEED.premiums) - payoff) / np.asarray(SEED.strikes) * periods
    bs_yield = table["bs"] / table["strike"] * periods
    rows = []
    for i, k in enumerate(SEED.strikes):
        verdict, rule = tolerance_verdict(SEED.annual_yield[i], recomputed[i], YIELD_TOL, pct,
                                          "reproduced as premium / strike x 12")  # fmt: skip
        rows.append(
            Row(
                "annual yield",
                f"${k:.2f} put 'annual yield' (premium ${SEED.premiums[i]:.2f})",
                pct(SEED.annual_yield[i], 0),
                f"{SEED.premiums[i]:.2f} / {k:g} x 12 = {pct(recomputed[i])} (simple, on "
                f"notional, same premium every month, never assigned); model: expected P&L of "
                f"the quote held to expiry {pct(expected_yield[i], 0)} a year, BS premium "
                f"{num(table['bs'][i])} / {k:g} x 365/{dte:g} = {pct(bs_yield[i], 0)}",
                verdict,
                rule,
                dict(recomputed=float(recomputed[i]), expected_pnl_yield=float(expected_yield[i]),
                     bs_yield=float(bs_yield[i]), expected_payoff=float(payoff[i])),
            )
        )  # fmt: skip
    rows.append(_ladder_yield_row(ds, scenario, expected_yield))
    return rows


def _ladder_yield_row(ds: Any, scenario: Any, expected_yield: np.ndarray) -> Row:
    """The ladder's allocation-weighted "annual yield" against the simulated annual return
    (beside the model's expected P&L of the quotes and the simulated premium income)."""
    weights = np.asarray(SEED.weights)
    ladder_claim = float(weights @ np.asarray(SEED.annual_yield))
    ladder_expected = float(weights @ expected_yield)
    n_steps = int(ds.attrs.get("n_steps", scenario.simulation.n_steps))
    initial = _scalar(ds, "initial_equity")
    buckets = [str(b) for b in ds["bucket"].values] if "bucket" in ds else []
    premium_income = (
        float(ds["attribution_mean"].values[buckets.index("premium_income")])
        if "premium_income" in buckets
        else math.nan
    )
    sim_premium_yield = premium_income / initial * 252.0 / n_steps
    mean, lo, hi = (_scalar(ds, f"annual_return_mean{s}") for s in ("", "_lo", "_hi"))
    verdict, rule = interval_verdict(ladder_claim, lo, hi)
    return Row(
        "annual yield",
        "ladder 'annual yield' (allocation-weighted column)",
        pct(ladder_claim, 0),
        f"model expected P&L of the quotes {pct(ladder_expected, 0)} a year; simulated "
        f"premium income {pct(sim_premium_yield, 0)} of the sleeve a year; simulated "
        f"annual return {_ci(mean, lo, hi)}",
        verdict,
        "vs the simulated annual return: " + rule,
        dict(claim=ladder_claim, expected_pnl_yield=ladder_expected,
             simulated_premium_yield=sim_premium_yield, annual_return_mean=mean),
    )  # fmt: skip


def _assignment_rows(ds: Any, scenario: Any, dte: float, market: Any, law_text: str) -> list[Row]:
    """The seed's assignment probability per strike against the real-world probability of
    finishing in the money (beside the risk-neutral one and the simulated rate), then their
    ordering across strikes."""
    probs = assignment_probabilities(SEED.strikes, spot=SEED.spot, vol=SEED.iv, rate=SEED.rate,
                                     dte=dte, market=market)  # fmt: skip
    sim_rate = _simulated_assignment_rate(ds, scenario)
    rows = []
    for i, k in enumerate(SEED.strikes):
        rw, rn = float(probs["real_world"][i]), float(probs["risk_neutral"][i])
        verdict, rule = tolerance_verdict(SEED.assignment_prob[i], rw, ASSIGNMENT_TOL, pct,
                                          "consistent", "refuted")  # fmt: skip
        rows.append(
            Row(
                "assignment probability",
                f"${k:.2f} put assigned",
                pct(SEED.assignment_prob[i], 0),
                f"P(S_T < K): real world ({law_text}) "
                f"{pct(rw)}, risk-neutral N(-d2) at IV {pct(SEED.iv, 0)} {pct(rn)}; simulated "
                f"over the year (puts sold at the day's spot, the scenario's exits) "
                f"~{pct(sim_rate[i])} of trades at this strike",
                verdict,
                "vs the real-world probability: " + rule,
                dict(real_world=rw, risk_neutral=rn, simulated=float(sim_rate[i])),
            )
        )
    rows.append(_assignment_order_row(probs["real_world"]))
    return rows


def _simulated_assignment_rate(ds: Any, scenario: Any) -> np.ndarray:
    """Per seed strike, the run's assignments per trade at that rung (NaN where the ladder has
    no such rung)."""
    sim_rate = np.full(len(SEED.strikes), np.nan)
    if "assignment_rate" in ds:
        rates = np.asarray(ds["assignment_rate"].values, dtype=np.float64)
        ladder = [float(k) for k in scenario.strategy.strikes]
        for i, k in enumerate(SEED.strikes):
            if k in ladder and len(rates) == len(ladder):
                # per closed trade of the ladder -> per trade at this rung, assuming each
                # tranche opens one trade per rung (the engine does not count trades by rung)
                sim_rate[i] = rates[ladder.index(k)] * len(ladder)
    return sim_rate


def _assignment_order_row(real_world: Any) -> Row:
    """Whether the seed's assignment probabilities move with the strike as the model's do."""
    seed_trend = float(stats.spearmanr(SEED.strikes, SEED.assignment_prob).statistic)
    model_trend = float(stats.spearmanr(SEED.strikes, real_world).statistic)
    same = np.sign(seed_trend) == np.sign(model_trend)
    return Row(
        "assignment probability",
        "ordering across strikes",
        "falls as the strike rises" if seed_trend < 0 else "rises with the strike",
        "rises with the strike" if model_trend > 0 else "falls as the strike rises",
        "consistent" if same else "backwards",
        f"rank correlation with the strike: seed {num(seed_trend, 2)}, model "
        f"{num(model_trend, 2)} ({'same' if same else 'opposite'} sign; a put with a higher "
        "strike is deeper in the money, so more likely to be assigned)",
        dict(seed_rank_corr=seed_trend, model_rank_corr=model_trend),
    )


def _compounding_row(ds: Any, scenario: Any) -> Row:
    months = SEED.months
    initial = _scalar(ds, "initial_equity")
    addition = float(scenario.strategy.monthly_addition)
    monthly_yield = float(
        np.asarray(SEED.weights) @ (np.asarray(SEED.premiums) / np.asarray(SEED.strikes))
    )
    seed_path = compound_seed(months, initial, addition, monthly_yield, SEED.reinvest)
    fixed_path = compound_corrected(months, initial, addition, monthly_yield, SEED.reinvest)
    lost = float(fixed_path[-1] - seed_path[-1])
    verdict, rule = threshold_verdict(
        lost, 0.01, "capital kept by the corrected rule minus the seed's after 12 months:",
        "capital kept", "capital dropped", usd,
    )  # fmt: skip
    return Row(
        "compounding",
        "compound_position_size: 80 % of premium reinvested, 'exponential growth'",
        "current_capital = put_reinvestment + monthly_addition",
        f"{months} months from {usd(initial)} (monthly addition {usd(addition)}), premium "
        f"income = capital x {pct(monthly_yield)} a month (the seed's quotes / strikes, "
        f"allocation-weighted: its 'annual yield' / 12): as written {usd(seed_path[-1])} "
        f"(month 1: {usd(seed_path[0])}); keeping the capital {usd(fixed_path[-1])} "
        f"(x{fixed_path[-1] / initial:,.1f}, vs x{1 + SEED.annual_return:.2f} claimed); "
        f"lost {usd(lost)}",
        verdict,
        rule,
        dict(monthly_yield=monthly_yield, seed=seed_path.tolist(),
             corrected=fixed_path.tolist(), lost=lost, initial=initial, addition=addition),
    )  # fmt: skip


def _mechanics_rows(ds: Any, scenario: Any) -> list[Row]:
    """The seed's rules against what they do: the stop-loss, the call hedges, the limits."""
    return [_stop_loss_row(ds, scenario), _hedge_delta_row(scenario), _limits_row(ds, scenario)]


def _stop_loss_row(ds: Any, scenario: Any) -> Row:
    """Whether the stop-loss can fire on puts sold at the seed's IV: its trigger against the
    most a put can be worth (and how often the run closed by stop)."""
    market, strategy = scenario.market, scenario.strategy
    dte = float(strategy.dte_calendar)
    t = dte / 365.0
    k = np.asarray(SEED.strikes)
    mid = _bs_put(SEED.spot, k, t, SEED.rate, SEED.iv)
    premium = np.maximum(mid - float(market.bid_ask_spread) / 2, float(strategy.min_quote))
    trigger = (1 + float(strategy.stop_loss_multiple)) * premium
    ceiling = k * math.exp(-SEED.rate * t)
    can_fire = trigger < ceiling
    # the IV below which a put sold at that IV could still reach the stop: BS(IV) = ceiling / 3
    iv_fire = _implied_vol(ceiling / (1 + float(strategy.stop_loss_multiple)), SEED.spot, k, t,
                           SEED.rate)  # fmt: skip
    reasons = [str(r) for r in ds["close_reason"].values] if "close_reason" in ds else []
    stop_share = (
        float(ds["close_reason_share"].values[reasons.index("stop")])
        if "stop" in reasons
        else math.nan
    )
    verdict, rule = threshold_verdict(
        int(can_fire.sum()), 0, "strikes whose stop can fire at entry:", "cannot fire at entry",
        "can fire", lambda x: f"{x:g}",
    )  # fmt: skip
    return Row(
        "mechanics",
        f"stop-loss at a {pct(strategy.stop_loss_multiple, 0)} loss (mid >= "
        f"{1 + strategy.stop_loss_multiple:g} x premium) on puts sold at IV 425 %",
        "200 % loss vs premium",
        f"stop levels {', '.join(num(x, 2) for x in trigger)} vs the most a put can be "
        f"worth, K e^(-rT) {', '.join(num(x, 2) for x in ceiling)}; it can fire only for puts "
        f"sold below IV {', '.join(_never(x) for x in iv_fire)}; simulated share of closes "
        f"by stop {pct(stop_share, 2)}",
        verdict,
        rule,
        dict(trigger=trigger.tolist(), ceiling=ceiling.tolist(), iv_fire=iv_fire.tolist(),
             simulated_stop_share=stop_share),
    )  # fmt: skip


def _hedge_delta_row(scenario: Any) -> Row:
    """Whether the call 'hedges' offset the short puts: the signs of the two books' deltas."""
    strategy = scenario.strategy
    t = float(strategy.dte_calendar) / 365.0
    k = np.asarray(SEED.strikes)
    with x64(True):
        put_delta = np.asarray(bs_greeks(SEED.spot, k, t, SEED.rate, SEED.iv)["delta"])
        moneyness = np.asarray(strategy.hedge_high_iv_moneyness)
        call_delta = np.asarray(
            bs_greeks(SEED.spot, SEED.spot * moneyness, strategy.hedge_dte_calendar / 365.0,
                      SEED.rate, SEED.iv, 0.0, True)["delta"]
        )  # fmt: skip
    book = float(-(np.asarray(SEED.weights) * put_delta).sum())  # short puts: minus the delta
    hedge = float((np.asarray(strategy.hedge_high_iv_weights) * call_delta).sum())
    offsets = np.sign(book) != np.sign(hedge)
    return Row(
        "mechanics",
        "call 'hedges' (20 % of premium) provide 'risk management'",
        "calls at 1.5, 2, 3 x spot, 90 d",
        f"delta per share of the short-put ladder {num(book)} (long the stock), of the "
        f"hedge calls {num(hedge)}",
        "offsets the puts" if offsets else "adds to the puts' delta",
        f"signs of the two deltas: {'opposite' if offsets else 'the same'} (true signed "
        "deltas; the seed's convention counts a short put as negative)",
        dict(put_book_delta=book, hedge_delta=hedge),
    )


def _limits_row(ds: Any, scenario: Any) -> Row:
    """Whether the seed's risk limits fit together: the notional a full sleeve at full
    leverage reaches against the allocation limit (and how often the run breached it)."""
    strategy = scenario.strategy
    reach = float(strategy.max_total_strategy_pct) * float(strategy.max_leverage)
    limits = [str(x) for x in ds["limit"].values] if "limit" in ds else []
    share = (
        float(ds["breach_path_share"].values[limits.index("allocation")])
        if "allocation" in limits
        else math.nan
    )
    verdict, rule = threshold_verdict(
        reach - strategy.max_total_strategy_pct, 0.0,
        "notional a full sleeve reaches above the allocation limit:", "compatible", "collide",
        pct,
    )  # fmt: skip
    return Row(
        "mechanics",
        "risk limits: sleeve <= 20 % of the portfolio, leverage 1.5x, notional <= 20 %",
        "20 % allocation at 1.5x leverage",
        f"a full sleeve at full leverage holds {pct(reach, 0)} of the portfolio in notional; "
        f"simulated years breaching the allocation limit {pct(share)}",
        verdict,
        rule,
        dict(reachable_notional=reach, breach_path_share=share),
    )


def _fill_row(ds: Any, fill_runs: dict[str, Any], scenario: Any) -> Row | None:
    if not fill_runs:
        return None
    own = str(scenario.strategy.fill)
    runs = {own: ds, **fill_runs}
    means = {f: _scalar(r, "annual_return_mean") for f, r in runs.items()}
    text = "; ".join(
        f"{f}: {_ci(means[f], _scalar(r, 'annual_return_mean_lo'), _scalar(r, 'annual_return_mean_hi'))}"
        for f, r in runs.items()
    )
    best = max(runs, key=lambda f: means[f])
    worst = min(runs, key=lambda f: means[f])
    verdict, rule = interval_verdict(
        SEED.annual_return,
        _scalar(runs[best], "annual_return_mean_lo"),
        _scalar(runs[best], "annual_return_mean_hi"),
    )
    return Row(
        "fills",
        "annual return with the fill assumption that helps most",
        pct(SEED.annual_return),
        f"mean annual return by fill: {text}; {best} vs {worst}: "
        f"{pct(means[best] - means[worst])} a year depends on fills",
        verdict,
        f"with fill = {best}: " + rule,
        dict(means=means, best=best, dependence=means[best] - means[worst]),
    )


def build_rows(scenario: Any, ds: Any, fill_runs: dict[str, Any] | None = None) -> list[Row]:
    """Every claim row from a per-path result `ds` of a one-cell scenario (and, optionally,
    results of the same run under other fill modes, keyed by the mode)."""
    rows = _performance_rows(ds)
    rows += _kelly_rows(ds, scenario.strategy)
    rows += _strike_rows(ds, scenario)
    rows.append(_compounding_row(ds, scenario))
    rows += _mechanics_rows(ds, scenario)
    fill = _fill_row(ds, fill_runs or {}, scenario)
    if fill is not None:
        rows.append(fill)
    if int(np.asarray(ds["paths"].values)) == 1:
        _one_history(rows)
    return rows


ONE_PATH = "one path (a history replayed): no interval across paths"


def _one_history(rows: list[Row]) -> None:
    """One path has no interval: the performance claims are compared with the history's own
    figure (a point, labelled as one history), the other interval verdicts say why they are
    undecided."""
    for row in rows:
        if row.topic == "performance" and row.claim_id in _HISTORY_POINTS:
            key, higher_holds, fmt = _HISTORY_POINTS[row.claim_id]
            claim = next(c.claimed for c in MARKET_CLAIMS if c.name == row.claim_id)
            value = float(row.numbers.get(key, math.nan))
            if math.isnan(value):
                row.verdict, row.rule = (
                    "undecided",
                    f"{ONE_PATH}; the history's figure is undefined",
                )
                continue
            holds = value >= claim if higher_holds else value <= claim
            row.verdict = "met in this history" if holds else "not met in this history"
            sign = (">=" if holds else "<") if higher_holds else ("<=" if holds else ">")
            row.rule = f"{ONE_PATH}; the history's {fmt(value)} {sign} the claim {fmt(claim)}"
        elif row.rule.startswith(("no interval", "share of paths", "the sleeve Kelly")):
            row.rule = f"{ONE_PATH} ({row.rule})"


# claim -> (the number of its row that one history gives, higher is better, format)
_HISTORY_POINTS = {
    "annual_return": ("mean", True, pct),
    "sharpe": ("median", True, num),
    "win_rate": ("trade", True, pct),
    "max_drawdown": ("worst", True, pct),
}


# --------------------------------------------------------------------------- the check

FILL_MODES = ("bid_ask", "seed")


def check_claims(
    scenario: Any,
    *,
    paths: int | None = None,
    seed: int | None = None,
    engine: str | None = None,
    fills: bool = True,
    markets: bool = True,
    market_paths: int | None = None,
    progress: bool = False,
    simulate: Callable[..., Any] | None = None,
) -> ClaimsReport:
    """Run `scenario` (one cell, per-path figures) and check every claim of the seed.

    Args:
      scenario: a `simkit.scenario.Scenario` without a grid.
      paths: paths simulated. Default value: the scenario's, at most `DEFAULT_PATHS`.
      seed, engine: override the scenario's. Default value: the scenario's.
      fills: also run the other fill modes of `FILL_MODES` (same seed) for the fill row.
      markets: also judge the performance claims across the scenario's family of markets
        (`simkit.claims_markets`; the `[claims]` table).
      market_paths: paths per market of the family. Default value: the `[claims]` table's
        `paths`, at most `paths`.
      simulate: the simulator (tests may pass a stub). Default value: `simkit.run.simulate`.
    """

    simulate = simulate or run_simulate
    if scenario.grid:
        raise ScenarioError(
            scenario.path,
            [("grid", None, "the claims check runs one market: use a scenario without [grid]")],
        )
    if paths is None:
        paths = min(scenario.simulation.paths, DEFAULT_PATHS)
    started = time.perf_counter()
    kwargs = dict(paths=paths, seed=seed, engine=engine, progress=progress)
    ds = simulate(scenario, per_path=True, **kwargs)
    fill_runs = _fill_runs(scenario, simulate, kwargs) if fills else {}
    rows = build_rows(scenario, ds, fill_runs)
    found = None
    skipped = _why_not_across_markets(scenario) if markets else ""
    if markets and not skipped:
        if market_paths is None:  # the [claims] table's, at most the claims run's own
            market_paths = min(scenario.claims.paths, paths)
        found = judge_across_markets(
            scenario, MARKET_CLAIMS, paths=market_paths, seed=seed, engine=engine,
            simulate=simulate,
        )  # fmt: skip
        _add_market_verdicts(rows, found)
    meta = _meta(scenario, ds, fill_runs, paths=paths, seed=seed, engine=engine)
    meta["wall_time_s"] = time.perf_counter() - started
    meta["seed_document"] = "seed/000_2384f852ce719eba.txt"
    if skipped:
        meta["markets_skipped"] = skipped
    return ClaimsReport(rows, meta, found)


def _fill_runs(
    scenario: Any, simulate: Callable[..., Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The same run under each other fill mode of `FILL_MODES`, by mode."""
    fill_runs = {}
    for mode in FILL_MODES:
        if mode != scenario.strategy.fill:
            overrides = {**scenario.overrides, "execution.fill": mode}
            other = parse_scenario(scenario.text, path=scenario.path, overrides=overrides)
            fill_runs[mode] = simulate(other, **kwargs)
    return fill_runs


def _why_not_across_markets(scenario: Any) -> str:
    """Why the claims cannot be judged across the family of markets ("" when they can)."""
    if scenario.market.model not in HISTORY_MODELS:
        return ""
    return (
        f"not judged: the market is a history (model = {scenario.market.model!r}), whose "
        "spot and IV the family's keys (sigma, mu, jump_intensity) do not move, and "
        "iv_long_run moves only the IV percentile's law; judge the claims across markets on "
        "a simulated market (gbm, merton, heston, bates)"
    )


def _add_market_verdicts(rows: list[Row], found: Any) -> None:
    """Each market claim's row gets its verdict across markets (`MarketVerdicts`)."""
    for row in rows:
        if row.claim_id:
            row.markets = found.verdict[row.claim_id]
            row.numbers["markets"] = {
                "break_even": found.break_even[row.claim_id],
                "holds_anywhere": found.holds_anywhere[row.claim_id],
            }


def _meta(
    scenario: Any,
    ds: Any,
    fill_runs: dict[str, Any],
    *,
    paths: int,
    seed: int | None,
    engine: str | None,
) -> dict[str, Any]:
    """What was run: the scenario, the run's settings (as the run reports them) and the fills."""
    return {
        "scenario": scenario.path,
        "paths": int(ds.attrs.get("paths", paths)),
        "seed": int(ds.attrs.get("seed", scenario.simulation.seed if seed is None else seed)),
        "n_steps": int(ds.attrs.get("n_steps", scenario.simulation.n_steps)),
        "engine": str(ds.attrs.get("engine", engine or scenario.simulation.engine)),
        "fill": str(scenario.strategy.fill),
        "fill_runs": sorted(fill_runs),
        "dte_calendar": float(scenario.strategy.dte_calendar),
    }


# --------------------------------------------------------------------------- output


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(report: ClaimsReport) -> str:
    """The report as JSON: `meta` and `rows` (non-finite numbers as null)."""
    data = {"meta": report.meta, "rows": [dataclasses.asdict(r) for r in report.rows]}
    if report.markets is not None:
        data["markets"] = report.markets.to_json()
    return json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n"


def title(report: ClaimsReport) -> str:
    m = report.meta
    return (
        f"seed claim vs simkit: {m['scenario']}, {m['paths']:,} paths, {m['n_steps']} days, "
        f"seed {m['seed']}, engine {m['engine']}, fill {m['fill']}, DTE {m['dte_calendar']:g}"
    )


def to_markdown(report: ClaimsReport, explained: tuple[Any, str] | None = None) -> str:
    """The report as a Markdown table (one row per claim) with a header; the sections across
    markets and, given `(dataset, file name)` of a `simkit explain` result, what each rule
    costs."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Claims check",
        "",
        title(report),
        "",
        "Every verdict is computed by the rule in the last column; intervals are 95 %.",
        "",
        "| topic | claim | seed | simkit | verdict | rule | across markets |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        lines.append(
            "| " + " | ".join(cell(x) for x in (r.topic, r.claim, r.seed, r.simkit,
                                                  f"**{r.verdict}**", r.rule, r.markets)) + " |"
        )  # fmt: skip
    if report.markets is not None:
        lines += ["", *markets_markdown(report.markets)]
    elif report.meta.get("markets_skipped"):
        lines += ["", "## Across markets", "", report.meta["markets_skipped"] + "."]
    if explained is not None:
        lines += ["", *explain_markdown(*explained)]
    return "\n".join(lines) + "\n"


def explain_markdown(ds: Any, source: str) -> list[str]:
    """What each rule costs (a `simkit explain` result, `ds`), as Markdown lines."""

    def value(name: str, i: int) -> float:
        return float(ds[name].values[i])

    lines = [
        "## What each rule costs",
        "",
        f"From `{source}` ({ds.attrs.get('paths', '?')} paths, the scenario's own paths for "
        "every change): the change of each metric when one rule or assumption changes, with "
        "its paired 95 % interval. The scenario: mean annual return "
        f"{pct(float(ds['base_annual_return_mean']))}, P(loss) "
        f"{pct(float(ds['base_prob_loss']))}.",
        "",
        "| change | annual return mean | change [95 %] | P(loss) change [95 %] |",
        "|---|---|---|---|",
    ]
    for i, label in enumerate(ds["change"].values):
        ret = [value(f"annual_return_mean{s}", i) for s in ("", "_delta", "_delta_lo", "_delta_hi")]
        loss = [value(f"prob_loss{s}", i) for s in ("_delta", "_delta_lo", "_delta_hi")]
        lines.append(
            f"| `{label}` | {pct(ret[0])} | {_ci(ret[1], ret[2], ret[3])} | "
            f"{_ci(loss[0], loss[1], loss[2])} |"
        )
    return lines


def markets_markdown(found: Any) -> list[str]:
    """The family of markets and each claim's break-evens, as Markdown lines."""
    family = ", ".join(
        f"`{k}` {lo:g} to {hi:g} (scenario {found.scenario_values[k]:g})"
        for k, (lo, hi) in found.family.items()
    )
    lines = [
        "## Across markets",
        "",
        f"Family: {family}; {found.paths:,} paths per market, common random numbers; "
        f"{found.evaluations} markets along the keys and a {found.grid_cells}-cell grid."
        + (f" Left out: {'; '.join(found.left_out)}." if found.left_out else ""),
        "",
        "| claim | claimed | "
        + " | ".join(f"break-even {k}" for k in found.family)
        + " | grid cells holding | verdict |",
        "|---|---|" + "---|" * len(found.family) + "---|---|",
    ]
    for claim in found.claims:
        cells = []
        for key in found.family:
            f = found.break_even[claim.name][key]
            if f is None:
                cells.append("holds nowhere")
            elif f["holds"] == "everywhere":
                cells.append("holds everywhere")
            else:
                se = f" ± {f['se']:.2g}" if f["se"] is not None else ""
                sign = "<" if f["holds"] == "below" else ">"
                cells.append(f"holds where {sign} {f['value']:.3g}{se}")
        shown = pct(claim.claimed) if claim.unit == "pct" else num(claim.claimed, 2)
        lines.append(
            f"| {claim.label} | {shown} | "
            + " | ".join(cells)
            + f" | {found.grid_holds[claim.name]} of {found.grid_cells} | "
            f"{found.verdict[claim.name]} |"
        )
    return lines
