"""Step 3 (early exercise of the short puts) and step 6 (covered calls on assigned shares):
seed "Assignment Management Protocol"."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from simkit.schema.strategy import EARLY_EXERCISE_MARGIN
from simkit.strategy.params import EngineShape
from simkit.strategy.rules.quotes import Quote, Quotes, _quote, _sell_fill, _years
from simkit.strategy.rules.trades import _is_open
from simkit.strategy.state import Book, Tallies


class _EarlyExercise(NamedTuple):
    """What step 3 decides for each short put today, (put_slots, rungs, paths) bool each."""

    is_open: Array  # open before step 3
    at_risk: Array  # closed (bought back) for its early-assignment score
    exercise: Array  # exercised early: assigned at the strike


def _early_exercise(book: Book, mid, today, p) -> _EarlyExercise:
    """Step 3 decided at the day's mids `mid` (USD per share, like the puts): the seed's
    early-assignment score (an optional close), then rational exercise."""
    spot = today.spot
    n, k = book.put_n, book.put_strike
    is_open = _is_open(book.put_closed, n)

    # seed: "Assignment Management Protocol" — monitor_early_assignment_risk: deep ITM, low
    # time value, rates.
    time_value = mid - jnp.maximum(k - spot, 0.0)
    score = (
        jnp.where(spot < 0.95 * k, 3, jnp.where(spot < 0.98 * k, 1, 0))
        + jnp.where(time_value < 0.10, 2, jnp.where(time_value < 0.25, 1, 0))
        + jnp.where(p.market.rate > 0.05, 1, 0)
    )
    at_risk = (
        is_open
        & p.assignment.close_on_assignment_risk
        & (score >= p.assignment.assignment_score_close)
    )
    # choice: a rational holder exercises an American put worth less alive than dead (by more
    # than a rounding margin of the strike, EARLY_EXERCISE_MARGIN).
    exercise = (
        is_open
        & ~at_risk
        & p.assignment.early_assignment
        & (mid < (k - spot) - EARLY_EXERCISE_MARGIN * k)
        & (today.early_u < p.assignment.early_assignment_prob)
    )
    return _EarlyExercise(is_open=is_open, at_risk=at_risk, exercise=exercise)


def _covered_calls(book: Book, q: Quotes, today, t, p, shape: EngineShape):
    """Step 6: covered calls sold on the assigned shares."""
    # seed: "Assignment Management Protocol" — the cost-basis decision tree: calls below $2.00
    # (execute_covered_call_strategy) and from $2.50 (immediate_covered_calls), hold between.
    spot, iv = today.spot, today.iv
    basis = book.basis
    sell = (
        p.assignment.covered_calls
        & ~book.ruined
        & (book.cc_n == 0)
        & (book.shares >= 100.0)
        & ((basis < p.assignment.cc_basis_good) | (basis >= p.assignment.cc_basis_hold))
    )
    n = jnp.where(sell, jnp.floor(book.shares / 100.0), 0.0)
    # seed: "Assignment Management Protocol" — strike round(basis * 1.15 * 2) / 2 (half up
    # here, >= $0.50), quantity shares // 100.
    strike = jnp.maximum(jnp.floor(basis * p.assignment.cc_strike_markup * 2.0 + 0.5) / 2.0, 0.5)
    cc_tau = _years(p.derived.cc_expiry_steps, spot.dtype)
    new = _quote(spot, strike, cc_tau, iv, p, True, shape.smile)
    fill = _sell_fill(new.price, today.bid_ask_spread, p)
    commission = p.execution.commission * n
    amounts = Tallies(
        covered_call_pnl=fill * 100.0 * n,
        transaction_costs=-commission,
        n_cc_sold=sell.astype(jnp.int32),
    )
    book = book._replace(
        cash=book.cash + fill * 100.0 * n - commission,
        cc_n=jnp.where(sell, n, book.cc_n),
        cc_strike=jnp.where(sell, strike, book.cc_strike),
        cc_premium=jnp.where(sell, fill, book.cc_premium),
        cc_expiry=jnp.where(sell, t + p.derived.cc_expiry_steps, book.cc_expiry),
    )
    cc_quote = Quote(*(jnp.where(sell, a, b) for a, b in zip(new, q.cc, strict=True)))
    return book, cc_quote, amounts
