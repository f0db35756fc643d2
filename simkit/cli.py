"""The `simkit` command: argument parsing and printing only.

Exit codes: 0 success; 2 bad input (a scenario problem, a bad flag, an unusable output path,
an unreachable scheduler: one message on stderr, no traceback, nothing written); 1 an
internal error (a short message; the traceback with `SIMKIT_DEBUG=1`).

Each subcommand is one `_cmd_<name>(subparsers)` function that adds its parser and sets
`func`; `COMMANDS` lists them. Adding a subcommand is one function and one line.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


class BadInput(Exception):
    """Input the user can fix: reported with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so `main` returns 2 (tests call `main`)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- helpers


def _load(path: str, overrides: dict[str, Any] | None = None):
    from simkit.scenario import load_scenario

    return load_scenario(path, overrides)


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    from simkit.scenario import parse_override

    return dict(parse_override(p) for p in pairs)


def check_output_path(out: Path) -> None:
    """Raise BadInput unless a result file can be written at `out` (writes nothing)."""
    from simkit.store import partial_dir

    if out.is_dir():
        raise BadInput(f"--out {out}: is a directory; give a file name such as {out / 'run.nc'}")
    if out.exists() and not os.access(out, os.W_OK):
        raise BadInput(f"--out {out}: the file exists and is not writable")
    partial = partial_dir(out)
    if partial.exists() and not partial.is_dir():
        raise BadInput(
            f"--out {out}: {partial} (its resume directory) exists and is not a directory"
        )
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"--out {out}: cannot create its directory: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"--out {out}: directory {ancestor} is not writable")


def _enable_compile_cache() -> None:
    """Keep compiled engines between runs (each run is a new process; the engine takes tens
    of seconds to compile): JAX's persistent cache, unless the user configured one."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "simkit", "jax")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", directory)


def _fmt(x: Any, kind: str = "num") -> str:
    x = float(x)
    if math.isnan(x):
        return "-"
    if kind == "pct":
        return f"{100 * x:.1f}%"
    if kind == "usd":
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _with_ci(ds: Any, name: str, index: dict, kind: str) -> str:
    value = _fmt(ds[name].isel(index).item(), kind)
    if f"{name}_lo" not in ds or value == "-":
        return value
    lo = _fmt(ds[f"{name}_lo"].isel(index).item(), kind)
    hi = _fmt(ds[f"{name}_hi"].isel(index).item(), kind)
    return f"{value} [{lo}, {hi}]"


# (variable, heading, format): the summary's key metrics.
SUMMARY = (
    ("win_rate_trade", "win rate (trades)", "pct"),
    ("win_rate_path", "win rate (paths)", "pct"),
    ("annual_return_mean", "annual return mean", "pct"),
    ("annual_return_median", "annual return median", "pct"),
    ("sharpe", "Sharpe (median path)", "num"),
    ("max_drawdown_median", "max drawdown median", "pct"),
    ("var_99", "VaR 99% (horizon)", "pct"),
    ("cvar_99", "CVaR 99% (horizon)", "pct"),
    ("prob_ruin", "P(ruin)", "pct"),
    ("kelly_fraction", "Kelly fraction (seed formula)", "num"),
)


def print_summary(ds: Any, console: Any) -> None:
    """The key metrics with their 95 % intervals: one row per metric without a grid, one row
    per cell (interval under the estimate) with a grid."""
    from rich.table import Table

    grid_dims = list(ds["paths"].dims)
    title = f"{ds.attrs.get('title', 'simkit run')}: {ds.attrs.get('paths')} paths per cell"
    table = Table(title=title, caption="estimate [95 % confidence interval]")
    if not grid_dims:
        table.add_column("metric")
        table.add_column("estimate [95 % CI]", justify="right")
        for name, heading, kind in SUMMARY:
            table.add_row(heading, _with_ci(ds, name, {}, kind))
        console.print(table)
        return
    for dim in grid_dims:
        table.add_column(dim, justify="right", no_wrap=True, min_width=len(dim))
    for _, heading, _ in SUMMARY:
        table.add_column(heading, justify="right")
    shape = [ds.sizes[d] for d in grid_dims]
    for flat in range(math.prod(shape)):
        index = dict(zip(grid_dims, _unravel(flat, shape), strict=True))
        coords = [str(ds[d].values[i]) for d, i in index.items()]
        values = [_with_ci(ds, n, index, k).replace(" [", "\n[") for n, _, k in SUMMARY]
        table.add_row(*coords, *values)
    console.print(table)


def _unravel(flat: int, shape: list[int]) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(flat % size)
        flat //= size
    return list(reversed(out))


def _console():
    """Console on stdout; output that is not a terminal gets a wide page, not 80 columns."""
    from rich.console import Console

    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 240)


# --------------------------------------------------------------------------- subcommands


def _cmd_run(sub: Any) -> None:
    p = sub.add_parser("run", help="simulate a scenario (its whole grid) and write a result file")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--paths", type=int, help="paths per grid cell (overrides simulation.paths)")
    p.add_argument("--seed", type=int, help="random seed (overrides simulation.seed)")
    p.add_argument("--out", metavar="FILE.nc", help="result file (default results/<scenario>.nc)")
    p.add_argument(
        "--chunk-size", type=int, help="paths per task (overrides simulation.chunk_size)"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler address (tcp://host:8786), or synchronous | threads | processes; "
        "default: chosen by the size of the run",
    )
    p.add_argument("--per-path", action="store_true", help="also store every path's summary")
    p.add_argument("--engine", help="jax | reference (overrides simulation.engine)")
    p.add_argument("--float64", action="store_true", help="compute in float64")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set market.sigma=2.5 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from simkit import run

    overrides = _overrides(args.overrides)
    for flag, key in (
        ("paths", "simulation.paths"),
        ("seed", "simulation.seed"),
        ("chunk_size", "simulation.chunk_size"),
        ("engine", "simulation.engine"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.float64:
        overrides["simulation.float64"] = True
    scenario = _load(args.scenario, overrides)
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.nc"
    check_output_path(out)
    try:
        run.choose_executor(args.scheduler, 0) if args.scheduler else None
    except ValueError as exc:
        raise BadInput(f"--scheduler: {exc}") from None

    _enable_compile_cache()
    try:
        ds = run.simulate(
            scenario,
            scheduler=args.scheduler,
            per_path=args.per_path,
            out=out,
            progress=not args.no_progress,
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    console = _console()
    print_summary(ds, console)
    console.print(f"wrote {out} ({ds.attrs['wall_time_s']:.1f} s, {ds.attrs['executor']})")
    return 0


def _cmd_check(sub: Any) -> None:
    p = sub.add_parser("check", help="validate a scenario and list its grid cells")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    scenario = _load(args.scenario, _overrides(args.overrides))
    sim = scenario.simulation
    console = _console()
    console.print(
        f"{args.scenario}: ok. {sim.paths} paths x {len(scenario.cells())} cells, "
        f"{sim.n_steps} steps ({sim.years:g} years), seed {sim.seed}, engine {sim.engine}, "
        f"{'float64' if sim.float64 else 'float32'}, chunk {sim.chunk_size}"
    )
    if not scenario.grid:
        console.print("no [grid]: one cell")
        return 0
    table = Table(title=f"cells ({' x '.join(map(str, scenario.shape))})")
    table.add_column("cell", justify="right")
    keys = list(scenario.cells()[0].coords)
    for key in keys:
        table.add_column(key, justify="right")
    for number, cell in enumerate(scenario.cells()):
        table.add_row(str(number), *(str(cell.coords[k]) for k in keys))
    console.print(table)
    return 0


COMMANDS: list[Callable[[Any], None]] = [_cmd_run, _cmd_check]


# --------------------------------------------------------------------------- claims, calibrate
# (issue 5: each subcommand is one `_cmd_x(sub)` + its command function; append to COMMANDS)


# --------------------------------------------------------------------------- stress, report
# (issue 6: each subcommand is one `_cmd_x(sub)` + its command function; append to COMMANDS)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simkit", description="Monte Carlo simulation of a put-selling strategy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def _setup_logging() -> None:
    logger = logging.getLogger("simkit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `simkit` command line; returns the exit code."""
    from simkit.scenario import ScenarioError

    debug = os.environ.get("SIMKIT_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        _setup_logging()
        return int(args.func(args))
    except (BadInput, ScenarioError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("simkit: interrupted (finished blocks are kept; rerun to resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        else:
            print(
                f"simkit: internal error: {type(exc).__name__}: {exc}\n"
                "(set SIMKIT_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
