"""One day of the strategy for a block of paths, and the loop over the days.

``_day(book, slots, today, t, params, shape) -> (book, slots, equity)`` applies the steps of
docs/STRATEGY.md "A day, in order" (docs/ENGINE_SPEC.md) to every path of a block at once, each step
a rule of `simkit.strategy.rules`, and a ``fori_loop`` runs it over the days. The paths are on
the last axis of every array (`simkit.strategy.state`); nothing branches on a path's values in
Python: every rule is a mask, every trade an array update, so the same code runs on CPU and GPU.
The ``lax.cond``s branch on what is the same for the whole block: the step (an entry every
``entry_every_days``) and whether any path of the block meets a margin call or ruin today;
others, on a predicate that always holds, only make XLA materialize a value (`_materialized`).

`_run` (given market arrays) and `_run_generated` (each day's market generated inside the loop)
are the jitted engines behind `simkit.strategy.engine`'s public entry points.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from simkit.paths.keys import path_keys
from simkit.paths.market import market_init, market_step
from simkit.strategy.params import EngineParams, EngineShape
from simkit.strategy.rules.assignment import _covered_calls
from simkit.strategy.rules.entry import _apply_entry, _enter, _Entry, _no_entry
from simkit.strategy.rules.exits import _early_exercise_and_exits
from simkit.strategy.rules.expiries import _accrue, _settle_expiries
from simkit.strategy.rules.hedges import _hedge_sums
from simkit.strategy.rules.limits import (
    _breaches,
    _largest_strike_notional,
    _measures,
    _put_notional,
)
from simkit.strategy.rules.quotes import (
    _DAYS_PER_YEAR,
    _iv_percentile,
    _mid,
    _OptionSums,
    _quotes,
    _weighted,
)
from simkit.strategy.rules.ruin import _margin_and_ruin
from simkit.strategy.rules.sums import _materialized, _over, _sums
from simkit.strategy.rules.trades import _add_tallies, _is_open, _merge, _tally_trades
from simkit.strategy.state import (
    FLOAT_TALLIES,
    INT_TALLIES,
    LIMITS,
    Book,
    Slots,
    Tallies,
    Today,
    empty_book,
    empty_slots,
)

# The day's market inputs (docs/ENGINE_SPEC.md "Inputs"), each (paths,) on a day: `Today`.
MARKET_FIELDS = tuple(name for name in Today._fields if name != "iv_percentile")


class _Underlying(NamedTuple):
    """What the stock did so far on each path (`simkit.schema.outcomes.UNDERLYING`), (paths,)."""

    spot0: Array  # S_0, USD
    last: Array  # the spot of the last day run, USD
    low: Array  # the lowest spot so far, USD
    sum_sq: Array  # sum of the squared daily log returns so far


def _watch(u: _Underlying, spot: Array) -> _Underlying:
    """The day's spot seen: its log return from the day before (0 on day 0, when `last` is
    S_0 itself), squared into the sum; the running low; the last spot."""
    r = jnp.log(spot / u.last)
    return _Underlying(u.spot0, spot, jnp.minimum(u.low, spot), u.sum_sq + r * r)


class _DayCarry(NamedTuple):
    """What the loop over the days carries from one day to the next."""

    book: Book
    slots: Slots
    market_state: Any  # the market generator's state (`MarketState`), or () for given arrays
    today: Today  # the market of the day about to run
    equity: Array  # (n_days, paths) USD, E_t filled in as the days run
    underlying: _Underlying  # the stock's spots up to the day before `today`


# The book's fields a ruined path keeps as they are. The rings need no freezing: a ruined path
# holds no option and opens none (entries, hedges and covered calls need a live path).
_FROZEN_AFTER_RUIN = (
    "cash",
    "cc_n",
    "cc_strike",
    "cc_premium",
    "cc_expiry",
    "shares",
    "basis",
    "spot_lags",
    "iv_prev",
    "thesis_latch",
    "ruined",
    "ruin_step",
    "first_breach",
)


def _step(name: str, rule, *args):
    """`rule(*args)` under the named scope `name`: every kernel of a compiled day carries its
    step in its op_name ("while/body/exits/..."; `bench/profile_day.py`). Metadata only."""
    with jax.named_scope(name):
        return rule(*args)


def _day(book: Book, slots: Slots, today: Today, t, p: EngineParams, shape: EngineShape):
    """Steps 1-8 of docs/ENGINE_SPEC.md for every path of the block on step `t`. Returns the new
    book and slots and E_t (paths,). The days after a ruin leave a path's book as it is."""
    start = book
    spot, iv = today.spot, today.iv
    pct = today.iv_percentile
    book, accrued = _step("accrue", _accrue, book, today, t, p)  # step 1
    book, settled = _step("expiries", _settle_expiries, book, slots, spot, t, p)  # step 2
    # Materialized once: XLA fused the CDFs' polynomials into each rule over the ring that
    # reads a mid or a Greek and recomputed them there (+5 %; for the put decisions, worse).
    quotes = functools.partial(_quotes, book, slots, spot, iv, t, p, shape)
    q = _step("quotes", _materialized, t, quotes)
    book, puts = _step("exits", _early_exercise_and_exits, book, slots, q, today, t, pct, p, shape)
    hedges, held = _step("hedges", _hedge_sums, book, q, today, p, shape)
    book, put_sums, hedges, liquidated = _step(
        "ruin", _margin_and_ruin, book, puts, hedges, held, q, today, t, p
    )  # step 5
    held = jnp.where(book.ruined, 0.0, held)
    book, cc_quote, covered = _step("covered_calls", _covered_calls, book, q, today, t, p, shape)
    sums = _OptionSums(short=put_sums + _weighted(cc_quote, book.cc_n), long=hedges)
    is_entry = t % p.strategy.entry_every_days == 0  # step 7
    enter, no_entry = (functools.partial(f, shape=shape) for f in (_enter, _no_entry))
    entry_args = (book, sums, held, today, pct, t, p)
    entry = _step("entry", jax.lax.cond, is_entry, enter, no_entry, *entry_args)
    book, slots = _step("entry", _apply_entry, book, slots, entry, is_entry, t, p, shape)
    sums = _OptionSums(sums.short + entry.added.short, sums.long + entry.added.long)
    held = held + entry.amounts.hedge_contracts
    steps = (accrued, settled, liquidated, covered)
    book, equity = _step(
        "end_of_day", _end_of_day, start, book, sums, held, entry, steps, today, t, p, shape
    )  # step 8
    return book, slots, equity


def _end_of_day(
    start: Book, book: Book, sums: _OptionSums, held, entry: _Entry, steps, today, t, p, shape
):
    """Step 8: equity and the breach counters of the book as it stands; the day's tally
    increments (`steps`: those of steps 1, 2, 5 and 6) added. `start` is the morning's book: a
    path ruined on an earlier day keeps it. Returns the book and E_t (paths,)."""
    spot, iv = today.spot, today.iv
    notional = _put_notional(book)
    # Materialized once (`_materialized`): each of the ~20 breach counters and first-breach
    # steps read the measures, and XLA fused the notional sums and the covered call's quote
    # into each of them and recomputed them there (-8 % at 8,192 paths, -5 % at 2,048).
    m, strike = _materialized(
        t,
        lambda: (
            _measures(book, sums, held, notional, today, t, p),
            _largest_strike_notional(book, notional, p, shape),
        ),
    )
    breach = _breaches(m, strike, p)
    breach = {k: v & ~book.ruined for k, v in breach.items()}  # none on the ruin step
    hit = jnp.stack([breach[name] for name in LIMITS])
    daily = _merge(
        *steps,
        entry.amounts,
        Tallies(**{f"breach_{name}": breach[name] for name in LIMITS}),
    )
    equity = jnp.where(book.ruined, book.cash, m.equity)
    # A path ruined on an earlier day does nothing: its book stays as the liquidation left it.
    # The trades of a reused slot are tallied on every path (the ruin closed them).
    frozen = start.ruined
    book = book._replace(
        first_breach=jnp.where((book.first_breach < 0) & hit, t, book.first_breach),
        spot_lags=jnp.concatenate([spot[None], book.spot_lags[:-1]]),
        iv_prev=iv,
        assigned_by_rung=book.assigned_by_rung + entry.retired_by_rung,
    )
    daily = jax.tree_util.tree_map(lambda v: jnp.where(frozen, jnp.zeros_like(v), v), daily)
    book = _add_tallies(book, _merge(daily, entry.retired))
    book = book._replace(
        **{
            name: jnp.where(frozen, getattr(start, name), getattr(book, name))
            for name in _FROZEN_AFTER_RUIN
        }
    )
    return book, jnp.where(frozen, start.cash, equity)


def _close_the_books(book: Book, slots: Slots, n_steps, p, shape: EngineShape) -> Book:
    """At the horizon the trades not yet tallied enter the tallies, and open positions enter the
    attribution at mid (docs/ENGINE_SPEC.md). `spot_lags[0]` and `iv_prev` hold the last day's
    spot and IV (a ruined path has no position left to mark)."""
    spot = book.spot_lags[0]
    q = _quotes(book, slots, spot, book.iv_prev, n_steps, p, shape)
    trades, assigned = _tally_trades(
        book.put_n,
        book.put_strike,
        book.put_premium,
        book.put_closed,
        book.put_close_price,
        p,
        total=_sums,
    )
    open_n = jnp.where(_is_open(book.put_closed, book.put_n), book.put_n, 0.0)
    add = Tallies(
        mark_to_market=100.0 * _sums([(book.put_premium - _mid(q.put, spot)) * open_n])[0],
        call_hedge_pnl=100.0 * _sums([_mid(q.hedge, spot) * book.hedge_n])[0],
        covered_call_pnl=-100.0 * q.cc.price * book.cc_n,
    )
    book = _add_tallies(book, _merge(trades, add))
    return book._replace(
        assigned_by_rung=book.assigned_by_rung + _over(assigned.astype(jnp.int32), 0)
    )


def _scan_days(book, slots, horizon, n_days, next_day, carry0, today0, p, shape):
    """Run steps 0 … horizon (a traced int below `n_days`) from day 0's market `today0`;
    `next_day(carry, t) -> (carry, today)` gives the market of step t >= 1. Returns the final
    book and slots, E_t, (n_days, paths) (rows past the horizon are 0), and what the stock did
    (`_Underlying`, its spots of steps 0 … horizon).

    A `fori_loop` with a traced trip count, not a `scan` over all `n_days`: the padding days of
    a shorter horizon cost nothing, and no branch per day copies the book. The next day's market
    travels in the loop carry: a carried value is a materialized buffer, which every rule reads
    as a plain vector (indexing into the inputs, or generating the market, fused into the rules
    kept XLA's CPU loops from vectorizing and recomputed the market in each of them)."""

    def with_percentile(today: Today) -> Today:
        # The IV percentile travels with the market for the same reason: fused into the rules
        # over the ring, its `erfc` was recomputed for every position (a quarter of the day).
        return today._replace(iv_percentile=_iv_percentile(today.iv, p))

    def one_day(t, c: _DayCarry) -> _DayCarry:
        book, slots, equity_t = _day(c.book, c.slots, c.today, t, p, shape)
        with jax.named_scope("market"):
            market_state, tomorrow = next_day(c.market_state, t + 1)
            tomorrow = with_percentile(tomorrow)
        return _DayCarry(
            book,
            slots,
            market_state,
            tomorrow,
            c.equity.at[t].set(equity_t),
            _watch(c.underlying, c.today.spot),
        )

    equity0 = jnp.zeros((n_days, *book.cash.shape), book.cash.dtype)
    spot0 = today0.spot
    watch0 = _Underlying(spot0, spot0, spot0, jnp.zeros_like(spot0))
    first = _DayCarry(book, slots, carry0, with_percentile(today0), equity0, watch0)
    last = jax.lax.fori_loop(0, horizon + 1, one_day, first)
    return last.book, last.slots, last.equity, last.underlying


def _summary(
    book: Book, slots: Slots, equity, underlying: _Underlying, horizon, p, shape: EngineShape
) -> dict:
    """The per-path summary (paths first, as docs/ENGINE_SPEC.md names it)."""
    book = _close_the_books(book, slots, horizon, p, shape)
    dtype = book.cash.dtype
    n_paths = book.cash.shape[-1]
    outside = (p.capital.portfolio_value - p.derived.sleeve_initial) * jnp.exp(
        p.market.rate * horizon.astype(dtype) / _DAYS_PER_YEAR
    )
    final_equity = equity[horizon]
    summary = {name: book.float_tally[i] for i, name in enumerate(FLOAT_TALLIES)}
    summary.update({name: book.int_tally[i] for i, name in enumerate(INT_TALLIES)})
    summary.update(
        initial_equity=jnp.broadcast_to(p.derived.sleeve_initial, (n_paths,)),
        final_equity=final_equity,
        final_portfolio_value=outside + final_equity,
        ruined=book.ruined.astype(jnp.int32),
        ruin_step=book.ruin_step,
        assigned_by_rung=book.assigned_by_rung.T,
        equity=equity.T,
        **{f"first_breach_{name}": book.first_breach[i] for i, name in enumerate(LIMITS)},
    )
    u = underlying  # `simkit.schema.outcomes.UNDERLYING`
    summary.update(
        spot_final=u.last,
        spot_min=u.low,
        realized_vol=jnp.sqrt(_DAYS_PER_YEAR * u.sum_sq / horizon.astype(dtype)),
        underlying_return=u.last / u.spot0 - 1.0,
    )
    return summary


def _initial_book(spot0, iv0, p, shape, dtype) -> tuple[Book, Slots]:
    book = empty_book(
        p.derived.sleeve_initial,
        spot0,
        iv0,
        shape.put_slots,
        shape.rungs,
        shape.hedge_slots,
        shape.hedge_legs,
        dtype,
    )
    return book, empty_slots(shape.put_slots, shape.hedge_slots)


@functools.partial(jax.jit, static_argnames=("shape",))
def _run(market: dict, horizon: Array, p: EngineParams, shape: EngineShape) -> dict:
    """Scan the days of a block of paths. `market` arrays are (days, paths); steps after
    `horizon` (a traced int) are padding and change nothing."""
    dtype = market["spot"].dtype
    n_days = market["spot"].shape[0]
    book, slots = _initial_book(market["spot"][0], market["iv"][0], p, shape, dtype)

    def next_day(carry, t):
        return carry, Today(**{k: v[t] for k, v in market.items()})  # t past the end: last row

    today0 = Today(**{k: v[0] for k, v in market.items()})
    book, slots, equity, underlying = _scan_days(
        book, slots, horizon, n_days, next_day, (), today0, p, shape
    )
    return _summary(book, slots, equity, underlying, horizon, p, shape)


@functools.partial(jax.jit, static_argnames=("shape", "n_paths", "n_days", "dtype"))
def _run_generated(
    mkt, base_key, path_start, horizon, p: EngineParams, shape, n_paths, n_days, dtype
) -> dict:
    """As `_run`, with each day's market generated inside the scan from the path keys
    (`simkit.paths.market.market_step`, the random numbers of `simulate_market`)."""
    keys = path_keys(base_key, path_start, n_paths)
    state0, day0 = market_init(mkt, keys, dtype)
    book, slots = _initial_book(day0.spot, day0.iv, p, shape, dtype)

    def next_day(state, t):
        state, market = market_step(mkt, keys, state, t)
        return state, Today(**{name: getattr(market, name) for name in MARKET_FIELDS})

    today0 = Today(**{name: getattr(day0, name) for name in MARKET_FIELDS})
    book, slots, equity, underlying = _scan_days(
        book, slots, horizon, n_days, next_day, state0, today0, p, shape
    )
    return _summary(book, slots, equity, underlying, horizon, p, shape)
