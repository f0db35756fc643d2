"""Stress tests: deterministic market shocks on top of the stochastic paths, and what they do
to the strategy, its risk limits and its stop-losses.

A stress (one file of `scenarios/stress/`, read by `simkit.scenario.load_stress`) is a `Shock`
(`simkit.paths.shocks`, re-exported here, like `apply_shock`):
one or more components, each starting on a trading day `day` (>= 1, so the shock hits a book
that day 0 has built) and applied to every simulated path of the base scenario. The stochastic
paths are generated as in `simkit run` (`simkit.paths.market.simulate_market`: a path's numbers
depend only on (seed, cell, path index)); the shock is a deterministic function of each path's
own arrays, so a stressed path depends only on the same three things and on the stress.

Shock semantics (`apply_shock`), `t` the step (trading day), `w(t) = clip((t - day + 1) / days,
0, 1)` the share of a ramp done by the end of day `t` (0 before `day`, 1 from `day + days - 1`
on; `days = 1` is a gap: the whole move on `day`). Components are applied in this order:

  realized_vol  `scale = k`: every log return of the spot from `day` on,
                `r_t = ln S_t - ln S_{t-1}`, becomes `m_k + k (r_t - m)` with
                `m = (drift - v_t / 2) dt` (the diffusion's mean daily log return) and
                `m_k = (drift - k^2 v_t / 2) dt`, `v_t` the market's expected variance for
                the day (`simkit.paths.shocks.expected_variance`: `sigma^2` for GBM, Merton
                and a history's moments; the CIR mean for Heston and Bates; the mean
                conditional variance for GARCH): the diffusion's volatility becomes `k`
                times its own and a GBM path's expected spot is unchanged (a Merton path's
                jumps are scaled with the rest of the deviation). The spot is rebuilt from
                `S_{day-1}` with the scaled returns.
  spot          `change = c`, `days`: the spot is multiplied by `(1 + c) ** w(t)` from `day`
                on: a level shift that stays; the path's own returns continue on top. A crash
                of -60 % is `c = -0.6, days = 1`; a bleed of -90 % over three months is
                `c = -0.9, days = 63` (geometric: the same log move each day); a squeeze of
                +300 % in five days is `c = 3.0, days = 5`.
  iv            `multiply = f`, `days`: IV is multiplied by `f ** w(t)` from `day` on.
                `level = L`, `days`: IV is multiplied by `(L / IV_e) ** w(t)` with `IV_e` the
                path's own IV on the ramp's last day `e = day + days - 1`: IV is exactly `L`
                on day `e` and keeps its own (mean-reverting) moves, scaled by the same
                factor, after it. The IV percentile that the rules read moves with it.
  liquidity     `bid_ask_spread` (USD), `open_interest` (contracts), `option_volume`
                (contracts a day), `liquidity_score`: each given value replaces the input from
                `day` on (fills, the entry signal, the liquidity exit and the capacity limits
                all read them).
  signals       `short_interest` (percent), `vix`, `btc_correlation`, `borrow_cost` (percent a
                year), `volume_ratio`: each given value replaces the input from `day` on.
  thesis        `event = true`: a thesis-break event (merger cancelled) on `day`: the thesis
                exit closes every short put and stops new entries for the rest of the path.

Shocks change only the market the strategy sees; the market's parameters (`sigma`, `kappa`,
...) that the rules read stay those of the base scenario. A component applies only to steps
`<= n_steps`: a ramp that runs past the horizon is cut there.

`run_stress` runs the base scenario once per (stress, `limits.enforce_limits` on/off,
`exits.stop_loss` on/off) through `simkit.run.simulate` (so blocks, dask and progress are the
run's) on the same paths, and reduces the per-path summaries to the variables of
`STRESS_VARIABLES`: an `xarray.Dataset` over `stress` (`"none"` is the unstressed baseline) and
`enforce_limits`. The `exits.stop_loss = false` twin of each run gives what the stop-losses
saved: the difference in final equity, path by path.

What a stress does to the strategy, beyond its horizon returns:

  the shock day   the sleeve's mark-to-market return on the shock's first day `d`,
                  `(E_d - E_{d-1}) / E_{d-1}` per path, from the end-of-day equity of those two
                  days only (`simulate(..., equity_days=(d - 1, d))`: the daily equity is not
                  kept).
  stopped trading a path that sells no new tranche from day `d` to the horizon. The engine
                  counts tranches, entry days and blocked entry days per path over the whole
                  horizon; the counts before `d` come from one more run of the same scenario
                  and paths with the horizon cut at `d - 1` (a shock changes nothing before its
                  day, so those days are the stressed run's own, bit for bit), and the
                  difference is what happened from `d` on. The cause of a stop: ruin, or every
                  entry day from `d` on blocked by the close-all exits (thesis, liquidity, IV),
                  the HIGH limits or the entry signal (the engine counts the first failing
                  reason, in the order signal, limits, exit), or by a mix of them, or other.
                  A stress that stops a losing strategy from trading can end with a better mean
                  return than the unstressed run; these variables show when that is why.
  vs cash         `excess_over_cash_mean`: the horizon return minus `exp(r T) - 1`, what the
                  sleeve would have earned in cash at the rate `r`.
  conditional     every mean or median over the paths with some property (loss given breach,
  statistics      days to the first breach, what the stop-losses saved given they fired) comes
                  with its path count (`_count`) and is NaN below `MIN_CONDITIONAL` (30) paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simkit import aggregate, metrics, run, store
from simkit.paths.shocks import (
    BASELINE,  # the `stress` coordinate of the unstressed run
    DT,
    IVShock,
    RealizedVolShock,
    SetShock,
    Shock,
    SpotShock,
    StressSpec,
    ThesisShock,
    apply_shock,
)
from simkit.progress import RunsBar
from simkit.scenario import Problem, ScenarioError, parse_scenario
from simkit.schema.outcomes import CLOSE_COUNTERS
from simkit.schema.results import COORDINATES, STRESS_EXTRAS, STRESS_VARIABLES

__all__ = [
    "BASELINE",
    "IVShock",
    "RealizedVolShock",
    "SetShock",
    "Shock",
    "SpotShock",
    "StressSpec",
    "ThesisShock",
    "STRESS_VARIABLES",
    "apply_shock",
    "run_stress",
    "stress_metrics",
]

MIN_CONDITIONAL = 30  # a conditional statistic over fewer paths is NaN (its count is kept)
STOP_CAUSES = ("ruin", "close_all_exit", "limits", "signal", "mixed", "other")  # `stop_cause`


# --------------------------------------------------------------------------- the metrics

# `STRESS_VARIABLES` (name -> `ResultVariable`) is declared in `simkit.schema.results`, most of
# its entries the run's, by name.


def _f64(per_path: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(per_path[name], dtype=np.float64)


def _share(out: dict, name: str, hits: np.ndarray) -> None:
    est = metrics.proportion_ci(hits.sum(), hits.size, aggregate.CONF)
    out[name], out[f"{name}_lo"], out[f"{name}_hi"] = est.estimate, est.lo, est.hi


def _median(x: np.ndarray, minimum: int = 1) -> float:
    """The median of the non-NaN values; NaN when fewer than `minimum`."""
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size and x.size >= minimum else math.nan


def _conditional_median(x: np.ndarray) -> float:
    return _median(x, MIN_CONDITIONAL)


def _conditional_mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size and x.size >= MIN_CONDITIONAL else math.nan


# per-path counters of the entries (docs/ENGINE_SPEC.md step 7) that `before` must hold
ENTRY_COUNTERS = (
    "n_tranches",
    "n_entry_days",
    "n_blocked_signal",
    "n_blocked_limits",
    "n_blocked_exit",
)


def shock_day_returns(
    per_path: Mapping[str, np.ndarray], shock_day: int, added: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per path, the sleeve's P&L (USD) and return on the shock's first day `d`:
    `E_d - added - E_{d-1}` and that over `E_{d-1}`, from the per-path fields
    `equity_day_<d-1>` and `equity_day_<d>` (`simkit.run.simulate(..., equity_days=...)`);
    `added`: new capital paid into the sleeve on day `d`. The return is NaN where
    `E_{d-1} <= 0`."""
    before = _f64(per_path, f"equity_day_{shock_day - 1}")
    pnl = _f64(per_path, f"equity_day_{shock_day}") - added - before
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(before > 0, pnl / before, math.nan)
    return pnl, ret


def stopped_trading(
    per_path: Mapping[str, np.ndarray], before: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per path: tranches sold from the shock's first day on, whether it sold none (stopped),
    and the index in `STOP_CAUSES` of why (-1 where it did not stop).

    Args:
      per_path: the stressed run's per-path counters (`ENTRY_COUNTERS`, `ruined`).
      before: the same counters of the same paths through the day before the shock (a run
        whose horizon ends there: the market and the book up to that day are the stressed
        run's, since a shock changes nothing before its first day).
    """
    after = {k: _f64(per_path, k) - _f64(before, k) for k in ENTRY_COUNTERS}
    tranches = after["n_tranches"]
    stopped = tranches == 0
    cause = np.full(tranches.shape, -1, dtype=np.int64)
    cause[stopped] = STOP_CAUSES.index("other")
    entry_days = after["n_entry_days"]
    blocked = after["n_blocked_signal"] + after["n_blocked_limits"] + after["n_blocked_exit"]
    cause[stopped & (entry_days > 0) & (blocked == entry_days)] = STOP_CAUSES.index("mixed")
    for reason, counter in (
        ("signal", "n_blocked_signal"),
        ("limits", "n_blocked_limits"),
        ("close_all_exit", "n_blocked_exit"),
    ):
        cause[stopped & (entry_days > 0) & (after[counter] == entry_days)] = STOP_CAUSES.index(
            reason
        )
    cause[stopped & (_f64(per_path, "ruined") > 0)] = STOP_CAUSES.index("ruin")
    return tranches, stopped, cause


def stress_metrics(
    per_path: Mapping[str, np.ndarray],
    *,
    n_steps: int,
    shock_day: int,
    no_stop: Mapping[str, np.ndarray] | None = None,
    baseline: Mapping[str, np.ndarray] | None = None,
    equity_sample: np.ndarray | None = None,
    before: Mapping[str, np.ndarray] | None = None,
    cash_return: float = math.nan,
    added_on_shock_day: float = 0.0,
    equity_bands: np.ndarray | None = None,
) -> dict[str, Any]:
    """The `STRESS_VARIABLES` of one (stress, enforce_limits) run, float64.

    A conditional statistic (a mean or median over the paths with some property) is NaN when
    fewer than `MIN_CONDITIONAL` paths have it; its `_count` variable says how many did.

    Args:
      per_path: the run's per-path summary (`simkit.aggregate.derive_block` names), `(paths,)`
        each, with `equity_day_<d-1>` and `equity_day_<d>` when `shock_day` = d >= 1
        (without them the shock_day_ variables are NaN).
      n_steps: trading days simulated.
      shock_day: the shock's first day (-1: no shock).
      no_stop: the same paths run with `exits.stop_loss = false` (None: the stop-losses were
        already off, nothing to compare).
      baseline: the same paths unstressed, same `enforce_limits` (`final_equity`,
        `total_return`, `n_tranches`; None: this is the baseline).
      equity_sample: `(sample, n_steps + 1)` daily equity of the first paths, USD: their
        quantiles are `equity_quantile` when `equity_bands` is None.
      before: the `ENTRY_COUNTERS` of the same paths through day `shock_day - 1` (None: the
        stopped-trading variables are NaN).
      cash_return: the horizon return of the sleeve held in cash (`exp(r T) - 1`).
      equity_bands: `(quantile, n_steps + 1)` quantiles over all the paths of the daily
        equity (a run's `equity_quantile`), USD.
      added_on_shock_day: new capital (USD) paid into the sleeve on the shock's first day.

    Returns:
      name -> float, or a float64 array over the variable's extra dimensions.
    """
    out: dict[str, Any] = {}
    out.update(_outcome_metrics(per_path))
    out.update(_return_metrics(per_path, baseline, cash_return))
    out.update(_trade_metrics(per_path))
    out.update(_shock_day_metrics(per_path, shock_day, added_on_shock_day))
    out.update(_after_shock_metrics(per_path, shock_day, before, baseline))
    out.update(_limit_metrics(per_path, n_steps, shock_day))
    out.update(_stop_loss_metrics(per_path, no_stop))
    out["equity_quantile"] = _equity_quantiles(n_steps, equity_bands, equity_sample)
    return {k: (np.asarray(v, dtype=np.float64) if k != "paths" else v) for k, v in out.items()}


def _outcome_metrics(per_path: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Path count, initial equity, the shares of ruin, margin calls and losses (with their
    confidence intervals), margin calls per path and the final equity."""
    out: dict[str, Any] = {}
    final = _f64(per_path, "final_equity")
    n = final.size
    initial = _f64(per_path, "initial_equity") * np.ones(n)
    pnl = final - _f64(per_path, "contributions") - initial
    out["paths"] = n
    out["initial_equity"] = float(initial.mean())
    _share(out, "prob_ruin", _f64(per_path, "ruined") > 0)
    margin_calls = _f64(per_path, "n_margin_calls")
    _share(out, "prob_margin_call", margin_calls > 0)
    _share(out, "prob_loss", pnl < 0)
    out["margin_calls_per_path"] = float(margin_calls.mean())
    out["final_equity_mean"] = float(final.mean())
    out["final_equity_median"] = float(np.median(final))
    return out


def _return_metrics(
    per_path: Mapping[str, np.ndarray],
    baseline: Mapping[str, np.ndarray] | None,
    cash_return: float,
) -> dict[str, Any]:
    """The horizon return: against the baseline's same paths (0 for the baseline itself),
    its mean, median and quantiles, against cash, its tail (VaR, CVaR), and the median
    annual return and drawdown."""
    out: dict[str, Any] = {}
    final = _f64(per_path, "final_equity")
    total = _f64(per_path, "total_return")
    if baseline is None:
        for key in ("equity_vs_baseline", "total_return_vs_baseline"):
            out[f"{key}_mean"], out[f"{key}_se"] = 0.0, 0.0
    else:
        est = metrics.mean_se(final - _f64(baseline, "final_equity"), aggregate.CONF)
        out["equity_vs_baseline_mean"], out["equity_vs_baseline_se"] = est.estimate, est.se
        est = metrics.mean_se(total - _f64(baseline, "total_return"), aggregate.CONF)
        out["total_return_vs_baseline_mean"] = est.estimate
        out["total_return_vs_baseline_se"] = est.se
    out["total_return_mean"] = float(total.mean())
    out["total_return_median"] = float(np.median(total))
    out["total_return_quantile"] = np.quantile(total, aggregate.QUANTILES)
    out["cash_return"] = float(cash_return)
    est = metrics.mean_se(total - cash_return, aggregate.CONF)
    out["excess_over_cash_mean"], out["excess_over_cash_se"] = est.estimate, est.se
    for level in (95, 99):  # one path (a replay) has no tail: NaN, as a run's
        one = total.size == 1
        out[f"var_{level}"] = math.nan if one else float(metrics.value_at_risk(total, level / 100))
        out[f"cvar_{level}"] = (
            math.nan if one else float(metrics.conditional_value_at_risk(total, level / 100))
        )
    out["annual_return_median"] = _median(_f64(per_path, "annual_return"))
    out["max_drawdown_median"] = _median(_f64(per_path, "max_drawdown"))
    return out


def _trade_metrics(per_path: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Short-put trades per path, their win rate, how they ended and the P&L attribution."""
    out: dict[str, Any] = {}
    n_trades = _f64(per_path, "n_trades")
    out["trades_per_path"] = float(n_trades.mean())
    out["win_rate_trade"] = (
        float(_f64(per_path, "n_wins").sum() / n_trades.sum()) if n_trades.sum() else math.nan
    )
    counters = CLOSE_COUNTERS  # the per-trade end states, in CLOSE_REASONS order
    out["closes_per_path"] = np.array([_f64(per_path, c).mean() for c in counters])
    out["attribution_mean"] = np.array([_f64(per_path, b).mean() for b in aggregate.BUCKETS])
    return out


def _shock_day_metrics(
    per_path: Mapping[str, np.ndarray], shock_day: int, added_on_shock_day: float
) -> dict[str, Any]:
    """The sleeve's return and P&L on the shock's first day (NaN without that day's equity,
    or below `MIN_CONDITIONAL` paths with a return)."""
    out: dict[str, Any] = {}
    out["shock_day_return_quantile"] = np.full(len(aggregate.QUANTILES), math.nan)
    out["shock_day_return_mean"] = out["shock_day_return_se"] = math.nan
    out["shock_day_pnl_mean"] = math.nan
    out["shock_day_return_count"] = 0.0
    if shock_day >= 1 and f"equity_day_{shock_day}" in per_path:
        day_pnl, day_ret = shock_day_returns(per_path, shock_day, added_on_shock_day)
        valid = ~np.isnan(day_ret)
        out["shock_day_return_count"] = float(valid.sum())
        if valid.sum() >= MIN_CONDITIONAL:
            est = metrics.mean_se(day_ret[valid], aggregate.CONF)
            out["shock_day_return_mean"], out["shock_day_return_se"] = est.estimate, est.se
            out["shock_day_return_quantile"] = np.quantile(day_ret[valid], aggregate.QUANTILES)
            out["shock_day_pnl_mean"] = float(day_pnl[valid].mean())
    return out


def _after_shock_metrics(
    per_path: Mapping[str, np.ndarray],
    shock_day: int,
    before: Mapping[str, np.ndarray] | None,
    baseline: Mapping[str, np.ndarray] | None,
) -> dict[str, Any]:
    """Trading from the shock's first day on: the share of paths that stopped and why, and
    the tranches sold, stressed and (with `baseline`) unstressed. NaN without `before`."""
    out: dict[str, Any] = {}
    for key in ("prob_stopped_trading", "prob_stopped_trading_lo", "prob_stopped_trading_hi"):
        out[key] = math.nan
    out["stopped_trading_share"] = np.full(len(STOP_CAUSES), math.nan)
    out["prob_stopped_trading_unstressed"] = math.nan
    out["tranches_after_shock_per_path"] = math.nan
    out["tranches_after_shock_per_path_unstressed"] = math.nan
    if shock_day >= 1 and before is not None:
        tranches, stopped, cause = stopped_trading(per_path, before)
        _share(out, "prob_stopped_trading", stopped)
        out["stopped_trading_share"] = np.array(
            [(cause == k).mean() for k in range(len(STOP_CAUSES))]
        )
        out["tranches_after_shock_per_path"] = float(tranches.mean())
        if baseline is not None:
            plain = _f64(baseline, "n_tranches") - _f64(before, "n_tranches")
            out["prob_stopped_trading_unstressed"] = float((plain == 0).mean())
            out["tranches_after_shock_per_path_unstressed"] = float(plain.mean())
    return out


LIMIT_METRICS = (  # the `stress_metrics` over `limit`, one value per `aggregate.LIMITS`
    "breach_path_share",
    "breach_share",
    "days_to_first_breach_median",
    "days_to_first_breach_after_shock_median",
    "breach_after_shock_share",
    "loss_given_breach",
    "loss_given_no_breach",
    "loss_given_breach_count",
    "loss_given_no_breach_count",
    "days_to_first_breach_after_shock_count",
    "breach_at_start_share",
)


def _limit_metrics(
    per_path: Mapping[str, np.ndarray], n_steps: int, shock_day: int
) -> dict[str, np.ndarray]:
    """Per limit: how often and how early it is breached, before and after the shock's first
    day, and the horizon loss of the paths that breached it and of those that did not."""
    out = {key: np.full(len(aggregate.LIMITS), math.nan) for key in LIMIT_METRICS}
    loss = -_f64(per_path, "total_return")
    path_days = loss.size * (n_steps + 1)
    for i, limit in enumerate(aggregate.LIMITS):
        days = _f64(per_path, f"breach_{limit}")
        first = _f64(per_path, f"first_breach_{limit}")
        breached = days > 0
        out["breach_path_share"][i] = breached.mean()
        out["breach_share"][i] = days.sum() / path_days
        out["breach_at_start_share"][i] = (breached & (first == 0)).mean()
        out["days_to_first_breach_median"][i] = _conditional_median(first[breached])
        if shock_day >= 0:
            after = breached & (first >= shock_day)
            out["breach_after_shock_share"][i] = after.mean()
            out["days_to_first_breach_after_shock_median"][i] = _conditional_median(
                first[after] - shock_day
            )
            out["days_to_first_breach_after_shock_count"][i] = after.sum()
        out["loss_given_breach"][i] = _conditional_mean(loss[breached])
        out["loss_given_no_breach"][i] = _conditional_mean(loss[~breached])
        out["loss_given_breach_count"][i] = breached.sum()
        out["loss_given_no_breach_count"][i] = (~breached).sum()
    return out


def _stop_loss_metrics(
    per_path: Mapping[str, np.ndarray], no_stop: Mapping[str, np.ndarray] | None
) -> dict[str, Any]:
    """How often the stop-losses fired, and (with the no-stops twin) what they saved."""
    out: dict[str, Any] = {}
    stops = _f64(per_path, "n_close_stop")
    out["stop_losses_per_path"] = float(stops.mean())
    _share(out, "prob_stop_loss", stops > 0)
    out["stop_loss_saved_given_fired_count"] = float((stops > 0).sum())
    if no_stop is None:
        out["stop_loss_saved_mean"] = out["stop_loss_saved_given_fired"] = math.nan
    else:
        saved = _f64(per_path, "final_equity") - _f64(no_stop, "final_equity")
        out["stop_loss_saved_mean"] = float(saved.mean())
        out["stop_loss_saved_given_fired"] = _conditional_mean(saved[stops > 0])
    return out


def _equity_quantiles(
    n_steps: int, equity_bands: np.ndarray | None, equity_sample: np.ndarray | None
) -> np.ndarray:
    """`(quantile, n_steps + 1)` daily equity quantiles: the run's bands over all paths, else
    those of the sample's paths, else NaN."""
    n_days = n_steps + 1
    quantiles = np.full((len(aggregate.QUANTILES), n_days), math.nan)
    if equity_bands is not None:
        quantiles = np.asarray(equity_bands, dtype=np.float64)
    elif equity_sample is not None and len(equity_sample):
        quantiles = np.quantile(np.asarray(equity_sample, np.float64), aggregate.QUANTILES, axis=0)
    return quantiles


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


def limit_rules(strategy: Any) -> dict[str, str]:
    """What breaches each limit (docs/ENGINE_SPEC.md step 7), with the strategy's own
    parameters, and, where the sizing rule alone decides it, why the sizing breaches it.

    Args:
      strategy: the base scenario's `StrategyConfig`.

    Returns:
      limit -> one line of text, for every limit of `simkit.aggregate.LIMITS`.
    """
    st = strategy
    lev = float(st.max_leverage)
    cap = float(st.max_total_strategy_pct)
    sleeve = float(st.sleeve_initial) / float(st.portfolio_value)
    allocation = f"short-put notional > {_pct(cap)} of portfolio value"
    if sleeve * lev > cap:
        allocation += (
            f"; a {_pct(sleeve)} sleeve at {lev:g}x leverage can hold short puts of "
            f"{_pct(sleeve * lev)} of the portfolio in notional, above the {_pct(cap)} limit"
        )
    per_expiry = float(st.max_concentration_single_expiration)
    expiry = (
        f"one expiry's short-put notional > {_pct(per_expiry)} of sleeve equity; each tranche "
        f"is sized to {_pct(per_expiry)} of the equity before its sale, and the sale's costs "
        "(half the bid-ask spread, commissions, hedge calls bought at the ask) lower the "
        "equity it is compared with after the sale"
    )
    per_strike = float(st.max_single_strike_pct)
    strike = f"one strike's notional > {_pct(per_strike)} of the short-put notional"
    weights = [float(w) for w in st.weights]
    top = max(weights)
    if top >= per_strike - 1e-12:
        where = (
            f"the ${float(st.strikes[weights.index(top)]):g} strike"
            if st.strike_mode == "fixed"
            else "one strike"
        )
        strike += (
            f"; the ladder puts {_pct(top)} of each tranche's notional on {where}, filling it "
            f"to the cap, and rounding the other rungs down to whole contracts leaves it above"
        )
    return {
        "allocation": allocation,
        "leverage": f"short-put notional > {lev:g} x sleeve equity",
        "var": f"one-day {_pct(st.var_level)} VaR of the book > {_pct(st.daily_var_limit)} of "
        "portfolio value",
        "expiry": expiry,
        "strike": strike,
        "delta": f"seed delta outside [{st.delta_min:g}, {st.delta_max:g}] contracts (days "
        "with an open option)",
        "gamma": f"dollar gamma of a 1 % move > {st.gamma_alert:g} % of portfolio value",
        "theta": f"theta income < {st.theta_minimum:g} % of portfolio value a day (days with "
        "an open option)",
        "vega": f"|vega| > {st.vega_limit:g} % of portfolio value per vol point",
        "rho": f"|rho| > {st.rho_limit:g} % of portfolio value per 1 % of rate",
    }


# --------------------------------------------------------------------------- the runs


def _per_path(ds: Any) -> dict[str, np.ndarray]:
    """A per-path result dataset (`simulate(..., per_path=True)`, no grid) as NumPy arrays."""
    out = {name: ds[name].values for name in ds.data_vars if ds[name].dims[:1] == ("path",)}
    out["initial_equity"] = np.full(ds.sizes["path"], float(ds["initial_equity"]))
    return out


def _variant(scenario: Any, enforce: bool, stop_loss: bool, n_steps: int | None = None) -> Any:
    """The base scenario with `limits.enforce_limits` and `exits.stop_loss` set (and its
    horizon cut to `n_steps` trading days)."""

    overrides = {
        **dict(scenario.overrides),
        "limits.enforce_limits": enforce,
        "exits.stop_loss": stop_loss,
    }
    if n_steps is not None:
        overrides["simulation.years"] = n_steps / aggregate.TRADING_DAYS
    variant = parse_scenario(scenario.text, path=scenario.path, overrides=overrides)
    if n_steps is not None and getattr(variant, "replay", False):
        # A replay's horizon is its history's (years is not read): its first n_steps days.
        days = dataclasses.replace(
            variant.simulation, n_steps=n_steps, years=n_steps / aggregate.TRADING_DAYS
        )
        variant = dataclasses.replace(variant, simulation=days)
    if n_steps is not None and variant.simulation.n_steps != n_steps:
        raise RuntimeError(f"a {n_steps}-day horizon came out as {variant.simulation.n_steps}")
    return variant


def _before_horizon(shock_day: int, entry_every_days: int) -> int | None:
    """The horizon of a run whose entry counters are those of the days before `shock_day`:
    `shock_day - 1`, or 1 for a shock on day 1 when day 1 is not an entry day (counters
    change only on entry days); None when no such run exists (day 1 is an entry day)."""
    if shock_day >= 2:
        return shock_day - 1
    if shock_day == 1 and entry_every_days > 1:
        return 1
    return None


ENFORCE = (True, False)  # the `enforce_limits` coordinate


def run_stress(
    scenario: Any,
    stresses: Sequence[StressSpec],
    *,
    paths: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    scheduler: Any = None,
    engine: str | None = None,
    float64: bool | None = None,
    progress: bool = True,
    out: str | os.PathLike | None = None,
) -> Any:
    """Run the base scenario unstressed and under each stress; an `xarray.Dataset`.

    Every stress (and the baseline, `stress = "none"`) runs on the same paths (same seed, cell
    and path indices), with `limits.enforce_limits` on and off, and each of those again with
    `exits.stop_loss = false` to measure what the stop-losses saved (skipped when the base
    scenario has them off): `4 * (len(stresses) + 1)` runs of `simkit.run.simulate`, plus two
    short runs (limits on, off) per distinct first shock day `d`, over days `0 .. d - 1`, for
    the entry counters before the shock (module docstring).

    Args:
      scenario: the base scenario (`simkit.load_scenario`), without a grid.
      stresses: the stresses (`simkit.scenario.load_stress`), names unique.
      paths, seed, chunk_size, engine, float64, scheduler: as for `simkit.run.simulate`.
      progress: a progress bar over the runs on a terminal. Default value: True.
      out: write the dataset there (atomically) and keep each finished (stress, limits) pair
        of runs in `<out>.partial/` until then: an interrupted stress run started again with
        the same inputs redoes only the pairs that had not finished. Default value: None.

    Returns:
      the dataset of `STRESS_VARIABLES` over (`stress`, `enforce_limits`, ...).
    """
    _check_stresses(scenario, stresses)
    started = time.perf_counter()
    settings = run.resolve_settings(
        scenario, paths=paths, seed=seed, chunk_size=chunk_size, engine=engine, float64=float64
    )
    _check_shock_days(stresses, settings.n_steps)
    all_specs = [
        StressSpec(BASELINE, "no shock: the base scenario's own paths", Shock()),
        *stresses,
    ]
    runs = _StressRuns(scenario, settings, stresses, scheduler)
    checkpoints = None if out is None else _open_checkpoints(out, scenario, settings, all_specs)
    pairs = [(i, enforce) for i in range(len(all_specs)) for enforce in ENFORCE]
    saved = {pair: checkpoints.load(_pair_name(*pair)) for pair in pairs} if checkpoints else {}
    done = runs.per_pair * sum(v is not None for v in saved.values())
    total = runs.per_pair * len(all_specs) + runs.n_before
    bar = RunsBar(progress, total, "stress", done=done, width=40)
    try:
        runs.restore(saved, all_specs)
        runs.run_missing(all_specs, checkpoints, bar)
    except BaseException:
        if checkpoints is not None and checkpoints.loaded == 0 and checkpoints.saved == 0:
            checkpoints.finish()  # nothing to resume: leave nothing behind
        raise
    finally:
        bar.close()
    ds = build_stress_dataset(
        scenario,
        all_specs,
        settings,
        runs.results,
        wall_time_s=time.perf_counter() - started,
        device="; ".join(sorted(d for d in runs.devices if d)),
    )
    if out is not None:
        store.write_dataset(ds, out)
        checkpoints.finish()
    return ds


def _open_checkpoints(
    out: str | os.PathLike, scenario: Any, settings: run.RunSettings, specs: list[StressSpec]
) -> store.Checkpoints:
    """The finished pairs of an interrupted stress run of the same inputs, in `<out>.partial/`."""
    fingerprint = {
        **store.run_fingerprint(scenario, [], settings),
        "stresses_sha256": hashlib.sha256(repr(specs).encode()).hexdigest(),
    }
    return store.Checkpoints.open(out, fingerprint, "stress runs")


def _check_stresses(scenario: Any, stresses: Sequence[StressSpec]) -> None:
    """A ScenarioError for a base scenario with a grid, or for a stress name given twice."""
    if scenario.grid:
        raise ScenarioError(
            scenario.path,
            [
                Problem(
                    "grid", None, "a stress base scenario has no [grid]; stress one cell at a time"
                )
            ],
        )
    names = [s.name for s in stresses]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ScenarioError(
            None,
            [
                Problem("", None, f"stress {n!r} is given twice (names are the file stems)")
                for n in duplicated
            ],
        )


def _check_shock_days(stresses: Sequence[StressSpec], n_steps: int) -> None:
    """A ScenarioError for a stress whose shock starts past the horizon."""
    for spec in stresses:
        if spec.shock.last_day > n_steps:
            raise ScenarioError(
                spec.path or spec.name,
                [
                    Problem(
                        "stress.day",
                        None,
                        f"a shock starts on day {spec.shock.last_day}, past the base scenario's "
                        f"horizon ({n_steps} trading days)",
                    )
                ],
            )


class _StressRuns:
    """The simulations of a stress run, all on the base scenario's paths, and their metrics.

    `results`: (stress name, enforce_limits) -> `stress_metrics`; `baseline_final`:
    enforce_limits -> the unstressed run's per-path `final_equity`, `total_return` and
    `n_tranches` that the stresses compare with; `devices`: where the runs ran."""

    def __init__(
        self,
        scenario: Any,
        settings: run.RunSettings,
        stresses: Sequence[StressSpec],
        scheduler: Any,
    ):
        self.scenario = scenario
        self.settings = settings
        self.compare_stops = bool(scenario.strategy.stop_loss)
        every = int(scenario.strategy.entry_every_days)
        self.horizons = {  # shock day -> horizon of the run that gives the counters before it
            spec.shock.first_day: _before_horizon(spec.shock.first_day, every) for spec in stresses
        }
        self.per_pair = len(ENFORCE) * (2 if self.compare_stops else 1)  # runs per stress
        # the runs for the entry counters before the shocks
        self.n_before = len(ENFORCE) * len({h for h in self.horizons.values() if h is not None})
        self.simulate_kwargs = settings.per_path_kwargs(scheduler)
        self.results: dict[tuple[str, bool], dict[str, Any]] = {}
        self.baseline_final: dict[bool, dict[str, np.ndarray]] = {}
        self.before_runs: dict[tuple[int, bool], dict[str, np.ndarray]] = {}  # (horizon, enforce)
        self.devices: set[str] = set()
        self.cash_return = math.expm1(float(scenario.market.rate) * settings.n_steps * DT)
        self.addition = float(scenario.strategy.monthly_addition)

    def restore(
        self, saved: Mapping[tuple[int, bool], dict[str, np.ndarray] | None], specs: list
    ) -> None:
        """Take the pairs an interrupted run finished (`saved`: (stress index, enforce) ->
        the checkpoint of `_pair_arrays`, or None)."""
        for (i, enforce), arrays in saved.items():
            if arrays is not None:
                self.devices.add(str(arrays.pop(_DEVICE)))
                keep = {k[len(_BASE) :]: v for k, v in arrays.items() if k.startswith(_BASE)}
                if keep:
                    self.baseline_final[enforce] = keep
                self.results[(specs[i].name, enforce)] = {
                    k: float(v) if v.ndim == 0 else v
                    for k, v in arrays.items()
                    if not k.startswith(_BASE)
                }

    def run_missing(
        self, specs: list[StressSpec], checkpoints: store.Checkpoints | None, bar: RunsBar
    ) -> None:
        """Run every (stress, enforce_limits) pair not restored; each saved to `checkpoints`
        once done (`specs[i]` is stress number i of the checkpoints)."""
        for i, spec in enumerate(specs):
            for enforce in ENFORCE:
                if (spec.name, enforce) in self.results:
                    continue
                base, device = self.run_pair(spec, enforce, bar)
                if checkpoints is not None:
                    checkpoints.save(
                        _pair_name(i, enforce),
                        _pair_arrays(self.results[(spec.name, enforce)], base, device),
                    )

    def run_pair(
        self, spec: StressSpec, enforce: bool, bar: RunsBar
    ) -> tuple[dict[str, np.ndarray], str]:
        """The stress with `enforce_limits` set, and its no-stops twin: their `stress_metrics`
        into `results`; the baseline's columns kept (empty for a stress) and the device."""
        scenario, kwargs = self.scenario, self.simulate_kwargs
        day = spec.shock.first_day
        label = f"{spec.name}, limits {'on' if enforce else 'off'}"
        bar.show(label)
        ds = run.simulate(
            _variant(scenario, enforce, True),
            shock=spec.shock,
            equity_days=(day - 1, day) if day >= 1 else (),
            **kwargs,
        )
        device = str(ds.attrs.get("device", ""))
        self.devices.add(device)
        bar.advance()
        main = _per_path(ds)
        no_stop = None
        if self.compare_stops:
            bar.show(label + ", no stops")
            twin = run.simulate(_variant(scenario, enforce, False), shock=spec.shock, **kwargs)
            no_stop = {"final_equity": twin["final_equity"].values}
            bar.advance()
        self.results[(spec.name, enforce)] = stress_metrics(
            main,
            n_steps=self.settings.n_steps,
            shock_day=day,
            no_stop=no_stop,
            baseline=self.baseline_final.get(enforce),
            equity_sample=ds["equity_sample"].values,
            equity_bands=ds["equity_quantile"].values,
            before=self._before_counters(day, enforce, bar) if day >= 1 else None,
            cash_return=self.cash_return,
            added_on_shock_day=(
                self.addition if day >= 1 and day % aggregate.ADDITION_EVERY == 0 else 0.0
            ),
        )
        base = {}
        if spec.name == BASELINE:
            base = {k: main[k] for k in ("final_equity", "total_return", "n_tranches")}
            self.baseline_final[enforce] = base
        return base, device

    def _before_counters(self, day: int, enforce: bool, bar: RunsBar) -> dict | None:
        """The entry counters of every path through the day before `day`: the same scenario
        and paths with the horizon cut there, unshocked (a shock changes nothing before its
        first day). One run per (horizon, enforce_limits), shared by the stresses."""
        horizon = self.horizons.get(day)
        if horizon is None:
            return None
        if (horizon, enforce) not in self.before_runs:
            bar.show(f"days 0-{horizon}, limits {'on' if enforce else 'off'}")
            # The empty shock takes the shocked runs' code path (the market generated whole),
            # so the days before the shock are the stressed runs' own, bit for bit.
            short = run.simulate(
                _variant(self.scenario, enforce, True, n_steps=horizon),
                shock=Shock(),
                **self.simulate_kwargs,
            )
            bar.advance()
            self.before_runs[(horizon, enforce)] = {k: short[k].values for k in ENTRY_COUNTERS}
        return self.before_runs[(horizon, enforce)]


# The checkpoint of a finished (stress, limits) pair holds its `stress_metrics`, the baseline's
# per-path columns the later stresses compare with (prefixed), and the device it ran on.
_BASE = "baseline__"
_DEVICE = "device__"


def _pair_name(index: int, enforce: bool) -> str:
    return f"stress{index:03d}_limits_{'on' if enforce else 'off'}"


def _pair_arrays(
    pair_metrics: dict[str, Any], base: dict[str, np.ndarray], device: str
) -> dict[str, Any]:
    """The checkpoint of a finished pair (`_StressRuns.restore` reads it back)."""
    return {**pair_metrics, **{_BASE + k: v for k, v in base.items()}, _DEVICE: np.array(device)}


def build_stress_dataset(
    scenario: Any,
    specs: Sequence[StressSpec],
    settings: Any,
    results: Mapping[tuple[str, bool], Mapping[str, Any]],
    *,
    wall_time_s: float,
    device: str,
) -> Any:
    """The stress dataset from each (stress, enforce_limits) run's `stress_metrics`."""
    import json

    import xarray as xr

    n_days = settings.n_steps + 1
    values = {
        "stress": np.array([s.name for s in specs]),
        "enforce_limits": np.array(ENFORCE),
        "quantile": np.asarray(aggregate.QUANTILES),
        "close_reason": np.asarray(aggregate.CLOSE_REASONS),
        "limit": np.asarray(aggregate.LIMITS),
        "bucket": np.asarray(aggregate.BUCKETS),
        "day": np.arange(n_days),
        "stop_cause": np.asarray(STOP_CAUSES),
    }
    coords = {
        name: xr.Variable(name, array, COORDINATES[name].attrs) for name, array in values.items()
    }
    data_vars: dict[str, Any] = {}
    for name, variable in STRESS_VARIABLES.items():
        extra = variable.dims
        sizes = tuple(coords[d].size for d in extra)
        dtype = np.int64 if name == "paths" else np.float64
        array = np.zeros((len(specs), len(ENFORCE)) + sizes, dtype=dtype)
        for i, spec in enumerate(specs):
            for j, enforce in enumerate(ENFORCE):
                array[i, j] = results[(spec.name, enforce)][name]
        data_vars[name] = xr.Variable(("stress", "enforce_limits") + extra, array, variable.attrs)
    rules = limit_rules(scenario.strategy)
    extras = {
        "shock_day": np.array([s.shock.first_day for s in specs], dtype=np.int64),
        "limit_rule": np.array([rules[limit] for limit in aggregate.LIMITS]),
        "stress_description": np.array([s.description for s in specs]),
    }
    for name, array in extras.items():
        variable = STRESS_EXTRAS[name]
        data_vars[name] = xr.Variable(variable.dims, array, variable.attrs)
    attrs = store.run_attrs(
        scenario,
        settings,
        wall_time_s=wall_time_s,
        executor="stress",
        device=device,
        per_path=False,
    )
    name = scenario.path and str(scenario.path).rsplit("/", 1)[-1]
    attrs["title"] = f"simkit stress of {name or 'a scenario'}"
    attrs["simkit_result"] = "stress"
    attrs["stresses"] = json.dumps(
        [
            {
                "name": s.name,
                "description": s.description,
                "file": s.path or "",
                "shock": repr(s.shock),
            }
            for s in specs
        ]
    )
    attrs["stop_loss_compared"] = int(bool(scenario.strategy.stop_loss))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
