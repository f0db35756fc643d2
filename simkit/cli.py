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


def _simulation_overrides(args: argparse.Namespace) -> dict:
    """`--set` overrides plus the `[simulation]` flags of `run` and `stress`."""
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
    return overrides


def _check_scheduler(scheduler: str | None) -> None:
    """A bad `--scheduler` is bad input (exit 2), found before anything runs."""
    from simkit import run

    try:
        run.choose_executor(scheduler, 0) if scheduler else None
    except ValueError as exc:
        raise BadInput(f"--scheduler: {exc}") from None


def run_command(args: argparse.Namespace) -> int:
    from simkit import run

    overrides = _simulation_overrides(args)
    scenario = _load(args.scenario, overrides)
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.nc"
    check_output_path(out)
    _check_scheduler(args.scheduler)

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


def _add_run_flags(p: Any, paths_help: str, progress: bool = True) -> None:
    """--paths/--seed/--engine/--set (and --no-progress), as `run` has them."""
    p.add_argument("--paths", type=int, help=paths_help)
    p.add_argument("--seed", type=int, help="random seed (overrides simulation.seed)")
    p.add_argument("--engine", help="jax | reference (overrides simulation.engine)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set simulation.years=0.5 (repeatable)",
    )
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _writable_file(out: Path, flag: str = "--out") -> None:
    """Raise BadInput unless a file can be written at `out` (writes nothing)."""
    if out.is_dir():
        raise BadInput(f"{flag} {out}: is a directory; give a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise BadInput(f"{flag} {out}: the file exists and is not writable")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{flag} {out}: cannot create its directory: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {out}: directory {ancestor} is not writable")


def _write_text(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def _cmd_claims(sub: Any) -> None:
    p = sub.add_parser(
        "claims", help="check the seed document's claims against computations and a simulation"
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default="scenarios/baseline.toml",
        metavar="SCENARIO.toml",
        help="scenario without [grid] (default: scenarios/baseline.toml)",
    )
    _add_run_flags(p, "paths simulated (default: the scenario's, at most 10,000)")
    p.add_argument(
        "--out",
        metavar="FILE.md",
        help="Markdown report; the JSON goes beside it as FILE.json "
        "(default: results/<scenario>.claims.md)",
    )
    p.add_argument(
        "--no-fills",
        action="store_true",
        help="skip the rerun with the other fill assumption (the fills row)",
    )
    p.set_defaults(func=claims_command)


def claims_command(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from simkit import claims

    scenario = _load(args.scenario, _overrides(args.overrides))
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.claims.md"
    if out.suffix.lower() == ".json":
        raise BadInput(f"--out {out}: names the Markdown report (FILE.md); the JSON goes beside it")
    json_out = out.with_suffix(".json")
    _writable_file(out)
    _writable_file(json_out)
    _enable_compile_cache()
    report = claims.check_claims(
        scenario,
        paths=args.paths,
        seed=args.seed,
        engine=args.engine,
        fills=not args.no_fills,
        progress=not args.no_progress,
    )
    console = _console()
    table = Table(
        title=claims.title(report),
        caption="every verdict is computed by the rule in the last column; intervals are 95 %",
        show_lines=True,
    )
    for heading, ratio in (
        ("topic", 1),
        ("claim", 3),
        ("seed", 2),
        ("simkit", 6),
        ("verdict", 2),
        ("rule", 4),
    ):
        table.add_column(heading, ratio=ratio, overflow="fold")
    for row in report.rows:
        table.add_row(
            row.topic,
            row.claim,
            row.seed,
            row.simkit,
            Text(row.verdict, style="bold"),
            row.rule,
        )
    console.print(table)
    _write_text(out, claims.to_markdown(report))
    _write_text(json_out, claims.to_json(report))
    console.print(f"wrote {out} and {json_out} ({report.meta['wall_time_s']:.1f} s)")
    return 0


def _cmd_calibrate(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate", help="Kelly inputs, a market model fit, or one parameter to a target"
    )
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    what.required = True

    k = what.add_parser(
        "kelly",
        help="measure the sleeve Kelly f* (and the per-trade p, a, b) by simulation; write "
        "[capital] kelly_fraction = f*, or say do not allocate",
    )
    k.add_argument("scenario", metavar="SCENARIO.toml")
    _add_run_flags(k, "paths simulated (default: the scenario's, at most 10,000)")
    k.add_argument(
        "--out",
        metavar="FRAGMENT.toml",
        help="TOML fragment (default: results/<scenario>.kelly.toml)",
    )
    k.set_defaults(func=calibrate_kelly_command)

    m = what.add_parser("market", help="maximum likelihood of GBM / Merton on a history CSV")
    m.add_argument("history", metavar="HISTORY.csv", help="CSV date,close[,iv]")
    m.add_argument(
        "--model",
        choices=("gbm", "merton", "both"),
        default="both",
        help="model to fit; both (default) compares them and writes the lower-AIC one",
    )
    m.add_argument(
        "--out",
        metavar="FRAGMENT.toml",
        help="TOML fragment (default: results/<history>.market.toml)",
    )
    m.set_defaults(func=calibrate_market_command)

    t = what.add_parser(
        "target", help="the value of one parameter at which a metric reaches a target"
    )
    t.add_argument("scenario", metavar="SCENARIO.toml")
    t.add_argument("--param", required=True, metavar="KEY", help="dotted key, e.g. market.sigma")
    t.add_argument(
        "--metric", required=True, metavar="NAME", help="result variable, e.g. win_rate_trade"
    )
    t.add_argument("--target", required=True, type=float, metavar="X", help="metric value sought")
    t.add_argument(
        "--bracket",
        required=True,
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="parameter values to search between",
    )
    _add_run_flags(
        t, "paths per evaluation (default: the scenario's, at most 2,000)", progress=False
    )
    t.add_argument(
        "--xtol", type=float, help="tolerance on the parameter (default: 1e-3 x bracket width)"
    )
    t.set_defaults(func=calibrate_target_command)


def _kelly_paths(args: argparse.Namespace, scenario: Any, cap: int) -> int:
    return args.paths if args.paths is not None else min(scenario.simulation.paths, cap)


def calibrate_kelly_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from simkit import calibrate

    scenario = _load(args.scenario, _overrides(args.overrides))
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.kelly.toml"
    _writable_file(out)
    _enable_compile_cache()
    result, _ = calibrate.calibrate_kelly(
        scenario,
        paths=_kelly_paths(args, scenario, 10_000),
        seed=args.seed,
        engine=args.engine,
        progress=not args.no_progress,
    )
    try:
        fragment = calibrate.kelly_fragment(result, args.scenario)
    except calibrate.CalibrationError as exc:
        raise BadInput(str(exc)) from None
    console = _console()
    table = Table(
        title=f"Kelly measured on {args.scenario}: {result['paths']} paths",
        caption="estimate [95 % confidence interval]",
    )
    table.add_column("quantity")
    table.add_column("estimate [95 % CI]", justify="right")

    def row(heading: str, key: str) -> None:
        table.add_row(
            heading, f"{result[key]:.4g} [{result[key + '_lo']:.4g}, {result[key + '_hi']:.4g}]"
        )

    row("sleeve Kelly f*: share of the portfolio (horizon returns)", "sleeve")
    row("sleeve Kelly f* from 21-day returns", "sleeve_21d")
    table.add_row(
        "expected log growth: at f* / at the scenario's share / cash",
        f"{result['sleeve_growth']:.4g} / {result['sleeve_growth_seed']:.4g} / "
        f"{result['sleeve_growth_cash']:.4g}",
    )
    table.add_section()
    row("per trade (short puts only) p: win probability", "p")
    row("per trade a: average win on collateral", "avg_win")
    row("per trade b: average loss on collateral", "avg_loss")
    row("per trade Kelly, seed formula p - (1-p) b/a", "seed_fraction")
    row("per trade growth-optimal p/b - (1-p)/a (x bankroll)", "growth_optimal")
    console.print(table)
    share, sleeve = result["sleeve_share_seed"], result["sleeve"]
    console.print(
        "The per-trade figures leave out the hedge calls, share moves after assignment, costs "
        "and financing, and count a path's overlapping trades as separate bets; the sleeve "
        "Kelly sizes the whole strategy against cash."
    )
    if result["sleeve_unbounded"] > 0:
        console.print(
            f"No path did worse than cash: the growth rises without bound; f* is reported at "
            f"the cap {sleeve:g}."
        )
    elif sleeve > 0 and sleeve >= 0.95 * result["sleeve_max"]:
        console.print(
            f"f* is within 5 % of {result['sleeve_max']:.4g}, where the worst path would wipe "
            "the portfolio out: f* is set by the worst paths and falls with more paths."
        )
    if fragment is None:
        console.print(
            f"Do not allocate: no positive share of the portfolio beats cash (f* = 0; the "
            f"scenario puts {share:.1%} in the sleeve). No fragment written."
        )
        return 0
    over = calibrate.over_bet(result)
    verdict = "over-bets" if over > 1 else "under-bets"
    console.print(
        f"The scenario's sleeve share {share:.1%} is {over:.3g} x f* = {sleeve:.4g}: it "
        f"{verdict} the sleeve Kelly."
    )
    _write_text(out, fragment)
    console.print(f"wrote {out}: [capital] kelly_fraction = {sleeve:.6g}")
    return 0


def calibrate_market_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from simkit import calibrate
    from simkit.calibrate_market import to_toml_fragment
    from simkit.paths.history import HistoryError

    out = Path(args.out) if args.out else Path("results") / f"{Path(args.history).stem}.market.toml"
    _writable_file(out)
    models = ("gbm", "merton") if args.model == "both" else (args.model,)
    try:
        result = calibrate.calibrate_market(args.history, models)
    except (HistoryError, calibrate.CalibrationError) as exc:
        raise BadInput(str(exc)) from None
    history = result["history"]
    console = _console()
    console.print(
        f"{args.history}: {history.n_days} days ({history.dates[0]} to {history.dates[-1]}), "
        f"{history.n_days - 1} daily log returns, dt = 1/252"
        + ("; iv column fitted as a log-OU process" if history.iv is not None else "")
    )
    for model, fit in result["fits"].items():
        table = Table(title=f"{model}: maximum likelihood")
        table.add_column("parameter")
        table.add_column("estimate", justify="right")
        table.add_column("standard error", justify="right")
        for key, se in fit["se"].items():
            table.add_row(key, f"{fit[key]:.6g}", f"{se:.3g}")
        console.print(table)
    comparison = Table(title="model comparison (daily log returns)")
    for heading in ("model", "log-likelihood", "parameters", "AIC", "delta AIC"):
        comparison.add_column(heading, justify="right")
    for model, fit in result["fits"].items():
        k = 2 + (3 if model == "merton" else 0)
        comparison.add_row(
            model,
            f"{fit['fit']['loglik']:.2f}",
            str(k),
            f"{fit['fit']['aic']:.2f}",
            f"{result['delta_aic'][model]:.2f}",
        )
    console.print(comparison)
    chosen = result["best"]
    if len(result["fits"]) > 1:
        console.print(f"preferred by AIC: {chosen}")
    _write_text(out, to_toml_fragment(result["fits"][chosen]))
    console.print(
        f"wrote {out} ({chosen}; copy its [market] table into a scenario, [fit] is a record)"
    )
    return 0


def calibrate_target_command(args: argparse.Namespace) -> int:
    from simkit import calibrate

    overrides = _overrides(args.overrides)
    scenario = _load(args.scenario, overrides)
    paths = _kelly_paths(args, scenario, 2_000)
    console = _console()
    _enable_compile_cache()

    def show(x: float, value: float, se: float) -> None:
        if not shown:  # the first simulation: the inputs are valid
            shown.append(True)
            console.print(
                f"solving {args.metric} = {args.target:g} for {args.param} in "
                f"[{args.bracket[0]:g}, {args.bracket[1]:g}] ({paths} paths, the same seed "
                "for every evaluation)"
            )
        console.print(f"  {args.param} = {x:.6g}: {args.metric} = {value:.6g} (se {se:.3g})")

    shown: list[bool] = []
    try:
        result = calibrate.calibrate_target(
            args.scenario,
            args.param,
            args.metric,
            args.target,
            args.bracket,
            overrides=overrides,
            paths=paths,
            seed=args.seed,
            engine=args.engine,
            xtol=args.xtol,
            on_evaluation=show,
        )
    except calibrate.CalibrationError as exc:
        raise BadInput(str(exc)) from None
    if result.status != "root":
        console.print(result.message)
        return 0
    console.print(
        f"{args.param} = {result.root:.6g} +/- {result.uncertainty:.3g} "
        f"(se of {args.metric} {result.metric_se:.3g} at the root / |slope| "
        f"{abs(result.slope):.4g} over +/- {result.slope_step:.3g}; tolerance {result.xtol:.3g}); "
        f"{args.metric} there = {result.metric_at_root:.6g}; "
        f"{len(result.evaluations)} simulations"
    )
    if result.message:
        console.print(result.message)
    return 0


COMMANDS += [_cmd_claims, _cmd_calibrate]


# --------------------------------------------------------------------------- stress, report
# (issue 6: each subcommand is one `_cmd_x(sub)` + its command function; append to COMMANDS)


STRESS_DEFAULT_PATHS = 5000  # a stress run is 4 simulations per stress (9 stresses: 36)
STRESS_DIR = Path("scenarios") / "stress"


def _default_stress_files() -> list[Path]:
    """Every `scenarios/stress/*.toml`: under the working directory, else beside the package."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        files = sorted((base / STRESS_DIR).glob("*.toml"))
        if files:
            return files
    raise BadInput(
        f"simkit stress: no stress files given and none found in {STRESS_DIR}/; "
        "name them: simkit stress FILE.toml ..."
    )


def _default_base() -> str:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base / "scenarios" / "baseline.toml"
        if candidate.exists():
            return str(candidate)
    return str(Path("scenarios") / "baseline.toml")


def _cmd_stress(sub: Any) -> None:
    p = sub.add_parser(
        "stress",
        help="apply stress scenarios to a base scenario's paths, limits enforced and not",
    )
    p.add_argument(
        "stresses",
        nargs="*",
        metavar="STRESS.toml",
        help=f"stress files (default: every file of {STRESS_DIR}/)",
    )
    p.add_argument(
        "--scenario", metavar="BASE.toml", help="base scenario (default scenarios/baseline.toml)"
    )
    p.add_argument(
        "--paths",
        type=int,
        help="paths per run (default: the base scenario's paths, at most "
        f"{STRESS_DEFAULT_PATHS:,}; each stress is run 4 times on them)",
    )
    p.add_argument("--seed", type=int, help="random seed (overrides simulation.seed)")
    p.add_argument(
        "--out", metavar="FILE.nc", help="result file (default results/stress_<scenario>.nc)"
    )
    p.add_argument("--chunk-size", type=int, help="paths per task")
    p.add_argument("--scheduler", metavar="ADDRESS", help="as for simkit run")
    p.add_argument("--engine", help="jax | reference (overrides simulation.engine)")
    p.add_argument("--float64", action="store_true", help="compute in float64")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the base scenario (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=stress_command)


def _load_stresses(paths: Sequence[Path], n_steps: int) -> list[Any]:
    """Every stress file, each checked; all their problems in one BadInput."""
    from simkit.scenario import ScenarioError, load_stress

    specs, problems = [], []
    for path in paths:
        try:
            specs.append(load_stress(path, n_steps))
        except ScenarioError as exc:
            problems.append(str(exc))
    if problems:
        raise BadInput("\n".join(problems))
    return specs


def stress_command(args: argparse.Namespace) -> int:
    from simkit import run, stress
    from simkit.store import write_dataset

    overrides = _simulation_overrides(args)
    base = args.scenario or _default_base()
    scenario = _load(base, overrides)
    if scenario.grid:
        raise BadInput(
            f"{base}: grid: a stress base scenario has no [grid]; stress one cell at a time "
            "(write it as its own file, or set the swept keys with --set)"
        )
    paths = (
        args.paths
        if args.paths is not None
        else min(scenario.simulation.paths, STRESS_DEFAULT_PATHS)
    )
    files = [Path(f) for f in args.stresses] or _default_stress_files()
    specs = _load_stresses(files, scenario.simulation.n_steps)
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BadInput(
            f"simkit stress: {', '.join(twice)}: given twice (a stress is its file stem)"
        )
    out = Path(args.out) if args.out else Path("results") / f"stress_{Path(base).stem}.nc"
    check_output_path(out)
    _check_scheduler(args.scheduler)

    _enable_compile_cache()
    try:
        ds = stress.run_stress(
            scenario,
            specs,
            paths=paths,
            scheduler=args.scheduler,
            progress=not args.no_progress,
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    write_dataset(ds, out)
    console = _console()
    print_stress_tables(ds, console)
    console.print(f"wrote {out} ({ds.attrs['wall_time_s']:.1f} s)")
    return 0


# (variable, heading, format) of the stress outcome table
STRESS_SUMMARY = (
    ("prob_ruin", "P(ruin)", "pct"),
    ("prob_margin_call", "P(margin call)", "pct"),
    ("prob_loss", "P(loss)", "pct"),
    ("total_return_mean", "mean return", "pct"),
    ("var_99", "VaR 99%", "pct"),
    ("cvar_99", "CVaR 99%", "pct"),
    ("equity_vs_baseline_mean", "vs none (USD)", "usd"),
    ("stop_losses_per_path", "stops/path", "num"),
    ("stop_loss_saved_mean", "stops saved (USD)", "usd"),
)


def print_stress_tables(ds: Any, console: Any) -> None:
    """Three tables, one row per (stress, limits on/off): outcomes against the unstressed
    baseline; the share of paths breaching each limit with the median day of the first
    breach; the mean horizon loss of the paths that breached each limit."""
    from rich.table import Table

    title = f"{ds.attrs.get('title', 'simkit stress')}: {ds.attrs.get('paths')} paths"
    rows = [(i, j) for i in range(ds.sizes["stress"]) for j in range(ds.sizes["enforce_limits"])]

    def head(table: Any) -> None:
        table.add_column("stress", no_wrap=True)
        table.add_column("limits", justify="center")

    def label(i: int, j: int) -> list[str]:
        name = str(ds["stress"].values[i]) if j == 0 else ""
        return [name, "on" if bool(ds["enforce_limits"].values[j]) else "off"]

    outcomes = Table(
        title=f"{title}: outcomes",
        caption="returns over the horizon, as fractions of the initial sleeve; 'vs none': mean "
        "change of final equity against the same path unstressed; 'stops saved': final equity "
        "with stop-losses minus without, same paths",
    )
    head(outcomes)
    for _, heading, _ in STRESS_SUMMARY:
        outcomes.add_column(heading, justify="right")
    for i, j in rows:
        index = {"stress": i, "enforce_limits": j}
        values = [_fmt(ds[n].isel(index).item(), k) for n, _, k in STRESS_SUMMARY]
        outcomes.add_row(*label(i, j), *values, end_section=j == ds.sizes["enforce_limits"] - 1)
    console.print(outcomes)

    limits = [str(x) for x in ds["limit"].values]
    breaches = Table(
        title=f"{title}: limit breaches",
        caption="share of paths that breached each limit at least once [median day of the "
        "first breach]",
    )
    head(breaches)
    for limit in limits:
        breaches.add_column(limit, justify="right")
    given = Table(
        title=f"{title}: loss given breach",
        caption="mean horizon loss (fraction of the initial sleeve, > 0 a loss) of the paths "
        "that breached each limit; '-': none did",
    )
    head(given)
    for limit in limits:
        given.add_column(limit, justify="right")
    for i, j in rows:
        index = {"stress": i, "enforce_limits": j}
        share = ds["breach_path_share"].isel(index).values
        first = ds["days_to_first_breach_median"].isel(index).values
        cells = [
            _fmt(s, "pct") + ("" if math.isnan(d) else f" [{d:.0f}]")
            for s, d in zip(share, first, strict=True)
        ]
        end = j == ds.sizes["enforce_limits"] - 1
        breaches.add_row(*label(i, j), *cells, end_section=end)
        lgb = ds["loss_given_breach"].isel(index).values
        given.add_row(*label(i, j), *[_fmt(x, "pct") for x in lgb], end_section=end)
    console.print(breaches)
    console.print(given)


def _cmd_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="PNG figures and an HTML page of a result file (run or stress)"
    )
    p.add_argument("result", metavar="RESULT.nc")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the PNGs and index.html (default: <result>_report/ beside the file)",
    )
    p.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    from simkit import report

    result = Path(args.result)
    if not result.exists():
        raise BadInput(f"{result}: no such file")
    if result.is_dir():
        raise BadInput(f"{result}: is a directory; give a result file (.nc)")
    out = Path(args.out) if args.out else report.default_folder(result)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: exists and is not a directory")
    try:
        written = report.make_report(result, out)
    except report.NotAResult as exc:
        raise BadInput(f"{result}: {exc}") from None
    console = _console()
    console.print(
        f"wrote {written.index} ({len(written.figures)} figures) in {written.seconds:.1f} s"
    )
    return 0


COMMANDS += [_cmd_stress, _cmd_report]


# --------------------------------------------------------------------------- explain
# (what each rule costs: one `_cmd_explain(sub)` + its command function; appended to COMMANDS)


EXPLAIN_DEFAULT_PATHS = 20_000  # 15 runs of the baseline: ~1.5 min on 2 cores (README)


def _cmd_explain(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="what each rule or assumption costs: the scenario against itself with one "
        "changed, on the same paths",
    )
    p.add_argument("scenario", metavar="SCENARIO.toml", help="scenario without [grid]")
    p.add_argument(
        "--paths",
        type=int,
        help="paths per run (default: the scenario's paths, at most "
        f"{EXPLAIN_DEFAULT_PATHS:,}; the scenario and each change are one run each)",
    )
    p.add_argument("--seed", type=int, help="random seed (overrides simulation.seed)")
    p.add_argument(
        "--out", metavar="FILE.nc", help="result file (default results/<scenario>.explain.nc)"
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="as for simkit run")
    p.add_argument("--engine", help="jax | reference (overrides simulation.engine)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key before the changes are applied (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    import json

    from simkit import explain, run
    from simkit.store import write_dataset

    overrides = _overrides(args.overrides)
    for flag, key in (
        ("paths", "simulation.paths"),
        ("seed", "simulation.seed"),
        ("engine", "simulation.engine"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    scenario = _load(args.scenario, overrides)
    if scenario.grid:
        raise BadInput(
            f"{args.scenario}: grid: explain compares one scenario with itself; use a scenario "
            "without [grid] (write the cell you want as its own file)"
        )
    paths = (
        scenario.simulation.paths
        if args.paths is not None
        else min(scenario.simulation.paths, EXPLAIN_DEFAULT_PATHS)
    )
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.explain.nc"
    check_output_path(out)
    _check_scheduler(args.scheduler)

    _enable_compile_cache()
    try:
        ds = explain.explain(
            scenario, paths=paths, scheduler=args.scheduler, progress=not args.no_progress
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    write_dataset(ds, out)
    console = _console()
    print_explain_table(ds, console)
    for skipped in json.loads(ds.attrs.get("skipped_changes", "[]")):
        console.print(f"skipped {skipped['change']}: {skipped['reason']}")
    console.print(f"wrote {out} ({ds.attrs['runs']} runs, {ds.attrs['wall_time_s']:.1f} s)")
    return 0


def _signed(x: Any, kind: str) -> str:
    """A delta: percentage points for fractions (`pp`), USD, or a plain number, with a sign."""
    x = float(x)
    if math.isnan(x):
        return "-"
    if kind == "pp":
        return f"{100 * x:+.1f}"
    if kind == "usd":
        return f"{x:+,.0f}"
    return f"{x:+.3f}"


def _plain(x: Any, kind: str) -> str:
    x = float(x)
    if math.isnan(x):
        return "-"
    if kind == "pp":
        return f"{100 * x:.1f}"
    if kind == "usd":
        return f"{x:,.0f}"
    return f"{x:.3f}"


# (metric, heading of its value column ("": none), heading of its delta column, format);
# headings are broken over lines by hand so that the table fits 240 columns unwrapped.
EXPLAIN_COLUMNS = (
    ("annual_return_mean", "annual return\nmean (%)", "Δ annual return mean\n(pp) [95 % CI]", "pp"),
    ("prob_loss", "P(loss)\n(%)", "Δ P(loss)\n(pp) [95 % CI]", "pp"),
    (
        "max_drawdown_median",
        "max drawdown\nmedian (%)",
        "Δ max drawdown median\n(pp) [95 % CI]",
        "pp",
    ),
    (
        "kelly_sleeve_fraction",
        "sleeve Kelly f*\n(× portfolio)",
        "Δ sleeve Kelly f*\n[95 % CI]",
        "num",
    ),
    ("final_equity_mean", "", "Δ final equity mean\n(USD) [95 % CI]", "usd"),
)


def print_explain_table(ds: Any, console: Any) -> None:
    """One row for the scenario, then one per change (sorted by |Δ annual return|): each
    metric's value and its change against the scenario with the paired 95 % interval."""
    from rich.table import Table

    paths = int(ds["paths"].values)
    table = Table(
        title=f"{ds.attrs.get('title', 'simkit explain')}: what each rule or assumption costs "
        f"({paths:,} paths, seed {ds.attrs.get('seed')}, every run on the same paths)",
        caption="Δ = changed − scenario [paired 95 % interval: means and P(loss) by the "
        "standard error of the per-path differences, the median and f* by a paired path "
        "bootstrap]; pp = percentage points; paths moved: paths whose final equity changed",
    )
    table.add_column("change (TOML override)", no_wrap=True)
    for _, value_heading, delta_heading, _ in EXPLAIN_COLUMNS:
        if value_heading:
            table.add_column(value_heading, justify="right", no_wrap=True)
        table.add_column(delta_heading, justify="right", no_wrap=True)
    table.add_column("paths\nmoved", justify="right", no_wrap=True)
    base = []
    for name, value_heading, _, kind in EXPLAIN_COLUMNS:
        base += [_plain(ds[f"base_{name}"].values, kind)] if value_heading else []
        base.append("")
    table.add_row("(the scenario as written)", *base, "", end_section=True)
    for i, label in enumerate(ds["change"].values):
        cells = []
        for name, value_heading, _, kind in EXPLAIN_COLUMNS:
            d, lo, hi = (
                ds[f"{name}{suffix}"].values[i] for suffix in ("_delta", "_delta_lo", "_delta_hi")
            )
            if value_heading:
                cells.append(_plain(ds[name].values[i], kind))
            cells.append(f"{_signed(d, kind)} [{_signed(lo, kind)}, {_signed(hi, kind)}]")
        table.add_row(str(label), *cells, f"{int(ds['paths_changed'].values[i]):,}")
    console.print(table)


COMMANDS += [_cmd_explain]


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
