"""Tiny scenario files for the pipeline tests (imported by conftest.py and test modules)."""

from __future__ import annotations

from pathlib import Path

# The pipeline tests use the scalar reference engine: the same market numbers and per-path
# summary as the JAX engine with no compile (tens of seconds per block shape for the JAX
# engine), so the whole pipeline runs in well under a second per small run. The JAX engine
# has its own end-to-end tests in tests/test_run.py.
TINY = """\
[simulation]
paths = {paths}
seed = {seed}
years = 0.05
chunk_size = {chunk_size}
engine = "{engine}"
{grid}"""

GRID_2X2 = """
[grid]
"market.sigma" = [1.5, 3.0]
"exits.stop_loss_multiple" = [1.0, 2.0]
"""


def write_scenario(
    directory: Path,
    name: str = "tiny.toml",
    *,
    paths: int = 32,
    seed: int = 7,
    chunk_size: int = 16,
    engine: str = "reference",
    grid: str = "",
) -> Path:
    """A small scenario file (13 daily steps) in `directory`."""
    path = Path(directory) / name
    path.write_text(
        TINY.format(paths=paths, seed=seed, chunk_size=chunk_size, engine=engine, grid=grid)
    )
    return path
