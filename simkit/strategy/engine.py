"""The vectorized strategy engine's public entry points: a block of paths in JAX.

The day and the loop over the days are `simkit.strategy.day`, each step of the day a rule of
`simkit.strategy.rules`; this module checks the inputs, pads a block to a size a compiled engine
serves, builds the traced parameters once per cell and returns NumPy arrays.

    simulate_paths(market, cfg, mkt)   given market arrays (NumPy or JAX, (paths, steps + 1))
    simulate_block(cfg, mkt, seed=, cell=, path_start=, n_paths=, n_steps=, float64=)
                                        generates each day's market inside the loop
                                        (`simkit.paths.market.market_step`): memory does not
                                        grow with the horizon
Both return the per-path summary of docs/ENGINE_SPEC.md as NumPy arrays (`SUMMARY_FIELDS`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from simkit import compile_cache
from simkit.paths.keys import cell_key
from simkit.paths.market import MarketParams, check_dtype
from simkit.precision import x64
from simkit.schema.market import HISTORY_MODELS
from simkit.schema.outcomes import UNDERLYING
from simkit.strategy.config import StrategyConfig
from simkit.strategy.day import MARKET_FIELDS, _run, _run_generated
from simkit.strategy.params import EngineParams, engine_params, engine_shape
from simkit.strategy.state import FLOAT_TALLIES, INT_TALLIES, LIMITS


def _padded_size(n: int, quantum: int, step: int = 1024) -> int:
    """Round a block's paths up to a power of two (at least `quantum`) up to `step`, and to a
    multiple of `step` above it, so that blocks of other sizes reuse a compiled engine and a
    large block (a run's chunk of 5,000 paths: 5,120) computes at most 20 % padding paths."""
    if n > step:
        return -(-n // step) * step
    return max(quantum, 1 << max(n - 1, 0).bit_length())


def _prepare(market: Mapping[str, object], dtype) -> dict:
    out = {}
    for name in MARKET_FIELDS:
        if name not in market:
            raise ValueError(f"market: missing input {name!r}; expected {MARKET_FIELDS}")
        value = jnp.asarray(market[name])
        out[name] = value.astype(bool) if name == "thesis_event" else value.astype(dtype)
    return out


def _to_numpy(out: dict, n_paths: int, n_days: int) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v)[:n_paths] for k, v in out.items()}
    out["equity"] = out["equity"][:, :n_days]
    return out


def simulate_paths(market: Mapping[str, object], cfg: StrategyConfig, mkt) -> dict[str, np.ndarray]:
    """Run the strategy on given market paths (arrays shaped (paths, steps + 1)).

    The engine computes in the dtype of ``market["spot"]`` (float64 needs JAX's x64 mode).
    ``mkt`` supplies ``rate``, ``iv_long_run``, ``kappa`` and ``eta``. Returns the per-path
    summary of docs/ENGINE_SPEC.md as NumPy arrays.
    """
    dtype = jnp.asarray(market["spot"]).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    prepared = _prepare(market, dtype)
    n_paths, n_days = prepared["spot"].shape
    # Pad paths to a power of two and days to a multiple of 64 by repeating the edge values:
    # one compiled engine then serves blocks and horizons of many sizes (tests, grids, the
    # last block of a run). Padding paths are dropped, padding days are skipped.
    pad_paths = _padded_size(n_paths, 8) - n_paths
    pad_days = -n_days % 64
    prepared = {
        k: jnp.pad(v, ((0, pad_paths), (0, pad_days)), mode="edge").T for k, v in prepared.items()
    }
    horizon = np.int32(n_days - 1)
    out = compile_cache.call(
        "run",
        _run,
        (prepared, horizon, engine_params(cfg, mkt, dtype)),
        {"shape": engine_shape(cfg)},
    )
    return _to_numpy(out, n_paths, n_days)


def simulate_block(
    cfg: StrategyConfig,
    mkt,
    *,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    float64: bool = False,
) -> dict[str, np.ndarray]:
    """Generate the market of paths ``path_start … path_start + n_paths - 1`` of a grid cell and
    run the strategy on it. A path's numbers depend only on (seed, cell, path index).

    The market is `simkit.paths.market.simulate_market`'s (the same random numbers), generated a
    day at a time inside the engine's scan, so memory is set by the block, not the horizon.
    """

    if not isinstance(mkt, MarketParams):
        raise TypeError(f"mkt must be a MarketParams; got {type(mkt).__name__}.")
    if mkt.model in HISTORY_MODELS:  # generated whole: simkit.paths.history.history_market
        raise ValueError(
            f"simulate_block generates a simulated market; model {mkt.model!r} reads a history: "
            "run simulate_paths on simkit.paths.history.history_market's arrays."
        )
    for name, value, minimum in (
        ("seed", seed, 0),
        ("cell", cell, 0),
        ("path_start", path_start, 0),
        ("n_paths", n_paths, 1),
        ("n_steps", n_steps, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if cell >= 2**32 or seed >= 2**32:
        raise ValueError(f"seed and cell must be below 2**32; got seed={seed}, cell={cell}.")
    if path_start + n_paths > 2**32:
        raise ValueError(
            f"path indices must stay below 2**32; got up to {path_start + n_paths - 1}."
        )
    with x64(float64):
        dtype = check_dtype(jnp.float64 if float64 else jnp.float32)
        n_days = n_steps + 1
        # Scalars as NumPy, not jnp: an eager conversion compiles (~0.1 s) in a new process.
        out = compile_cache.call(
            "run_generated",
            _run_generated,
            (
                mkt,
                cell_key(seed, cell),
                np.uint32(path_start),
                np.int32(n_steps),
                _params(cfg, mkt, dtype),
            ),
            {
                "shape": engine_shape(cfg),
                "n_paths": _padded_size(n_paths, 8),
                "n_days": n_days + (-n_days % 64),
                "dtype": dtype,
            },
        )
        return _to_numpy(out, n_paths, n_days)


@functools.lru_cache(maxsize=16)
def _cached_params(cfg: StrategyConfig, mkt, dtype) -> EngineParams:
    return engine_params(cfg, mkt, dtype)


def _params(cfg: StrategyConfig, mkt, dtype) -> EngineParams:
    """`engine_params`, built once per (strategy, market, dtype): the blocks of a cell share
    them (~90 small host-to-device arrays a block otherwise, ~3 % of a 2,048-path block)."""
    try:
        hash((cfg, mkt))
    except TypeError:  # an unhashable field (an array in the market record): no cache
        return engine_params(cfg, mkt, dtype)
    return _cached_params(cfg, mkt, jnp.dtype(dtype))


SUMMARY_FIELDS = (
    "initial_equity",
    "final_equity",
    "final_portfolio_value",
    *FLOAT_TALLIES,
    *INT_TALLIES,
    "ruined",
    "ruin_step",
    "assigned_by_rung",
    *(f"first_breach_{name}" for name in LIMITS),
    *UNDERLYING,
    "equity",
)

__all__ = ["simulate_paths", "simulate_block", "SUMMARY_FIELDS", "MARKET_FIELDS"]
