"""Run a scenario: (grid cell x path block) tasks, executed in process or on dask.

This is the only module that knows dask. A task simulates one block of paths of one grid
cell with the chosen engine, derives the per-path risk figures (`simkit.aggregate`) and sends
back O(paths) arrays; the driver saves each finished block to the resume directory
(`simkit.store.ResumeState`) and hands it to its cell's `simkit.aggregate.CellAccumulator`,
which reduces the cell in fixed segments of paths as they complete, in path order, keeping
only the per-path columns its order statistics need (in files past a size), so memory is set
by the chunk size, not the path count. A block's random numbers depend only on (seed, cell
number, path index), so any chunk size, any executor and any resume give the same file.

Executors (`scheduler=`):
  - `None` (default): two threads in this process for the JAX engine, see `choose_executor`.
  - `"synchronous"`: every block in this process, one after the other.
  - `"threads"`: a thread pool in this process (one thread per core).
  - `"processes"`: a `distributed.LocalCluster` of worker processes, one thread each.
  - `"tcp://host:port"` (or any dask scheduler address), or a `distributed.Client`: an
    existing dask cluster. Its workers need simkit installed; the results come back here.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from simkit import aggregate, compile_cache, store, streaming, trade_log
from simkit.paths.history import history_market, history_moments
from simkit.paths.history_csv import load_history
from simkit.paths.market import Market, market_to_numpy, simulate_market
from simkit.paths.shocks import apply_shock
from simkit.precision import x64
from simkit.scenario import ScenarioError
from simkit.schema.market import HISTORY_MODELS
from simkit.schema.results import PATHS_EQUITY, RUN_CURVES, per_path_variable
from simkit.strategy import engine as engine_jax
from simkit.strategy import reference

__all__ = ["RunSettings", "SchedulerUnreachable", "choose_executor", "simulate", "simulate_paths"]

log = logging.getLogger("simkit")

ENGINES = ("jax", "reference")
SCHEDULERS = ("synchronous", "threads", "processes")

# Reference-engine runs below this many path-steps (paths x (days + 1) x cells) stay in process:
# worker processes cost start-up and imports (`choose_executor`). JAX runs always do.
PROCESSES_MIN_PATH_STEPS = 2_000_000
PROGRESS_AFTER_S = 2.0  # show a progress bar only for runs longer than this
MIN_BLOCK_PATHS = 2  # smallest block computed (see `_compute_task`)
CONNECT_TIMEOUT_S = 10  # seconds to reach a dask scheduler given by address


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run simulates beyond the cells themselves (the scenario's `[simulation]`)."""

    paths: int  # paths per grid cell
    seed: int
    n_steps: int  # trading days simulated (252 a year)
    chunk_size: int  # paths per block (task)
    engine: str  # "jax" | "reference"
    float64: bool
    shock: Any = None  # a `simkit.stress.Shock` applied to every path, or None
    # trading days whose end-of-day sleeve equity is kept per path, as `equity_day_<t>`
    equity_days: tuple[int, ...] = ()
    equity: bool = False  # every path's daily equity goes into the result (`--equity`)

    @property
    def dtype(self) -> str:
        return "float64" if self.float64 else "float32"

    @property
    def equity_dtype(self) -> str:
        """The dtype of the engine's daily equity (the reference engine's is float64)."""
        return "float64" if self.engine == "reference" else self.dtype

    @property
    def n_sample(self) -> int:
        return min(aggregate.N_SAMPLE, self.paths)

    def per_path_kwargs(self, scheduler: Any) -> dict[str, Any]:
        """`simulate`'s arguments for a silent run of these settings that keeps every path's
        summary: the runs `simkit explain` and `simkit stress` compare path by path."""
        return dict(
            paths=self.paths,
            seed=self.seed,
            chunk_size=self.chunk_size,
            scheduler=scheduler,
            engine=self.engine,
            float64=self.float64,
            per_path=True,
            progress=False,
        )


class SchedulerUnreachable(Exception):
    """The dask scheduler at the given address did not answer."""


def _bad(key: str, message: str, scenario: Any) -> Exception:
    """The scenario's error for a bad run option: the CLI reports it with exit code 2."""

    return ScenarioError(getattr(scenario, "path", None), [(key, None, message)])


def _positive_int(value: Any, key: str, scenario: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise _bad(key, f"must be a whole number >= 1; got {value!r}", scenario)
    return int(value)


def resolve_settings(
    scenario: Any,
    *,
    paths: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    engine: str | None = None,
    float64: bool | None = None,
    shock: Any = None,
    equity_days: Any = (),
    equity: bool = False,
) -> RunSettings:
    """The scenario's `[simulation]` settings with the given overrides, each validated."""
    sim = scenario.simulation
    paths = _positive_int(sim.paths if paths is None else paths, "simulation.paths", scenario)
    if getattr(scenario, "replay", False):
        paths = 1  # a replay is its history, one path (the scenario's note says so)
    seed = sim.seed if seed is None else seed
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | np.integer)
        or not 0 <= seed <= 2**32 - 1
    ):
        raise _bad(
            "simulation.seed", f"must be a whole number in [0, 2**32 - 1]; got {seed!r}", scenario
        )
    chunk = sim.chunk_size if chunk_size is None else chunk_size
    chunk = _positive_int(chunk, "simulation.chunk_size", scenario)
    engine = sim.engine if engine is None else engine
    if engine not in ENGINES:
        raise _bad("simulation.engine", f"must be one of {ENGINES}; got {engine!r}", scenario)
    float64 = bool(sim.float64 if float64 is None else float64)
    n_steps = _positive_int(sim.n_steps, "simulation.n_steps", scenario)
    days = tuple(sorted({int(d) for d in equity_days}))
    if any(not 0 <= d <= n_steps for d in days):
        raise ValueError(f"equity_days must lie in [0, {n_steps}]; got {tuple(equity_days)!r}")
    return RunSettings(
        paths, int(seed), n_steps, chunk, engine, float64, shock, days, equity=bool(equity)
    )


def cell_number(cell: Any, shape: tuple[int, ...]) -> int:
    """The cell's number in the grid (row-major), the `cell` of its random-number keys."""
    number = getattr(cell, "number", None)
    if number is not None:
        return int(number)
    return int(np.ravel_multi_index(tuple(cell.index), shape)) if shape else 0


# --------------------------------------------------------------------------- one block


def _market_block(
    mkt: Any,
    seed: int,
    cell_number: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    float64: bool,
) -> Market:
    """The whole market of a block: `simulate_market`'s, or a history's (replay, bootstrap)."""
    dtype = jnp.float64 if float64 else jnp.float32
    make = history_market if mkt.model in HISTORY_MODELS else simulate_market
    return make(mkt, seed, cell_number, path_start, n_paths, n_steps, dtype=dtype)


def _simulate_block(
    engine: str,
    cell: Any,
    seed: int,
    cell_number: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    float64: bool,
    shock: Any = None,
) -> dict[str, np.ndarray]:
    """Per-path summary (docs/ENGINE_SPEC.md) of paths `path_start ...` of one cell.

    `engine="jax"` runs the vectorized engine, generating a simulated market inside its loop;
    `"reference"` generates the same market with `simulate_market` and runs the scalar reference
    engine on it. A history market (replay, bootstrap: `simkit.paths.history.history_market`) is
    generated whole and given to either engine's `simulate_paths`. JAX's x64 mode is set to
    `float64` for this call only. With a `shock` (`simkit.paths.shocks.Shock`), the market is
    generated whole, shocked (`simkit.paths.shocks.apply_shock`, path by path; a history's
    realized volatility is scaled around the history's own mean) and given to the engine's
    `simulate_paths`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    with x64(float64):
        whole = shock is not None or engine == "reference" or cell.market.model in HISTORY_MODELS
        if not whole:
            return engine_jax.simulate_block(
                cell.strategy,
                cell.market,
                seed=seed,
                cell=cell_number,
                path_start=path_start,
                n_paths=n_paths,
                n_steps=n_steps,
                float64=float64,
            )
        run_paths = (engine_jax if engine == "jax" else reference).simulate_paths
        market = market_to_numpy(
            _market_block(cell.market, seed, cell_number, path_start, n_paths, n_steps, float64)
        )
        if shock is not None:
            market = apply_shock(market, shock, _shock_moments(cell.market))
        return run_paths(market, cell.strategy, cell.market)


def _shock_moments(mkt: Any) -> Any:
    """The market record a shock reads `mu` and `sigma` from: a history's own moments."""
    return history_moments(mkt) if mkt.model in HISTORY_MODELS else mkt


@dataclasses.dataclass(frozen=True)
class Block:
    """One task: paths `path_start .. path_start + n_paths - 1` of cell `cell_number`."""

    cell_number: int
    path_start: int
    n_paths: int


_DEVICE: str | None = None


def device_description() -> str:
    """`jax.devices()` of this process, in words (cached)."""
    global _DEVICE
    if _DEVICE is None:
        devices = jax.devices()
        kinds = sorted({f"{d.platform}:{getattr(d, 'device_kind', '?')}" for d in devices})
        _DEVICE = f"{len(devices)} x {', '.join(kinds)} (jax {jax.__version__})"
    return _DEVICE


@dataclasses.dataclass(frozen=True)
class _Task:
    """What a worker needs for one block: the cell's parameters and the block."""

    cell: Any
    block: Block

    @property
    def key(self) -> str:
        return f"simkit-block-{self.block.cell_number}-{self.block.path_start}"


def _compute_task(
    simulate_block: Callable[..., dict], settings: RunSettings, task: _Task
) -> dict[str, np.ndarray]:
    """Simulate and derive one block; runs on whichever worker the executor chose."""
    compile_cache.enable()  # a dask worker (even one the user started) keeps compiled engines
    cell, block = task.cell, task.block
    # Path i depends only on (seed, cell, i), so padding adds paths that are then dropped.
    # A block of one path is never computed: XLA computes it differently from the same path
    # in a larger block (1 ulp in the IV path, seen with simulate_market on JAX 0.10.2).
    # The JAX engine computes the short last block of a run as a whole chunk: every block
    # then has one shape and the run compiles the engine once (a compile, ~8 s, costs more
    # than the padding paths of one block).
    n_run = max(block.n_paths, MIN_BLOCK_PATHS)
    if settings.engine == "jax" and settings.paths > settings.chunk_size:
        n_run = settings.chunk_size
    args = (
        settings.engine,
        cell,
        settings.seed,
        block.cell_number,
        block.path_start,
        n_run,
        settings.n_steps,
        settings.float64,
    )
    if settings.shock is None:
        summary = simulate_block(*args)
    else:
        summary = simulate_block(*args, shock=settings.shock)
    if n_run > block.n_paths:
        summary = {k: np.asarray(v)[: block.n_paths] for k, v in summary.items()}
    if settings.equity_days:  # single days of the daily equity, kept as per-path fields
        equity = np.asarray(summary["equity"])
        summary = {
            **summary,
            **{f"equity_day_{d}": equity[:, d].astype(np.float64) for d in settings.equity_days},
        }
    out = aggregate.derive_block(
        summary,
        n_steps=settings.n_steps,
        monthly_addition=float(getattr(cell.strategy, "monthly_addition", 0.0)),
        path_start=block.path_start,
        n_sample=settings.n_sample,
    )
    # Every path's daily equity travels back too (for the cell's equity bands, and `equity`):
    # the driver writes it to the cell's `streaming.DailyColumns` and drops it.
    out["_equity"] = np.ascontiguousarray(summary["equity"], dtype=settings.equity_dtype)
    out["_device"] = np.array(device_description())
    return out


# --------------------------------------------------------------------------- executors


class _InProcess:
    """Blocks one after the other in this process (no dask)."""

    name = "synchronous"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map_unordered(self, fn: Callable, items: list, *args) -> Iterator[tuple[Any, Any]]:
        for item in items:
            yield item, fn(*args, item)


class _Threads(_InProcess):
    """A pool of `n_workers` threads in this process (JAX releases the GIL while it computes;
    default: one per core)."""

    name = "threads"

    def __init__(self, n_workers: int | None = None):
        self.n_workers = n_workers or os.cpu_count() or 1

    def map_unordered(self, fn, items, *args):
        from concurrent.futures import ThreadPoolExecutor, as_completed

        # A few tasks in flight, not all: a finished block's arrays are released once taken,
        # and an interrupted run stops after the blocks already running.
        pending = list(reversed(items))
        with ThreadPoolExecutor(max_workers=self.n_workers) as pool:
            futures: dict = {}
            try:
                while pending or futures:
                    while pending and len(futures) < 2 * self.n_workers:
                        item = pending.pop()
                        futures[pool.submit(fn, *args, item)] = item
                    done = next(as_completed(futures))
                    yield futures.pop(done), done.result()
            finally:
                for future in futures:
                    future.cancel()


def _worker_env() -> dict[str, str]:
    """Environment for spawned workers: the JAX compilation cache, so each worker loads the
    engine's compiled code instead of compiling it again."""

    env = {}
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(
            jax.config.jax_persistent_cache_min_compile_time_secs
        )
    return env


class _Dask:
    """Tasks on a dask.distributed cluster: a new LocalCluster, or an existing scheduler."""

    def __init__(self, address: Any = None, n_workers: int | None = None):
        self.address = address
        self.n_workers = n_workers
        self.client = None
        self.cluster = None
        self._own_client = True
        self.name = "processes" if address is None else str(address)

    def __enter__(self):
        import dask
        from distributed import Client, LocalCluster

        if self.address is None:
            # The nanny's MALLOC_TRIM_THRESHOLD_=65536 halves JAX's speed in the workers
            # (bench/README.md "Before the engine"); None unsets it.
            with dask.config.set(
                {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
            ):
                self.cluster = LocalCluster(
                    n_workers=self.n_workers or default_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    env=_worker_env(),
                )
            self.client = Client(self.cluster)
        elif isinstance(self.address, str):
            try:
                self.client = Client(self.address, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise SchedulerUnreachable(
                    f"no dask scheduler answered at {self.address} within {CONNECT_TIMEOUT_S} s "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        else:  # a Client given by the caller: leave it open
            self.client = self.address
            self._own_client = False
            self.name = self.client.scheduler.address
        return self

    def __exit__(self, *exc):
        if self._own_client and self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def map_unordered(self, fn, items, *args):
        from distributed import as_completed

        token = os.urandom(4).hex()
        futures = {}
        for item in items:
            key = f"{item.key}-{token}"
            futures[self.client.submit(fn, *args, item, key=key, pure=False)] = item
        try:
            for future in as_completed(futures):
                result = future.result()
                item = futures[future]
                future.release()
                yield item, result
        finally:
            self.client.cancel(list(futures))


def default_workers() -> int:
    """Worker processes of the local cluster: one per core (two on the measured machines)."""
    return max(1, os.cpu_count() or 1)


def choose_executor(scheduler: Any, path_steps: int, engine: str = "jax") -> Any:
    """The executor for `scheduler` (see the module docstring); `None` chooses by engine and size.

    Default: for the JAX engine, two threads in this process (`"threads"`) at any size: while
    one block's engine runs, the other block's per-path figures are derived in NumPy
    (`simkit.aggregate.derive_block`, ~7 % of a block's time, which one thread would add to
    the engine's); measured x1.10-1.15 over `"synchronous"` for 12 blocks of 8,192 paths.
    For the reference engine, a LocalCluster of one single-threaded worker process per core
    above `PROCESSES_MIN_PATH_STEPS` path-steps (paths x (days + 1) x cells), in process
    below it. Why not processes for JAX (bench/README.md has the figures):
      - one process already runs the JAX engine on both cores: XLA splits each large loop of
        the day over its thread pool (pinned to one core the engine runs at half speed; two
        pinned processes together give what one free process gives). Worker processes add
        their start (3.4 s), an import of JAX and simkit in each (5-7 s) and a compile of the
        engine in each (~8 s, 1-2 s from JAX's persistent cache) and gain nothing on the two
        cores measured. On a machine with many cores, `"processes"` may pay: measure it.
      - the reference engine is plain Python holding the GIL: processes use the other cores.
    More threads give the JAX engine nothing (XLA already uses the cores), nor the reference
    engine. Scripts that use `"processes"` need the `if __name__ == "__main__":` guard (worker
    processes are spawned).
    """
    if scheduler is None:
        if engine != "reference":
            return _Threads(n_workers=2)
        if (os.cpu_count() or 1) < 2 or path_steps < PROCESSES_MIN_PATH_STEPS:
            return _InProcess()
        return _Dask()
    if isinstance(scheduler, str):
        name = scheduler.strip().lower()
        if name in ("synchronous", "sync", "single-threaded"):
            return _InProcess()
        if name == "threads":
            return _Threads()
        if name in ("processes", "local"):
            return _Dask()
        if "://" in name or ":" in name:
            return _Dask(address=scheduler.strip())
        raise ValueError(
            f"scheduler must be one of {SCHEDULERS} or a dask scheduler address such as "
            f"tcp://127.0.0.1:8786; got {scheduler!r}"
        )
    if hasattr(scheduler, "submit"):
        return _Dask(address=scheduler)
    raise ValueError(
        f"scheduler must be a name, an address or a distributed.Client; got {scheduler!r}"
    )


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress bar (cells, paths, rate, ETA) that appears only once a run has taken
    `PROGRESS_AFTER_S` and only on a terminal."""

    def __init__(self, enabled: bool, n_cells: int, total_paths: int):
        self.enabled = enabled and sys.stderr.isatty()
        self.n_cells = n_cells
        self.total = total_paths
        self.done_paths = 0
        self.computed_paths = 0  # excludes blocks resumed from disk (for the rate)
        self.done_cells = 0
        self.start = time.perf_counter()
        self.bar = None
        self.task = None

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("cells {task.fields[cells]}"),
            TextColumn("paths"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        # Start at what is already done (resumed blocks), so the ETA counts only new work.
        self.task = self.bar.add_task(
            "run", total=self.total, completed=self.done_paths, cells="", rate=""
        )

    def advance(self, paths: int, cells: int = 0, computed: bool = True) -> None:
        self.done_paths += paths
        self.computed_paths += paths if computed else 0
        self.done_cells += cells
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.bar is None and elapsed > PROGRESS_AFTER_S and self.done_paths < self.total:
            self._show()
        if self.bar is not None:
            rate = self.computed_paths / elapsed if elapsed > 0 else 0.0
            self.bar.update(
                self.task,
                completed=self.done_paths,
                cells=f"{self.done_cells}/{self.n_cells}",
                rate=f"{rate:,.0f} paths/s",
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------------- the run


def _blocks(numbers: list[int], settings: RunSettings) -> list[Block]:
    """Every (cell, path block) task, cell by cell, in path order."""
    return [
        Block(number, start, min(settings.chunk_size, settings.paths - start))
        for number in numbers
        for start in range(0, settings.paths, settings.chunk_size)
    ]


class _RunReduction:
    """Every cell's reduction while a run's blocks arrive, computed or read back from disk.

    A block is handed to its cell's `aggregate.CellAccumulator` (created at the cell's first
    block), which reduces the cell in path order; saved blocks of a resumed run that lie behind
    a block still to compute wait on disk (`deferred`) until the reduction reaches them. Each
    cell's daily equity goes to a `streaming.DailyColumns` (in the resume directory with `out`)
    until its quantile bands are taken, and to the end with `settings.equity`. Once a cell is
    complete its figures land in `results`, `samples`, `bands` (and `per_path_arrays`).
    """

    def __init__(
        self,
        settings: RunSettings,
        cells: list,
        numbers: list[int],
        resume: store.ResumeState | None,
        out: str | os.PathLike | None,
        per_path: bool,
        n_logged: int,
        progress: bool,
    ):
        self.settings = settings
        self.cells, self.numbers = cells, numbers  # numbers[i]: the cell number of cells[i]
        self.cell_of = dict(zip(numbers, cells, strict=True))
        self.resume = resume
        self.out = out
        self.per_path = per_path
        self.n_logged = n_logged  # paths per cell whose trades are logged
        # A cell's per-path columns past 256 MiB go to files in the resume directory (removed
        # with it), else in the system's temporary directory (`TMPDIR`).
        self.spill_dir = store.partial_dir(Path(out).resolve()) if out is not None else None
        # One reduction per cell, created at its first block and closed once the cell is done.
        self.accumulators: dict[int, aggregate.CellAccumulator] = {}
        # Every cell's histograms on the same edges, known once every cell is done.
        self.histograms = aggregate.RunHistograms(len(cells), spill_dir=self.spill_dir)
        self.results: dict[int, dict[str, Any]] = {}  # cell number -> `acc.result(...)`
        self.per_path_arrays: dict[int, dict[str, np.ndarray]] = {}  # -> (paths, ...) each
        self.samples: dict[int, np.ndarray] = {}  # -> (sample, day) equity curves, USD
        self.bands: dict[int, np.ndarray] = {}  # -> (quantile, step) daily equity bands, USD
        self.daily: dict[int, streaming.DailyColumns] = {}  # -> (paths, step) daily equity
        self.devices: set[str] = set()
        self.bar = _Progress(progress, len(cells), settings.paths * len(cells))
        # Saved blocks of a resumed run behind a block still to compute, by cell and start.
        self.deferred: dict[int, dict[int, Block]] = {n: {} for n in numbers}
        # The engine's own per-path results of the paths the trade log keeps, by cell and block.
        self.logged: dict[int, dict[int, dict[str, np.ndarray]]] = {n: {} for n in numbers}

    def daily_of(self, number: int) -> streaming.DailyColumns:
        """The daily equity of cell `number`, opened at first use."""
        if number not in self.daily:
            self.daily[number] = streaming.DailyColumns(
                self.settings.paths,
                self.settings.n_steps + 1,
                self.settings.equity_dtype,
                file=self.resume.daily_file(number) if self.resume is not None else None,
            )
        return self.daily[number]

    def close_daily(self, *, remove: bool) -> None:
        """Close every cell's daily equity still open (`remove`: delete its file too)."""
        for number in list(self.daily):
            self.daily.pop(number).close(remove=remove)

    def plan(self, blocks: list[Block]) -> list[_Task]:
        """Take the blocks a resumed run saved; the tasks of the blocks still to compute.

        A saved block behind a block to compute is only noted (`deferred`): it is read when
        its cell's reduction reaches it, so that it does not wait in memory."""
        resume = self.resume
        todo: list[_Task] = []
        behind: set[int] = set()  # cells with a block to compute before their saved ones
        for block in blocks:
            number = block.cell_number
            if resume is not None and number in behind and resume.has(block):
                self.deferred[number][block.path_start] = block
                continue
            saved = resume.load(block) if resume is not None else None
            if saved is None:
                todo.append(_Task(self.cell_of[number], block))
                behind.add(number)
            else:
                self.take(block, saved, computed=False)
        return todo

    def take_computed(self, block: Block, arrays: dict[str, np.ndarray]) -> None:
        """A block a worker computed: its daily equity and resume file saved, then taken."""
        resume = self.resume
        # on disk before the block's file says it is done
        self.daily_of(block.cell_number).write(
            block.path_start, arrays.pop("_equity"), sync=resume is not None
        )
        if resume is not None:
            resume.save(block, arrays)
        self.take(block, arrays)

    def take(self, block: Block, arrays: dict[str, np.ndarray], computed: bool = True) -> None:
        """Reduce one block, then the deferred saved blocks it reaches; finish a full cell."""
        self.devices.add(str(arrays.get("_device", "")))
        number = block.cell_number
        self._keep_logged(block, arrays)
        if number not in self.accumulators:
            self.accumulators[number] = aggregate.CellAccumulator(
                self.settings.paths, keep_per_path=self.per_path, spill_dir=self.spill_dir
            )
        acc = self.accumulators[number]
        acc.add(block.path_start, arrays)
        self.bar.advance(block.n_paths, computed=computed)
        self._take_deferred(number, acc)
        if acc.complete:
            self._finish_cell(number, acc, computed)

    def _keep_logged(self, block: Block, arrays: dict[str, np.ndarray]) -> None:
        if block.path_start < self.n_logged:
            rows = slice(0, self.n_logged - block.path_start)
            self.logged[block.cell_number][block.path_start] = {
                k: np.asarray(arrays[k])[rows] for k in trade_log.CHECK_FIELDS
            }

    def _take_deferred(self, number: int, acc: aggregate.CellAccumulator) -> None:
        """Read back and reduce the saved blocks of cell `number` that come next in path order."""
        while acc.next_path in self.deferred[number]:
            later = self.deferred[number].pop(acc.next_path)
            saved = self.resume.load(later)
            if saved is None:
                raise RuntimeError(
                    f"the saved block {later} of {store.partial_dir(self.out)} could not be "
                    "read back (it was removed); run the same command again to compute it"
                )
            self._keep_logged(later, saved)
            acc.add(later.path_start, saved)
            self.bar.advance(later.n_paths, computed=False)

    def _finish_cell(self, number: int, acc: aggregate.CellAccumulator, computed: bool) -> None:
        """A complete cell: its equity bands, sample, aggregates (and per-path arrays)."""
        resume, settings = self.resume, self.settings
        saved = resume.load_bands(number) if resume is not None else None
        if saved is None:
            saved = self.daily_of(number).quantiles(aggregate.QUANTILES)
            if resume is not None:
                resume.save_bands(number, saved)
        self.bands[number] = saved
        if not settings.equity and number in self.daily:
            self.daily.pop(number).close(remove=True)
        self.samples[number] = acc.equity_sample()
        cell = self.cell_of[number]
        self.results[number] = acc.result(
            strategy=cell.strategy, n_steps=settings.n_steps, rate=cell.market.rate
        )
        if self.per_path:
            self.per_path_arrays[number] = acc.per_path()
        self.histograms.keep(number, acc)
        self.accumulators.pop(number).close()
        self.bar.advance(0, cells=1, computed=computed)

    def abandon(self) -> None:
        """After a failure: keep what a rerun resumes from in `<out>.partial/`, or, if there
        is nothing to resume, leave nothing behind."""
        self.close_daily(remove=False)
        kept = any(self.deferred.values())  # saved blocks of an earlier run, not read yet
        resume = self.resume
        if resume is not None and resume.loaded == 0 and resume.saved == 0 and not kept:
            resume.finish()

    def close(self) -> None:
        """Stop the progress bar and release every open cell reduction and the histograms."""
        self.bar.close()
        for acc in self.accumulators.values():
            acc.close()
        self.histograms.close()

    def device(self) -> str:
        """The devices that computed the blocks, in words (this process's if none did)."""
        return "; ".join(sorted(d for d in self.devices if d)) or device_description()


def _prepare_process() -> None:
    """The compilation cache on, and the reduction's imports started beside the engine."""
    compile_cache.enable()
    _import_in_background("scipy.stats", "scipy.optimize", "dask.array")


def _import_in_background(*modules: str) -> None:
    """Import what the reduction needs later in a thread while this one reads the scenario and
    runs the engine, whose compile, executable load and run release the interpreter: SciPy
    (the intervals and the Kelly root; the modules that use it import it where they call it,
    so `import simkit.run` does not wait for it) and dask.array (xarray imports it to check
    every array it wraps). In a new process this hides most of their ~0.6 s; where they are
    imported already nothing starts."""
    missing = [name for name in modules if name not in sys.modules]
    if missing:
        threading.Thread(
            target=lambda: [importlib.import_module(name) for name in missing],
            name="simkit-imports",
            daemon=True,
        ).start()


def simulate(
    scenario: Any,
    *,
    paths: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    scheduler: Any = None,
    per_path: bool = False,
    engine: str | None = None,
    float64: bool | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    shock: Any = None,
    equity_days: Sequence[int] = (),
    trades: int = 0,
    equity: bool = False,
) -> Any:
    """Simulate every grid cell of `scenario` and reduce it to an `xarray.Dataset`.

    Args:
      scenario: a `simkit.scenario.Scenario` (`simkit.load_scenario(path)`).
      paths, seed, chunk_size, engine, float64: override the scenario's `[simulation]`
        values (validated as the file's are). Default value: the scenario's.
      scheduler: where the blocks run (module docstring). Default value: chosen by size.
      per_path: also keep every path's summary (a `path` dimension). Default value: False.
      out: write the dataset there (NetCDF4/HDF5, atomically) and keep resume state in
        `<out>.partial/` while running; a rerun of the same run reuses finished blocks.
        Default value: None (nothing written).
      progress: show a progress bar on a terminal for runs over ~2 s. Default value: True.
      shock: a `simkit.stress.Shock` applied to every path's market (`simkit.stress`
        defines it); the market of a block is then generated whole (memory grows with the
        horizon). Default value: None (no shock).
      equity_days: trading days `t` whose end-of-day sleeve equity `E_t` (USD) is kept for
        every path as the per-path field `equity_day_<t>` (with `per_path`; the daily equity
        is otherwise dropped once a block is reduced). Not with `out`. Default value: ().
      trades: keep every trade of the first `trades` paths of each cell (clipped to the
        paths, with a note) on a `trade` dimension (`simkit.trade_log`: the reference engine
        on those paths' market, checked against this run's per-path results; a disagreement
        is logged as a warning and kept in the attribute `trade_log_check`). Default value: 0
        (no log).
      equity: also keep every path's daily sleeve equity, `equity` over (grid..., `path`,
        `step`) in the engine's dtype. With `out` it is written into the file chunk by chunk
        (compressed; memory stays set by the chunk) and the returned dataset reads it from
        there lazily; without, it is held in memory. Default value: False. Either way, the
        quantile bands of every cell's daily equity over all its paths are computed
        (`equity_quantile`), from each cell's daily equity kept in a file meanwhile (in
        `<out>.partial/`, or `TMPDIR`; in memory below `streaming.DAILY_MEMORY_BYTES`).

    Returns:
      the result dataset (`simkit.store.build_dataset` describes its variables).
    """
    started = time.perf_counter()
    _prepare_process()
    settings = resolve_settings(
        scenario,
        paths=paths,
        seed=seed,
        chunk_size=chunk_size,
        engine=engine,
        float64=float64,
        shock=shock,
        equity_days=equity_days,
        equity=equity,
    )
    if settings.equity_days and out is not None:
        raise ValueError("equity_days is for runs kept in memory; it cannot be resumed from out")
    n_logged = _trade_log_paths(trades, settings.paths)
    cells = list(scenario.cells())
    numbers = [cell_number(c, tuple(scenario.shape)) for c in cells]
    executor = choose_executor(
        scheduler, settings.paths * (settings.n_steps + 1) * len(cells), settings.engine
    )
    resume = store.ResumeState.open(out, scenario, cells, settings) if out is not None else None
    reduction = _RunReduction(settings, cells, numbers, resume, out, per_path, n_logged, progress)
    todo = _reduce_blocks(reduction, _blocks(numbers, settings), executor)
    executor_name = executor.name if todo else "resumed"
    ds = _run_dataset(scenario, reduction, executor_name, time.perf_counter() - started)
    if resume is not None:
        resume.finish()
    return ds


def _reduce_blocks(reduction: _RunReduction, blocks: list[Block], executor: Any) -> list[_Task]:
    """Reduce every block of a run: the saved ones read back, the others computed on
    `executor`; the tasks computed (none for a run resumed whole)."""
    todo: list[_Task] = []
    try:
        todo = reduction.plan(blocks)
        simulate_fn = _simulate_block  # looked up now, so a patched engine reaches the workers
        if todo:
            with executor:
                for task, arrays in executor.map_unordered(
                    _compute_task, todo, simulate_fn, reduction.settings
                ):
                    reduction.take_computed(task.block, arrays)
        reduction.histograms.finish(reduction.results)
    except BaseException:
        reduction.abandon()
        raise
    finally:
        reduction.close()
    return todo


def _run_dataset(scenario: Any, reduction: _RunReduction, executor: str, wall_time_s: float) -> Any:
    """The finished run's dataset (with its trade log), written to `reduction.out` if given;
    every cell's daily equity closed after (its files stay for the caller to remove)."""
    attrs = store.run_attrs(
        scenario,
        reduction.settings,
        wall_time_s=wall_time_s,
        executor=executor,
        device=reduction.device(),
        per_path=reduction.per_path,
    )
    try:
        return _build_run_dataset(scenario, reduction, attrs)
    finally:
        reduction.close_daily(remove=False)


def _build_run_dataset(scenario: Any, reduction: _RunReduction, attrs: dict[str, Any]) -> Any:
    """`store.build_dataset` of the reduced cells, the trade log added, written to `out`.

    Every path's equity (`settings.equity`) is streamed into the file with `out`, and read
    back from it lazily; without `out` it is held in the dataset."""
    settings, out = reduction.settings, reduction.out
    cells, numbers = reduction.cells, reduction.numbers
    paths_equity: dict[int, np.ndarray] | bool = settings.equity and out is not None
    if settings.equity:
        for n in numbers:  # a cell resumed whole has not opened its file yet
            reduction.daily_of(n)
    if settings.equity and out is None:
        paths_equity = {n: reduction.daily[n].paths(0, settings.paths) for n in numbers}
    ds = store.build_dataset(
        scenario,
        cells,
        numbers,
        settings,
        reduction.results,
        reduction.samples,
        reduction.per_path_arrays if reduction.per_path else None,
        attrs,
        bands=reduction.bands,
        equity=paths_equity,
    )
    if reduction.n_logged:
        ds = _add_trade_log(ds, cells, numbers, settings, reduction.n_logged, reduction.logged)
    if out is not None:
        streamed = []
        if settings.equity:
            grid_dims = tuple(ds["paths"].dims)
            streamed = [_equity_variable(reduction.daily, numbers, cells, settings, grid_dims)]
        store.write_dataset(ds, out, streamed)
        if settings.equity:  # read lazily from the file, not held in memory
            ds = ds.assign(equity=store.open_variable(out, "equity"))
    return ds


EQUITY_PATHS_PER_PIECE = 4096  # paths of a cell written at once (whole HDF5 chunks of 1024)


def _equity_variable(
    daily: dict[int, streaming.DailyColumns],
    numbers: list[int],
    cells: list,
    settings: RunSettings,
    grid_dims: tuple[str, ...],
) -> store.StreamedVariable:
    """The `equity` variable of a run, read from each cell's daily equity piece by piece."""
    grid = [tuple(c.index) for c in cells]
    n_days = settings.n_steps + 1

    def pieces():
        for number, index in zip(numbers, grid, strict=True):
            for start in range(0, settings.paths, EQUITY_PATHS_PER_PIECE):
                stop = min(start + EQUITY_PATHS_PER_PIECE, settings.paths)
                yield (*index, slice(start, stop), slice(None)), daily[number].paths(start, stop)

    return store.StreamedVariable(
        name="equity",
        dims=(*grid_dims, "path", "step"),
        dtype=settings.equity_dtype,
        attrs=RUN_CURVES["equity"].attrs,
        chunks=store.equity_chunks(len(grid_dims), settings.paths, n_days),
        pieces=pieces,
    )


# --------------------------------------------------------------------------- the trade log


def _trade_log_paths(trades: Any, paths: int) -> int:
    """The paths per cell the trade log keeps: `trades`, clipped to the run's paths."""
    if isinstance(trades, bool) or not isinstance(trades, int | np.integer) or trades < 0:
        raise ValueError(f"trades must be a whole number >= 0; got {trades!r}")
    if trades > paths:
        log.warning(
            f"note: --trades {trades} is more than the {paths} paths per cell; the trade log "
            f"keeps all {paths}"
        )
    return min(int(trades), paths)


def _market_dates(cell: Any, n_steps: int) -> Any:
    """The calendar date of each step of the cell's market, or None.

    Hook for history markets: a market that replays a history (`simkit.paths.history`) gives
    its dates here (`dates`: `(n_steps + 1,)`, or `(paths, n_steps + 1)` for windows that
    start on different days), and the trade log gains `trade_open_date`/`trade_close_date`.
    Simulated markets have no dates.
    """
    if cell.market.model == "replay":  # every path is the history from its first day
        return load_history(cell.market.history).dates[: n_steps + 1]
    dates = getattr(cell.market, "dates", None)
    if dates is None:
        return None
    dates = np.asarray(dates)
    return dates[..., : n_steps + 1]


def _logged_market(cell: Any, number: int, settings: RunSettings, n_paths: int) -> dict:
    """Market rows of paths `0 .. n_paths - 1` of a cell, as the engine generated them (the
    cell's key, the run's precision, the run's shock), as NumPy arrays."""
    with x64(settings.float64):
        market = market_to_numpy(
            _market_block(
                cell.market,
                settings.seed,
                number,
                0,
                max(n_paths, MIN_BLOCK_PATHS),  # the blocks' own rule (`_compute_task`)
                settings.n_steps,
                settings.float64,
            )
        )
    if settings.shock is not None:
        market = apply_shock(market, settings.shock, _shock_moments(cell.market))
    return {name: value[:n_paths] for name, value in market.items()}


def _trade_log_verdict(problems: list[str], settings: RunSettings) -> str:
    """The check's verdict (the attribute `trade_log_check`); a disagreement is also logged."""
    engine = settings.engine
    if not problems:
        return (
            f"agrees with the {engine} engine on every logged path: trade counts and ends "
            f"exactly, the Kelly sums and the P&L within a relative "
            f"{trade_log.tolerance(settings.float64):g}"
        )
    why = (
        ""
        if settings.float64 or engine == "reference"
        else "\n(float32: the JAX engine decides exits on float32 prices, so on a rare path a "
        "cheap put's exit can fall a day apart or a contract count round the other way; "
        "--float64 gives a log that matches the engine)"
    )
    log.warning(
        f"WARNING: the trade log disagrees with the {engine} engine's per-path results "
        f"({len(problems)} difference(s)):\n  " + "\n  ".join(problems[:20]) + why
    )
    return f"disagrees with the {engine} engine: " + "; ".join(problems[:50])


def _add_trade_log(
    ds: Any,
    cells: list,
    numbers: list[int],
    settings: RunSettings,
    n_logged: int,
    logged: dict[int, dict[int, dict[str, np.ndarray]]],
) -> Any:
    """`ds` with the trade log of paths `0 .. n_logged - 1` of every cell, and its check.

    The reference engine records the trades of each cell's logged paths on their market rows
    (`_logged_market`, `simkit.trade_log.record_cell`), and the log is checked against the
    run engine's per-path results of the same paths (`logged`: cell number -> block start ->
    `trade_log.CHECK_FIELDS`, kept by `simulate` as its blocks arrived).
    """
    started = time.perf_counter()
    log.info(
        f"trade log: the trades of {n_logged} path(s) per cell, {len(cells)} cell(s), "
        "by the reference engine"
    )
    cell_columns, problems = {}, []
    for number, cell in zip(numbers, cells, strict=True):
        market = _logged_market(cell, number, settings, n_logged)
        records, summary = trade_log.record_cell(market, cell.strategy, cell.market)
        parts = [logged[number][start] for start in sorted(logged[number])]
        engine_rows = {k: np.concatenate([p[k] for p in parts]) for k in trade_log.CHECK_FIELDS}
        where = f"cell {number}" + (f" {dict(cell.coords)}" if cell.coords else "")
        problems += [
            f"{where} {line}"
            for line in trade_log.check(records, summary, engine_rows, settings.float64)
        ]
        cell_columns[number] = trade_log.columns(records, _market_dates(cell, settings.n_steps))
    cell_coords = {n: dict(c.coords or {}) for n, c in zip(numbers, cells, strict=True)}
    key_units = {
        key: str(ds[key].attrs.get("units", "1"))
        for key in cell_coords[numbers[0]]
        if key in ds.coords
    }
    data, coords = trade_log.variables(cell_columns, cell_coords, key_units)
    ds = ds.assign_coords(coords).assign(data)
    ds.attrs.update(
        trade_log_paths=n_logged,
        trade_log_engine="reference",
        trade_log_check=_trade_log_verdict(problems, settings),
        trade_log_wall_time_s=time.perf_counter() - started,
    )
    return ds


# --------------------------------------------------------------------------- your own markets

REQUIRED_INPUTS = ("spot", "iv")


def _check_market(market: Any) -> dict[str, np.ndarray]:
    """The given market inputs as float64 / bool arrays, every one `(n_paths, n_days)`."""
    if not hasattr(market, "items"):
        raise ValueError(f"market must map input names to arrays; got {type(market).__name__}")
    valid = Market._fields
    unknown = sorted(set(market) - set(valid))
    if unknown:
        raise ValueError(f"unknown market inputs {unknown}; the inputs are {', '.join(valid)}")
    missing = [k for k in REQUIRED_INPUTS if k not in market]
    if missing:
        raise ValueError(f"market needs {' and '.join(missing)} (arrays (n_paths, n_days))")
    arrays = {}
    shape = np.shape(market["spot"])
    for name, value in market.items():
        kind = bool if name in ("thesis_event", "jump") else np.float64
        a = np.asarray(value, dtype=kind)
        if a.ndim != 2 or a.shape != shape:
            raise ValueError(
                f"market[{name!r}] has shape {a.shape}; every input must be (n_paths, n_days) "
                f"like spot {shape}"
            )
        if kind is np.float64 and not np.all(np.isfinite(a)):
            raise ValueError(f"market[{name!r}] has values that are not finite")
        arrays[name] = a
    if shape[1] < 2:
        raise ValueError(f"market needs at least two days (day 0 and one step); got {shape[1]}")
    for name in REQUIRED_INPUTS:
        if np.any(arrays[name] <= 0):
            raise ValueError(f"market[{name!r}] must be > 0 everywhere")
    return arrays


def simulate_paths(
    market: Any, scenario: Any, *, engine: str = "jax", float64: bool | None = None
) -> Any:
    """Run the scenario's strategy on market paths you bring; per-path results.

    Args:
      market: input name -> array `(n_paths, n_days)`, day 0 first (the names of
        `simkit.paths.market.Market`). `spot` (USD) and `iv` (annual fraction, 4.25 = 425 %)
        are required; every other input (short interest, VIX, spread, open interest, option
        volume, ..., thesis events, early-exercise draws) defaults to what the scenario would
        generate for paths `0 .. n_paths - 1` of its seed (`jump` defaults to no jump: it
        describes the generated spot, not yours). The horizon is `n_days - 1` steps.
      scenario: a `simkit.scenario.Scenario` without a grid (its strategy and the market
        parameters the rules read: rate, the IV process for the IV percentile, ...).
      engine: "jax" (vectorized) or "reference" (scalar). Default value: "jax".
      float64: compute in float64. Default value: the scenario's `simulation.float64`.

    Returns:
      an `xarray.Dataset` on a `path` dimension: the per-path summary (docs/ENGINE_SPEC.md) and
      the derived figures of a run's `--per-path` output (`annual_return`, `total_return`,
      `max_drawdown`, `path_sharpe`, `daily_var_99`, ...), `assigned_by_rung` over
      (`path`, `strike`), and the daily sleeve `equity` over (`path`, `step`); units and long
      names on every variable.

    Raises:
      ValueError: a market input is unknown, missing, of the wrong shape, not finite, or a
        price is not positive; an unknown engine. ScenarioError: a scenario with a grid.
    """
    if scenario.grid:
        raise ScenarioError(
            scenario.path,
            [("grid", None, "simulate_paths runs one market: use a scenario without [grid]")],
        )
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    arrays = _check_market(market)
    compile_cache.enable()
    float64 = scenario.simulation.float64 if float64 is None else bool(float64)
    n_days = arrays["spot"].shape[1]
    cell = scenario.cells()[0]
    with x64(float64):
        given = _given_market(arrays, cell, scenario.simulation.seed, float64)
        run_paths = (engine_jax if engine == "jax" else reference).simulate_paths
        summary = run_paths(given, cell.strategy, cell.market)
    attrs = {
        "title": "simkit strategy on given market paths",
        "scenario_path": str(scenario.path or ""),
        "scenario_text": str(scenario.text),
        "engine": engine,
        "dtype": "float64" if float64 else "float32",
        "n_steps": n_days - 1,
        "given_inputs": ", ".join(sorted(arrays)),
    }
    return _per_path_dataset(summary, cell.strategy, attrs)


def _given_market(
    arrays: dict[str, np.ndarray], cell: Any, seed: int, float64: bool
) -> dict[str, np.ndarray]:
    """The market the engine runs in `simulate_paths`: the given inputs (checked by
    `_check_market`, `(n_paths, n_days)` each) in the run's precision, and every other input
    as the scenario generates it for paths `0 .. n_paths - 1` of `seed` (cell 0), no jumps."""
    n_paths, n_days = arrays["spot"].shape
    dtype = np.float64 if float64 else np.float32
    generated = market_to_numpy(
        _market_block(cell.market, seed, 0, 0, n_paths, n_days - 1, float64)
    )
    generated["jump"] = np.zeros_like(generated["jump"])
    for name, value in arrays.items():
        generated[name] = value if value.dtype == bool else value.astype(dtype)
    return generated


def _per_path_dataset(summary: dict[str, np.ndarray], strategy: Any, attrs: dict) -> Any:
    """An engine's per-path summary of one market, with the derived per-path figures and the
    daily `equity`, as a dataset on `path` (and `strike`, `step`)."""
    n_paths, n_days = np.shape(summary["equity"])
    equity = np.asarray(summary["equity"], dtype=np.float64)
    derived = aggregate.derive_block(
        summary,
        n_steps=n_days - 1,
        monthly_addition=strategy.monthly_addition,
        path_start=0,
        n_sample=0,
    )
    data = {}
    for name, value in derived.items():
        if name.startswith("_"):
            continue
        dims = ("path",) if np.ndim(value) == 1 else ("path", "strike")
        data[name] = xr.Variable(dims, np.asarray(value), per_path_variable(name).attrs)
    data["equity"] = xr.Variable(("path", "step"), equity, PATHS_EQUITY.attrs)
    coords = {
        "path": np.arange(n_paths),
        "step": np.arange(n_days),
        "strike": np.asarray(strategy.strikes, dtype=np.float64),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
