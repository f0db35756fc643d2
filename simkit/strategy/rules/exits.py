"""Step 4 of a day: seed "Exit Conditions" on the short puts, and steps 3 and 4 carried out.

`_put_decisions` joins step 3's decisions (`simkit.strategy.rules.assignment`) with the exit
conditions into one close code per put; `_early_exercise_and_exits` books them: each closing put
keeps its record (code, price) for its trade's tally, while the cash, shares and basis move now.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from simkit.schema.outcomes import CLOSE_CODES
from simkit.strategy.rules.assignment import _early_exercise
from simkit.strategy.rules.quotes import (
    _CALENDAR_PER_STEP,
    Quotes,
    _buy_fill,
    _mark_sums,
    _mid,
    _Sums,
)
from simkit.strategy.rules.sums import _materialized, _over, _sum, _sums
from simkit.strategy.rules.trades import _basis_after_assignment, _is_open
from simkit.strategy.state import EXIT_URGENCY, OPEN, Book, Slots


def _close_all_conditions(book: Book, today, pct, p):
    """The exits that close every short put at once: thesis, liquidity, IV (each a switch)."""
    # seed: "Exit Conditions" — fundamental_thesis_changed: merger cancelled or adverse
    # regulation (a thesis event latches), short interest < 20, bitcoin correlation > 0.95.
    thesis = p.exits.thesis_exit & (
        book.thesis_latch
        | (today.short_interest < p.exits.thesis_short_interest_min)
        | (jnp.abs(today.btc_correlation) > p.exits.thesis_btc_corr_max)
    )
    # seed: "Exit Conditions" — liquidity deterioration: bid-ask spread > 0.25.
    liquidity = p.exits.liquidity_exit & (today.bid_ask_spread > p.exits.liquidity_exit_spread)
    # seed: "Exit Conditions" — IV mean reversion: IV percentile below 30.
    iv_low = p.exits.iv_exit & (pct < p.exits.iv_exit_percentile)
    return thesis, liquidity, iv_low


def _exit_reason(book: Book, slots: Slots, mid, today, t, pct, p):
    """Each put's exit reason today by the seed's urgency: (int8 close code, bool: some exit
    condition holds), (put_slots, rungs, paths) each."""
    n, prem = book.put_n, book.put_premium
    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    dte = (slots.put_expiry - t).astype(mid.dtype) * _CALENDAR_PER_STEP
    conditions = {
        "thesis": thesis,
        # seed: "Exit Conditions" — stop-loss at -200 % of the premium (urgency 4).
        "stop": p.exits.stop_loss & (mid > (1.0 + p.exits.stop_loss_multiple) * prem),
        # seed: "Exit Conditions" — time decay: fewer than 7 days to expiration (urgency 3).
        "time": p.exits.time_exit & (dte < p.exits.time_exit_dte)[:, None, None],
        "liquidity": liquidity,
        "iv": iv_low,
        # seed: "Exit Conditions" — profit taking at 50 % of the premium (urgency 1).
        "profit": p.exits.profit_take & (mid < (1.0 - p.exits.profit_take_pct) * prem),
    }
    # seed: "Exit Conditions" — sorted by urgency, highest first: the first holding condition
    # in urgency order is the reason.
    code = jnp.zeros(n.shape, jnp.int8)
    taken = jnp.zeros(n.shape, bool)
    for name in reversed(EXIT_URGENCY):
        code = jnp.where(conditions[name], jnp.int8(CLOSE_CODES[f"n_close_{name}"]), code)
        taken = taken | conditions[name]
    return code, taken


class _PutDay(NamedTuple):
    """The short puts after steps 3 and 4, what step 5 needs to liquidate them, and their sums."""

    remaining: Array  # (put_slots, rungs, paths) bool, still open
    fill: Array  # (put_slots, rungs, paths) USD per share, today's purchase fill
    sums: _Sums  # over the remaining puts
    notional: Array  # (paths,) USD, strike notional of the remaining puts


class _PutDecisions(NamedTuple):
    """What steps 3 and 4 do to each short put today, (put_slots, rungs, paths) each."""

    code: Array  # int8 close code of a put that closes today, OPEN for the others
    exercise: Array  # bool, exercised early (assigned at the strike)
    bought: Array  # bool, bought back (assignment risk or an exit condition)
    remaining: Array  # bool, still open


def _put_decisions(book: Book, slots: Slots, q: Quotes, today, t, pct, p) -> _PutDecisions:
    """Steps 3 and 4 decided at the day's put mids: step 3's closes and exercises
    (`_early_exercise`), then the exit conditions on the puts still open."""
    exercised = jnp.int8(CLOSE_CODES["n_assigned_early"])

    def action():
        mid = _mid(q.put, today.spot)
        early = _early_exercise(book, mid, today, p)
        still_open = early.is_open & ~early.at_risk & ~early.exercise
        code, taken = _exit_reason(book, slots, mid, today, t, pct, p)
        return jnp.where(
            early.exercise,
            exercised,
            jnp.where(
                early.at_risk,
                jnp.int8(CLOSE_CODES["n_close_assignment_risk"]),
                jnp.where(still_open & taken, code, jnp.int8(OPEN)),
            ),
        )

    # One int8 array materialized (`_materialized`): XLA otherwise recomputes the decisions
    # (~120 operations a position) in each of the five rules that read them (+14 %). The
    # decisions are computed inside the branch from the book and the quotes (buffers already),
    # so that the branch writes its result, instead of copying a value computed outside it.
    code = _materialized(t, action)
    return _PutDecisions(
        code=code,
        exercise=code == exercised,
        bought=(code != OPEN) & (code != exercised),
        remaining=_is_open(book.put_closed, book.put_n) & (code == OPEN),
    )


def _early_exercise_and_exits(book: Book, slots: Slots, q: Quotes, today, t, pct, p, shape):
    """Steps 3 and 4 (`_put_decisions`) carried out at the day's put mids: each closing put
    keeps its record (code, price); the cash, shares and basis move now."""
    spot, spread = today.spot, today.bid_ask_spread
    n, k, prem = book.put_n, book.put_strike, book.put_premium
    d = _put_decisions(book, slots, q, today, t, pct, p)
    fill = _buy_fill(_mid(q.put, spot), spread, p)

    exercised_n = jnp.where(d.exercise, n, 0.0)
    remaining_n = jnp.where(d.remaining, n, 0.0)
    cash_out = (
        jnp.where(d.bought, fill * 100.0 * n + p.execution.commission * n, 0.0)
        + k * 100.0 * exercised_n
    )
    sums = _mark_sums(q.put, remaining_n, spot, today.iv, p, shape.smile)
    paid, exercised, exercised_cost = _sums([cash_out, exercised_n, exercised_n * (k - prem)])
    shares, basis = _basis_after_assignment(book, 100.0 * exercised, 100.0 * exercised_cost)
    book = book._replace(
        cash=book.cash - paid,
        shares=shares,
        basis=basis,
        put_closed=jnp.where(d.bought | d.exercise, d.code, book.put_closed),
        put_close_price=jnp.where(
            d.bought, fill, jnp.where(d.exercise, spot, book.put_close_price)
        ),
    )
    notional = _sum(_over(k * 100.0 * remaining_n, 1))
    return book, _PutDay(d.remaining, fill, sums, notional)
