"""Historical markets: replay a history file as one path, or block-bootstrap it.

The file and its reader are `simkit.paths.history_csv` (NumPy only: a scenario reads and checks
a history without JAX); this module makes markets of it:

    replay(history, params, seed)          the history as one path, `(1, n_days)` arrays
    block_bootstrap(history, key_or_seed, n_paths, n_steps, block_len)
                                           the stationary bootstrap of its days
    history_market(params, seed, cell, path_start, n_paths, n_steps)
                                           either, for a `MarketParams` of model "replay" or
                                           "bootstrap" (the run layer's entry point)

What a history gives, day by day: the spot (`close`), IV (`iv`, when the file has it) and every
market input it has a column for (`vix`, `short_interest`, ...: `history_csv.INPUT_COLUMNS`).
What it does not give comes from the market parameters as a simulated market has it: IV
without an `iv` column (a constant `iv0` in a replay, the log-OU process in a bootstrap), the
inputs without a column (the scenario's constants; short interest its OU process), thesis
events and the early-assignment draws (the path's random numbers). `jump` is False throughout
(jumps are not identified in data).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simkit.paths.history_csv import (
    INPUT_COLUMNS,
    History,
    HistoryError,
    history_moments,
    load_history,
    read_history,
)
from simkit.paths.iv import iv_log_step
from simkit.paths.keys import (
    MIN_BATCH,
    N_DRAWS_CONSTANT_VOL,
    SLOT,
    as_key,
    cell_key,
    day_uniforms,
    path_keys,
    to_normal,
)
from simkit.paths.market import (
    Market,
    MarketParams,
    MarketState,
    _cast,
    _check_dt,
    _check_index,
    _market_of_day,
    check_dtype,
    exogenous_step,
    market_init,
    simulate_market,
    stack_days,
)

__all__ = [
    "History",
    "HistoryError",
    "read_history",
    "replay",
    "block_bootstrap",
    "history_market",
    "history_moments",
]

Array = jax.Array

_BOOTSTRAP_STREAM = 1  # the bootstrap's own uniforms: fold_in(day_key, 1)
BASELINE = MarketParams()  # frozen: safe as a default argument


def _level_columns(history: History) -> dict[str, np.ndarray]:
    """The history's daily levels that replace a market field: iv and the input columns."""
    levels = {} if history.iv is None else {"iv": history.iv}
    levels.update({name: history.inputs[name] for name in INPUT_COLUMNS if name in history.inputs})
    return levels


def replay(
    history: History,
    params: MarketParams = BASELINE,
    seed: int = 0,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """The history as one market path, `(1, n_days)` arrays.

    Spot is `close`; IV is the `iv` column, or the constant `params.iv0` without one; each input
    column of the history replaces its input. The other inputs, thesis events and
    early-assignment draws are simulated from `params` with the keys of path 0, cell 0 of `seed`
    (constants by default). `jump` is False throughout (jumps are not identified in data).

    Args:
        history: from `read_history`.
        params: inputs of the columns the history lacks. Default value: the baseline.
        seed: seed of the simulated columns. Default value: 0.
        dt: step, years. Default value: 1/252.
        dtype: float32 or float64. Default value: float32.
    """
    return _replay_block(history, params, seed, 0, 0, 1, history.n_days - 1, dt, dtype)


def _replay_block(
    history: History,
    params: MarketParams,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    dt: float,
    dtype,
) -> Market:
    """Rows `path_start ..` of a replay: each the history's first `n_steps + 1` days, with the
    simulated columns of its own path keys."""
    dtype = check_dtype(dtype)
    if n_steps > history.n_days - 1:
        raise ValueError(
            f"n_steps must be at most the history's {history.n_days - 1} returns "
            f"({history.path}); got {n_steps}."
        )
    simulated = simulate_market(
        dataclasses.replace(params, model="gbm", iv_model=None),
        seed,
        cell,
        path_start,
        n_paths,
        n_steps,
        dt,
        dtype,
    )
    days = slice(0, n_steps + 1)
    shape = (n_paths, n_steps + 1)
    levels = {"iv": np.full(history.n_days, float(params.iv0)), **_level_columns(history)}
    given = {name: values[days] for name, values in levels.items()}
    return simulated._replace(
        spot=jnp.broadcast_to(jnp.asarray(history.close[days], dtype), shape),
        jump=jnp.zeros(shape, bool),
        **{name: jnp.broadcast_to(jnp.asarray(v, dtype), shape) for name, v in given.items()},
    )


class _HistoryLevels(NamedTuple):
    """The history's daily levels that replace market fields (iv and the input columns)."""

    values: Array  # (len(names), n_days) the levels, in the market's dtype
    names: tuple[str, ...]  # the market field of each row (static)

    def at(self, name: str, day_of_history) -> Array:
        """Field `name`'s level on history day `day_of_history` (per path)."""
        return self.values[self.names.index(name)][day_of_history]

    def replace_in(self, market: Market, day_of_history) -> Market:
        """The market of a day with the history's levels of history day `day_of_history`."""
        values = {name: self.values[i][day_of_history] for i, name in enumerate(self.names)}
        return market._replace(**values)


def _block_start(keys: Array, day, n_returns: int, dtype) -> Array:
    """`(paths,)` int32: the history return a block begins at, uniform over the returns."""
    _, start_u = day_uniforms(keys, day, 2, dtype, stream=_BOOTSTRAP_STREAM)
    return jnp.minimum((start_u * n_returns).astype(jnp.int32), n_returns - 1)


def _next_return(keys: Array, day, index: Array, restart_prob, n_returns: int, dtype) -> Array:
    """`(paths,)` int32: the history return drawn on `day`. Politis-Romano: a new block (at a
    uniform start) with probability 1/block_len, else the next day of the history, wrapping
    around."""
    restart_u, _ = day_uniforms(keys, day, 2, dtype, stream=_BOOTSTRAP_STREAM)
    new_block = (day == 1) | (restart_u < restart_prob)
    return jnp.where(new_block, _block_start(keys, day, n_returns, dtype), (index + 1) % n_returns)


def _start_at(
    state: MarketState, day0: Market, history: _HistoryLevels, spot0: Array, first: Array
) -> tuple[MarketState, Market]:
    """The state and market of day 0 on history day `first` (the day before the first block's
    first return): the history's first close, and that day's IV and inputs."""
    state = state._replace(log_spot=jnp.full_like(state.log_spot, jnp.log(spot0)))
    if "iv" in history.names:
        state = state._replace(log_iv=jnp.log(history.at("iv", first)))
    if "short_interest" in history.names:
        state = state._replace(short_interest=history.at("short_interest", first))
    day0 = history.replace_in(day0._replace(spot=jnp.exp(state.log_spot)), first)
    return state, day0


def _bootstrap_log_iv(
    p: MarketParams,
    log_iv: Array,
    log_return: Array,
    u: Array,
    history: _HistoryLevels,
    index: Array,
    return_moments: tuple[Array, Array],
    dt: Array,
) -> Array:
    """The day's ln IV: the history's on the day whose return was drawn, or, without an `iv`
    column, the log-OU step of `p` with the standardized drawn return as its spot shock."""
    if "iv" in history.names:
        return jnp.log(history.at("iv", index + 1))
    return_mean, return_std = return_moments
    return iv_log_step(
        log_iv,
        (log_return - return_mean) / return_std,
        to_normal(u[SLOT["z_iv"]]),
        jnp.zeros_like(log_return),
        p.kappa,
        p.iv_long_run,
        p.eta,
        p.iv_spot_corr,
        p.iv_jump_beta,
        dt,
    )


@partial(jax.jit, static_argnames=("n_paths", "n_steps", "dtype", "level_names"))
def _bootstrap(
    params,
    base_key,
    path_start,
    spot0,
    returns,
    levels,
    restart_prob,
    dt,
    *,
    n_paths,
    n_steps,
    dtype,
    level_names,
) -> Market:
    """`levels` (len(level_names), n_days): the history's columns that replace market fields."""
    n_computed = max(n_paths, MIN_BATCH)  # see MIN_BATCH; the extra paths are dropped
    keys = path_keys(base_key, path_start, n_computed)
    state, day0 = market_init(params, keys, dtype)
    p = _cast(params, dtype)
    dt = jnp.asarray(dt, dtype)
    n_returns = returns.shape[0]
    return_mean = jnp.mean(returns)
    return_std = jnp.std(returns)
    return_std = jnp.where(return_std > 0.0, return_std, 1.0)
    history = _HistoryLevels(levels, level_names)

    # The first block starts on day 1 at return `first` (history day first -> first + 1), so
    # the path's day 0 is history day `first`: spot0, and that day's IV and inputs.
    first = _block_start(keys, 1, n_returns, dtype)
    state, day0 = _start_at(state, day0, history, spot0, first)
    varying = ("spot", "iv", "short_interest", "thesis_event", "jump", "early_u")
    varying += tuple(name for name in level_names if name not in varying)

    def one_day(carry, day):
        state, index = carry
        u = day_uniforms(keys, day, N_DRAWS_CONSTANT_VOL, dtype)
        index = _next_return(keys, day, index, restart_prob, n_returns, dtype)
        log_return = returns[index]
        log_iv = _bootstrap_log_iv(
            p, state.log_iv, log_return, u, history, index, (return_mean, return_std), dt
        )
        short_interest, thesis_event, early_u = exogenous_step(p, state.short_interest, u, dt)
        if "short_interest" in level_names:
            short_interest = history.at("short_interest", index + 1)
        state = state._replace(
            log_spot=state.log_spot + log_return, log_iv=log_iv, short_interest=short_interest
        )
        market = _market_of_day(p, state, thesis_event, jnp.zeros_like(thesis_event), early_u)
        market = history.replace_in(market, index + 1)
        return (state, index), {name: getattr(market, name) for name in varying}

    index0 = jnp.zeros((n_computed,), jnp.int32)
    _, days = jax.lax.scan(one_day, (state, index0), jnp.arange(1, n_steps + 1))
    days = Market(**{name: days.get(name) for name in Market._fields})
    return Market(*(field[:n_paths] for field in stack_days(day0, days, n_computed, n_steps)))


def _check_block_len(block_len) -> float:
    if (
        isinstance(block_len, bool)
        or not isinstance(block_len, int | float | np.floating | np.integer)
        or not (math.isfinite(block_len) and block_len >= 1)
    ):
        raise ValueError(f"block_len must be a number >= 1 (days); got {block_len!r}.")
    return float(block_len)


def _check_bootstrap_block(
    n_paths: int, n_steps: int, cell: int, path_start: int, dt: float
) -> tuple[int, int, int, int]:
    """(n_paths, n_steps, cell, path_start) checked as `simulate_market` checks them, and `dt`."""
    n_paths = _check_index("n_paths", n_paths, 1)
    n_steps = _check_index("n_steps", n_steps, 0)
    cell = _check_index("cell", cell, 0, 2**32)
    path_start = _check_index("path_start", path_start, 0)
    if path_start + n_paths > 2**32:
        raise ValueError(
            f"path indices must stay below 2**32; got up to {path_start + n_paths - 1}."
        )
    _check_dt(dt)
    return n_paths, n_steps, cell, path_start


def _base_key(key_or_seed, cell: int) -> Array:
    """The key of the cell's paths: `cell_key(seed, cell)` for an int seed, else the key."""
    if isinstance(key_or_seed, bool):
        raise ValueError(f"key_or_seed must be an int seed >= 0 or a JAX key; got {key_or_seed!r}.")
    if isinstance(key_or_seed, int | np.integer):
        if key_or_seed < 0:
            raise ValueError(
                f"key_or_seed must be an int seed >= 0 or a JAX key; got {key_or_seed}."
            )
        return cell_key(int(key_or_seed), int(cell))
    return as_key(key_or_seed)


def block_bootstrap(
    history: History,
    key_or_seed,
    n_paths: int,
    n_steps: int,
    block_len: float = 20,
    params: MarketParams = BASELINE,
    *,
    cell: int = 0,
    path_start: int = 0,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """Market paths made of resampled blocks of the history's days.

    The stationary bootstrap of Politis and Romano (1994): each path starts a block at a
    uniformly drawn day of the history and on each later day either starts a new block (with
    probability `1 / block_len`, so blocks have a geometric length of mean `block_len`) or takes
    the history's next day, wrapping around. The spot starts at the history's first close and
    moves by the drawn days' log returns. The day's IV and inputs are the history's levels on the
    day whose return was drawn (aligned: a block replays the history's spot moves, IV and inputs
    together; day 0 has those of the day before the first block's first return), so IV and VIX
    keep the history's distribution (at a new block they jump to the level of the new day).
    Without an `iv` column, IV follows the log-OU process of `params` from `iv0`, its spot shock
    being the day's standardized resampled return. Inputs without a column, thesis events and
    early-assignment draws are `simulate_market`'s; `jump` is False.

    Path `path_start + j` draws from `fold_in(cell_key(seed, cell), path_start + j)` for an int
    seed (the keys `simulate_market` uses), or from `fold_in(key, path_start + j)` for a key (then
    `cell` is not used): a path is the same in any block of paths.

    Args:
        history: from `read_history`.
        key_or_seed: int seed (>= 0) or JAX PRNG key.
        n_paths: number of paths, >= 1.
        n_steps: number of steps, >= 0 (any length: blocks wrap around the history).
        block_len: mean block length, trading days, >= 1. Default value: 20.
        params: inputs of everything the history does not give. Default value: the baseline.
        cell, path_start: grid cell and first path index. Default value: 0.
        dt: step, years (for the simulated columns). Default value: 1/252.
        dtype: float32 or float64. Default value: float32.

    Returns:
        `Market` of `(n_paths, n_steps + 1)` arrays.
    """
    dtype = check_dtype(dtype)
    block_len = _check_block_len(block_len)
    n_paths, n_steps, cell, path_start = _check_bootstrap_block(
        n_paths, n_steps, cell, path_start, dt
    )
    base_key = _base_key(key_or_seed, cell)
    levels = _level_columns(history)
    names = tuple(levels)
    stacked = np.stack([levels[n] for n in names]) if names else np.zeros((0, history.n_days))
    return _bootstrap(
        params,
        base_key,
        np.uint32(path_start),
        jnp.asarray(history.close[0], dtype),
        jnp.asarray(history.log_returns, dtype),
        jnp.asarray(stacked, dtype),
        jnp.asarray(1.0 / block_len, dtype),
        dt,
        n_paths=n_paths,
        n_steps=n_steps,
        dtype=dtype,
        level_names=names,
    )


def history_market(
    params: MarketParams,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """The market of a history model, as `simulate_market` gives a simulated one.

    `params.model` "replay": every row is the history of `params.history` (its first
    `n_steps + 1` days), each with the simulated columns of its own path keys (path 0 of cell 0
    is `replay(history, params, seed)`). "bootstrap": `block_bootstrap(history, seed, n_paths,
    n_steps, params.block_len, params, cell=cell, path_start=path_start)`.

    Args:
        params: a `MarketParams` of model "replay" or "bootstrap".
        seed, cell, path_start, n_paths, n_steps, dt, dtype: as `simulate_market`'s.

    Raises:
        HistoryError: the history file cannot be read. ValueError: another model; a replay
            longer than its history.
    """
    if params.model not in ("replay", "bootstrap"):
        raise ValueError(
            f"history_market needs model 'replay' or 'bootstrap'; got {params.model!r}."
        )
    history = load_history(params.history)
    if params.model == "replay":
        return _replay_block(history, params, seed, cell, path_start, n_paths, n_steps, dt, dtype)
    return block_bootstrap(
        history,
        seed,
        n_paths,
        n_steps,
        _concrete_block_len(params.block_len),
        params,
        cell=cell,
        path_start=path_start,
        dt=dt,
        dtype=dtype,
    )


def _concrete_block_len(value) -> float:
    return _check_block_len(float(np.asarray(value)))
