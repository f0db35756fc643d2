"""The book's measures (Greeks, VaR, leverage, notional, concentration) and the limits of
docs/STRATEGY.md "Risk limits" they breach: read on entry days (a HIGH limit blocks the entry) and
at the end of every day (the breach counters)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtri

from simkit.strategy.params import EngineShape
from simkit.strategy.rules.quotes import _DAYS_PER_YEAR, _OptionSums
from simkit.strategy.rules.sums import _fold, _over, _rows
from simkit.strategy.rules.trades import _is_open
from simkit.strategy.state import Book


class _Measures(NamedTuple):
    """The book's risk measures at the day's prices (docs/STRATEGY.md "Risk limits"), (paths,)."""

    equity: Array  # USD, sleeve equity at mids
    portfolio: Array  # USD, outside cash + sleeve
    delta_seed: Array  # contracts, the seed's sum of delta x quantity
    theta_usd: Array  # USD per calendar day, signed book
    vega_usd: Array  # USD per vol point
    rho_usd: Array  # USD per 1 % of rate
    var: Array  # USD, one-day delta-gamma normal VaR
    gamma_pct: Array  # USD, |gamma| S^2 (100 x dollar gamma of a 1 % move)
    notional: Array  # USD, short puts' strike notional
    notional_expiry: Array  # USD, the largest notional of one expiry (tranche)
    collateral: Array  # USD
    any_option: Array  # bool


def _put_notional(book: Book):
    """Strike notional of every open short put, (put_slots, rungs, paths)."""
    open_n = jnp.where(_is_open(book.put_closed, book.put_n), book.put_n, 0.0)
    return book.put_strike * 100.0 * open_n


def _measures(book: Book, sums: _OptionSums, hedge_held, notional, today, t, p) -> _Measures:
    """The book's measures at the day's spot and IV; `notional` from `_put_notional`."""
    spot, iv = today.spot, today.iv
    short, long = sums
    equity = book.cash - 100.0 * short.price + 100.0 * long.price + book.shares * spot
    outside = (p.capital.portfolio_value - p.derived.sleeve_initial) * jnp.exp(
        p.market.rate * t.astype(spot.dtype) / _DAYS_PER_YEAR
    )
    # seed: "Position Limits & Controls" — calculate_portfolio_greeks: delta x quantity, short
    # or long alike.
    delta_seed = short.delta + long.delta + book.shares / 100.0
    delta_sh = 100.0 * (long.delta - short.delta) + book.shares
    gamma_sh = 100.0 * (long.gamma - short.gamma)
    # seed: "Position Limits & Controls" — daily_var_limit (choice: delta-gamma normal VaR).
    sd = iv / jnp.sqrt(_DAYS_PER_YEAR)
    quad = gamma_sh * spot * spot * sd * sd
    z = ndtri(p.limits.var_level)
    var = z * jnp.sqrt((delta_sh * spot * sd) ** 2 + 0.5 * quad * quad) - 0.5 * quad
    by_expiry = _over(notional, 1)  # (put_slots, paths)
    total = _over(by_expiry, 0)
    return _Measures(
        equity=equity,
        portfolio=outside + equity,
        delta_seed=delta_seed,
        theta_usd=100.0 * (long.theta - short.theta),
        vega_usd=100.0 * (long.vega - short.vega),
        rho_usd=100.0 * (long.rho - short.rho),
        var=var,
        gamma_pct=jnp.abs(gamma_sh) * spot * spot,
        notional=total,
        notional_expiry=_over(by_expiry, 0, jnp.maximum),
        collateral=total / p.capital.max_leverage,
        any_option=(total > 0) | (hedge_held > 0) | (book.cc_n > 0),
    )


def _pairwise_notional(put_strike, notional, strikes):
    """Open notional at each strike value of `strikes` (k, paths), positions with equal K
    grouped, by comparing every pair. `put_strike`, `notional`: (put_slots, rungs, paths)."""
    return _fold(
        jnp.add,
        [
            jnp.where(strikes == k, n, 0.0)
            for k, n in zip(_rows(put_strike), _rows(notional), strict=True)
        ],
    )


def _ladder_notional(notional, p):
    """Open notional at each ladder strike `p.strikes[r]`, (rungs, paths), when every position
    sits at a ladder strike (strike_mode "fixed"): rung sums, then rungs of equal strike."""
    by_rung = _over(notional, 0)  # (rungs, paths)
    same = p.strikes[:, None] == p.strikes[None, :]  # (rungs, rungs), one for all paths
    return _fold(
        jnp.add,
        [jnp.where(same[:, r, None], by_rung[r], 0.0) for r in range(by_rung.shape[0])],
    )


def _open_at_strikes(book: Book, notional, strikes, p, shape: EngineShape):
    """Open notional at each of the strikes of a new tranche, (rungs, paths)."""
    if shape.moneyness:
        return _pairwise_notional(book.put_strike, notional, strikes)
    return _ladder_notional(notional, p)


def _largest_strike_notional(book: Book, notional, p, shape: EngineShape):
    """max over positions of the open notional at the position's strike value. A fixed ladder
    needs only rung sums; a moving (moneyness) ladder compares every pair of positions."""
    if shape.moneyness:
        flat_k = book.put_strike.reshape(-1, book.put_strike.shape[-1])
        return _over(_pairwise_notional(book.put_strike, notional, flat_k), 0, jnp.maximum)
    return _over(_ladder_notional(notional, p), 0, jnp.maximum)


def _high_breach(m: _Measures, p) -> Array:
    """A HIGH limit does not hold (they block entries): allocation, leverage, VaR, expiry."""
    b = _breaches(m, None, p)
    return b["allocation"] | b["leverage"] | b["var"] | b["expiry"]


def _breaches(m: _Measures, notional_strike, p) -> dict:
    """Each limit of docs/STRATEGY.md "Risk limits": True when it does not hold."""
    pv, eq, has_puts = m.portfolio, m.equity, m.notional > 0
    greek = m.any_option
    out = {
        # seed: "Position Limits & Controls" — max_total_strategy_pct 20 % of the portfolio.
        "allocation": m.notional / pv > p.capital.max_total_strategy_pct,
        # seed: "Position Limits & Controls" — max_leverage 1.5x through margin.
        "leverage": has_puts & (m.notional > p.capital.max_leverage * eq),
        # seed: "Position Limits & Controls" — daily_var_limit 2 % of the portfolio value.
        "var": m.var > p.limits.daily_var_limit * pv,
        # seed: "Position Limits & Controls" — max_concentration_single_expiration 15 %.
        "expiry": has_puts
        & (m.notional_expiry > p.strategy.max_concentration_single_expiration * eq),
        # seed: "Position Limits & Controls" — greek_limits: delta_range (-70, -30), gamma_alert,
        # theta_minimum, vega_limit, rho_monitoring (choice: units in % of the portfolio value).
        "delta": greek
        & ((m.delta_seed < p.limits.delta_min) | (m.delta_seed > p.limits.delta_max)),
        "gamma": greek & (m.gamma_pct / pv > p.limits.gamma_alert),
        "theta": greek & (100.0 * m.theta_usd / pv < p.limits.theta_minimum),
        "vega": greek & (100.0 * jnp.abs(m.vega_usd) / pv > p.limits.vega_limit),
        "rho": greek & (100.0 * jnp.abs(m.rho_usd) / pv > p.limits.rho_limit),
    }
    if notional_strike is not None:
        # seed: "Position Limits & Controls" — max_single_strike_pct 30 % (MEDIUM).
        out["strike"] = has_puts & (
            notional_strike > p.strategy.max_single_strike_pct * m.notional * (1.0 + 1e-9)
        )
    return out
