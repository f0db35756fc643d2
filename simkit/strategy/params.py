"""StrategyConfig -> the engine's traced parameters and its static shapes.

Every number and switch becomes a traced array, so a new grid cell (another sigma, another stop,
fills at mid instead of the bid) reuses the compiled engine. Only what sets an array shape is
static: the number of rungs, of tranche slots and of hedge legs.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np
from jax import Array

from simkit.paths.linked_iv import linked_iv_table
from simkit.schema.tables import STRATEGY_TABLES, TABLES
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


_VECTOR_FIELDS = {
    "strikes",
    "weights",
    "hedge_high_iv_moneyness",
    "hedge_high_iv_weights",
    "hedge_normal_moneyness",
    "hedge_normal_weights",
}
_SKIPPED = {"allocation"}  # None or USD: folded into `sleeve_initial`
_INT_FIELDS = {"entry_every_days", "signal_min_conditions", "assignment_score_close"}
_CODED = {"fill": FILL_MODES, "strike_mode": STRIKE_MODES}  # strings as int32 indices


def _table_record(table: str) -> type:
    """A NamedTuple of `()` arrays with the scalar keys of one strategy table, in the table's
    order (`simkit.schema.tables`): the traced parameters are read as `p.exits.stop_loss`."""
    fields = [
        (name, Array)
        for name in TABLES[table].model_fields
        if name not in _VECTOR_FIELDS and name not in _SKIPPED
    ]
    return NamedTuple(table.capitalize(), fields)


# One record per strategy table: capital, strategy, execution, exits, assignment, hedges, limits.
TABLE_RECORDS: dict[str, type] = {table: _table_record(table) for table in STRATEGY_TABLES}


class Derived(NamedTuple):
    """Parameters derived from the strategy record (`StrategyConfig` properties)."""

    sleeve_initial: Array  # () USD, the sleeve before any trade
    put_expiry_steps: Array  # () int32 steps from sale to expiry of a put
    hedge_expiry_steps: Array  # () int32 steps of a hedge call
    cc_expiry_steps: Array  # () int32 steps of a covered call


class MarketConstants(NamedTuple):
    """The market parameters the rules read."""

    rate: Array  # () annual, continuous: option pricing and cash interest
    iv_long_run: Array  # () annual fraction: the IV percentile's stationary law
    kappa: Array  # () 1/year
    eta: Array  # () 1/sqrt(year)


class EngineParams(NamedTuple):
    """Traced strategy parameters (floats as the engine dtype, switches as bools, counts and
    coded strings as int32), grouped as the scenario's tables group them."""

    capital: Any  # TABLE_RECORDS["capital"]
    strategy: Any  # TABLE_RECORDS["strategy"]: the ladder, schedule and entry signal
    execution: Any  # TABLE_RECORDS["execution"]: fills, costs, capacity
    exits: Any  # TABLE_RECORDS["exits"]
    assignment: Any  # TABLE_RECORDS["assignment"]: early exercise, covered calls
    hedges: Any  # TABLE_RECORDS["hedges"]
    limits: Any  # TABLE_RECORDS["limits"]
    derived: Derived
    market: MarketConstants
    strikes: Array  # (rungs,) USD
    weights: Array  # (rungs,)
    hedge_moneyness: Array  # (2, hedge_legs) row 0 high-IV regime, row 1 normal; padded with 1.0
    hedge_weights: Array  # (2, hedge_legs) padded with 0.0
    # Linked IV: the IV percentile is read in this table; None (no leaf: another compiled
    # engine): the stationary law of the log-OU IV process, from `iv_long_run`, `kappa`, `eta`.
    iv_table: IVTable | None = None


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
    dtype = np.dtype(dtype)

    def traced(name: str, value: Any) -> Array:
        if name in _CODED:
            return np.asarray(_CODED[name].index(value), np.int32)
        if isinstance(value, bool):
            return np.asarray(value)
        if name in _INT_FIELDS:
            return np.asarray(value, np.int32)
        return np.asarray(value, dtype)

    tables = {
        table: record(*(traced(name, getattr(cfg, name)) for name in record._fields))
        for table, record in TABLE_RECORDS.items()
    }
    derived = Derived(
        sleeve_initial=np.asarray(cfg.sleeve_initial, dtype),
        put_expiry_steps=np.asarray(cfg.put_expiry_steps, np.int32),
        hedge_expiry_steps=np.asarray(cfg.hedge_expiry_steps, np.int32),
        cc_expiry_steps=np.asarray(cfg.cc_expiry_steps, np.int32),
    )
    market = MarketConstants(
        *(np.asarray(getattr(mkt, name), dtype) for name in MarketConstants._fields)
    )

    def padded(values, fill):
        out = list(values) + [fill] * (shape.hedge_legs - len(values))
        return out

    iv_table = None
    if getattr(mkt, "linked_iv", False):
        table = linked_iv_table(mkt)
        iv_table = IVTable(
            start=np.asarray(table.start, dtype),
            step=np.asarray(table.step, dtype),
            percentiles=np.asarray(table.percentiles, dtype),
        )

    # Built in NumPy and sent to the device in one transfer: `jnp.asarray` on each of ~90
    # values dispatched (and on a process's first call compiled) a conversion per dtype and
    # shape, ~0.15 s of a warm first run. The values are the same: NumPy rounds to the dtype
    # as JAX does.
    params = EngineParams(
        **tables,
        derived=derived,
        market=market,
        iv_table=iv_table,
        strikes=np.asarray(cfg.strikes, dtype),
        weights=np.asarray(cfg.weights, dtype),
        hedge_moneyness=np.asarray(
            [padded(cfg.hedge_high_iv_moneyness, 1.0), padded(cfg.hedge_normal_moneyness, 1.0)],
            dtype,
        ),
        hedge_weights=np.asarray(
            [padded(cfg.hedge_high_iv_weights, 0.0), padded(cfg.hedge_normal_weights, 0.0)],
            dtype,
        ),
    )
    return jax.device_put(params)
