"""Market paths (JAX): GBM, Merton, the implied-volatility process, historical inputs.

Public entry points:
    gbm(key, s0, mu, sigma, n_paths, n_steps, dt=1/252)
    merton(key, s0, mu, sigma, jump_intensity, jump_mean, jump_std, n_paths, n_steps, dt=1/252)
    iv_percentile(iv, iv_long_run, kappa, eta)
    MarketParams, Market, simulate_market(params, seed, cell, path_start, n_paths, n_steps, ...)
    market_init / market_step (one day inside a scan), market_to_numpy
    read_history(path), replay(history), block_bootstrap(history, key_or_seed, n_paths, n_steps)
"""

from simkit.paths.gbm import gbm
from simkit.paths.history import History, HistoryError, block_bootstrap, read_history, replay
from simkit.paths.iv import iv_percentile
from simkit.paths.keys import cell_key, path_keys
from simkit.paths.market import (
    Market,
    MarketParams,
    MarketState,
    market_init,
    market_step,
    market_to_numpy,
    simulate_market,
)
from simkit.paths.merton import merton

__all__ = [
    "gbm",
    "merton",
    "iv_percentile",
    "cell_key",
    "path_keys",
    "MarketParams",
    "Market",
    "MarketState",
    "market_init",
    "market_step",
    "market_to_numpy",
    "simulate_market",
    "History",
    "HistoryError",
    "read_history",
    "replay",
    "block_bootstrap",
]
