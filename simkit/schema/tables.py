"""The scenario file's tables as pydantic records (no JAX): every key declared once, with its
default, unit, bounds and meaning; cross-key checks per table (`checks`).

`simkit.scenario` reads TOML into these records (and builds the engines' parameter records from
them); docs/SCENARIO.md is generated from them. `TABLES` maps each table name to its record.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)

from simkit.schema.market import MarketParams
from simkit.schema.strategy import StrategyConfig, steps_for_calendar_days

TRADING_DAYS_PER_YEAR = 252

# ---------------------------------------------------------------------------------------------
# Value types: strict (no bool for a number, no string for a number), finite, int allowed for
# float. Constraints are given per key in the models.

Float = Annotated[float, Strict(), AllowInfNan(False)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
PositiveFloats = list[Annotated[float, Strict(), AllowInfNan(False), annotated_types.Gt(0)]]


def _sums_to_one(weights: list[float]) -> list[float]:
    total = sum(weights)  # the same sum StrategyConfig.problems() checks
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"must sum to 1 (weights are never normalised), sum is {total!r}")
    return weights


Weights = Annotated[
    list[
        Annotated[float, Strict(), AllowInfNan(False), annotated_types.Ge(0), annotated_types.Le(1)]
    ],
    AfterValidator(_sums_to_one),
]

_STRATEGY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(StrategyConfig)}

# The fields and defaults of the market record, declared once (simkit.schema.market).
_MARKET_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(MarketParams)}


def _key(default: Any, unit: str, meaning: str, **constraints: Any) -> Any:
    """A documented key: its default, unit and meaning (docs/SCENARIO.md is built from these)."""
    if isinstance(default, tuple):
        default = list(default)
    return Field(
        default=default, description=meaning, json_schema_extra={"unit": unit}, **constraints
    )


def _s(name: str, unit: str, meaning: str, **constraints: Any) -> Any:
    """A StrategyConfig field: the default is the record's own."""
    return _key(_STRATEGY_DEFAULTS[name], unit, meaning, **constraints)


def _m(name: str, unit: str, meaning: str, **constraints: Any) -> Any:
    """A MarketParams field."""
    return _key(_MARKET_DEFAULTS[name], unit, meaning, **constraints)


class _Table(BaseModel):
    """One TOML table. Unknown keys are errors; defaults fill omitted keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    def checks(self) -> list[tuple[str, str]]:
        """Cross-key problems of this table, as (key, message) pairs."""
        return []


def _steps_check(name: str, days: float) -> list[tuple[str, str]]:
    if steps_for_calendar_days(days) < 1:
        return [(name, f"must give at least one trading day (>= 0.73 calendar days), got {days!r}")]
    return []


def _ladder_checks(
    values_name: str, values: list[float], weights_name: str, weights: list[float]
) -> list[tuple[str, str]]:
    if len(weights) != len(values):
        message = (
            f"{len(weights)} weights for {len(values)} {values_name} entries; "
            f"give one weight per {values_name} entry"
        )
        return [(weights_name, message)]
    return []


# ---------------------------------------------------------------------------------------------
# The tables


class SimulationTable(_Table):
    """How many paths, which random numbers, how long, on which engine."""

    paths: Int = _key(10000, "paths", "Number of simulated market paths per grid cell.", ge=1)
    seed: Int = _key(
        0,
        "—",
        "Random seed; a path's numbers depend only on (seed, grid cell, path index).",
        ge=0,
        le=2**32 - 1,
    )
    years: Float = _key(
        1.0, "years", "Horizon; the run has round(252 * years) daily steps (half up).", gt=0
    )
    chunk_size: Int = _key(
        2048,
        "paths",
        "Paths simulated at once (two blocks run at once); bounds memory, never changes "
        "results. 2048 is the fastest measured on 2 CPU cores; use ~262144 on a GPU.",
        ge=1,
    )
    float64: Bool = _key(False, "—", "Compute in float64 instead of float32.")
    engine: Literal["jax", "reference"] = _key(
        "jax", "—", "Vectorized JAX engine, or the scalar reference engine (slow, for checks)."
    )
    description: Str | None = _key(None, "—", "Free text recorded with the results.")

    @property
    def n_steps(self) -> int:
        return int(math.floor(TRADING_DAYS_PER_YEAR * self.years + 0.5))

    def checks(self) -> list[tuple[str, str]]:
        if self.n_steps < 1:
            return [("years", f"must give at least one trading day (>= 1/504), got {self.years!r}")]
        return []


class MarketTable(_Table):
    """The simulated market: spot model, implied-volatility process, exogenous signal inputs."""

    model: Literal["gbm", "merton", "heston", "bates", "garch", "replay", "bootstrap"] = _m(
        "model",
        "—",
        "Spot model: geometric Brownian motion, Merton jump-diffusion, Heston stochastic "
        "variance (Andersen's QE scheme), Bates (Heston plus the Merton jumps), GJR-GARCH(1,1) "
        "daily returns with normal innovations, or a history CSV (`history`): replayed as one "
        "path, or block-bootstrapped (see History files).",
    )
    s0: Float = _m("s0", "USD", "Spot price at the start.", gt=0)
    mu: Float = _m("mu", "1/year", "Real-world drift; E[S_t] = s0 exp(mu t) in every model.")
    sigma: Float = _m(
        "sigma",
        "annual vol",
        "Diffusion volatility of the spot, gbm and merton (1.9 = 190 %).",
        gt=0,
    )
    risk_neutral: Bool = _m("risk_neutral", "—", "Set the drift to the rate (mu = rate).")
    rate: Float = _m("rate", "1/year", "Risk-free rate: option pricing and interest on cash.")
    jump_intensity: Float = _m(
        "jump_intensity", "jumps/year", 'Poisson jump rate (model = "merton" or "bates").', ge=0
    )
    jump_mean: Float = _m("jump_mean", "log return", "Mean of the log jump size (merton, bates).")
    jump_std: Float = _m(
        "jump_std", "log return", "Std. dev. of the log jump size (merton, bates).", ge=0
    )
    v0: Float = _m(
        "v0",
        "annual variance",
        "Spot variance at the start, heston and bates; garch: the first day's return's "
        "variance, annualized (h_1 = v0 / 252; 3.61 = 190 %²).",
        ge=0,
    )
    kappa_v: Float = _m(
        "kappa_v",
        "1/year",
        "Mean-reversion speed of the variance (heston, bates); > 0 with linked IV.",
        ge=0,
    )
    theta_v: Float = _m(
        "theta_v", "annual variance", "Long-run variance (heston, bates; 3.61 = 190 %²).", gt=0
    )
    xi: Float = _m(
        "xi",
        "1/sqrt(year)",
        "Volatility of the variance: dv = … + xi sqrt(v) dW (heston, bates).",
        ge=0,
    )
    rho: Float = _m(
        "rho",
        "—",
        "Correlation of the variance and spot shocks (< 0: leverage; heston, bates).",
        ge=-1,
        le=1,
    )
    garch_omega: Float = _m(
        "garch_omega",
        "daily variance",
        "GJR-GARCH constant (garch): h' = omega + (alpha + gamma [eps < 0]) eps² + beta h, h the "
        "daily variance of log returns as fractions, not percent (arch on percent returns "
        "reports omega × 10⁴). Default: long-run vol 190 % at persistence 0.97.",
        gt=0,
    )
    garch_alpha: Float = _m(
        "garch_alpha", "—", "GJR-GARCH ARCH coefficient of yesterday's squared shock (garch).", ge=0
    )
    garch_gamma: Float = _m(
        "garch_gamma",
        "—",
        "GJR-GARCH leverage: the extra ARCH coefficient after a down day (garch); >= -garch_alpha.",
    )
    garch_beta: Float = _m(
        "garch_beta",
        "—",
        "GJR-GARCH coefficient of yesterday's variance (garch); persistence garch_alpha + "
        "garch_gamma / 2 + garch_beta must be < 1.",
        ge=0,
    )
    iv_model: Literal["linked", "independent"] | None = _m(
        "iv_model",
        "—",
        "IV = sqrt(v) e^z with z an OU premium (linked), or the log-OU process of iv_long_run, "
        "kappa, eta (independent). Omitted: linked for heston, bates and garch, independent "
        "otherwise; linked needs heston, bates or garch (garch: v = 252 h, the next day's).",
    )
    vrp_long_run: Float = _m(
        "vrp_long_run",
        "ratio",
        "Linked IV: long-run (median) ratio of IV to the stock's vol sqrt(v), e^{E z}.",
        gt=0,
    )
    vrp_kappa: Float = _m(
        "vrp_kappa", "1/year", "Linked IV: mean-reversion speed of z = ln(IV / sqrt(v)).", gt=0
    )
    vrp_eta: Float = _m("vrp_eta", "1/sqrt(year)", "Linked IV: volatility of z.", ge=0)
    iv0: Float = _m(
        "iv0",
        "annual vol",
        "Implied volatility at the start (4.2517 = 425.17 %); linked IV: z_0 = ln(iv0 / sqrt(v0)).",
        gt=0,
    )
    kappa: Float = _m("kappa", "1/year", "Mean-reversion speed of log IV (independent IV).", gt=0)
    iv_long_run: Float = _m(
        "iv_long_run", "annual vol", "Long-run level of IV (independent IV).", gt=0
    )
    eta: Float = _m("eta", "1/sqrt(year)", "Volatility of log IV (independent IV).", gt=0)
    iv_spot_corr: Float = _m(
        "iv_spot_corr",
        "—",
        "Correlation of the IV and spot shocks (< 0: IV rises as S falls; independent IV).",
        ge=-1,
        le=1,
    )
    iv_jump_beta: Float = _m(
        "iv_jump_beta",
        "—",
        "Change of log IV per unit log jump of the spot (merton, bates; independent IV).",
    )
    short_interest: Float = _m(
        "short_interest", "percent of float", "Short interest at the start.", ge=0, le=100
    )
    short_interest_long_run: Float = _m(
        "short_interest_long_run",
        "percent of float",
        "Long-run level of short interest.",
        ge=0,
        le=100,
    )
    short_interest_kappa: Float = _m(
        "short_interest_kappa", "1/year", "Mean reversion of short interest (0: constant).", ge=0
    )
    short_interest_eta: Float = _m(
        "short_interest_eta", "1/sqrt(year)", "Volatility of short interest (0: constant).", ge=0
    )
    vix: Float = _m("vix", "index points", "VIX, an entry-signal input (constant).", ge=0)
    btc_correlation: Float = _m(
        "btc_correlation", "—", "Correlation with bitcoin, a signal and thesis input.", ge=-1, le=1
    )
    bid_ask_spread: Float = _m(
        "bid_ask_spread",
        "USD/share",
        "Option bid-ask spread: fills, signal and liquidity exit.",
        ge=0,
    )
    open_interest: Float = _m(
        "open_interest", "contracts", "Open interest per strike: signal and capacity limit.", ge=0
    )
    option_volume: Float = _m(
        "option_volume", "contracts/day", "Daily option volume per strike: capacity limit.", ge=0
    )
    liquidity_score: Float = _m(
        "liquidity_score", "score", "Liquidity score, a signal input.", ge=0
    )
    borrow_cost: Float = _m(
        "borrow_cost", "percent/year", "Stock borrow cost, a squeeze input.", ge=0
    )
    volume_ratio: Float = _m("volume_ratio", "—", "Volume over its average, a squeeze input.", ge=0)
    thesis_break_intensity: Float = _m(
        "thesis_break_intensity", "events/year", "Poisson rate of thesis-breaking events.", ge=0
    )
    history: Str | None = _m(
        "history",
        "—",
        'History CSV of model = "replay" or "bootstrap", relative to the scenario file '
        "(date, close, and optionally iv and input columns such as vix; see History files).",
    )
    block_len: Float = _m(
        "block_len",
        "trading days",
        'Mean block length of the stationary bootstrap (model = "bootstrap").',
        ge=1,
    )


class CapitalTable(_Table):
    """The portfolio, the strategy sleeve's size and its leverage."""

    portfolio_value: Float = _s(
        "portfolio_value",
        "USD",
        "Whole portfolio; the part outside the sleeve is cash at rate.",
        gt=0,
    )
    kelly_fraction: Float = _s(
        "kelly_fraction", "fraction", "Kelly fraction fed to the sizing rule (seed formula: 0.816)."
    )
    kelly_multiplier: Float = _s(
        "kelly_multiplier", "fraction", "Share of full Kelly used (seed: 25 %).", ge=0
    )
    max_total_strategy_pct: Float = _s(
        "max_total_strategy_pct",
        "fraction of portfolio",
        "Cap on the sleeve; also the HIGH allocation limit (seed: 20 %).",
        ge=0,
        le=1,
    )
    allocation: Float | None = _s(
        "allocation",
        "USD",
        "Fixed sleeve; when given it replaces the Kelly rule (omit: Kelly).",
        ge=0,
    )
    monthly_addition: Float = _s(
        "monthly_addition", "USD", "New capital added to sleeve cash every 21 trading days.", ge=0
    )
    max_leverage: Float = _s(
        "max_leverage", "×", "Put collateral is K*100/max_leverage; HIGH leverage limit.", gt=0
    )


class StrategyTable(_Table):
    """The put ladder, the tranche schedule and the entry signal."""

    strikes: PositiveFloats = _s(
        "strikes",
        "USD",
        "Put ladder strikes (moneyness mode: strikes at reference_spot).",
        min_length=1,
    )
    weights: Weights = _s(
        "weights",
        "fraction",
        "Share of a tranche's budget per strike; one per strike; must sum to 1 (never normalised).",
        min_length=1,
    )
    strike_mode: Literal["fixed", "moneyness"] = _s(
        "strike_mode", "—", "Dollar strikes, or a ladder re-centred at each sale."
    )
    reference_spot: Float = _s(
        "reference_spot", "USD", "Spot at which the ladder is quoted (moneyness mode).", gt=0
    )
    strike_grid: Float = _s(
        "strike_grid", "USD", "Moneyness strikes are rounded half up to this grid.", gt=0
    )
    entry_every_days: Int = _s(
        "entry_every_days",
        "trading days",
        "Days between tranches (entries on steps 0, n, 2n, …).",
        ge=1,
    )
    dte_calendar: Float = _s(
        "dte_calendar", "calendar days", "Days to expiry of a new put (seed: 30-45).", gt=0
    )
    whole_contracts: Bool = _s(
        "whole_contracts", "—", "Floor to whole contracts; false allows fractional contracts."
    )
    max_concentration_single_expiration: Float = _s(
        "max_concentration_single_expiration",
        "fraction of sleeve equity",
        "Notional cap of one expiry (a HIGH limit).",
        ge=0,
    )
    max_single_strike_pct: Float = _s(
        "max_single_strike_pct",
        "fraction of put notional",
        "Notional cap of one strike (a MEDIUM limit).",
        ge=0,
        le=1,
    )
    signal_iv_percentile_min: Float = _s(
        "signal_iv_percentile_min", "percentile", "Signal: IV percentile > this.", ge=0, le=100
    )
    signal_short_interest_min: Float = _s(
        "signal_short_interest_min", "percent", "Signal: short interest > this.", ge=0
    )
    signal_dte_min: Float = _s("signal_dte_min", "calendar days", "Signal: DTE >= this.", ge=0)
    signal_dte_max: Float = _s("signal_dte_max", "calendar days", "Signal: DTE <= this.", ge=0)
    signal_spread_max: Float = _s(
        "signal_spread_max", "USD/share", "Signal: bid-ask spread < this.", ge=0
    )
    signal_open_interest_min: Float = _s(
        "signal_open_interest_min", "contracts", "Signal: open interest > this.", ge=0
    )
    signal_liquidity_min: Float = _s(
        "signal_liquidity_min", "score", "Signal: liquidity score > this."
    )
    signal_vix_min: Float = _s("signal_vix_min", "index points", "Signal: VIX > this.", ge=0)
    signal_btc_corr_max: Float = _s(
        "signal_btc_corr_max", "—", "Signal: |BTC correlation| < this.", ge=0
    )
    signal_min_conditions: Int = _s(
        "signal_min_conditions",
        "conditions",
        "Enter when at least this many of the 8 hold.",
        ge=0,
        le=8,
    )

    def checks(self) -> list[tuple[str, str]]:
        out = _ladder_checks("strikes", self.strikes, "weights", self.weights)
        out += _steps_check("dte_calendar", self.dte_calendar)
        if self.signal_dte_min > self.signal_dte_max:
            out.append(
                (
                    "signal_dte_max",
                    f"must be >= signal_dte_min ({self.signal_dte_min!r}), got {self.signal_dte_max!r}",
                )
            )
        return out


class ExecutionTable(_Table):
    """Fills, costs, quotes and the market-impact (capacity) limits."""

    fill: Literal["bid_ask", "mid", "seed"] = _s(
        "fill", "—", "Sell at bid/buy at ask; both at mid; or the seed's mid ± improvement."
    )
    price_improvement_target: Float = _s(
        "price_improvement_target", "USD/share", 'Limit offset from mid for fill = "seed".', ge=0
    )
    commission: Float = _s(
        "commission", "USD/contract", "Commission per opening or closing trade.", ge=0
    )
    min_quote: Float = _s("min_quote", "USD/share", "Floor of bid and ask.", ge=0)
    skew: Float = _s("skew", "—", "Strike skew: IV_K = IV * (K/S)^(-skew).")
    capacity_limits: Bool = _s(
        "capacity_limits", "—", "Cut opening trades to the open-interest and volume limits."
    )
    max_open_interest_pct: Float = _s(
        "max_open_interest_pct",
        "fraction of open interest",
        "Position cap per strike and expiry.",
        ge=0,
        le=1,
    )
    max_volume_participation: Float = _s(
        "max_volume_participation",
        "fraction of volume",
        "Contracts opened per strike a day.",
        ge=0,
        le=1,
    )


class ExitsTable(_Table):
    """Exit conditions on the short puts; each is a switch with the seed's threshold."""

    profit_take: Bool = _s("profit_take", "—", "Close a put once enough premium is captured.")
    profit_take_pct: Float = _s(
        "profit_take_pct",
        "fraction of premium",
        "Close when mid < (1 - this) * premium.",
        ge=0,
        le=1,
    )
    stop_loss: Bool = _s("stop_loss", "—", "Close a put on a large loss.")
    stop_loss_multiple: Float = _s(
        "stop_loss_multiple", "× premium", "Close when mid > (1 + this) * premium.", ge=0
    )
    time_exit: Bool = _s("time_exit", "—", "Close puts near expiry (off: puts run to assignment).")
    time_exit_dte: Float = _s("time_exit_dte", "calendar days", "Close when DTE < this.", ge=0)
    iv_exit: Bool = _s("iv_exit", "—", "Close all puts when IV is low.")
    iv_exit_percentile: Float = _s(
        "iv_exit_percentile", "percentile", "Close all when IV percentile < this.", ge=0, le=100
    )
    liquidity_exit: Bool = _s("liquidity_exit", "—", "Close all puts when the market is illiquid.")
    liquidity_exit_spread: Float = _s(
        "liquidity_exit_spread", "USD/share", "Close all when bid-ask spread > this.", ge=0
    )
    thesis_exit: Bool = _s("thesis_exit", "—", "Close all and stop entries when the thesis breaks.")
    thesis_short_interest_min: Float = _s(
        "thesis_short_interest_min", "percent", "Thesis broken when short interest < this.", ge=0
    )
    thesis_btc_corr_max: Float = _s(
        "thesis_btc_corr_max", "—", "Thesis broken when |BTC correlation| > this.", ge=0
    )


class AssignmentTable(_Table):
    """Early exercise, assignment and covered calls on assigned shares."""

    early_assignment: Bool = _s(
        "early_assignment", "—", "Short puts worth less than intrinsic may be exercised early."
    )
    early_assignment_prob: Float = _s(
        "early_assignment_prob",
        "probability",
        "Chance of early exercise on such a day.",
        ge=0,
        le=1,
    )
    close_on_assignment_risk: Bool = _s(
        "close_on_assignment_risk", "—", "Close a put whose assignment-risk score is high."
    )
    assignment_score_close: Int = _s(
        "assignment_score_close", "score", "Score at or above which such a put is closed.", ge=0
    )
    covered_calls: Bool = _s("covered_calls", "—", "Sell covered calls on assigned shares.")
    cc_basis_good: Float = _s(
        "cc_basis_good", "USD/share", "Effective basis below this: sell covered calls.", ge=0
    )
    cc_basis_hold: Float = _s(
        "cc_basis_hold", "USD/share", "Basis below this (and >= good): hold shares, no calls.", ge=0
    )
    cc_strike_markup: Float = _s(
        "cc_strike_markup", "× basis", "Call strike = round(basis * this * 2) / 2.", gt=0
    )
    cc_dte_calendar: Float = _s(
        "cc_dte_calendar", "calendar days", "Days to expiry of a covered call.", gt=0
    )

    def checks(self) -> list[tuple[str, str]]:
        return _steps_check("cc_dte_calendar", self.cc_dte_calendar)


class HedgesTable(_Table):
    """Call hedges bought from each tranche's premium (the 80/20 rule) and their multipliers."""

    hedges: Bool = _s("hedges", "—", "Buy call hedges with part of each tranche's premium.")
    hedge_base_ratio: Float = _s(
        "hedge_base_ratio",
        "fraction of net premium",
        "Base share of net premium spent on calls (the seed's 80/20).",
        ge=0,
        le=1,
    )
    hedge_max_ratio: Float = _s(
        "hedge_max_ratio",
        "fraction of net premium",
        "Cap of the hedge ratio (base times the multipliers).",
        ge=0,
        le=1,
    )
    hedge_iv_extreme_percentile: Float = _s(
        "hedge_iv_extreme_percentile",
        "percentile",
        "Above this IV percentile, hedge_iv_extreme_mult applies.",
        ge=0,
        le=100,
    )
    hedge_iv_extreme_mult: Float = _s(
        "hedge_iv_extreme_mult", "×", "Hedge-ratio multiplier in extreme IV.", ge=0
    )
    hedge_squeeze_threshold: Float = _s(
        "hedge_squeeze_threshold",
        "probability",
        "Above this squeeze probability, hedge_squeeze_mult applies.",
    )
    hedge_squeeze_mult: Float = _s(
        "hedge_squeeze_mult", "×", "Hedge-ratio multiplier on squeeze risk.", ge=0
    )
    hedge_delta_threshold: Float = _s(
        "hedge_delta_threshold",
        "contracts",
        "Below this portfolio delta (seed convention), hedge_delta_mult applies.",
    )
    hedge_delta_mult: Float = _s(
        "hedge_delta_mult", "×", "Hedge-ratio multiplier on a delta imbalance.", ge=0
    )
    vol_spike_threshold: Float = _s(
        "vol_spike_threshold",
        "fraction",
        "A volatility spike is IV_t / IV_{t-1} > 1 + this.",
        ge=0,
    )
    hedge_vol_spike_mult: Float = _s(
        "hedge_vol_spike_mult", "×", "Hedge-ratio multiplier on a volatility spike.", ge=0
    )
    hedge_dte_calendar: Float = _s(
        "hedge_dte_calendar", "calendar days", "Days to expiry of a hedge call.", gt=0
    )
    hedge_regime_percentile: Float = _s(
        "hedge_regime_percentile",
        "percentile",
        "IV percentile above which the high-IV strikes are used.",
        ge=0,
        le=100,
    )
    hedge_high_iv_moneyness: PositiveFloats = _s(
        "hedge_high_iv_moneyness",
        "× spot",
        "Hedge call strikes in the high-IV regime.",
        min_length=1,
    )
    hedge_high_iv_weights: Weights = _s(
        "hedge_high_iv_weights",
        "fraction",
        "Budget share per high-IV strike; must sum to 1.",
        min_length=1,
    )
    hedge_normal_moneyness: PositiveFloats = _s(
        "hedge_normal_moneyness", "× spot", "Hedge call strikes otherwise.", min_length=1
    )
    hedge_normal_weights: Weights = _s(
        "hedge_normal_weights",
        "fraction",
        "Budget share per normal strike; must sum to 1.",
        min_length=1,
    )

    def checks(self) -> list[tuple[str, str]]:
        out = _ladder_checks(
            "hedge_high_iv_moneyness",
            self.hedge_high_iv_moneyness,
            "hedge_high_iv_weights",
            self.hedge_high_iv_weights,
        )
        out += _ladder_checks(
            "hedge_normal_moneyness",
            self.hedge_normal_moneyness,
            "hedge_normal_weights",
            self.hedge_normal_weights,
        )
        return out + _steps_check("hedge_dte_calendar", self.hedge_dte_calendar)


class LimitsTable(_Table):
    """Risk limits (breaches are counted; HIGH ones block entries) and margin calls."""

    enforce_limits: Bool = _s(
        "enforce_limits", "—", "Block new tranches while a HIGH limit is breached."
    )
    daily_var_limit: Float = _s(
        "daily_var_limit", "fraction of portfolio", "HIGH limit on one-day VaR.", ge=0
    )
    var_level: Float = _s("var_level", "probability", "Confidence level of that VaR.", gt=0, lt=1)
    delta_min: Float = _s(
        "delta_min", "contracts", "Alert when portfolio delta (seed convention) < this."
    )
    delta_max: Float = _s("delta_max", "contracts", "Alert when portfolio delta > this.")
    gamma_alert: Float = _s(
        "gamma_alert",
        "percent of portfolio per 1 % move",
        "Alert when dollar gamma exceeds this.",
        ge=0,
    )
    theta_minimum: Float = _s(
        "theta_minimum", "percent of portfolio a day", "Alert when theta income is below this."
    )
    vega_limit: Float = _s(
        "vega_limit", "percent of portfolio per vol point", "Alert when |vega| exceeds this.", ge=0
    )
    rho_limit: Float = _s(
        "rho_limit", "percent of portfolio per 1 % rate", "Alert when |rho| exceeds this.", ge=0
    )
    margin_calls: Bool = _s(
        "margin_calls", "—", "Buy back all puts when equity falls below their collateral."
    )

    def checks(self) -> list[tuple[str, str]]:
        if self.delta_min >= self.delta_max:
            return [
                ("delta_max", f"must be > delta_min ({self.delta_min!r}), got {self.delta_max!r}")
            ]
        return []


Range = list[Float]  # [low, high], or [] to leave the key out


class ClaimsTable(_Table):
    """The family of plausible markets `simkit claims` judges each claim across: a range per
    market key (an empty list leaves the key out), scanned from the scenario's own value, and a
    coarse grid of three values per key. Every market is a one-cell run on the scenario's seed
    (common random numbers). `jump_intensity` is used only when the market model is merton."""

    paths: Int = _key(
        2048,
        "paths",
        "Paths per market of the family (a multiple of simulation.chunk_size avoids compiling "
        "a second block shape).",
        ge=32,
    )
    scan_points: Int = _key(
        7, "markets", "Values along each key's range (plus the scenario's own value).", ge=3
    )
    sigma: Range = _key(
        [0.2, 3.0], "annual vol", "Range of the realized volatility of the spot (market.sigma)."
    )
    mu: Range = _key([-0.5, 1.5], "1/year", "Range of the real-world drift (market.mu).")
    iv_long_run: Range = _key(
        [1.0, 4.25], "annual vol", "Range of the long-run implied volatility (market.iv_long_run)."
    )
    jump_intensity: Range = _key(
        [0.0, 8.0],
        "1/year",
        "Range of the jump intensity (market.jump_intensity; merton markets only).",
    )

    def ranges(self) -> dict[str, tuple[float, float]]:
        """`market.<key>` -> (low, high) of every key in the family."""
        return {
            f"market.{name}": (float(v[0]), float(v[1]))
            for name in ("sigma", "mu", "iv_long_run", "jump_intensity")
            if (v := getattr(self, name))
        }

    def checks(self) -> list[tuple[str, str]]:
        out = []
        for name in ("sigma", "mu", "iv_long_run", "jump_intensity"):
            v = getattr(self, name)
            if v and (len(v) != 2 or not v[0] < v[1]):
                out.append((name, f"must be [low, high] with low < high, or [], got {v!r}"))
            elif v and name != "mu" and v[0] < 0:
                out.append((name, f"must not go below 0, got {v!r}"))
            elif v and name in ("sigma", "iv_long_run") and v[0] <= 0:
                out.append((name, f"must be > 0, got {v!r}"))
        return out


SENSITIVITY_LAWS = ("uniform", "log-uniform")
SENSITIVITY_METHODS = ("morris", "sobol")
_RANGE_FIELDS = ("low", "high", "law")


def _flat_ranges(keys: Any, prefix: str = "") -> dict[str, Any]:
    """`[sensitivity.keys]` as dotted key -> its range table: quoted keys (`"market.sigma" =
    { ... }`) and unquoted dotted ones (`market.sigma = { ... }`, nested tables) alike."""
    out: dict[str, Any] = {}
    for name, value in keys.items():
        full = f"{prefix}{name}"
        nested = isinstance(value, dict) and value and not set(value) & set(_RANGE_FIELDS)
        if nested and all(isinstance(v, dict) for v in value.values()):
            out.update(_flat_ranges(value, full + "."))
        else:
            out[full] = value
    return out


def _number_key(table: str, name: str) -> bool:
    """Whether `table.name` holds one number (not an integer, switch, word or list)."""
    tp = TABLES[table].model_fields[name].annotation
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp is float


_BOUND_WORDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _value_problem(table: str, name: str, value: float) -> str | None:
    """The key's own bounds applied to one value: what is wrong, or None when it passes."""
    try:
        TABLES[table].model_validate({name: value})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"][:1] == (name,):
                if error["type"] in _BOUND_WORDS:
                    bound = next(iter(error.get("ctx", {}).values()), "?")
                    if isinstance(bound, float) and bound.is_integer():
                        bound = int(bound)
                    return f"must be {_BOUND_WORDS[error['type']]} {bound} (the key's own bound)"
                return str(error["msg"])
    return None


class SensitivityTable(_Table):
    """Global sensitivity analysis (`simkit sensitivity`): which input ranges of `[sensitivity.keys]`
    move which result metrics. Each key gets a range and a law, `"market.sigma" = { low = 0.5,
    high = 3.0 }` or `{ low = 1.0, high = 3.5, law = "log-uniform" }`; the keys are market or
    strategy numbers (the keys a `[grid]` sweeps, integers, switches and lists excepted). Every
    sampled parameter set is a one-cell run on the scenario's seed and path keys (common random
    numbers). Cost: Morris `samples * (keys + 1)` runs, Sobol' `samples * (keys + 2)`."""

    method: Literal["morris", "sobol"] = _key(
        "morris",
        "—",
        "Morris elementary effects (a screening: mu_star, sigma) or Sobol' indices (S1, ST).",
    )
    samples: Int = _key(
        10,
        "trajectories or samples",
        "Morris trajectories, or the Sobol' base sample N (a power of 2).",
        ge=2,
    )
    levels: Int = _key(4, "levels", "Morris grid levels per key (even).", ge=2)
    seed: Int = _key(
        0,
        "—",
        "Seed of the input sample (Morris trajectories, Sobol' scrambling) and of the "
        "intervals' bootstrap; the paths use simulation.seed.",
        ge=0,
        le=2**32 - 1,
    )
    paths: Int = _key(
        2048,
        "paths",
        "Paths per sampled parameter set (a multiple of simulation.chunk_size avoids "
        "compiling a second block shape).",
        ge=2,
    )
    metrics: list[Str] = _key(
        ["annual_return_mean", "prob_loss", "kelly_sleeve_fraction"],
        "—",
        "Scalar result metrics analysed (names of a result file's variables).",
        min_length=1,
    )
    keys: dict[str, Any] = _key(
        {},
        "—",
        'Sampled keys: `"table.key" = { low = L, high = H, law = "uniform" | "log-uniform" }` '
        "(law: uniform when omitted; log-uniform needs low > 0).",
    )

    def ranges(self) -> dict[str, tuple[float, float, str]]:
        """Dotted key -> (low, high, law) of every sampled key, in file order."""
        return {
            key: (float(r["low"]), float(r["high"]), str(r.get("law", "uniform")))
            for key, r in _flat_ranges(self.keys).items()
        }

    def checks(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.method == "sobol" and self.samples & (self.samples - 1):
            out.append(
                (
                    "samples",
                    f'must be a power of 2 for method = "sobol" (Sobol\' points balance at 2^m), '
                    f"got {self.samples}",
                )
            )
        if self.method == "morris" and self.levels % 2:
            out.append(
                ("levels", f"must be even (Morris steps of p / (2 (p - 1))), got {self.levels}")
            )
        seen: set[str] = set()
        for i, name in enumerate(self.metrics):
            if name in seen:
                out.append((f"metrics[{i}]", f"{name!r} is listed twice"))
            seen.add(name)
        for key, spec in _flat_ranges(self.keys).items():
            out += [(f"keys.{key}", m) for m in _range_problems(key, spec)]
        return out


def _range_problems(key: str, spec: Any) -> list[str]:
    """What is wrong with one `[sensitivity.keys]` entry (empty: nothing)."""
    table, _, name = key.partition(".")
    if table not in GRID_TABLES or name not in TABLES[table].model_fields:
        options = [f"{t}.{k}" for t in GRID_TABLES for k in TABLES[t].model_fields]
        home = difflib.get_close_matches(key, options, n=1, cutoff=0.6) or [
            f"{t}.{name or table}" for t in GRID_TABLES if (name or table) in TABLES[t].model_fields
        ]
        guess = f"; did you mean {home[0]!r}?" if home else ""
        return [f"names no market or strategy parameter (write TABLE.KEY){guess}"]
    if not _number_key(table, name):
        return ["is not a number key (integers, switches, words and lists cannot be sampled)"]
    if not isinstance(spec, dict):
        return ["must be a table { low = L, high = H }, e.g. { low = 0.5, high = 3.0 }"]
    unknown = sorted(set(spec) - set(_RANGE_FIELDS))
    if unknown:
        return [f"unknown field {unknown[0]!r}; a range has low, high and law"]
    out = []
    for end in ("low", "high"):
        v = spec.get(end)
        if end not in spec:
            out.append(f"{end} is missing")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            out.append(f"{end} must be a finite number, got {v!r}")
        elif (problem := _value_problem(table, name, float(v))) is not None:
            out.append(f"{end} = {v!r}: {problem}")
    law = spec.get("law", "uniform")
    if law not in SENSITIVITY_LAWS:
        out.append(f"law must be one of {', '.join(map(repr, SENSITIVITY_LAWS))}, got {law!r}")
    if out:
        return out
    low, high = float(spec["low"]), float(spec["high"])
    if not low < high:
        out.append(f"low must be below high, got low = {spec['low']!r}, high = {spec['high']!r}")
    elif law == "log-uniform" and low <= 0:
        out.append(f"a log-uniform range needs low > 0, got {spec['low']!r}")
    return out


class FitTable(_Table):
    """The record `simkit calibrate market` writes beside its `[market]` table: where the fit
    came from (history file, close column, dates), its log-likelihood, AIC, number of returns
    and standard errors (`KEY_se`). A scenario accepts it so that the fragment loads as
    written, and reads nothing from it: any key, each a string, number (NaN allowed: an
    unidentified standard error) or boolean."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def checks(self) -> list[tuple[str, str]]:
        return [
            (name, f"must be a string, number or boolean (a record), got {type(value).__name__}")
            for name, value in (self.model_extra or {}).items()
            if not isinstance(value, str | int | float | bool)
        ]


# Tables a scenario accepts and does not read (records kept in the file's text).
RECORD_TABLES: dict[str, type[_Table]] = {"fit": FitTable}

TABLES: dict[str, type[_Table]] = {
    "simulation": SimulationTable,
    "market": MarketTable,
    "capital": CapitalTable,
    "strategy": StrategyTable,
    "execution": ExecutionTable,
    "exits": ExitsTable,
    "assignment": AssignmentTable,
    "hedges": HedgesTable,
    "limits": LimitsTable,
    "claims": ClaimsTable,
    "sensitivity": SensitivityTable,
}
STRATEGY_TABLES = ("capital", "strategy", "execution", "exits", "assignment", "hedges", "limits")
GRID_TABLES = ("market", *STRATEGY_TABLES)
_TOP_LEVEL = (*TABLES, "grid", *RECORD_TABLES)

# StrategyConfig field -> the table that holds it
STRATEGY_FIELD_TABLE: dict[str, str] = {
    name: table for table in STRATEGY_TABLES for name in TABLES[table].model_fields
}
