"""simkit: Monte Carlo simulation and stress testing of a put-selling strategy document."""

__version__ = "0.4.0"

__all__ = ["__version__", "load_scenario", "simulate"]


def __getattr__(name: str):
    # Lazy, so that `import simkit` stays light (no JAX, dask or xarray until needed).
    if name == "simulate":
        from simkit.run import simulate

        return simulate
    if name == "load_scenario":
        from simkit.scenario import load_scenario

        return load_scenario
    raise AttributeError(f"module 'simkit' has no attribute {name!r}")
