"""Result files: the `xarray.Dataset` of a run, its atomic NetCDF4/HDF5 write, resume state.

The only module that writes results. A result file is written with the `h5netcdf` engine to a
temporary file beside the target, flushed to disk and renamed over it (`os.replace`), so a
reader never sees half a file. While a run goes on, every finished (cell, path block) is saved
in `<out>.partial/` as one small `.npz` (also written atomically) beside a manifest that
identifies the run; rerunning the same run reuses them, and the directory is removed once
the final file is complete.

Layout of a result dataset:
  - one dimension per grid axis, named after its dotted key (`market.sigma`), coordinates
    = its values; keys zipped with an axis are non-dimension coordinates on it;
  - aggregate variables over the grid dimensions (`simkit.schema.results.RUN_VARIABLES`:
    every variable's units and long name are declared there), some with
    one more dimension: `quantile`, `close_reason`, `limit`, `bucket`, `strike` (the ladder;
    `rung` when grid cells have different ladders, with the strikes in `ladder_strike`),
    `total_return_bin` / `max_drawdown_bin` (the histograms `<name>_hist` of the horizon
    return and the drawdown, bin centres as the coordinate; the same edges in every cell,
    `<name>_bin_edge` on a dimension of their own);
  - `equity_sample` (grid..., `sample`, `day`): daily sleeve equity of the first
    min(200, paths) paths of each cell, for fan charts;
  - `equity_quantile` (grid..., `quantile`, `step`): quantiles over all the paths of each
    cell of the daily sleeve equity E_t, t = 0 ... n_steps (`simkit.streaming.DailyColumns`);
  - with `equity`: `equity` (grid..., `path`, `step`), every path's daily sleeve equity in the
    engine's dtype, written chunk by chunk (HDF5 chunks of 1 cell x 1024 paths x 256 steps at
    most, gzip level 4 after the byte shuffle) without holding it in memory: 0.74 GB a
    million path-years in float32 (1.01 GB raw), 1.6 GB in float64 (the baseline);
  - with `per_path`: every per-path summary over (grid..., `path`) (`assigned_by_rung` also
    over `strike`), `final_equity`, `max_drawdown`, `n_trades`, `n_wins`, `annual_return`,
    `path_sharpe`, ...; `initial_equity` is the same for every path of a cell and is stored
    once, over the grid dimensions.
Every variable and coordinate has `units` and `long_name`. Dataset attributes: the scenario
text and path, seed, paths, steps, chunk size, engine, dtype, versions (simkit, JAX, NumPy,
xarray), device, executor, wall time and creation time (UTC, ISO 8601).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simkit import aggregate
from simkit.paths.history_csv import load_history
from simkit.schema.market import HISTORY_MODELS
from simkit.schema.results import (
    COORDINATES,
    RUN_CURVES,
    RUN_VARIABLES,
    grid_axis_attrs,
    histogram_coordinates,
    per_path_variable,
)
from simkit.version import __version__

__all__ = [
    "ResumeState",
    "StreamedVariable",
    "build_dataset",
    "partial_dir",
    "run_attrs",
    "write_dataset",
]

log = logging.getLogger("simkit")

MANIFEST = "manifest.json"
# Per-path quantities stored once per cell (constant over paths) or under another name.
_PER_PATH_SKIP = {"initial_equity"}

# --------------------------------------------------------------------------- atomic files


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_path(target: Path):
    """A temporary path beside `target`; renamed over it (after fsync) if the block succeeds,
    removed if it raises."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@dataclasses.dataclass(frozen=True)
class StreamedVariable:
    """A variable too large to hold in memory, written into a result file piece by piece.

    `pieces()` yields `(index, values)`: the `values` of `variable[index]`, `index` a tuple
    of slices and integers. Its dimensions must be in the dataset written with it. HDF5
    chunks of `chunks`, gzip (`level`) after the byte shuffle."""

    name: str
    dims: tuple[str, ...]
    dtype: Any
    attrs: dict[str, str]
    chunks: tuple[int, ...]
    pieces: Callable[[], Iterable[tuple[tuple, np.ndarray]]]
    level: int = 4


def write_dataset(
    ds: Any, out: str | os.PathLike, streamed: Sequence[StreamedVariable] = ()
) -> Path:
    """Write `ds` to `out` (NetCDF4/HDF5 via h5netcdf) atomically, and the `streamed`
    variables into the same file before it is renamed into place; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(out) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
        if streamed:
            import h5netcdf

            with h5netcdf.File(tmp, "a") as f:
                for v in streamed:
                    var = f.create_variable(
                        v.name,
                        v.dims,
                        np.dtype(v.dtype),
                        chunks=v.chunks,
                        compression="gzip",
                        compression_opts=v.level,
                        shuffle=True,
                    )
                    var.attrs.update(v.attrs)
                    for index, values in v.pieces():
                        var[index] = values
    return out


# --------------------------------------------------------------------------- resume state


def partial_dir(out: str | os.PathLike) -> Path:
    """The resume directory of result file `out`: `<out>.partial/`."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def history_files(cells: list) -> dict[str, str]:
    """The history CSV of each cell that reads one (replay, bootstrap) -> its SHA-256: a run's
    numbers depend on the file's contents, not only its name."""
    paths = sorted(
        {c.market.history for c in cells if c.market.model in HISTORY_MODELS and c.market.history}
    )
    return {path: load_history(path).sha256 for path in paths}


def settings_fingerprint(settings: Any) -> dict[str, Any]:
    """What of a run's settings (`simkit.run.RunSettings`) makes its saved work another run's:
    part of every resume fingerprint (runs, sensitivity samples)."""
    return {
        "paths": settings.paths,
        "seed": settings.seed,
        "n_steps": settings.n_steps,
        "chunk_size": settings.chunk_size,
        "engine": settings.engine,
        "dtype": settings.dtype,
        "simkit_version": __version__,
    }


def run_fingerprint(scenario: Any, cells: list, settings: Any) -> dict[str, Any]:
    """What makes two runs the same run: the scenario after overrides, every cell's
    parameters, the run settings that change numbers or blocks, the simkit version."""

    cell_text = "\n".join(
        f"{tuple(c.index)!r} {c.coords!r} {c.market!r} {c.strategy!r}" for c in cells
    )
    resolved = scenario.to_toml() if hasattr(scenario, "to_toml") else str(scenario.text)
    shock = getattr(settings, "shock", None)
    extra = {} if shock is None else {"shock": repr(shock)}  # a stressed run is another run
    every_cell = cells or (scenario.cells() if hasattr(scenario, "cells") else [])
    histories = history_files(every_cell)
    if histories:  # an edited history file makes another run
        extra["history_sha256"] = histories
    return {
        **extra,
        "scenario_sha256": hashlib.sha256(resolved.encode()).hexdigest(),
        "cells_sha256": hashlib.sha256(cell_text.encode()).hexdigest(),
        **settings_fingerprint(settings),
        # what a saved block holds (derive_block's fields): 2 adds the 21-day returns, the
        # pooled Sharpe's products and the sleeve's time-weighted return; 3 the underlying's
        # figures, and the daily equity in a file per cell (`daily_file`) beside the blocks
        "block_format": 3,
        "equity": bool(getattr(settings, "equity", False)),
    }


class Checkpoints:
    """Finished pieces of an interrupted computation, kept in `<out>.partial/` as named `.npz`
    files beside a manifest of what was computed (`fingerprint`). A folder left by a different
    computation (another manifest) is discarded with a warning. Runs keep their blocks here
    (`ResumeState`), and `simkit stress` and `simkit sensitivity` their finished runs."""

    def __init__(self, directory: Path, fingerprint: dict[str, Any]):
        self.directory = directory
        self.fingerprint = fingerprint
        self.loaded = 0  # pieces read back from an earlier run
        self.saved = 0  # pieces saved by this run

    @classmethod
    def open(cls, out: str | os.PathLike, fingerprint: dict[str, Any], what: str = "pieces"):
        """Open (or start) the checkpoints of a computation writing `out`."""
        directory = partial_dir(out)
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        fingerprint = {"hash": digest, **fingerprint}
        if directory.exists():
            try:
                found = json.loads((directory / MANIFEST).read_text())
            except (OSError, ValueError):
                found = {}
            if found.get("hash") != digest:
                changed = sorted(
                    k for k in fingerprint if k != "hash" and found.get(k) != fingerprint[k]
                )
                log.warning(
                    "simkit: %s holds the state of a different run (%s differ); starting afresh",
                    directory,
                    ", ".join(changed) or "manifest unreadable",
                )
                shutil.rmtree(directory)
        if not directory.exists():
            directory.mkdir(parents=True)
            with _atomic_path(directory / MANIFEST) as tmp:
                tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
        else:
            n = len(list(directory.glob("*.npz")))
            if n:
                log.info("simkit: resuming from %s (%d finished %s)", directory, n, what)
        return cls(directory, fingerprint)

    def _file(self, name: str) -> Path:
        return self.directory / f"{name}.npz"

    def has(self, name: str) -> bool:
        """Whether `name` has a saved file (not read: `load` reads and checks it)."""
        return self._file(name).exists()

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The saved arrays of `name`, or None if it has not finished (or cannot be read)."""
        path = self._file(name)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("simkit: ignoring unreadable resume file %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            return None
        self.loaded += 1
        return arrays

    def save(self, name: str, arrays: dict[str, Any]) -> None:
        """Save one finished piece (atomically: a file is whole or absent)."""
        with _atomic_path(self._file(name)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        self.saved += 1

    def finish(self) -> None:
        """Remove the checkpoints (call once the result file is complete)."""
        shutil.rmtree(self.directory, ignore_errors=True)


class ResumeState(Checkpoints):
    """Finished blocks of an interrupted run, kept in `<out>.partial/`."""

    @classmethod
    def open(cls, out: str | os.PathLike, scenario: Any, cells: list, settings: Any):
        """Open (or start) the resume state of a run writing `out`. State left by another
        run (a different manifest) is discarded with a warning."""
        return super().open(out, run_fingerprint(scenario, cells, settings), "blocks")

    def __init__(self, directory: Path, fingerprint: dict[str, Any]):
        super().__init__(directory, fingerprint)
        # the run keeps every path's daily equity to the end (`--equity`), not just the bands
        self.keeps_equity = bool(fingerprint.get("equity", False))

    # A cell's daily equity goes to `daily_file` (before its block's file is saved, so a saved
    # block's equity is in it); once the cell is complete its equity bands go to `bands_file`
    # and the daily file is removed, unless the run keeps every path's equity.

    def daily_file(self, cell_number: int) -> Path:
        """Where the daily equity of every path of a cell is kept while the run goes on."""
        return self.directory / f"cell{cell_number:06d}_equity.raw"

    def bands_file(self, cell_number: int) -> Path:
        return self.directory / f"cell{cell_number:06d}_bands.npy"

    def _equity_kept(self, cell_number: int) -> bool:
        """Whether the saved blocks of a cell still have their daily equity (or, once the cell
        was complete, its bands): else they are computed again."""
        if self.daily_file(cell_number).exists():
            return True
        return not self.keeps_equity and self.bands_file(cell_number).exists()

    def save_bands(self, cell_number: int, bands: np.ndarray) -> None:
        with _atomic_path(self.bands_file(cell_number)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(bands, dtype=np.float64))

    def load_bands(self, cell_number: int) -> np.ndarray | None:
        """The saved equity bands of a complete cell, or None."""
        try:
            return np.load(self.bands_file(cell_number), allow_pickle=False)
        except (OSError, ValueError):
            return None

    @staticmethod
    def _name(block: Any) -> str:
        return f"cell{block.cell_number:06d}_path{block.path_start:010d}_n{block.n_paths}"

    def has(self, block: Any) -> bool:
        """Whether `block` has a saved file and its daily equity (not read: `load` reads it)."""
        return super().has(self._name(block)) and self._equity_kept(block.cell_number)

    def load(self, block: Any) -> dict[str, np.ndarray] | None:
        """The saved arrays of `block`, or None if it has not finished (or lost its equity)."""
        if not self._equity_kept(block.cell_number):
            return None
        return super().load(self._name(block))

    def save(self, block: Any, arrays: dict[str, np.ndarray]) -> None:
        super().save(self._name(block), arrays)


# --------------------------------------------------------------------------- the dataset


def _attr(value: Any) -> Any:
    """A value NetCDF attributes can hold: bools as 0/1, None as "", mappings as JSON."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, Path):
        return str(value)
    return value


def _jax_version() -> str:
    """JAX's version, from the module where a run imported it (a metadata lookup costs ~40 ms),
    else read from the installed package's metadata: storing never imports JAX."""
    jax = sys.modules.get("jax")
    return getattr(jax, "__version__", None) or importlib.metadata.version("jax")


def run_attrs(
    scenario: Any,
    settings: Any,
    *,
    wall_time_s: float,
    executor: str,
    device: str,
    per_path: bool,
) -> dict[str, Any]:
    """Dataset attributes of a run (NetCDF-safe types)."""
    sim = scenario.simulation
    attrs = {
        "title": f"simkit run of {Path(str(scenario.path)).name if scenario.path else 'a scenario'}",
        "description": getattr(sim, "description", "") or "",
        "scenario_path": str(scenario.path or ""),
        "scenario_text": str(scenario.text),
        "scenario_overrides": dict(getattr(scenario, "overrides", {}) or {}),
        "scenario_resolved": scenario.to_toml() if hasattr(scenario, "to_toml") else "",
        "seed": settings.seed,
        "paths": settings.paths,
        "n_steps": settings.n_steps,
        "years": float(getattr(sim, "years", settings.n_steps / aggregate.TRADING_DAYS)),
        "chunk_size": settings.chunk_size,
        "engine": settings.engine,
        "dtype": settings.dtype,
        "per_path": per_path,
        "confidence_level": aggregate.CONF,
        "simkit_version": __version__,
        "jax_version": _jax_version(),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "device": device,
        "executor": executor,
        "wall_time_s": float(wall_time_s),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "Conventions": "CF-1.8",
    }
    if getattr(settings, "shock", None) is not None:
        attrs["shock"] = repr(settings.shock)
    histories = history_files(scenario.cells()) if hasattr(scenario, "cells") else {}
    if histories:
        attrs["history_sha256"] = histories  # file -> SHA-256 of the history read
    return {k: _attr(v) for k, v in attrs.items()}


def _axes(scenario: Any) -> list[Any]:
    grid = getattr(scenario, "grid", None)
    if grid is None:
        return []
    return list(getattr(grid, "axes", grid))


def _zipped(axis: Any, position: int, cells: list) -> dict[str, list]:
    """Keys zipped with a grid axis -> their values along it."""
    zipped = getattr(axis, "zipped", None) or {}
    if isinstance(zipped, dict):
        return {str(k): list(v) for k, v in zipped.items() if str(k) != axis.name}
    out = {}
    for entry in zipped:
        if hasattr(entry, "values"):  # another GridAxis
            if entry.name != axis.name:
                out[entry.name] = list(entry.values)
        else:  # a key: read its values off the cells
            key = str(entry)
            if key == axis.name:
                continue
            values: dict[int, Any] = {}
            for cell in cells:
                values.setdefault(cell.index[position], cell.coords[key])
            out[key] = [values[i] for i in range(len(axis.values))]
    return out


def _coord_values(values: list) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object:  # mixed kinds: store their text
        array = np.asarray([str(v) for v in values])
    return array


def _ladders(cells: list) -> tuple[str, list[tuple[float, ...]]]:
    ladders = [tuple(float(k) for k in c.strategy.strikes) for c in cells]
    return ("strike" if len(set(ladders)) == 1 else "rung"), ladders


def open_variable(path: str | os.PathLike, name: str) -> Any:
    """One variable of a result file, read lazily (the file stays open while it is used)."""
    return xr.open_dataset(path, engine="h5netcdf")[name].variable


def equity_chunks(n_grid: int, n_paths: int, n_days: int) -> tuple[int, ...]:
    """HDF5 chunks of the `equity` variable: one cell, up to 1024 paths x 256 days (1 MiB of
    float32): one path's curve of a year in one chunk."""
    return (1,) * n_grid + (min(n_paths, 1024), min(n_days, 256))


def _grid_coords(scenario: Any, cells: list) -> dict[str, Any]:
    """One coordinate per grid axis (its values), and each key zipped with it."""
    coords: dict[str, Any] = {}
    for position, axis in enumerate(_axes(scenario)):
        coords[axis.name] = xr.Variable(
            axis.name, _coord_values(list(axis.values)), grid_axis_attrs(axis.name)
        )
        for key, values in _zipped(axis, position, cells).items():
            coords[key] = xr.Variable(axis.name, _coord_values(values), grid_axis_attrs(key))
    return coords


def _result_coords(
    scenario: Any, cells: list, settings: Any, first_result: dict[str, Any]
) -> dict[str, Any]:
    """The coordinates of a run's extra dimensions: outcome names, histogram bins (the run's
    one set of edges, `simkit.aggregate.RunHistograms`, read off `first_result`), the ladder,
    `day` (with the history's `date` in a replay) and `sample`."""
    values = {
        "quantile": np.asarray(aggregate.QUANTILES),
        "close_reason": np.asarray(aggregate.CLOSE_REASONS),
        "limit": np.asarray(aggregate.LIMITS),
        "bucket": np.asarray(aggregate.BUCKETS),
    }
    coords = {name: xr.Variable(name, v, COORDINATES[name].attrs) for name, v in values.items()}
    for name in aggregate.HISTOGRAMS:
        edges = np.asarray(first_result[f"{name}_bin_edge"], dtype=np.float64)
        centre, edge = histogram_coordinates(name)
        coords[centre.name] = xr.Variable(centre.name, (edges[:-1] + edges[1:]) / 2, centre.attrs)
        coords[edge.name] = xr.Variable(edge.name, edges, edge.attrs)
    rung_dim, ladders = _ladders(cells)
    if rung_dim == "strike":
        coords["strike"] = xr.Variable(
            "strike", np.asarray(ladders[0]), COORDINATES["strike"].attrs
        )
    else:
        n_rungs = max(len(ladder) for ladder in ladders)
        coords["rung"] = xr.Variable("rung", np.arange(n_rungs), COORDINATES["rung"].attrs)
    n_days = settings.n_steps + 1
    coords["day"] = xr.Variable("day", np.arange(n_days), COORDINATES["day"].attrs)
    if getattr(scenario, "replay", False):  # the history's dates on its days
        dates = load_history(cells[0].market.history).dates[:n_days]
        coords["date"] = xr.Variable(
            "day", dates.astype("datetime64[ns]"), COORDINATES["date"].attrs
        )
    coords["sample"] = xr.Variable(
        "sample", np.arange(settings.n_sample), COORDINATES["sample"].attrs
    )
    return coords


@dataclasses.dataclass(frozen=True)
class _Grid:
    """Where each cell's values go in a result: the grid's dimensions and shape, each cell's
    position, and the ladder's dimension (`strike`, or `rung` for ladders that differ)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    positions: dict[int, tuple[int, ...]]  # cell number -> its index in the grid
    rung_dim: str

    def array(
        self,
        per_cell: dict[int, Any],
        trailing: tuple[int, ...],
        fill: Any = np.nan,
        dtype: Any = np.float64,
    ) -> np.ndarray:
        """Each cell's values at its grid position: `shape + trailing`, a cell's values placed
        from index 0 along each trailing dimension (a shorter ladder), `fill` elsewhere."""
        array = np.full(self.shape + trailing, fill, dtype=dtype)
        for number, values in per_cell.items():
            values = np.asarray(values)
            array[self.positions[number] + tuple(slice(0, s) for s in values.shape)] = values
        return array

    def variable(self, extra: tuple[str, ...], array: np.ndarray, attrs: dict) -> Any:
        """A variable over the grid's dimensions and then `extra`."""
        return xr.Variable(self.dims + extra, array, attrs)


def _aggregate_variables(
    grid: _Grid,
    coords: dict[str, Any],
    results: dict[int, dict[str, Any]],
    cells: list,
    numbers: list[int],
) -> dict[str, Any]:
    """`RUN_VARIABLES` over the grid (NaN, or 0 for `paths`, where a cell has none), and
    `ladder_strike` when the cells' ladders differ."""
    data_vars: dict[str, Any] = {}
    for name, variable in RUN_VARIABLES.items():
        extra = tuple(grid.rung_dim if d == "strike" else d for d in variable.dims)
        sizes = tuple(coords[d].size for d in extra)
        dtype = np.int64 if name == "paths" else np.float64
        fill = np.nan if dtype == np.float64 else 0
        per_cell = {number: result[name] for number, result in results.items()}
        array = grid.array(per_cell, sizes, fill, dtype)
        data_vars[name] = grid.variable(extra, array, variable.attrs)
    if grid.rung_dim == "rung":
        strikes = {
            n: [float(k) for k in c.strategy.strikes] for n, c in zip(numbers, cells, strict=True)
        }
        ladder = grid.array(strikes, (coords["rung"].size,))
        data_vars["ladder_strike"] = grid.variable(
            ("rung",), ladder, RUN_CURVES["ladder_strike"].attrs
        )
    return data_vars


def _per_path_variables(
    grid: _Grid,
    per_path: dict[int, dict[str, np.ndarray]],
    first_number: int,
    n_paths: int,
    n_rungs: int,
) -> dict[str, Any]:
    """Every per-path summary over (grid..., `path`) (a ladder's over `strike` or `rung` too),
    in its own dtype, NaN (0 for whole numbers) where a cell has none."""
    data_vars: dict[str, Any] = {}
    for name, first in per_path[first_number].items():
        if name in _PER_PATH_SKIP or name.startswith("_"):
            continue
        extra = (grid.rung_dim,) if first.ndim == 2 else ()
        width = (n_rungs,) if first.ndim == 2 else ()
        fill = np.nan if np.issubdtype(first.dtype, np.floating) else 0
        per_cell = {number: arrays[name] for number, arrays in per_path.items()}
        array = grid.array(per_cell, (n_paths,) + width, fill, first.dtype)
        meta = per_path_variable(name).attrs
        data_vars[name] = grid.variable(("path",) + extra, array, meta)
    return data_vars


def build_dataset(
    scenario: Any,
    cells: list,
    numbers: list[int],
    settings: Any,
    results: dict[int, dict[str, Any]],
    samples: dict[int, np.ndarray],
    per_path: dict[int, dict[str, np.ndarray]] | None,
    attrs: dict[str, Any],
    *,
    bands: dict[int, np.ndarray] | None = None,
    equity: dict[int, np.ndarray] | bool = False,
) -> Any:
    """The result dataset from each cell's aggregates (and per-path arrays).

    Args:
      scenario: the scenario run (grid axes, shape).
      cells: its cells; `numbers[i]` is the cell number of `cells[i]`.
      settings: the run settings (`simkit.run.RunSettings`).
      results: cell number -> `simkit.aggregate.aggregate_cell` output.
      samples: cell number -> `(sample, day)` equity curves.
      per_path: cell number -> per-path arrays, or None for an aggregate-only file.
      attrs: dataset attributes (`run_attrs`).
      bands: cell number -> `(quantile, step)` quantiles over paths of the daily equity
        (`equity_quantile`), or None (not stored).
      equity: cell number -> `(path, step)` daily equity of every path (the variable
        `equity`), or True when it is written into the file apart (`store.equity_chunks`, a
        `StreamedVariable`): the `path` and `step` coordinates are then added.
    """
    coords = _grid_coords(scenario, cells)
    coords.update(_result_coords(scenario, cells, settings, results[numbers[0]]))
    grid = _Grid(
        dims=tuple(axis.name for axis in _axes(scenario)),
        shape=tuple(scenario.shape),
        positions={n: tuple(c.index) for n, c in zip(numbers, cells, strict=True)},
        rung_dim=_ladders(cells)[0],
    )
    data_vars = _aggregate_variables(grid, coords, results, cells, numbers)
    n_days, n_sample = settings.n_steps + 1, settings.n_sample
    sample_dtype = samples[numbers[0]].dtype
    sample = grid.array(samples, (n_sample, n_days), dtype=sample_dtype)
    data_vars["equity_sample"] = grid.variable(
        ("sample", "day"), sample, RUN_CURVES["equity_sample"].attrs
    )
    if bands is not None or equity is not False:
        coords["step"] = xr.Variable("step", np.arange(n_days), COORDINATES["step"].attrs)
    if bands is not None:
        levels = len(aggregate.QUANTILES)
        array = grid.array(bands, (levels, n_days))
        data_vars["equity_quantile"] = grid.variable(
            ("quantile", "step"), array, RUN_CURVES["equity_quantile"].attrs
        )
    if per_path is not None or equity is not False:
        coords["path"] = xr.Variable("path", np.arange(settings.paths), COORDINATES["path"].attrs)
    if isinstance(equity, dict):
        first = equity[numbers[0]]
        array = grid.array(equity, first.shape, dtype=first.dtype)
        data_vars["equity"] = grid.variable(("path", "step"), array, RUN_CURVES["equity"].attrs)
    if per_path is not None:
        n_rungs = coords[grid.rung_dim].size
        data_vars.update(_per_path_variables(grid, per_path, numbers[0], settings.paths, n_rungs))
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def settings_dict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)
