"""The vectorized strategy engine: one day of the seed strategy as a pure JAX function.

``_day(book, today, t, params) -> book`` applies the eight steps of ``docs/ENGINE_SPEC.md`` to
one path; ``vmap`` runs it over a block of paths and ``lax.scan`` over the days. Nothing here
branches on a path's values in Python: every rule is a mask, every trade an array update, so the
same code runs on CPU and GPU. The one ``lax.cond`` (the entry, every ``entry_every_days``) has
a predicate that depends on the day only, so under ``vmap`` it stays a real branch.

Public entry points:
    simulate_paths(market, cfg, mkt)   given market arrays (NumPy or JAX, (paths, steps + 1))
    simulate_block(cfg, mkt, seed=, cell=, path_start=, n_paths=, n_steps=, float64=)
                                        generates the block's market, then simulates it
Both return the per-path summary of docs/ENGINE_SPEC.md as NumPy arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr, ndtri

from simkit.precision import x64
from simkit.pricing import bs_greeks, bs_price
from simkit.strategy.config import StrategyConfig
from simkit.strategy.params import EngineParams, EngineShape, engine_params, engine_shape
from simkit.strategy.state import (
    CLOSE_REASONS,
    FLOAT_TALLIES,
    INT_TALLIES,
    LIMITS,
    Book,
    empty_book,
)

MARKET_FIELDS = (
    "spot",
    "iv",
    "short_interest",
    "vix",
    "btc_correlation",
    "bid_ask_spread",
    "open_interest",
    "option_volume",
    "liquidity_score",
    "borrow_cost",
    "volume_ratio",
    "thesis_event",
    "early_u",
)

_FILL_BID_ASK, _FILL_MID, _FILL_SEED = 0, 1, 2
_DAYS_PER_YEAR = 252.0
_CALENDAR_PER_STEP = 365.0 / 252.0


# --------------------------------------------------------------------------- quotes and fills
def _iv_at_strike(iv, spot, strike, p):
    """The optional skew: IV_K = IV * (K / S)^(-skew)."""
    return iv * (strike / spot) ** (-p.scalars["skew"])


def _quote(spot, strike, steps_left, iv, p, call) -> dict:
    """Mid price and Greeks (seed units) of an option `steps_left` trading days from expiry."""
    t = jnp.asarray(steps_left).astype(spot.dtype) / _DAYS_PER_YEAR
    vol = _iv_at_strike(iv, spot, strike, p)
    out = bs_greeks(spot, strike, t, p.scalars["rate"], vol, 0.0, call)
    out["price"] = bs_price(spot, strike, t, p.scalars["rate"], vol, 0.0, call)
    return out


def _sell_fill(mid, spread, p):
    """What a sale gets per share (seed: "Order Execution Framework", switch `fill`)."""
    s = p.scalars
    bid = jnp.maximum(mid - 0.5 * spread, s["min_quote"])
    ask = jnp.maximum(mid + 0.5 * spread, s["min_quote"])
    seed = jnp.minimum(jnp.maximum(mid + s["price_improvement_target"], bid), ask)
    return jnp.select([s["fill"] == _FILL_BID_ASK, s["fill"] == _FILL_MID], [bid, mid], seed)


def _buy_fill(mid, spread, p):
    """What a purchase costs per share."""
    s = p.scalars
    bid = jnp.maximum(mid - 0.5 * spread, s["min_quote"])
    ask = jnp.maximum(mid + 0.5 * spread, s["min_quote"])
    seed = jnp.minimum(jnp.maximum(mid - s["price_improvement_target"], bid), ask)
    return jnp.select([s["fill"] == _FILL_BID_ASK, s["fill"] == _FILL_MID], [ask, mid], seed)


def _contracts(x, p):
    """Whole contracts (floor) by default; fractional when `whole_contracts` is off."""
    x = jnp.maximum(x, 0.0)
    # floor(x + 1e-9): a count whole in exact arithmetic (20000*0.2/(400/1.5) = 15) stays whole.
    return jnp.where(p.scalars["whole_contracts"], jnp.floor(x + 1e-9), x)


def _iv_percentile(iv, p):
    """Percentile of ln IV in the stationary law of its OU process (STRATEGY.md choice)."""
    s = p.scalars
    sd = s["eta"] / jnp.sqrt(2.0 * s["kappa"])
    return 100.0 * ndtr((jnp.log(iv) - jnp.log(s["iv_long_run"])) / sd)


# --------------------------------------------------------------------------- bookkeeping
def _add(tally: dict, **amounts) -> dict:
    out = dict(tally)
    for name, value in amounts.items():
        out[name] = out[name] + value.astype(out[name].dtype)
    return out


def _record_trades(tally, closed, pnl, collateral):
    """Tally closed short-put trades (Kelly inputs): a win is P&L > 0, return = P&L / collateral."""
    ret = jnp.where(closed, pnl / jnp.where(closed, collateral, 1.0), 0.0)
    win = closed & (pnl > 0)
    loss = closed & ~win
    return _add(
        tally,
        n_trades=jnp.sum(closed),
        n_wins=jnp.sum(win),
        sum_win_ret=jnp.sum(jnp.where(win, ret, 0.0)),
        sum_win_ret_sq=jnp.sum(jnp.where(win, ret * ret, 0.0)),
        sum_loss_ret=jnp.sum(jnp.where(loss, -ret, 0.0)),
        sum_loss_ret_sq=jnp.sum(jnp.where(loss, ret * ret, 0.0)),
    )


def _put_collateral(book: Book, p) -> Array:
    return book.put_strike * 100.0 * book.put_n / p.scalars["max_leverage"]


def _assign_puts(book: Book, mask, spot, p, counter: str) -> Book:
    """Assignment of the short puts in `mask`: buy 100 n shares at K (seed: "Assignment
    Management Protocol"); the put trade's result is premium - (K - S)."""
    s = p.scalars
    n = jnp.where(mask, book.put_n, 0.0)
    k = book.put_strike
    shares_new = 100.0 * jnp.sum(n)
    cost_basis_sum = jnp.sum(100.0 * n * (k - book.put_premium))  # seed: K - premium
    shares = book.shares + shares_new
    basis = jnp.where(
        shares > 0,
        (book.basis * book.shares + cost_basis_sum) / jnp.where(shares > 0, shares, 1.0),
        0.0,
    )
    pnl = (book.put_premium - (k - spot)) * 100.0 * n - s["commission"] * n
    tally = _record_trades(book.tally, mask, pnl, _put_collateral(book, p))
    tally = _add(
        tally,
        premium_income=jnp.sum(book.put_premium * 100.0 * n),
        assignment_pnl=jnp.sum((spot - k) * 100.0 * n),
        shares_assigned=shares_new,
        **{counter: jnp.sum(mask)},
    )
    return book._replace(
        cash=book.cash - jnp.sum(k * 100.0 * n),
        shares=shares,
        basis=basis,
        put_n=jnp.where(mask, 0.0, book.put_n),
        tally=tally,
        assigned_by_rung=book.assigned_by_rung + jnp.sum(mask, axis=0).astype(jnp.int32),
    )


def _close_puts(book: Book, mask, mid, spread, p, counters: dict) -> Book:
    """Buy back the short puts in `mask` at the purchase fill; `counters` maps a counter name to
    the mask of positions closed for that reason."""
    s = p.scalars
    n = jnp.where(mask, book.put_n, 0.0)
    fill = _buy_fill(mid, spread, p)
    commission = s["commission"] * n
    pnl = (book.put_premium - fill) * 100.0 * n - 2.0 * commission
    tally = _record_trades(book.tally, mask, pnl, _put_collateral(book, p))
    tally = _add(
        tally,
        premium_income=jnp.sum((book.put_premium - fill) * 100.0 * n),
        transaction_costs=-jnp.sum(commission),
        **{name: jnp.sum(m & mask) for name, m in counters.items()},
    )
    return book._replace(
        cash=book.cash - jnp.sum(fill * 100.0 * n + commission),
        put_n=jnp.where(mask, 0.0, book.put_n),
        tally=tally,
    )


# --------------------------------------------------------------------------- marks
class Quotes(NamedTuple):
    """Mid prices and Greeks of every slot on one day (dicts of "price", "delta", "gamma",
    "theta", "vega", "rho"). Computed once a day after the expiries; later steps change only
    contract counts, except a sale, which re-quotes its own slot."""

    put: dict  # each (put_slots, rungs)
    hedge: dict  # each (hedge_slots, hedge_legs)
    cc: dict  # each ()


def _quotes(book: Book, spot, iv, t, p) -> Quotes:
    # Empty or expired slots are quoted at a safe point (one day left); counts of 0 mask them.
    return Quotes(
        put=_quote(
            spot, book.put_strike, jnp.maximum(book.put_expiry - t, 1)[:, None], iv, p, False
        ),
        hedge=_quote(
            spot, book.hedge_strike, jnp.maximum(book.hedge_expiry - t, 1)[:, None], iv, p, True
        ),
        cc=_quote(spot, book.cc_strike, jnp.maximum(book.cc_expiry - t, 1), iv, p, True),
    )


def _set_slot(quotes: dict, slot, new: dict) -> dict:
    return {k: v.at[slot].set(new[k]) for k, v in quotes.items()}


def _equity(book: Book, q: Quotes, spot) -> Array:
    """Sleeve equity: cash + marks of every position at mid + shares at spot."""
    return (
        book.cash
        - 100.0 * jnp.sum(q.put["price"] * book.put_n)
        + 100.0 * jnp.sum(q.hedge["price"] * book.hedge_n)
        - 100.0 * q.cc["price"] * book.cc_n
        + book.shares * spot
    )


# --------------------------------------------------------------------------- the day's steps
def _accrue(book: Book, today, t, p) -> Book:
    """Step 1: interest on sleeve cash, share marks, monthly additions, thesis events."""
    s = p.scalars
    growth = jnp.exp(s["rate"] / _DAYS_PER_YEAR) - 1.0
    moved = t >= 1
    interest = jnp.where(moved, book.cash * growth, 0.0)
    share_move = jnp.where(moved, book.shares * (today["spot"] - book.spot_lags[0]), 0.0)
    addition = jnp.where(moved & (t % 21 == 0), s["monthly_addition"], 0.0)
    tally = _add(book.tally, financing=interest, assignment_pnl=share_move, contributions=addition)
    return book._replace(
        cash=book.cash + interest + addition,
        tally=tally,
        thesis_latch=book.thesis_latch | today["thesis_event"],
    )


def _settle_expiries(book: Book, spot, t, p) -> Book:
    """Step 2: puts (assignment or worthless), hedge calls at intrinsic, covered calls."""
    s = p.scalars
    expiring = (book.put_expiry == t)[:, None] & (book.put_n > 0)
    itm = book.put_strike > spot
    book = _assign_puts(book, expiring & itm, spot, p, "n_assigned_expiry")
    worthless = expiring & ~itm
    n = jnp.where(worthless, book.put_n, 0.0)
    pnl = book.put_premium * 100.0 * n - s["commission"] * n
    tally = _record_trades(book.tally, worthless, pnl, _put_collateral(book, p))
    tally = _add(
        tally,
        premium_income=jnp.sum(book.put_premium * 100.0 * n),
        n_expired_otm=jnp.sum(worthless),
    )
    book = book._replace(put_n=jnp.where(worthless, 0.0, book.put_n), tally=tally)

    # Hedge calls: held to expiry and settled at intrinsic (seed: "Dynamic Hedging").
    h_expiring = (book.hedge_expiry == t)[:, None] & (book.hedge_n > 0)
    payoff = jnp.sum(
        jnp.where(
            h_expiring, jnp.maximum(spot - book.hedge_strike, 0.0) * 100.0 * book.hedge_n, 0.0
        )
    )
    book = book._replace(
        cash=book.cash + payoff,
        hedge_n=jnp.where(h_expiring, 0.0, book.hedge_n),
        tally=_add(book.tally, call_hedge_pnl=payoff),
    )

    # Covered calls: shares called away at the strike when in the money.
    cc_expiring = (book.cc_expiry == t) & (book.cc_n > 0)
    called = cc_expiring & (spot > book.cc_strike)
    called_shares = jnp.where(called, 100.0 * book.cc_n, 0.0)
    shares = book.shares - called_shares
    return book._replace(
        cash=book.cash + book.cc_strike * called_shares,
        shares=shares,
        basis=jnp.where(shares > 0, book.basis, 0.0),
        cc_n=jnp.where(cc_expiring, 0.0, book.cc_n),
        tally=_add(
            book.tally,
            covered_call_pnl=-(spot - book.cc_strike) * called_shares,
            shares_called_away=called_shares,
        ),
    )


def _early_exercise(book: Book, q: Quotes, today, p) -> Book:
    """Step 3: the seed's early-assignment score (optional close), then rational exercise."""
    s = p.scalars
    spot, spread = today["spot"], today["bid_ask_spread"]
    mid = q.put["price"]
    k = book.put_strike
    is_open = book.put_n > 0
    # seed: "monitor_early_assignment_risk" — deep ITM, low time value, rates.
    time_value = mid - jnp.maximum(k - spot, 0.0)
    score = (
        jnp.where(spot < 0.95 * k, 3, jnp.where(spot < 0.98 * k, 1, 0))
        + jnp.where(time_value < 0.10, 2, jnp.where(time_value < 0.25, 1, 0))
        + jnp.where(s["rate"] > 0.05, 1, 0)
    )
    at_risk = is_open & s["close_on_assignment_risk"] & (score >= s["assignment_score_close"])
    book = _close_puts(book, at_risk, mid, spread, p, {"n_close_assignment_risk": at_risk})
    # choice: a rational holder exercises an American put worth less alive than dead.
    exercise = (
        (book.put_n > 0)
        & s["early_assignment"]
        & (mid < k - spot)
        & (today["early_u"] < s["early_assignment_prob"])
    )
    return _assign_puts(book, exercise, spot, p, "n_assigned_early")


def _close_all_conditions(book: Book, today, pct, p):
    """The exits that close every short put at once: thesis, liquidity, IV (each a switch)."""
    s = p.scalars
    thesis = s["thesis_exit"] & (
        book.thesis_latch
        | (today["short_interest"] < s["thesis_short_interest_min"])
        | (jnp.abs(today["btc_correlation"]) > s["thesis_btc_corr_max"])
    )
    liquidity = s["liquidity_exit"] & (today["bid_ask_spread"] > s["liquidity_exit_spread"])
    iv_low = s["iv_exit"] & (pct < s["iv_exit_percentile"])
    return thesis, liquidity, iv_low


def _exits(book: Book, q: Quotes, today, t, pct, p) -> Book:
    """Step 4: seed "Exit Conditions", the reason chosen by urgency."""
    s = p.scalars
    is_open = book.put_n > 0
    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    dte = (book.put_expiry - t)[:, None].astype(q.put["price"].dtype) * _CALENDAR_PER_STEP
    prem = book.put_premium
    conditions = {
        "thesis": jnp.broadcast_to(thesis, is_open.shape),
        "stop": s["stop_loss"] & (q.put["price"] > (1.0 + s["stop_loss_multiple"]) * prem),
        "time": s["time_exit"] & jnp.broadcast_to(dte < s["time_exit_dte"], is_open.shape),
        "liquidity": jnp.broadcast_to(liquidity, is_open.shape),
        "iv": jnp.broadcast_to(iv_low, is_open.shape),
        "profit": s["profit_take"] & (q.put["price"] < (1.0 - s["profit_take_pct"]) * prem),
    }
    # The first holding condition in urgency order is the reason.
    taken = jnp.zeros_like(is_open)
    reasons = {}
    for name in CLOSE_REASONS:
        reasons[f"n_close_{name}"] = is_open & conditions[name] & ~taken
        taken = taken | conditions[name]
    return _close_puts(book, is_open & taken, q.put["price"], today["bid_ask_spread"], p, reasons)


def _margin_and_ruin(book: Book, q: Quotes, today, t, p) -> Book:
    """Step 5: a margin call buys back every short put; equity <= 0 liquidates everything."""
    s = p.scalars
    spot, spread = today["spot"], today["bid_ask_spread"]
    required = jnp.sum(_put_collateral(book, p))
    any_put = jnp.any(book.put_n > 0)
    call = s["margin_calls"] & any_put & (_equity(book, q, spot) < required)
    all_puts = (book.put_n > 0) & call
    book = _close_puts(book, all_puts, q.put["price"], spread, p, {"n_close_margin": all_puts})
    book = book._replace(tally=_add(book.tally, n_margin_calls=call))

    ruin = _equity(book, q, spot) <= 0.0
    puts = (book.put_n > 0) & ruin
    book = _close_puts(book, puts, q.put["price"], spread, p, {"n_close_ruin": puts})
    hedge_n = jnp.where(ruin, book.hedge_n, 0.0)
    hedge_fill = _sell_fill(q.hedge["price"], spread, p)
    cc_n = jnp.where(ruin, book.cc_n, 0.0)
    cc_fill = _buy_fill(q.cc["price"], spread, p)
    commission = s["commission"] * (jnp.sum(hedge_n) + cc_n)
    cash = (
        book.cash
        + jnp.sum(hedge_fill * 100.0 * hedge_n)
        - cc_fill * 100.0 * cc_n
        - commission
        + jnp.where(ruin, book.shares * spot, 0.0)
    )
    tally = _add(
        book.tally,
        call_hedge_pnl=jnp.sum(hedge_fill * 100.0 * hedge_n),
        covered_call_pnl=-cc_fill * 100.0 * cc_n,
        transaction_costs=-commission,
    )
    return book._replace(
        cash=cash,
        hedge_n=jnp.where(ruin, 0.0, book.hedge_n),
        cc_n=jnp.where(ruin, 0.0, book.cc_n),
        shares=jnp.where(ruin, 0.0, book.shares),
        basis=jnp.where(ruin, 0.0, book.basis),
        ruined=ruin,
        ruin_step=jnp.where(ruin, t, book.ruin_step),
        tally=tally,
    )


def _covered_calls(book: Book, q: Quotes, today, t, p) -> tuple[Book, Quotes]:
    """Step 6: seed "Assignment Management Protocol" — the cost-basis decision tree."""
    s = p.scalars
    spot, iv = today["spot"], today["iv"]
    basis = book.basis
    sell = (
        s["covered_calls"]
        & ~book.ruined
        & (book.cc_n == 0)
        & (book.shares >= 100.0)
        & ((basis < s["cc_basis_good"]) | (basis >= s["cc_basis_hold"]))
    )
    n = jnp.where(sell, jnp.floor(book.shares / 100.0), 0.0)
    # seed: round(target_strike * 2) / 2 with target = basis * 1.15 (half up here, >= $0.50).
    strike = jnp.maximum(jnp.floor(basis * s["cc_strike_markup"] * 2.0 + 0.5) / 2.0, 0.5)
    new = _quote(spot, strike, s["cc_expiry_steps"], iv, p, True)
    fill = _sell_fill(new["price"], today["bid_ask_spread"], p)
    commission = s["commission"] * n
    book = book._replace(
        cash=book.cash + fill * 100.0 * n - commission,
        cc_n=jnp.where(sell, n, book.cc_n),
        cc_strike=jnp.where(sell, strike, book.cc_strike),
        cc_premium=jnp.where(sell, fill, book.cc_premium),
        cc_expiry=jnp.where(sell, t + s["cc_expiry_steps"], book.cc_expiry),
        tally=_add(
            book.tally,
            covered_call_pnl=fill * 100.0 * n,
            transaction_costs=-commission,
            n_cc_sold=sell,
        ),
    )
    cc_quote = {k: jnp.where(sell, new[k], v) for k, v in q.cc.items()}
    return book, q._replace(cc=cc_quote)


class _Measures:
    """The book's risk measures at the day's prices (STRATEGY.md "Risk limits")."""

    def __init__(self, book: Book, q: Quotes, today, t, p):
        s = p.scalars
        spot, iv = today["spot"], today["iv"]
        gp, gh, gc = q.put, q.hedge, q.cc

        def signed(name):  # short puts and the covered call count -n, hedge calls +n
            return 100.0 * (
                -jnp.sum(gp[name] * book.put_n)
                + jnp.sum(gh[name] * book.hedge_n)
                - gc[name] * book.cc_n
            )

        self.equity = _equity(book, q, spot)
        outside = (s["portfolio_value"] - s["sleeve_initial"]) * jnp.exp(
            s["rate"] * t.astype(spot.dtype) / _DAYS_PER_YEAR
        )
        self.portfolio = outside + self.equity
        # seed: "calculate_portfolio_greeks" — delta x quantity, short or long alike.
        self.delta_seed = (
            jnp.sum(gp["delta"] * book.put_n)
            + jnp.sum(gh["delta"] * book.hedge_n)
            + gc["delta"] * book.cc_n
            + book.shares / 100.0
        )
        delta_sh = signed("delta") + book.shares
        gamma_sh = signed("gamma")
        self.theta_usd = signed("theta")
        self.vega_usd = signed("vega")
        self.rho_usd = signed("rho")
        sd = iv / jnp.sqrt(_DAYS_PER_YEAR)
        quad = gamma_sh * spot * spot * sd * sd
        z = ndtri(s["var_level"])
        self.var = z * jnp.sqrt((delta_sh * spot * sd) ** 2 + 0.5 * quad * quad) - 0.5 * quad
        self.gamma_pct = jnp.abs(gamma_sh) * spot * spot
        notional = book.put_strike * 100.0 * book.put_n
        self.notional = jnp.sum(notional)
        self.notional_expiry = jnp.max(jnp.sum(notional, axis=1))
        flat_k = book.put_strike.reshape(-1)
        flat_notional = notional.reshape(-1)
        same = flat_k[:, None] == flat_k[None, :]
        self.notional_by_strike = jnp.where(same, flat_notional[None, :], 0.0).sum(axis=1)
        self.flat_strike = flat_k
        self.flat_notional = flat_notional
        self.collateral = self.notional / s["max_leverage"]
        self.any_option = jnp.any(book.put_n > 0) | jnp.any(book.hedge_n > 0) | (book.cc_n > 0)

    def breaches(self, p) -> dict:
        """Each limit of STRATEGY.md "Risk limits": True when it does not hold."""
        s = p.scalars
        pv, eq, has_puts = self.portfolio, self.equity, self.notional > 0
        greek = self.any_option
        return {
            "allocation": self.notional / pv > s["max_total_strategy_pct"],
            "leverage": has_puts & (self.notional > s["max_leverage"] * eq),
            "var": self.var > s["daily_var_limit"] * pv,
            "expiry": has_puts
            & (self.notional_expiry > s["max_concentration_single_expiration"] * eq),
            "strike": has_puts
            & (
                jnp.max(self.notional_by_strike)
                > s["max_single_strike_pct"] * self.notional * (1.0 + 1e-9)
            ),
            "delta": greek
            & ((self.delta_seed < s["delta_min"]) | (self.delta_seed > s["delta_max"])),
            "gamma": greek & (self.gamma_pct / pv > s["gamma_alert"]),
            "theta": greek & (100.0 * self.theta_usd / pv < s["theta_minimum"]),
            "vega": greek & (100.0 * jnp.abs(self.vega_usd) / pv > s["vega_limit"]),
            "rho": greek & (100.0 * jnp.abs(self.rho_usd) / pv > s["rho_limit"]),
        }


def _squeeze_probability(today, pct, momentum):
    """seed: "calculate_squeeze_probability" — five factors capped at 1 above, not floored."""
    factors = (
        jnp.minimum(today["short_interest"] / 50.0, 1.0) * 0.3
        + jnp.minimum(today["borrow_cost"] / 100.0, 1.0) * 0.25
        + jnp.minimum((pct - 50.0) / 50.0, 1.0) * 0.2
        + jnp.minimum(today["volume_ratio"] / 3.0, 1.0) * 0.15
        + jnp.minimum(momentum / 0.2, 1.0) * 0.1
    )
    return jnp.minimum(factors, 0.95)


def _entry_signal(today, pct, p):
    """seed: "Entry Conditions" — at least 6 of the 8 conditions."""
    s = p.scalars
    dte = s["put_expiry_steps"].astype(pct.dtype) * _CALENDAR_PER_STEP
    conditions = (
        pct > s["signal_iv_percentile_min"],
        today["short_interest"] > s["signal_short_interest_min"],
        (dte >= s["signal_dte_min"]) & (dte <= s["signal_dte_max"]),
        today["bid_ask_spread"] < s["signal_spread_max"],
        today["open_interest"] > s["signal_open_interest_min"],
        today["liquidity_score"] > s["signal_liquidity_min"],
        today["vix"] > s["signal_vix_min"],
        jnp.abs(today["btc_correlation"]) < s["signal_btc_corr_max"],
    )
    return sum(c.astype(jnp.int32) for c in conditions) >= s["signal_min_conditions"]


def _ladder_strikes(spot, p):
    """Fixed dollar strikes, or the ladder re-centred at the spot (rounded half up to the grid)."""
    s = p.scalars
    grid = s["strike_grid"]
    moved = jnp.maximum(jnp.floor(p.strikes * spot / s["reference_spot"] / grid + 0.5) * grid, grid)
    return jnp.where(s["strike_mode"] == 1, moved, p.strikes)


def _enter(book: Book, q: Quotes, today, t, pct, p, shape: EngineShape) -> tuple[Book, Quotes]:
    """Step 7 on an entry day: limits, signal, sizing, the tranche, its hedge calls."""
    s = p.scalars
    spot, iv, spread = today["spot"], today["iv"], today["bid_ask_spread"]
    live = ~book.ruined
    m = _Measures(book, q, today, t, p)
    breach = m.breaches(p)
    high = breach["allocation"] | breach["leverage"] | breach["var"] | breach["expiry"]
    high = s["enforce_limits"] & high
    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    exit_block = thesis | liquidity | iv_low
    signal = _entry_signal(today, pct, p)
    go = live & signal & ~high & ~exit_block
    tally = _add(
        book.tally,
        n_entry_days=live,
        n_blocked_signal=live & ~signal,
        n_blocked_limits=live & signal & high,
        n_blocked_exit=live & signal & ~high & exit_block,
    )

    # Sizing: free collateral, capped by the expiry and strike concentration limits.
    lev = s["max_leverage"]
    free = book.cash - m.collateral
    budget = jnp.maximum(
        jnp.minimum(free, s["max_concentration_single_expiration"] * m.equity / lev), 0.0
    )
    strikes = _ladder_strikes(spot, p)
    per_contract = strikes * 100.0 / lev
    planned = budget * p.weights / per_contract
    planned_notional = jnp.sum(planned * strikes * 100.0)
    open_at_strike = jnp.sum(
        jnp.where(m.flat_strike[None, :] == strikes[:, None], m.flat_notional[None, :], 0.0), axis=1
    )
    strike_room = jnp.maximum(
        s["max_single_strike_pct"] * (m.notional + planned_notional) - open_at_strike, 0.0
    )
    n = _contracts(jnp.minimum(planned, strike_room / (strikes * 100.0)), p)
    capacity = _contracts(
        jnp.minimum(
            s["max_volume_participation"] * today["option_volume"],
            s["max_open_interest_pct"] * today["open_interest"],
        ),
        p,
    )
    # seed: "market_impact_limits" — opening trades only, cut to volume and open interest.
    cut = s["capacity_limits"] & (n > capacity) & go
    tally = _add(
        tally,
        contracts_cut=jnp.sum(jnp.where(cut, n - capacity, 0.0)),
        n_orders_cut=jnp.sum(cut),
    )
    n = jnp.where(cut, capacity, n)
    n = jnp.where(go, n, 0.0)

    new = _quote(spot, strikes, s["put_expiry_steps"], iv, p, False)
    prem = _sell_fill(new["price"], spread, p)
    commission = s["commission"] * n
    net_premium = jnp.sum(prem * 100.0 * n - commission)
    slot = (t // s["entry_every_days"]) % shape.put_slots
    book = book._replace(
        cash=book.cash + net_premium,
        put_n=book.put_n.at[slot].set(n),
        put_strike=book.put_strike.at[slot].set(strikes),
        put_premium=book.put_premium.at[slot].set(prem),
        put_expiry=book.put_expiry.at[slot].set(t + s["put_expiry_steps"]),
        tally=_add(tally, transaction_costs=-jnp.sum(commission), n_tranches=jnp.any(n > 0)),
    )
    q = q._replace(put=_set_slot(q.put, slot, new))
    return _buy_hedges(book, q, today, t, pct, p, shape, net_premium, m.delta_seed)


def _buy_hedges(book, q, today, t, pct, p, shape, net_premium, delta_seed) -> tuple[Book, Quotes]:
    """seed: "Dynamic Hedging Specifications" — the dynamic hedge ratio and the call ladder."""
    s = p.scalars
    spot, iv, spread = today["spot"], today["iv"], today["bid_ask_spread"]
    momentum = spot / book.spot_lags[4] - 1.0
    squeeze = _squeeze_probability(today, pct, momentum)
    mult = (
        jnp.where(pct > s["hedge_iv_extreme_percentile"], s["hedge_iv_extreme_mult"], 1.0)
        * jnp.where(squeeze > s["hedge_squeeze_threshold"], s["hedge_squeeze_mult"], 1.0)
        * jnp.where(delta_seed < s["hedge_delta_threshold"], s["hedge_delta_mult"], 1.0)
        * jnp.where(
            iv / book.iv_prev > 1.0 + s["vol_spike_threshold"], s["hedge_vol_spike_mult"], 1.0
        )
    )
    ratio = jnp.minimum(s["hedge_base_ratio"] * mult, s["hedge_max_ratio"])
    budget = jnp.where(s["hedges"] & (net_premium > 0), ratio * net_premium, 0.0)
    regime = jnp.where(pct > s["hedge_regime_percentile"], 0, 1)
    strikes = p.hedge_moneyness[regime] * spot
    weights = p.hedge_weights[regime]
    new = _quote(spot, strikes, s["hedge_expiry_steps"], iv, p, True)
    fill = _buy_fill(new["price"], spread, p)
    n = _contracts(budget * weights / (fill * 100.0 + s["commission"]), p)
    n = jnp.where(weights > 0, n, 0.0)
    commission = s["commission"] * n
    slot = (t // s["entry_every_days"]) % shape.hedge_slots
    book = book._replace(
        cash=book.cash - jnp.sum(fill * 100.0 * n + commission),
        hedge_n=book.hedge_n.at[slot].set(n),
        hedge_strike=book.hedge_strike.at[slot].set(strikes),
        hedge_expiry=book.hedge_expiry.at[slot].set(t + s["hedge_expiry_steps"]),
        tally=_add(
            book.tally,
            call_hedge_pnl=-jnp.sum(fill * 100.0 * n),
            transaction_costs=-jnp.sum(commission),
            hedge_contracts=jnp.sum(n),
        ),
    )
    return book, q._replace(hedge=_set_slot(q.hedge, slot, new))


# --------------------------------------------------------------------------- one day, all days
def _day(
    book: Book, today: dict, t, horizon, p: EngineParams, shape: EngineShape
) -> tuple[Book, Array]:
    """Steps 1-8 of docs/ENGINE_SPEC.md for one path on step `t`. Returns the new book and E_t.

    Steps past `horizon` (padding, so that runs of other lengths share one compiled engine)
    and the days after a ruin leave the book as it is."""
    start = book
    spot, iv = today["spot"], today["iv"]
    pct = _iv_percentile(iv, p)
    book = _accrue(book, today, t, p)
    book = _settle_expiries(book, spot, t, p)
    q = _quotes(book, spot, iv, t, p)
    book = _early_exercise(book, q, today, p)
    book = _exits(book, q, today, t, pct, p)
    book = _margin_and_ruin(book, q, today, t, p)
    book, q = _covered_calls(book, q, today, t, p)
    is_entry_day = t % p.scalars["entry_every_days"] == 0
    book, q = jax.lax.cond(
        is_entry_day,
        lambda b, q: _enter(b, q, today, t, pct, p, shape),
        lambda b, q: (b, q),
        book,
        q,
    )

    # Step 8: end of day — equity and the breach counters of the book as it stands.
    m = _Measures(book, q, today, t, p)
    breach = {k: v & ~book.ruined for k, v in m.breaches(p).items()}  # none on the ruin step
    hit = jnp.stack([breach[name] for name in LIMITS])
    tally = _add(book.tally, **{f"breach_{name}": breach[name] for name in LIMITS})
    book = book._replace(
        tally=tally,
        first_breach=jnp.where((book.first_breach < 0) & hit, t, book.first_breach),
        spot_lags=jnp.concatenate([spot[None], book.spot_lags[:-1]]),
        iv_prev=iv,
    )
    equity = jnp.where(book.ruined, book.cash, m.equity)
    # A path ruined on an earlier day does nothing: its book stays as the liquidation left it.
    frozen = start.ruined | (t > horizon)
    book = jax.tree_util.tree_map(lambda old, new: jnp.where(frozen, old, new), start, book)
    return book, jnp.where(frozen, start.cash, equity)


def _close_the_books(book: Book, last: dict, n_steps, p) -> dict:
    """At the horizon open positions enter the attribution at mid (docs/ENGINE_SPEC.md)."""
    q = _quotes(book, last["spot"], last["iv"], n_steps, p)
    return _add(
        book.tally,
        mark_to_market=100.0 * jnp.sum((book.put_premium - q.put["price"]) * book.put_n),
        call_hedge_pnl=100.0 * jnp.sum(q.hedge["price"] * book.hedge_n),
        covered_call_pnl=-100.0 * q.cc["price"] * book.cc_n,
    )


@functools.partial(jax.jit, static_argnames=("shape",))
def _run(market: dict, horizon: Array, p: EngineParams, shape: EngineShape) -> dict:
    """Scan the days of a block of paths. `market` arrays are (paths, days); steps after
    `horizon` (a traced int) are padding and change nothing."""
    n_paths = market["spot"].shape[0]
    dtype = market["spot"].dtype
    book0 = jax.vmap(
        lambda s0, iv0: empty_book(
            p.scalars["sleeve_initial"],
            s0,
            iv0,
            shape.put_slots,
            shape.rungs,
            shape.hedge_slots,
            shape.hedge_legs,
            dtype,
        )
    )(market["spot"][:, 0], market["iv"][:, 0])
    days = {k: jnp.swapaxes(v, 0, 1) for k, v in market.items()}
    step = jax.vmap(_day, in_axes=(0, 0, None, None, None, None))

    def body(book, xs):
        t, today = xs
        return step(book, today, t, horizon, p, shape)

    steps = jnp.arange(market["spot"].shape[1], dtype=jnp.int32)
    book, equity = jax.lax.scan(body, book0, (steps, days))
    last = {k: v[horizon] for k, v in days.items()}
    tally = jax.vmap(_close_the_books, in_axes=(0, 0, None, None))(book, last, horizon, p)
    outside = (p.scalars["portfolio_value"] - p.scalars["sleeve_initial"]) * jnp.exp(
        p.scalars["rate"] * horizon.astype(dtype) / _DAYS_PER_YEAR
    )
    final_equity = equity[horizon]
    summary = dict(tally)
    summary.update(
        initial_equity=jnp.broadcast_to(p.scalars["sleeve_initial"], (n_paths,)),
        final_equity=final_equity,
        final_portfolio_value=outside + final_equity,
        ruined=book.ruined.astype(jnp.int32),
        ruin_step=book.ruin_step,
        assigned_by_rung=book.assigned_by_rung,
        equity=jnp.swapaxes(equity, 0, 1),
        **{f"first_breach_{name}": book.first_breach[:, i] for i, name in enumerate(LIMITS)},
    )
    return summary


def _padded_size(n: int, quantum: int) -> int:
    """Round a block's paths up to a power of two (at least `quantum`) so that blocks of other
    sizes reuse a compiled engine."""
    return max(quantum, 1 << max(n - 1, 0).bit_length())


# --------------------------------------------------------------------------- public API
def _prepare(market: Mapping[str, object], dtype) -> dict:
    out = {}
    for name in MARKET_FIELDS:
        if name not in market:
            raise ValueError(f"market: missing input {name!r}; expected {MARKET_FIELDS}")
        value = jnp.asarray(market[name])
        out[name] = value.astype(bool) if name == "thesis_event" else value.astype(dtype)
    return out


def simulate_paths(market: Mapping[str, object], cfg: StrategyConfig, mkt) -> dict[str, np.ndarray]:
    """Run the strategy on given market paths (arrays shaped (paths, steps + 1)).

    The engine computes in the dtype of ``market["spot"]`` (float64 needs JAX's x64 mode).
    ``mkt`` supplies ``rate``, ``iv_long_run``, ``kappa`` and ``eta``. Returns the per-path
    summary of docs/ENGINE_SPEC.md as NumPy arrays.
    """
    dtype = jnp.asarray(market["spot"]).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    prepared = _prepare(market, dtype)
    n_paths, n_days = prepared["spot"].shape
    # Pad paths to a power of two and days to a multiple of 64 by repeating the edge values:
    # one compiled engine then serves blocks and horizons of many sizes (tests, grids, the
    # last block of a run). Padding paths are dropped, padding days change nothing.
    pad_paths = _padded_size(n_paths, 8) - n_paths
    pad_days = -n_days % 64
    if pad_paths or pad_days:
        prepared = {
            k: jnp.pad(v, ((0, pad_paths), (0, pad_days)), mode="edge") for k, v in prepared.items()
        }
    horizon = jnp.asarray(n_days - 1, jnp.int32)
    out = _run(prepared, horizon, engine_params(cfg, mkt, dtype), engine_shape(cfg))
    out = {k: np.asarray(v)[:n_paths] for k, v in out.items()}
    out["equity"] = out["equity"][:, :n_days]
    return out


def simulate_block(
    cfg: StrategyConfig,
    mkt,
    *,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    float64: bool = False,
) -> dict[str, np.ndarray]:
    """Generate the market of paths ``path_start … path_start + n_paths - 1`` of a grid cell and
    run the strategy on it. A path's numbers depend only on (seed, cell, path index)."""
    from simkit.paths.market import simulate_market

    dtype = jnp.float64 if float64 else jnp.float32
    with x64(float64):
        market = simulate_market(mkt, seed, cell, path_start, n_paths, n_steps, dtype=dtype)
        return simulate_paths(market._asdict(), cfg, mkt)


SUMMARY_FIELDS = (
    "initial_equity",
    "final_equity",
    "final_portfolio_value",
    *FLOAT_TALLIES,
    *INT_TALLIES,
    "ruined",
    "ruin_step",
    "assigned_by_rung",
    *(f"first_breach_{name}" for name in LIMITS),
    "equity",
)

__all__ = ["simulate_paths", "simulate_block", "SUMMARY_FIELDS", "MARKET_FIELDS"]
