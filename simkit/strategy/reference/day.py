"""One path, day by day, in docs/STRATEGY.md's order ("A day, in order"), and the summary.

``simulate_path`` is the loop: each step reads the day's market and calls the rule modules in
the order of the spec; the end of day records equity and breaches; at the horizon open positions
are marked at mid and the tally is packed into the names of ENGINE_SPEC "Per-path summary".
``simulate_paths`` runs every path of a market and stacks the summaries.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from simkit.schema.outcomes import LIMIT_NAMES, SHARES_PER_CONTRACT, TRADING_DAYS_PER_YEAR
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.assignment import covered_calls, early_exercise
from simkit.strategy.reference.entry import entry
from simkit.strategy.reference.exits import exits
from simkit.strategy.reference.expiries import settle_expiries
from simkit.strategy.reference.limits import BookRisk, book_risk, limits
from simkit.strategy.reference.market import INPUT_NAMES, MarketDay, accrue, market_day
from simkit.strategy.reference.quotes import DayQuotes, sleeve_equity
from simkit.strategy.reference.ruin import margin_and_ruin
from simkit.strategy.reference.state import (
    CLOSE_REASONS,
    FLOAT_FIELDS,
    INT_FIELDS,
    Book,
    Tally,
    TradeLog,
)


def _end_of_day(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, risk: BookRisk | None
) -> None:
    """Step 8: record equity at mids and the day's limit breaches.

    ``risk`` is None on a ruined path (no breaches are counted once the path stops trading).
    """
    tally.equity.append(sleeve_equity(book, quotes))
    if risk is None:
        return
    for name in LIMIT_NAMES:
        if risk.breaches[name]:
            tally.breach_days[name] += 1
            if tally.first_breach[name] < 0:
                tally.first_breach[name] = day.step


def _mark_open_positions(book: Book, tally: Tally, quotes: DayQuotes) -> None:
    """Horizon: what is still open enters the buckets at mid (ENGINE_SPEC, after step 8).

    choice: with these marks the seven buckets sum to final_equity - initial_equity -
    contributions, initial_equity = sleeve0. ENGINE_SPEC writes "E_N - E_0 - contributions",
    but E_0 (equity at the end of day 0) already contains day 0's spread and commissions, which
    the buckets count; the identity holds with sleeve0, the sleeve before any trade.
    """
    log = tally.log
    for put in book.puts:
        mid = quotes.mid("put", put.strike, put.expiry_step)
        tally.mark_to_market += (put.premium - mid) * SHARES_PER_CONTRACT * put.contracts
        if log is not None:
            log.mark_open(put, mid)
    for call in book.hedges:
        mid = quotes.mid("call", call.strike, call.expiry_step)
        tally.call_hedge_pnl += mid * SHARES_PER_CONTRACT * call.contracts
        if log is not None:
            log.mark_open(call, mid)
    cc = book.covered_call
    if cc is not None:
        mid = quotes.mid("call", cc.strike, cc.expiry_step)
        tally.covered_call_pnl -= mid * SHARES_PER_CONTRACT * cc.contracts
        if log is not None:
            log.mark_open(cc, mid)
    if log is not None:
        log.mark_shares(quotes.day.spot)


def _check_path(path: Mapping[str, Sequence[float]]) -> int:
    """Number of steps N, after checking that every input is there with one length."""
    missing = [name for name in INPUT_NAMES if name not in path]
    if missing:
        raise ValueError(f"path: missing inputs {missing}; give each of {list(INPUT_NAMES)}")
    lengths = {name: len(path[name]) for name in INPUT_NAMES}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"path: inputs must all have length N + 1, got {lengths}")
    n_plus_1 = lengths["spot"]
    if n_plus_1 < 1:
        raise ValueError("path: inputs must have at least one step")
    return n_plus_1 - 1


def simulate_path(
    path: Mapping[str, Sequence[float]], cfg: StrategyConfig, mkt, record_trades: bool = False
) -> dict:
    """Run the strategy on one path and return its summary (ENGINE_SPEC "Per-path summary").

    Args:
        path: each name of INPUT_NAMES -> a sequence of length N + 1 (step t = 0 ... N).
        cfg: the strategy's parameters.
        mkt: object with float attributes rate, iv_long_run, kappa, eta.
        record_trades: also return every position's record (``TradeLog``); recording changes
            no number of the summary. Default value: False.
    Returns:
        dict of Python floats and ints, plus ``assigned_by_rung`` (int64, (n_strikes,)) and
        ``equity`` (float64, (N + 1,), sleeve equity at the end of each day); with
        ``record_trades``, ``trades``: the path's ``TradeRecord``s in the order they opened,
        the positions still held at the horizon marked there with reason "open".
    """
    n_steps = _check_path(path)
    rate = float(mkt.rate)
    growth = math.exp(rate / TRADING_DAYS_PER_YEAR)
    daily_interest = math.expm1(rate / TRADING_DAYS_PER_YEAR)  # g - 1 without cancellation
    sleeve0 = cfg.sleeve_initial
    outside0 = cfg.portfolio_value - sleeve0  # the rest of the portfolio, cash at r

    book = Book(cash=sleeve0)
    tally = Tally(n_strikes=len(cfg.strikes), log=TradeLog() if record_trades else None)
    quotes = None
    for t in range(n_steps + 1):
        if tally.log is not None:
            tally.log.step = t
        day = market_day(path, t, mkt)
        quotes = DayQuotes(day, cfg, rate)
        if book.ruined:
            # Skip everything on a ruined path: equity stays what the liquidation left.
            _end_of_day(book, tally, day, quotes, risk=None)
            continue
        outside = outside0 * growth**t
        accrue(book, tally, day, cfg, daily_interest)
        settle_expiries(book, tally, day, cfg)
        early_exercise(book, tally, day, quotes, cfg)
        exits(book, tally, day, quotes, cfg)
        margin_and_ruin(book, tally, day, quotes, cfg)
        if book.ruined:
            # choice: on the ruin step itself nothing more happens (no covered call, no entry,
            # no n_entry_days, no breach count): the path stopped trading at the liquidation.
            _end_of_day(book, tally, day, quotes, risk=None)
            continue
        covered_calls(book, tally, day, quotes, cfg)
        risk = limits(book, day, quotes, cfg, outside)
        if entry(book, tally, day, quotes, cfg, risk):
            # Breaches at the end of an entry step are those of the book after the sale.
            risk = book_risk(book, day, quotes, cfg, outside)
        _end_of_day(book, tally, day, quotes, risk)

    assert quotes is not None
    _mark_open_positions(book, tally, quotes)
    summary = _summary(book, tally, cfg, sleeve0, outside0 * growth**n_steps)
    summary = {**summary, **_underlying(path["spot"])}
    if tally.log is not None:
        summary["trades"] = tally.log.records
    return summary


def _underlying(spot: Sequence[float]) -> dict:
    """What the stock did on the path, whatever the sleeve did (the names of
    `simkit.schema.outcomes.UNDERLYING`): the last spot, the lowest, the realized volatility
    sqrt(252 * mean of r_t^2) of the daily log returns r_t = ln(S_t / S_{t-1}) (zero-mean;
    NaN with no step), and S_N / S_0 - 1."""
    spots = [float(s) for s in spot]
    n = len(spots) - 1
    squares = [math.log(today / before) ** 2 for before, today in itertools.pairwise(spots)]
    return {
        "spot_final": spots[-1],
        "spot_min": min(spots),
        "realized_vol": math.sqrt(TRADING_DAYS_PER_YEAR * sum(squares) / n) if n else math.nan,
        "underlying_return": spots[-1] / spots[0] - 1.0,
    }


def _summary(
    book: Book, tally: Tally, cfg: StrategyConfig, sleeve0: float, outside_final: float
) -> dict:
    """Pack the tally into the names of ENGINE_SPEC "Per-path summary"."""
    final_equity = tally.equity[-1]
    out: dict = {
        "initial_equity": float(sleeve0),
        "final_equity": float(final_equity),
        "final_portfolio_value": float(outside_final + final_equity),
        "contributions": tally.contributions,
        "premium_income": tally.premium_income,
        "assignment_pnl": tally.assignment_pnl,
        "call_hedge_pnl": tally.call_hedge_pnl,
        "mark_to_market": tally.mark_to_market,
        "transaction_costs": tally.transaction_costs,
        "financing": tally.financing,
        "covered_call_pnl": tally.covered_call_pnl,
        "sum_win_ret": tally.sum_win_ret,
        "sum_win_ret_sq": tally.sum_win_ret_sq,
        "sum_loss_ret": tally.sum_loss_ret,
        "sum_loss_ret_sq": tally.sum_loss_ret_sq,
        "hedge_contracts": tally.hedge_contracts,
        "contracts_cut": tally.contracts_cut,
        "shares_assigned": tally.shares_assigned,
        "shares_called_away": tally.shares_called_away,
        "n_trades": tally.n_trades,
        "n_wins": tally.n_wins,
        **{f"n_close_{reason}": tally.closes[reason] for reason in CLOSE_REASONS},
        "n_close_profit_loss": tally.n_close_profit_loss,
        "n_expired_otm": tally.n_expired_otm,
        "n_assigned_expiry": tally.n_assigned_expiry,
        "n_assigned_early": tally.n_assigned_early,
        "n_cc_sold": tally.n_cc_sold,
        "n_tranches": tally.n_tranches,
        "n_entry_days": tally.n_entry_days,
        "n_blocked_signal": tally.n_blocked_signal,
        "n_blocked_limits": tally.n_blocked_limits,
        "n_blocked_exit": tally.n_blocked_exit,
        "n_orders_cut": tally.n_orders_cut,
        "n_margin_calls": tally.n_margin_calls,
        "ruined": int(book.ruined),
        "ruin_step": book.ruin_step,
        **{f"breach_{name}": tally.breach_days[name] for name in LIMIT_NAMES},
        **{f"first_breach_{name}": tally.first_breach[name] for name in LIMIT_NAMES},
        "assigned_by_rung": np.asarray(tally.assigned_by_rung, dtype=np.int64),
        "equity": np.asarray(tally.equity, dtype=np.float64),
    }
    return out


def simulate_paths(
    market: Mapping[str, np.ndarray], cfg: StrategyConfig, mkt
) -> dict[str, np.ndarray]:
    """Run every path of a market and stack the summaries.

    Args:
        market: each name of INPUT_NAMES -> array (P, N + 1); extra names (e.g. ``jump``) are
            ignored.
        cfg, mkt: as for simulate_path.
    Returns:
        scalars -> (P,) (float64 or int64), ``assigned_by_rung`` -> (P, n_strikes) int64,
        ``equity`` -> (P, N + 1) float64.
    """
    missing = [name for name in INPUT_NAMES if name not in market]
    if missing:
        raise ValueError(f"market: missing inputs {missing}; give each of {list(INPUT_NAMES)}")
    arrays = {name: np.atleast_2d(np.asarray(market[name])) for name in INPUT_NAMES}
    n_paths = arrays["spot"].shape[0]
    summaries = []
    for i in range(n_paths):
        path = {name: arrays[name][i].tolist() for name in INPUT_NAMES}
        summaries.append(simulate_path(path, cfg, mkt))
    out: dict[str, np.ndarray] = {}
    for name in FLOAT_FIELDS:
        out[name] = np.array([s[name] for s in summaries], dtype=np.float64)
    for name in INT_FIELDS:
        out[name] = np.array([s[name] for s in summaries], dtype=np.int64)
    n_strikes = len(cfg.strikes)
    out["assigned_by_rung"] = np.array(
        [s["assigned_by_rung"] for s in summaries], dtype=np.int64
    ).reshape(n_paths, n_strikes)
    out["equity"] = np.array([s["equity"] for s in summaries], dtype=np.float64).reshape(
        n_paths, -1
    )
    return out
