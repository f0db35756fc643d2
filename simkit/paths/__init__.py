"""Market paths: GBM, Merton, Heston, Bates, GJR-GARCH, the implied-volatility process,
historical inputs, shocks.

Public entry points:
    gbm(key, s0, mu, sigma, n_paths, n_steps, dt=1/252)
    merton(key, s0, mu, sigma, jump_intensity, jump_mean, jump_std, n_paths, n_steps, dt=1/252)
    heston(key, s0, mu, v0, kappa_v, theta_v, xi, rho, n_paths, n_steps, dt=1/252)
        -> (spot, variance)
    bates(key, s0, mu, v0, kappa_v, theta_v, xi, rho, jump_intensity, jump_mean, jump_std,
          n_paths, n_steps, dt=1/252) -> (spot, variance)
    garch(key, s0, mu, omega, alpha, gamma, beta, v0, n_paths, n_steps, dt=1/252)
        -> (spot, variance)
    iv_percentile(iv, iv_long_run, kappa, eta)
    linked_iv_table(params) (`simkit.paths.linked_iv`: the IV-percentile table of linked IV,
        NumPy and SciPy only; under garch from a seeded long simulation of the variance)
    MarketParams, Market, simulate_market(params, seed, cell, path_start, n_paths, n_steps, ...)
    market_init / market_step (one day inside a scan), market_to_numpy
    read_history(path), replay(history), block_bootstrap(history, key_or_seed, n_paths, n_steps)
    Shock, apply_shock(market, shock, params) (`simkit.paths.shocks`: stress transforms)

The names load their module on first use (PEP 562), so importing one NumPy-only submodule
(`simkit.paths.shocks`) does not load JAX.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_HOMES = {
    "gbm": "gbm",
    "merton": "merton",
    "heston": "heston",
    "bates": "heston",
    "garch": "garch",
    "iv_percentile": "iv",
    "linked_iv_table": "linked_iv",
    "cell_key": "keys",
    "path_keys": "keys",
    "MarketParams": "market",
    "Market": "market",
    "MarketState": "market",
    "market_init": "market",
    "market_step": "market",
    "market_to_numpy": "market",
    "simulate_market": "market",
    "History": "history",
    "HistoryError": "history",
    "read_history": "history",
    "replay": "history",
    "block_bootstrap": "history",
    "Shock": "shocks",
    "apply_shock": "shocks",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'simkit.paths' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simkit.paths.{home}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """`simkit.paths` itself. `gbm`, `merton`, `heston` and `garch` name both a function (the
    public API) and the submodule that holds it; importing the submodule makes Python set the
    package attribute to the module, which would hide the function. The function is kept (as the eager imports this
    package used to have did)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
