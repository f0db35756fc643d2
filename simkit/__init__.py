"""simkit: Monte Carlo simulation and stress testing of a put-selling strategy document."""

import importlib

from simkit.version import __version__

__all__ = ["__version__", "load_scenario", "simulate", "simulate_paths"]

_HOMES = {
    "simulate": "simkit.run",
    "simulate_paths": "simkit.run",
    "load_scenario": "simkit.scenario",
}


def __getattr__(name: str):
    # Lazy, so that `import simkit` stays light (no JAX, dask or xarray until needed).
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'simkit' has no attribute {name!r}")
