"""Step 7 of a day on an entry step: the entry signal, the blocks (limits, exits), the ladder's
strikes, sizing and capacity, the tranche sold with its hedge calls, and its ring slots.

The only rule module that reads others: an entry is blocked by a HIGH limit
(`simkit.strategy.rules.limits`) or a close-all exit condition (`...rules.exits`) and buys its
hedge calls (`...rules.hedges`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from simkit.strategy.params import EngineShape
from simkit.strategy.rules.exits import _close_all_conditions
from simkit.strategy.rules.hedges import _buy_hedges
from simkit.strategy.rules.limits import (
    _high_breach,
    _Measures,
    _measures,
    _open_at_strikes,
    _put_notional,
)
from simkit.strategy.rules.quotes import (
    _CALENDAR_PER_STEP,
    _contracts,
    _OptionSums,
    _quote,
    _sell_fill,
    _weighted,
    _years,
)
from simkit.strategy.rules.sums import _count, _materialized, _over, _sum
from simkit.strategy.rules.trades import _tally_trades
from simkit.strategy.state import Book, Slots, Tallies


def _entry_signal(today, pct, p):
    """Whether the entry signal holds, (paths,) bool."""
    # seed: "Entry Conditions" — generate_entry_signal: at least 6 of the 8 conditions.
    dte = p.derived.put_expiry_steps.astype(pct.dtype) * _CALENDAR_PER_STEP
    conditions = (
        pct > p.strategy.signal_iv_percentile_min,
        today.short_interest > p.strategy.signal_short_interest_min,
        jnp.broadcast_to(
            (dte >= p.strategy.signal_dte_min) & (dte <= p.strategy.signal_dte_max), pct.shape
        ),
        today.bid_ask_spread < p.strategy.signal_spread_max,
        today.open_interest > p.strategy.signal_open_interest_min,
        today.liquidity_score > p.strategy.signal_liquidity_min,
        today.vix > p.strategy.signal_vix_min,
        jnp.abs(today.btc_correlation) < p.strategy.signal_btc_corr_max,
    )
    return sum(c.astype(jnp.int32) for c in conditions) >= p.strategy.signal_min_conditions


def _ladder_strikes(spot, p, shape: EngineShape):
    """Fixed dollar strikes, or the ladder re-centred at the spot (rounded half up to the grid).
    Returns (rungs, paths)."""
    # seed: "Strike Selection & Allocation Matrix" — strikes $2.00, 2.50, 3.00, 4.00, 5.00.
    grid = p.strategy.strike_grid
    strikes = p.strikes[:, None]
    if not shape.moneyness:
        return jnp.broadcast_to(strikes, (strikes.shape[0], *spot.shape))
    return jnp.maximum(
        jnp.floor(strikes * spot / p.strategy.reference_spot / grid + 0.5) * grid, grid
    )


class _Entry(NamedTuple):
    """What an entry step sells and buys (zeros when the step is not an entry step)."""

    cash: Array  # (paths,) USD, net cash of the trades
    put_n: Array  # (rungs, paths)
    put_strike: Array  # (rungs, paths)
    put_premium: Array  # (rungs, paths)
    hedge_n: Array  # (hedge_legs, paths)
    hedge_strike: Array  # (hedge_legs, paths)
    added: _OptionSums  # the new positions' sums at today's quotes
    amounts: Tallies  # (paths,) increments of a live path
    retired: Tallies  # (paths,) the trades of the reused slot, every path
    retired_by_rung: Array  # (rungs, paths) int, their assignments per rung


def _entry_slots(t, p, shape):
    tranche = t // p.strategy.entry_every_days
    return tranche % shape.put_slots, tranche % shape.hedge_slots


def _entry_gate(book: Book, live, m: _Measures, today, pct, p):
    """Whether each path sells a tranche today: a live path (`live`, (paths,) bool) whose signal
    holds, no HIGH limit breached and no close-all exit condition holding; and the counters of
    the reasons it does not (the first failing one, in that order). Returns ((paths,) bool,
    tally increments)."""
    # seed: "Position Limits & Controls" — severity HIGH blocks new positions (choice: which).
    high = p.limits.enforce_limits & _high_breach(m, p)
    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    exit_block = thesis | liquidity | iv_low
    signal = _entry_signal(today, pct, p)
    go = live & signal & ~high & ~exit_block
    amounts = Tallies(
        n_entry_days=live,
        n_blocked_signal=live & ~signal,
        n_blocked_limits=live & signal & high,
        n_blocked_exit=live & signal & ~high & exit_block,
    )
    return go, amounts


def _retired_trades(book: Book, t, p, shape):
    """The trades of the ring slot the tranche reuses (its last tranche has expired), tallied
    before they are overwritten: (tally increments, assigned mask (rungs, paths))."""
    put_slot, _ = _entry_slots(t, p, shape)
    return _tally_trades(
        book.put_n[put_slot],
        book.put_strike[put_slot],
        book.put_premium[put_slot],
        book.put_closed[put_slot],
        book.put_close_price[put_slot],
        p,
    )


class _Plan(NamedTuple):
    """What sizing reads, (rungs, paths) each except `capacity`."""

    strikes: Array  # USD, the tranche's strikes
    planned: Array  # contracts before any cap or flooring
    strike_room: Array  # USD, the strike cap's room at each rung's strike (may be negative)
    capacity: Array  # (paths,) contracts a strike may sell (volume and open interest)


def _plan(book: Book, m: _Measures, notional, today, p, shape) -> _Plan:
    """The budget split over the ladder, and the caps (ENGINE_SPEC step 7 "Sizing")."""
    spot = today.spot
    # Sizing: free collateral, capped by the expiry and strike concentration limits.
    lev = p.capital.max_leverage
    free = book.cash - m.collateral
    # seed: "Position Limits & Controls" — max_concentration_single_expiration 15 % a tranche.
    budget = jnp.maximum(
        jnp.minimum(free, p.strategy.max_concentration_single_expiration * m.equity / lev),
        0.0,
    )
    strikes = _ladder_strikes(spot, p, shape)  # (rungs, paths)
    per_contract = strikes * 100.0 / lev
    # seed: "Strike Selection & Allocation Matrix" — 15/25/30/20/10 % of the budget per strike.
    planned = budget * p.weights[:, None] / per_contract
    planned_notional = _sum(planned * strikes * 100.0)
    open_at_strike = _open_at_strikes(book, notional, strikes, p, shape)
    # The strike cap's room at each rung's strike before this tranche (may be negative).
    # seed: "Position Limits & Controls" — max_single_strike_pct 30 % of the notional.
    strike_room = (
        p.strategy.max_single_strike_pct * (m.notional + planned_notional) - open_at_strike
    )
    # seed: "Order Execution Framework" — market_impact_limits: 20 % of the day's volume, 10 %
    # of the open interest.
    capacity = _contracts(
        jnp.minimum(
            p.execution.max_volume_participation * today.option_volume,
            p.execution.max_open_interest_pct * today.open_interest,
        ),
        p,
    )
    return _Plan(strikes, planned, strike_room, capacity)


def _size(plan: _Plan, go, p):
    """Contracts per rung after the strike cap, flooring and capacity, and the capacity cut of
    each rung. Rungs that share a strike value (a moneyness ladder at a low spot) share its
    strike cap and capacity: in ladder order, each rung gets what the rungs before it at the
    same strike left (ENGINE_SPEC step 7 "Sizing")."""
    strikes, planned, strike_room, capacity = plan
    sold, wanted = [], []
    for r in range(strikes.shape[0]):
        k = strikes[r]
        sold_here = jnp.zeros_like(capacity)  # contracts
        sold_notional = jnp.zeros_like(capacity)  # USD
        for j in range(r):
            same = strikes[j] == k
            sold_here = sold_here + jnp.where(same, sold[j], 0.0)
            sold_notional = sold_notional + jnp.where(same, sold[j] * strikes[j] * 100.0, 0.0)
        room = jnp.maximum(strike_room[r] - sold_notional, 0.0)
        want = _contracts(jnp.minimum(planned[r], room / (k * 100.0)), p)
        left = jnp.maximum(capacity - sold_here, 0.0)
        # seed: "Order Execution Framework" — market_impact_limits: opening trades only, cut to
        # volume and open interest.
        sold.append(jnp.where(p.execution.capacity_limits & (want > left), left, want))
        wanted.append(want)
    n, want = jnp.stack(sold), jnp.stack(wanted)
    cut = (n < want) & go
    return jnp.where(go, n, 0.0), jnp.where(cut, want - n, 0.0), cut


def _sell_tranche(strikes, n, today, p, shape):
    """The tranche's puts sold at the sell fill: (today's quote, premium per share, net premium
    (paths,) USD after commissions, commissions (paths,) USD)."""
    spot, iv, spread = today.spot, today.iv, today.bid_ask_spread
    put_tau = _years(p.derived.put_expiry_steps, spot.dtype)
    new = _quote(spot, strikes, put_tau, iv, p, False, shape.smile)
    prem = _sell_fill(new.price, spread, p)
    commission = p.execution.commission * n
    net_premium = _sum(prem * 100.0 * n - commission)
    put_commission = _sum(commission)
    return new, prem, net_premium, put_commission


def _enter(book: Book, sums: _OptionSums, hedge_held, today, pct, t, p, shape) -> _Entry:
    """Step 7 on an entry day: limits, signal, sizing, the tranche, its hedge calls; and the
    trades of the slot the tranche reuses enter the tallies."""
    # `live` first: XLA orders the branch's inputs by first use, and this order compiles to
    # the program of the engine before its split into rules (the same optimized HLO).
    live = ~book.ruined
    notional = _put_notional(book)
    m = _measures(book, sums, hedge_held, notional, today, t, p)
    go, amounts = _entry_gate(book, live, m, today, pct, p)
    retired, retired_assigned = _retired_trades(book, t, p, shape)
    plan = _plan(book, m, notional, today, p, shape)
    # Materialized (`_materialized`): XLA otherwise recomputes the sizing in each of the ~15
    # rules and sums that read `n`.
    n, cut_by, cut = _materialized(t, functools.partial(_size, plan, go, p))
    amounts = amounts._replace(contracts_cut=_sum(cut_by), n_orders_cut=_count(cut))
    new, prem, net_premium, put_commission = _sell_tranche(plan.strikes, n, today, p, shape)
    hedges = _buy_hedges(book, m.delta_seed, net_premium, today, pct, p, shape)
    amounts = amounts._replace(
        transaction_costs=-put_commission - hedges.commission,
        n_tranches=_over(n > 0, 0, jnp.logical_or),
        call_hedge_pnl=-hedges.cost,
        hedge_contracts=_sum(hedges.n),
    )
    return _Entry(
        cash=net_premium - hedges.cost - hedges.commission,
        put_n=n,
        put_strike=plan.strikes,
        put_premium=prem,
        hedge_n=hedges.n,
        hedge_strike=hedges.strike,
        added=_OptionSums(short=_weighted(new, n), long=_weighted(hedges.quote, hedges.n)),
        amounts=amounts,
        retired=retired,
        retired_by_rung=retired_assigned.astype(jnp.int32),
    )


def _no_entry(book: Book, sums, hedge_held, today, pct, t, p, shape) -> _Entry:
    """The entry record of a step that is not an entry step: nothing traded."""
    zeros = jax.eval_shape(
        functools.partial(_enter, shape=shape), book, sums, hedge_held, today, pct, t, p
    )
    return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), zeros)


def _apply_entry(book: Book, slots: Slots, e: _Entry, is_entry, t, p, shape):
    """Write an entry step's tranche and hedge group into their ring slots (all paths enter on
    the same steps, so the slot is one number; its last tranche has expired)."""
    put_slot, hedge_slot = _entry_slots(t, p, shape)

    def put_in(ring, new, slot):
        return ring.at[slot].set(jnp.where(is_entry, new, ring[slot]))

    book = book._replace(
        cash=book.cash + e.cash,
        put_n=put_in(book.put_n, e.put_n, put_slot),
        put_strike=put_in(book.put_strike, e.put_strike, put_slot),
        put_premium=put_in(book.put_premium, e.put_premium, put_slot),
        put_closed=put_in(book.put_closed, jnp.zeros_like(book.put_closed[0]), put_slot),
        put_close_price=put_in(
            book.put_close_price, jnp.zeros_like(book.put_close_price[0]), put_slot
        ),
        hedge_n=put_in(book.hedge_n, e.hedge_n, hedge_slot),
        hedge_strike=put_in(book.hedge_strike, e.hedge_strike, hedge_slot),
    )
    slots = Slots(
        put_expiry=put_in(slots.put_expiry, t + p.derived.put_expiry_steps, put_slot),
        hedge_expiry=put_in(slots.hedge_expiry, t + p.derived.hedge_expiry_steps, hedge_slot),
    )
    return book, slots
