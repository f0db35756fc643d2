"""Hedge calls: seed "Dynamic Hedging Specifications" — the squeeze probability, the dynamic
hedge ratio, the call ladder bought with each tranche, and the sums over the calls held."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from simkit.strategy.rules.quotes import (
    Quote,
    Quotes,
    _buy_fill,
    _contracts,
    _mark_sums,
    _quote,
    _Sums,
    _years,
)
from simkit.strategy.rules.sums import _sum
from simkit.strategy.state import Book


def _squeeze_probability(today, pct, momentum):
    """The short-squeeze probability, (paths,): five factors capped at 1 above, not floored."""
    # seed: "Dynamic Hedging Specifications" — calculate_squeeze_probability: weights 0.3,
    # 0.25, 0.2, 0.15, 0.1, capped at 95 %.
    factors = (
        jnp.minimum(today.short_interest / 50.0, 1.0) * 0.3
        + jnp.minimum(today.borrow_cost / 100.0, 1.0) * 0.25
        + jnp.minimum((pct - 50.0) / 50.0, 1.0) * 0.2
        + jnp.minimum(today.volume_ratio / 3.0, 1.0) * 0.15
        + jnp.minimum(momentum / 0.2, 1.0) * 0.1
    )
    return jnp.minimum(factors, 0.95)


def _hedge_ratio(book: Book, delta_seed, today, pct, p):
    """The hedge budget's share of the tranche's net premium, (paths,). `delta_seed`: the book's
    delta in the seed's convention (contracts)."""
    spot, iv = today.spot, today.iv
    # seed: "Dynamic Hedging Specifications" — calculate_optimal_hedge_ratio: base 20 % times
    # 1.5 (IV > 95th percentile), 2.0 (squeeze > 0.4), 1.3 (delta < -50), 1.4 (vol spike),
    # capped at 40 %.
    momentum = spot / book.spot_lags[4] - 1.0
    squeeze = _squeeze_probability(today, pct, momentum)
    mult = (
        jnp.where(pct > p.hedges.hedge_iv_extreme_percentile, p.hedges.hedge_iv_extreme_mult, 1.0)
        * jnp.where(squeeze > p.hedges.hedge_squeeze_threshold, p.hedges.hedge_squeeze_mult, 1.0)
        * jnp.where(delta_seed < p.hedges.hedge_delta_threshold, p.hedges.hedge_delta_mult, 1.0)
        * jnp.where(
            iv / book.iv_prev > 1.0 + p.hedges.vol_spike_threshold,
            p.hedges.hedge_vol_spike_mult,
            1.0,
        )
    )
    return jnp.minimum(p.hedges.hedge_base_ratio * mult, p.hedges.hedge_max_ratio)


class _Hedges(NamedTuple):
    """The hedge calls bought with a tranche, (hedge_legs, paths) or (paths,)."""

    n: Array  # (hedge_legs, paths) contracts
    strike: Array  # (hedge_legs, paths) USD
    quote: Quote  # each (hedge_legs, paths), today's mids and Greeks
    cost: Array  # (paths,) USD, the fills paid
    commission: Array  # (paths,) USD


def _buy_hedges(book: Book, delta_seed, net_premium, today, pct, p, shape) -> _Hedges:
    """The call ladder bought with a tranche out of its net premium `net_premium` (paths,)."""
    spot, iv, spread = today.spot, today.iv, today.bid_ask_spread
    ratio = _hedge_ratio(book, delta_seed, today, pct, p)
    # seed: "Dynamic Hedging Specifications" — hedge_budget = optimal_ratio x available premium.
    hedge_budget = jnp.where(p.hedges.hedges & (net_premium > 0), ratio * net_premium, 0.0)
    # seed: "Dynamic Hedging Specifications" — select_hedge_instruments: far calls (1.5x, 2x,
    # 3x the spot) above the 90th IV percentile, else 1.2x and 1.5x.
    high_iv = pct > p.hedges.hedge_regime_percentile  # row 0 of the sets, else row 1
    moneyness = jnp.where(high_iv, p.hedge_moneyness[0][:, None], p.hedge_moneyness[1][:, None])
    weights = jnp.where(high_iv, p.hedge_weights[0][:, None], p.hedge_weights[1][:, None])
    hedge_strikes = moneyness * spot
    hedge_tau = _years(p.derived.hedge_expiry_steps, spot.dtype)
    hedge_new = _quote(spot, hedge_strikes, hedge_tau, iv, p, True, shape.smile)
    fill = _buy_fill(hedge_new.price, spread, p)
    # seed: "Dynamic Hedging Specifications" — quantity = int(position_budget / (price x 100)).
    hedge_n = _contracts(hedge_budget * weights / (fill * 100.0 + p.execution.commission), p)
    hedge_n = jnp.where(weights > 0, hedge_n, 0.0)
    hedge_commission = _sum(p.execution.commission * hedge_n)
    hedge_cost = _sum(fill * 100.0 * hedge_n)
    return _Hedges(
        n=hedge_n,
        strike=hedge_strikes,
        quote=hedge_new,
        cost=hedge_cost,
        commission=hedge_commission,
    )


def _hedge_sums(book: Book, q: Quotes, today, p, shape) -> tuple[_Sums, Array]:
    """Sums over the hedge calls and the contracts held."""
    sums = _mark_sums(q.hedge, book.hedge_n, today.spot, today.iv, p, shape.smile)
    return sums, _sum(book.hedge_n)
