"""The trades of the short puts: collateral, the tallies of closed trades, and the packed
per-path tallies every step adds to.

A closed short put keeps its record (how and at what price it closed, `simkit.strategy.state`)
and its trade is tallied when its slot is reused or at the horizon (`_tally_trades`), so the
day adds no trade tallies over the ring; a day's other increments are added with one vector add
each (`_add_tallies`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from simkit.schema.outcomes import ASSIGNED, BOUGHT_BACK, CLOSE_CODES
from simkit.strategy.rules.sums import _sum, _sums
from simkit.strategy.state import FLOAT_TALLIES, INT_TALLIES, OPEN, Book, Tallies


def _put_collateral(put_strike, put_n, p) -> Array:
    """Collateral of short puts, USD, like `put_n`."""
    # seed: "Position Limits & Controls" — 'max_leverage': 1.5, # 1.5x through margin.
    return put_strike * 100.0 * put_n / p.capital.max_leverage


def _is_open(closed, n):
    return (closed == OPEN) & (n > 0)


def _tally_trades(n, strike, premium, closed, close_price, p, total=_sum) -> tuple[Tallies, Array]:
    """The tallies of the closed short-put trades among the given records (docs/ENGINE_SPEC.md
    "Trades and Kelly inputs", and the buckets and counters each kind of close adds).

    Returns (the tally increments, (paths,) each, assigned mask (like `n`))."""
    # seed: "Performance Attribution System" — premium income, assignment P&L, transaction
    # costs; a win is a trade that made money, its return over the collateral it tied up.
    commission = p.execution.commission * n
    done = (n > 0) & (closed != OPEN)
    bought = done & (closed >= BOUGHT_BACK[0]) & (closed <= BOUGHT_BACK[-1])
    assigned = done & (closed >= ASSIGNED[0])
    # A buy-back's price is its fill, an assignment's and an expiry's the day's spot.
    price = close_price
    pnl = jnp.where(
        bought,
        (premium - price) * 100.0 * n - 2.0 * commission,
        jnp.where(assigned, (premium - (strike - price)) * 100.0 * n, premium * 100.0 * n)
        - commission,
    )
    collateral = _put_collateral(strike, n, p)
    ret = jnp.where(done, pnl / jnp.where(done, collateral, 1.0), 0.0)
    win = done & (pnl > 0)
    loss = done & ~win
    zero = jnp.zeros_like(pnl)
    floats = [
        jnp.where(
            bought,
            (premium - price) * 100.0 * n,
            jnp.where(done, premium * 100.0 * n, zero),
        ),
        jnp.where(assigned, (price - strike) * 100.0 * n, zero),
        jnp.where(bought, -commission, zero),
        jnp.where(assigned, 100.0 * n, zero),
        jnp.where(win, ret, zero),
        jnp.where(win, ret * ret, zero),
        jnp.where(loss, -ret, zero),
        jnp.where(loss, ret * ret, zero),
        done.astype(pnl.dtype),
        win.astype(pnl.dtype),
        *((done & (closed == code)).astype(pnl.dtype) for code in CLOSE_CODES.values()),
        # profit-take closes that lost money once the spread and both commissions are paid
        (done & (closed == CLOSE_CODES["n_close_profit"]) & ~win).astype(pnl.dtype),
    ]
    sums = total(floats) if total is _sums else [total(x) for x in floats]
    names = (
        "premium_income",
        "assignment_pnl",
        "transaction_costs",
        "shares_assigned",
        "sum_win_ret",
        "sum_win_ret_sq",
        "sum_loss_ret",
        "sum_loss_ret_sq",
        "n_trades",
        "n_wins",
        *CLOSE_CODES,
        "n_close_profit_loss",
    )
    amounts = dict(zip(names, sums, strict=True))
    for name in names[8:]:
        amounts[name] = jnp.round(amounts[name]).astype(jnp.int32)
    return Tallies(**amounts), assigned


def _basis_after_assignment(book: Book, shares_new, cost_basis_sum):
    """Shares and the seed's effective basis after buying `shares_new` at `cost_basis_sum`
    (sum of 100 n (K - premium)): the share-weighted mean of the old and new basis."""
    # seed: "Assignment Management Protocol" — effective_cost_basis = strike - premium.
    shares = book.shares + shares_new
    basis = jnp.where(
        shares > 0,
        (book.basis * book.shares + cost_basis_sum) / jnp.where(shares > 0, shares, 1.0),
        0.0,
    )
    return shares, basis


def _stack_tallies(amounts: Tallies, names, dtype, n_paths) -> Array:
    """One `(len(names), paths)` array of the increments in `amounts` (0 where absent)."""
    zero = jnp.zeros((n_paths,), dtype)
    values = (getattr(amounts, name) for name in names)
    return jnp.stack([zero if value is None else value.astype(dtype) for value in values])


def _merge(*parts: Tallies) -> Tallies:
    """The increments of several steps, added field by field in the order given (a field that
    no step fills stays None)."""

    def add(*values):
        present = [value for value in values if value is not None]
        total = present[0] if present else None
        for value in present[1:]:
            total = total + value
        return total

    return Tallies(*(add(*values) for values in zip(*parts, strict=True)))


def _add_tallies(book: Book, amounts: Tallies, mask=None) -> Book:
    """Add per-path increments to the packed tallies (only where `mask`, if given)."""
    n_paths = book.cash.shape[-1]
    f = _stack_tallies(amounts, FLOAT_TALLIES, book.float_tally.dtype, n_paths)
    i = _stack_tallies(amounts, INT_TALLIES, jnp.int32, n_paths)
    if mask is not None:
        f, i = jnp.where(mask, f, 0.0), jnp.where(mask, i, 0)
    return book._replace(float_tally=book.float_tally + f, int_tally=book.int_tally + i)
