"""Shared test set-up: JAX's persistent compilation cache and tiny scenario files.

The cache lives in the repository's `.jax_cache/` (git-ignored; `make test` sets the same
directory), so test processes and the CLI subprocesses they start load compiled engines
instead of compiling them again. It is set before anything imports JAX.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)

from scenario_files import GRID_2X2, write_scenario  # noqa: E402


@pytest.fixture
def make_scenario(tmp_path: Path):
    """`make_scenario(name, paths=, seed=, chunk_size=, engine=, grid=)` -> a scenario file."""

    def make(name: str = "tiny.toml", **kwargs) -> Path:
        return write_scenario(tmp_path, name, **kwargs)

    return make


@pytest.fixture
def tiny_scenario(tmp_path: Path) -> Path:
    """32 paths, no grid, reference engine."""
    return write_scenario(tmp_path)


@pytest.fixture
def grid_scenario(tmp_path: Path) -> Path:
    """A 2 x 2 grid of 32 paths a cell, reference engine."""
    return write_scenario(tmp_path, "grid.toml", grid=GRID_2X2)


@pytest.fixture
def engine_calls(monkeypatch):
    """Count (and optionally fail) calls of `simkit.run._simulate_block`.

    Returns a dict: `calls` (list of (cell number, path_start)), and `fail_at` (set it to
    n to make the n-th call raise RuntimeError).
    """
    import simkit.run

    real = simkit.run._simulate_block
    state: dict = {"calls": [], "fail_at": None}

    def counting(engine, cell, seed, cell_number, path_start, n_paths, n_steps, float64):
        state["calls"].append((cell_number, path_start))
        if state["fail_at"] is not None and len(state["calls"]) >= state["fail_at"]:
            raise RuntimeError("injected failure")
        return real(engine, cell, seed, cell_number, path_start, n_paths, n_steps, float64)

    monkeypatch.setattr(simkit.run, "_simulate_block", counting)
    return state
