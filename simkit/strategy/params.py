"""StrategyConfig -> the engine's traced parameters and its static shapes.

Every number and switch becomes a traced array, so a new grid cell (another sigma, another stop,
fills at mid instead of the bid) reuses the compiled engine. Only what sets an array shape is
static: the number of rungs, of tranche slots and of hedge legs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from simkit.paths.linked_iv import linked_iv_table
from simkit.strategy.config import FILL_MODES, STRIKE_MODES, StrategyConfig


class EngineShape(NamedTuple):
    """Static sizes of one path's book (hashable: the jit cache key)."""

    rungs: int  # strikes of the put ladder
    put_slots: int  # tranches open at once
    hedge_slots: int  # hedge-call groups open at once
    hedge_legs: int  # calls per hedge group (the larger of the two regimes)
    smile: bool  # skew != 0: each strike is priced at its own volatility
    moneyness: bool  # strike_mode "moneyness": the ladder moves with the spot


class IVTable(NamedTuple):
    """Linked IV's percentile table (`simkit.paths.linked_iv`): `percentiles[i]` at ln IV
    `start + i * step`, linear in between."""

    start: Array  # () ln IV of the first knot
    step: Array  # () spacing of the knots in ln IV
    percentiles: Array  # (knots,) 0..100, nondecreasing


class EngineParams(NamedTuple):
    """Traced strategy parameters (floats as the engine dtype, switches as bools)."""

    scalars: dict  # name -> () array, every scalar field of StrategyConfig plus market constants
    strikes: Array  # (rungs,) USD
    weights: Array  # (rungs,)
    hedge_moneyness: Array  # (2, hedge_legs) row 0 high-IV regime, row 1 normal; padded with 1.0
    hedge_weights: Array  # (2, hedge_legs) padded with 0.0
    # Linked IV: the IV percentile is read in this table; None (no leaf: another compiled
    # engine): the stationary law of the log-OU IV process, from `iv_long_run`, `kappa`, `eta`.
    iv_table: IVTable | None = None


_VECTOR_FIELDS = {
    "strikes",
    "weights",
    "hedge_high_iv_moneyness",
    "hedge_high_iv_weights",
    "hedge_normal_moneyness",
    "hedge_normal_weights",
}


def engine_shape(cfg: StrategyConfig) -> EngineShape:
    every = cfg.entry_every_days
    return EngineShape(
        rungs=len(cfg.strikes),
        put_slots=max(1, math.ceil(cfg.put_expiry_steps / every)),
        hedge_slots=max(1, math.ceil(cfg.hedge_expiry_steps / every)),
        hedge_legs=max(len(cfg.hedge_high_iv_moneyness), len(cfg.hedge_normal_moneyness)),
        smile=cfg.skew != 0.0,
        moneyness=cfg.strike_mode == "moneyness",
    )


def engine_params(cfg: StrategyConfig, mkt, dtype) -> EngineParams:
    """Traced parameters from the strategy record and the market constants the rules read.

    ``mkt`` supplies ``rate`` (the option pricing rate), and ``iv_long_run``, ``kappa`` and
    ``eta`` (the IV percentile is the stationary law of the log-OU process); with linked IV
    (``mkt.linked_iv``, a `MarketParams` of model heston or bates) the IV percentile is read in
    the stationary table of ``linked_iv_table(mkt)`` instead.
    """
    shape = engine_shape(cfg)
    scalars: dict[str, Array] = {}
    for name, value in vars(cfg).items():
        if name in _VECTOR_FIELDS:
            continue
        if name == "fill":
            value = FILL_MODES.index(value)
        elif name == "strike_mode":
            value = STRIKE_MODES.index(value)
        elif name == "allocation":
            continue
        if isinstance(value, bool):
            scalars[name] = jnp.asarray(value)
        elif name in ("fill", "strike_mode"):
            scalars[name] = jnp.asarray(value, jnp.int32)
        else:
            scalars[name] = jnp.asarray(value, dtype)
    scalars["sleeve_initial"] = jnp.asarray(cfg.sleeve_initial, dtype)
    scalars["put_expiry_steps"] = jnp.asarray(cfg.put_expiry_steps, jnp.int32)
    scalars["hedge_expiry_steps"] = jnp.asarray(cfg.hedge_expiry_steps, jnp.int32)
    scalars["cc_expiry_steps"] = jnp.asarray(cfg.cc_expiry_steps, jnp.int32)
    scalars["entry_every_days"] = jnp.asarray(cfg.entry_every_days, jnp.int32)
    scalars["signal_min_conditions"] = jnp.asarray(cfg.signal_min_conditions, jnp.int32)
    scalars["assignment_score_close"] = jnp.asarray(cfg.assignment_score_close, jnp.int32)
    for name in ("rate", "iv_long_run", "kappa", "eta"):
        scalars[name] = jnp.asarray(getattr(mkt, name), dtype)

    def padded(values, fill):
        out = list(values) + [fill] * (shape.hedge_legs - len(values))
        return out

    iv_table = None
    if getattr(mkt, "linked_iv", False):
        table = linked_iv_table(mkt)
        iv_table = IVTable(
            start=jnp.asarray(table.start, dtype),
            step=jnp.asarray(table.step, dtype),
            percentiles=jnp.asarray(table.percentiles, dtype),
        )

    return EngineParams(
        iv_table=iv_table,
        scalars=scalars,
        strikes=jnp.asarray(cfg.strikes, dtype),
        weights=jnp.asarray(cfg.weights, dtype),
        hedge_moneyness=jnp.asarray(
            [padded(cfg.hedge_high_iv_moneyness, 1.0), padded(cfg.hedge_normal_moneyness, 1.0)],
            dtype,
        ),
        hedge_weights=jnp.asarray(
            [padded(cfg.hedge_high_iv_weights, 0.0), padded(cfg.hedge_normal_weights, 0.0)],
            dtype,
        ),
    )
