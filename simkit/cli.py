"""The `simkit` command: argument parsing and printing only.

Exit codes: 0 success; 2 bad input (a scenario problem, a bad flag, an unusable output path,
an unreachable scheduler: one message on stderr, no traceback, nothing written); 1 an
internal error (a short message; the traceback with `SIMKIT_DEBUG=1`).

Each subcommand is one `_cmd_<name>(subparsers)` function that adds its parser and sets
`func`; `COMMANDS` lists them. Adding a subcommand is one function and one line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simkit.formats import percent

__all__ = ["main"]


class BadInput(Exception):
    """Input the user can fix: reported with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so `main` returns 2 (tests call `main`)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- helpers


def _load(path: str, overrides: dict[str, Any] | None = None):
    """The scenario; what it says the run does otherwise than the file asks goes to stderr."""
    from simkit.scenario import load_scenario

    scenario = load_scenario(path, overrides)
    for note in scenario.notes:
        print(f"note: {path}: {note}", file=sys.stderr)
    return scenario


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    from simkit.scenario import parse_override

    return dict(parse_override(p) for p in pairs)


def check_output_path(out: Path) -> None:
    """Raise BadInput unless a result file can be written at `out` (leaves nothing behind)."""
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
    _check_can_write_in(out, "--out")


def _check_can_write_in(out: Path, flag: str) -> None:
    """Raise BadInput unless a file can be created at `out`: in its directory, or in the
    missing directories that writing it creates (the writers make them). Found by trying, as
    the writer does (a temporary file beside the target): `os.access` says yes to root
    everywhere, /proc included. The probe is removed again; nothing is left behind."""
    import tempfile

    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{flag} {out}: cannot create its directory: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {out}: directory {ancestor} is not writable")
    missing = ancestor != out.parent
    try:
        # A missing directory is stood for by a temporary one in the nearest existing one.
        where = (
            Path(tempfile.mkdtemp(prefix=".simkit-probe.", dir=ancestor)) if missing else ancestor
        )
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=where)
            os.close(fd)
            os.unlink(probe)
        finally:
            if missing:
                with contextlib.suppress(OSError):
                    where.rmdir()
    except OSError as exc:
        what = "create its directory in" if missing else "create a file in"
        reason = exc.strerror or type(exc).__name__
        raise BadInput(f"{flag} {out}: cannot {what} {ancestor} ({reason})") from None


def _enable_compile_cache() -> None:
    """Keep compiled engines between runs (`simkit.compile_cache`)."""
    from simkit import compile_cache

    compile_cache.enable()


def _fmt(x: Any, kind: str = "num") -> str:
    x = float(x)
    if math.isnan(x):
        return "-"
    if kind == "pct":
        return percent(x, 1, unit="%")
    if kind == "loss":  # a loss stored as a positive number (VaR, CVaR), printed as a return
        return percent(-x, 1, unit="%")
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


def _summary_fmt(x: Any, kind: str) -> str:
    """The summary's one format per kind: `pct` -12.3 % as "-12.3" (the unit has its own
    column; a nonzero share below the printed digit as "<0.1", `simkit.formats.percent`),
    `ratio` two decimals."""
    x = float(x)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    if kind == "pct":
        return percent(x, 1, unit="")
    if kind == "count":
        return f"{x:,.1f}"
    return f"{x:.2f}"


def _summary_value(ds: Any, name: str, index: dict, sign: float) -> tuple[float, float, float]:
    if name == "kelly_sleeve_fraction" and _one_path(ds, index):
        name = "kelly_sleeve_fraction_21d"  # one horizon return is no distribution
    value = sign * float(ds[name].isel(index).item())
    if f"{name}_lo" not in ds:
        return value, math.nan, math.nan
    bounds = [sign * float(ds[f"{name}{s}"].isel(index).item()) for s in ("_lo", "_hi")]
    return value, min(bounds), max(bounds)


def _seed_claims() -> dict[str, float]:
    from simkit.claims import SEED

    return {
        "win_rate_trade": SEED.win_rate,
        "annual_return_mean": SEED.annual_return,
        "sharpe_pooled": SEED.sharpe,
        "max_drawdown_median": SEED.max_drawdown,
        "kelly_sleeve_fraction": SEED.kelly_cap,
    }


# (variable, heading, format, sign): the summary's key metrics. Losses are negative returns
# everywhere in the table: VaR and CVaR (stored as positive losses) are printed negated.
SUMMARY = (
    ("trades_per_path", "short-put trades per path", "count", 1.0),
    ("win_rate_trade", "win rate, short-put trades", "pct", 1.0),
    ("win_rate_path", "win rate, paths (P&L > 0)", "pct", 1.0),
    ("prob_loss", "P(loss over the horizon)", "pct", 1.0),
    ("annual_return_mean", "annual return, mean", "pct", 1.0),
    ("annual_return_median", "annual return, median", "pct", 1.0),
    ("sharpe_pooled", "Sharpe, pooled path-days", "ratio", 1.0),
    ("sharpe", "Sharpe, median path", "ratio", 1.0),
    ("max_drawdown_median", "max drawdown, median path", "pct", 1.0),
    ("var_99", "VaR 99 %, horizon return", "pct", -1.0),
    ("cvar_99", "CVaR 99 %, horizon return", "pct", -1.0),
    ("prob_ruin", "P(ruin)", "pct", 1.0),
    ("kelly_sleeve_fraction", "Kelly of the sleeve (x portfolio)", "ratio", 1.0),
    ("profit_take_loss_share", "profit-takes that lost money", "pct", 1.0),
)
_UNITS = {"pct": "%", "ratio": "", "usd": "USD", "num": "", "count": ""}
SUMMARY_NOTE = (
    "Losses are negative returns: drawdown, VaR and CVaR read -26.6 = a 26.6 % loss. Win rates "
    "count short-put trades only (hedges, shares and costs are outside them). A profit-take "
    "fires when the mid has fallen to 50 % of the premium, but the put is bought back at the "
    "ask and pays a second commission, so on a cheap put it can close at a loss. Seed column: "
    "what the strategy document claims (its sleeve is 20 % of the portfolio)."
)


def _one_path(ds: Any, index: dict) -> bool:
    """Whether the cell has one path (a replay): no interval across paths exists."""
    return int(ds["paths"].isel(index).item()) == 1


def _interval_text(ds: Any, index: dict, name: str, lo: float, hi: float, kind: str) -> str:
    """`[lo, hi]`; "n/a" for a one-path cell (the interval needs paths); "" without one."""
    if not math.isnan(lo):
        return f"[{_summary_fmt(lo, kind)}, {_summary_fmt(hi, kind)}]"
    has_interval = f"{name}_lo" in ds or name == "kelly_sleeve_fraction"
    return "n/a" if has_interval and _one_path(ds, index) else ""


def _horizon(ds: Any) -> str:
    steps = ds.attrs.get("n_steps")
    if steps is None:
        return ""
    years = int(steps) / 252
    return f", horizon {int(steps)} trading days ({years:.3g} year{'' if years == 1 else 's'})"


def print_summary(ds: Any, console: Any) -> None:
    """The key metrics with their 95 % intervals and the seed's claims: one row per metric
    without a grid, one row per cell (interval under the estimate) with a grid."""
    from rich.table import Table

    grid_dims = list(ds["paths"].dims)
    summary = [row for row in SUMMARY if row[0] in ds]
    claims = _seed_claims()
    title = (
        f"{ds.attrs.get('title', 'simkit run')}: {ds.attrs.get('paths')} paths per cell"
        f"{_horizon(ds)}"
    )
    table = Table(title=title, caption="estimate [95 % confidence interval]")
    if not grid_dims:
        table.add_column("metric")
        table.add_column("unit")
        table.add_column("estimate", justify="right")
        table.add_column("95 % CI", justify="right")
        table.add_column("seed claims", justify="right")
        for name, heading, kind, sign in summary:
            value, lo, hi = _summary_value(ds, name, {}, sign)
            interval = _interval_text(ds, {}, name, lo, hi, kind)
            claim = _summary_fmt(claims[name], kind) if name in claims else ""
            if name == "kelly_sleeve_fraction" and _one_path(ds, {}):
                heading = "Kelly of the sleeve, 21-day returns (x portfolio)"
            shown = "n/a" if math.isnan(value) and _one_path(ds, {}) else _summary_fmt(value, kind)
            table.add_row(heading, _UNITS[kind], shown, interval, claim)
        console.print(table)
        console.print(SUMMARY_NOTE + _one_path_note(ds))
        return
    for dim in grid_dims:
        table.add_column(dim, justify="right", no_wrap=True, min_width=len(dim))
    for _, heading, kind, _ in summary:
        unit = f" ({_UNITS[kind]})" if _UNITS[kind] else ""
        table.add_column(heading + unit, justify="right")
    shape = [ds.sizes[d] for d in grid_dims]
    for flat in range(math.prod(shape)):
        index = dict(zip(grid_dims, _unravel(flat, shape), strict=True))
        coords = [str(ds[d].values[i]) for d, i in index.items()]
        values = []
        for name, _, kind, sign in summary:
            value, lo, hi = _summary_value(ds, name, index, sign)
            text = _summary_fmt(value, kind)
            interval = _interval_text(ds, index, name, lo, hi, kind)
            if interval:
                text += f"\n{interval}"
            values.append(text)
        table.add_row(*coords, *values)
    table.add_row(
        *(["seed claims"] + [""] * (len(grid_dims) - 1)),
        *(_summary_fmt(claims[n], k) if n in claims else "" for n, _, k, _ in summary),
    )
    console.print(table)
    console.print(SUMMARY_NOTE + _one_path_note(ds))


def _one_path_note(ds: Any) -> str:
    if int(ds["paths"].min()) != 1:
        return ""
    return (
        " One path (a history replayed): the intervals across paths are n/a, and the Kelly of "
        "the sleeve is read from the path's non-overlapping 21-day returns."
    )


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


def _add_run_flags(
    p: Any,
    paths_help: str,
    *,
    chunk_size: bool = False,
    scheduler: bool = False,
    float64: bool = False,
    progress: bool = True,
) -> None:
    """The flags a command shares with `simkit run`, each declared here once: --paths (its
    help given: what a path count means, and its default, differ by command), --seed,
    --engine, --set, and those asked for: --chunk-size, --scheduler, --float64,
    --no-progress. `_simulation_overrides` reads them."""
    p.add_argument("--paths", type=int, help=paths_help)
    p.add_argument("--seed", type=int, help="random seed of the paths (overrides simulation.seed)")
    if chunk_size:
        p.add_argument(
            "--chunk-size", type=int, help="paths per task (overrides simulation.chunk_size)"
        )
    if scheduler:
        p.add_argument(
            "--scheduler",
            metavar="ADDRESS",
            help="dask scheduler address (tcp://host:8786), or synchronous | threads | "
            "processes; default: chosen by the size of the run",
        )
    p.add_argument("--engine", help="jax | reference (overrides simulation.engine)")
    if float64:
        p.add_argument("--float64", action="store_true", help="compute in float64")
    _add_set_flag(p)
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_set_flag(p: Any) -> None:
    """--set KEY=VALUE, repeatable, into `args.overrides` (`_overrides` parses them)."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set market.sigma=2.5 (repeatable)",
    )


def _cmd_run(sub: Any) -> None:
    p = sub.add_parser("run", help="simulate a scenario (its whole grid) and write a result file")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    _add_run_flags(
        p,
        "paths per grid cell (overrides simulation.paths)",
        chunk_size=True,
        scheduler=True,
        float64=True,
    )
    p.add_argument("--out", metavar="FILE.nc", help="result file (default results/<scenario>.nc)")
    p.add_argument("--per-path", action="store_true", help="also store every path's summary")
    p.add_argument(
        "--trades",
        type=int,
        default=0,
        metavar="N",
        help="store every trade of the first N paths of each grid cell (a `trade` dimension; "
        "recorded by the reference engine, checked against the run's per-path results)",
    )
    p.add_argument(
        "--equity",
        action="store_true",
        help="also store every path's daily sleeve equity (`equity` over path x step, "
        "compressed HDF5 chunks: about 0.74 GB per million path-years in float32, 1.6 GB "
        "with --float64)",
    )
    p.set_defaults(func=run_command)


def _simulation_overrides(args: argparse.Namespace) -> dict:
    """`--set` overrides plus the `[simulation]` flags of `_add_run_flags` that the command
    has (`run`, `stress`, `explain`)."""
    overrides = _overrides(args.overrides)
    for flag, key in (
        ("paths", "simulation.paths"),
        ("seed", "simulation.seed"),
        ("chunk_size", "simulation.chunk_size"),
        ("engine", "simulation.engine"),
    ):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    if getattr(args, "float64", False):
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

    if args.trades < 0:
        raise BadInput(f"--trades: must be a whole number of paths >= 0; got {args.trades}")
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
            trades=args.trades,
            equity=args.equity,
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    console = _console()
    print_summary(ds, console)
    if "trade" in ds.dims:
        console.print(
            f"trade log: {ds.sizes['trade']:,} trades of the first {ds.attrs['trade_log_paths']} "
            f"path(s) of each cell, by the reference engine in "
            f"{ds.attrs['trade_log_wall_time_s']:.1f} s (variables trade_*; "
            f"simkit.trade_log.frame(ds) reads them); the log "
            f"{ds.attrs['trade_log_check'].split(':')[0]}"
        )
    console.print(f"wrote {out} ({ds.attrs['wall_time_s']:.1f} s, {ds.attrs['executor']})")
    console.print(f"next: simkit report {out}   (figures and an HTML page beside it)")
    return 0


def _cmd_check(sub: Any) -> None:
    p = sub.add_parser("check", help="validate a scenario and list its grid cells")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    _add_set_flag(p)
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


def _writable_file(out: Path, flag: str = "--out") -> None:
    """Raise BadInput unless a file can be written at `out` (leaves nothing behind)."""
    if out.is_dir():
        raise BadInput(f"{flag} {out}: is a directory; give a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise BadInput(f"{flag} {out}: the file exists and is not writable")
    _check_can_write_in(out, flag)


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
    p.add_argument(
        "--no-markets",
        action="store_true",
        help="skip the verdicts across the family of markets ([claims] table)",
    )
    p.add_argument(
        "--market-paths",
        type=int,
        help="paths per market of the family (overrides claims.paths)",
    )
    p.set_defaults(func=claims_command)


def _explain_beside(scenario: str, out: Path) -> tuple[Any, str] | None:
    """The `simkit explain` result of this scenario, when one sits beside the claims report
    or in results/ (`<scenario stem>.explain.nc`), loaded; else None."""
    import xarray as xr

    name = f"{Path(scenario).stem}.explain.nc"
    for candidate in (out.parent / name, Path("results") / name):
        if candidate.is_file():
            try:
                with xr.open_dataset(candidate) as ds:
                    if "change" in ds.dims and "annual_return_mean_delta" in ds:
                        return ds.load(), str(candidate)
            except (OSError, ValueError):
                continue
    return None


def claims_command(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from simkit import claims

    overrides = _overrides(args.overrides)
    if args.market_paths is not None:
        overrides["claims.paths"] = args.market_paths
    scenario = _load(args.scenario, overrides)
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.scenario).stem}.claims.md"
    if out.suffix.lower() == ".json":
        raise BadInput(f"--out {out}: names the Markdown report (FILE.md); the JSON goes beside it")
    json_out = out.with_suffix(".json")
    png_out = out.with_suffix(".markets.png")
    _writable_file(out)
    _writable_file(json_out)
    _enable_compile_cache()
    report = claims.check_claims(
        scenario,
        paths=args.paths,
        seed=args.seed,
        engine=args.engine,
        fills=not args.no_fills,
        markets=not args.no_markets,
        market_paths=args.market_paths,
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
        ("across markets", 4),
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
            row.markets,
        )
    console.print(table)
    written = [out, json_out]
    explained = _explain_beside(args.scenario, out)
    if explained is not None:
        console.print(f"What each rule costs (from {explained[1]}):")
        print_explain_table(explained[0], console)
    _write_text(out, claims.to_markdown(report, explained))
    _write_text(json_out, claims.to_json(report))
    if report.markets is not None:
        from simkit.claims_markets import plot_claim_map

        console.print("\n".join(claims.markets_markdown(report.markets)))
        if plot_claim_map(report.markets, png_out):
            written.append(png_out)
    elif report.meta.get("markets_skipped"):
        console.print(f"Across markets: {report.meta['markets_skipped']}.")
    console.print(f"wrote {', '.join(map(str, written))} ({report.meta['wall_time_s']:.1f} s)")
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

    m = what.add_parser(
        "market", help="maximum likelihood of GBM / Merton / GJR-GARCH on a history CSV"
    )
    m.add_argument(
        "history", metavar="HISTORY.csv", help="CSV date,close[,iv] (adj close read when present)"
    )
    m.add_argument(
        "--model",
        choices=("gbm", "merton", "garch", "both", "all"),
        default="all",
        help="model to fit; all (default: gbm, merton and garch) and both (gbm and merton) rank "
        "them by AIC and write the lowest",
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


_MARKET_MODELS = {"both": ("gbm", "merton"), "all": ("gbm", "merton", "garch")}


def calibrate_market_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from simkit import calibrate
    from simkit.calibrate_market import N_PARAMS, to_toml_fragment
    from simkit.paths.history import HistoryError

    out = Path(args.out) if args.out else Path("results") / f"{Path(args.history).stem}.market.toml"
    _writable_file(out)
    models = _MARKET_MODELS.get(args.model, (args.model,))
    try:
        result = calibrate.calibrate_market(args.history, models)
    except (HistoryError, calibrate.CalibrationError) as exc:
        raise BadInput(str(exc)) from None
    history = result["history"]
    console = _console()
    console.print(
        f"{args.history}: {history.n_days} days ({history.dates[0]} to {history.dates[-1]}), "
        f"{history.n_days - 1} daily log returns of column {history.close_column!r}, dt = 1/252"
        + (
            "; iv column fitted as a log-OU process (garch: IV over the conditional vol)"
            if history.iv is not None
            else ""
        )
    )
    for model, fit in result["fits"].items():
        table = Table(title=f"{model}: maximum likelihood")
        table.add_column("parameter")
        table.add_column("estimate", justify="right")
        table.add_column("standard error", justify="right")
        for key, se in fit["se"].items():
            table.add_row(key, f"{fit[key]:.6g}", f"{se:.3g}")
        for key in ("v0", "iv0"):
            if key in fit:
                table.add_row(key, f"{fit[key]:.6g}", "")
        if model == "garch":
            record = fit["fit"]
            table.add_row("persistence alpha + gamma/2 + beta", f"{record['persistence']:.6g}", "")
            table.add_row("long-run vol (annual)", f"{record['long_run_vol']:.4g}", "")
            table.add_row(
                "half-life of a variance shock", f"{record['half_life_days']:.3g} days", ""
            )
        console.print(table)
    comparison = Table(
        title="model comparison (the same daily log returns, as fractions)",
        caption="AIC = 2 parameters - 2 log-likelihood; lower is better",
    )
    for heading in ("model", "log-likelihood", "parameters", "AIC", "delta AIC"):
        comparison.add_column(heading, justify="right")
    for model, fit in sorted(result["fits"].items(), key=lambda item: result["delta_aic"][item[0]]):
        comparison.add_row(
            model,
            f"{fit['fit']['loglik']:.2f}",
            str(N_PARAMS[model]),
            f"{fit['fit']['aic']:.2f}",
            f"{result['delta_aic'][model]:.2f}",
        )
    console.print(comparison)
    chosen = result["best"]
    if len(result["fits"]) > 1:
        console.print(f"preferred by AIC: {chosen}")
    for warning in result["warnings"]:
        console.print(f"warning: {warning}")
    notes = [
        f"{len(result['fits'])} model(s) fitted; written: {chosen}"
        + (" (lowest AIC)" if len(result["fits"]) > 1 else "")
    ]
    notes += [f"warning: {w}" for w in result["warnings"]]
    _write_text(out, to_toml_fragment(result["fits"][chosen], result["provenance"], notes))
    console.print(
        f"wrote {out} ({chosen}; it loads into a scenario as written: paste it, [fit] is a record)"
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
    _add_run_flags(
        p,
        "paths per run (default: the base scenario's paths, at most "
        f"{STRESS_DEFAULT_PATHS:,}; each stress is run 4 times on them)",
        chunk_size=True,
        scheduler=True,
        float64=True,
    )
    p.add_argument(
        "--out", metavar="FILE.nc", help="result file (default results/stress_<scenario>.nc)"
    )
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
            out=out,
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    console = _console()
    print_stress_tables(ds, console)
    console.print(f"wrote {out} ({ds.attrs['wall_time_s']:.1f} s)")
    return 0


# (variable, heading, format) of the stress outcome table
STRESS_SUMMARY = (
    ("prob_loss", "P(loss)", "pct"),
    ("prob_ruin", "P(ruin)", "pct"),
    ("prob_margin_call", "P(margin call)", "pct"),
    ("var_99", "VaR 99%", "loss"),
    ("cvar_99", "CVaR 99%", "loss"),
)
# A stress "halts trading" when more than this share of paths sell no tranche after it, or
# when the paths sell fewer than this share of the tranches they sell unstressed after the
# same day; a halting stress whose mean return beats the unstressed one gets a note.
HALTED = 0.5


def _pm(ds: Any, name: str, index: dict) -> str:
    """`mean ±se` of `<name>_mean` and `<name>_se`, in percent."""
    mean = float(ds[f"{name}_mean"].isel(index))
    se = float(ds[f"{name}_se"].isel(index))
    if math.isnan(mean):
        return "-"
    if math.isnan(se):  # one path (a replay): no standard error
        return f"{100 * mean:+.1f}% ±n/a"
    return f"{100 * mean:+.1f}% ±{100 * se:.1f}"


def _given(value: float, count: float, kind: str = "pct") -> str:
    """A conditional statistic with its path count; `n/a (k paths)` below the minimum."""
    from simkit.stress import MIN_CONDITIONAL

    k = int(count)
    if k == 0:
        return "-"
    if k < MIN_CONDITIONAL:
        return f"n/a ({k} path{'s' if k != 1 else ''})"
    if math.isnan(value):
        return "-"
    return f"{_fmt(value, kind)} ({k})"


def sizing_breaches(ds: Any) -> tuple[list[str], list[str]]:
    """Limits breached on every day of every path in every row ("always"), and limits every
    path breaches on day 0 with its first tranche in every row (the sizing breaches them)."""
    limits = [str(x) for x in ds["limit"].values]
    always, start = [], []
    for k, limit in enumerate(limits):
        if bool((ds["breach_share"].isel(limit=k) >= 1.0).all()):
            always.append(limit)
        elif "breach_at_start_share" in ds and bool(
            (ds["breach_at_start_share"].isel(limit=k) >= 1.0).all()
        ):
            start.append(limit)
    return always, start


class _StressRows:
    """The (stress, limits on/off) rows of a stress dataset and the cells they print."""

    def __init__(self, ds: Any):
        self.ds = ds
        self.title = f"{ds.attrs.get('title', 'simkit stress')}: {ds.attrs.get('paths')} paths"
        self.n_enforce = ds.sizes["enforce_limits"]
        self.names = [str(x) for x in ds["stress"].values]
        self.base = self.names.index("none") if "none" in self.names else None

    def rows(self, shocked_only: bool = False):
        """(i, j, index, last): stress i, limits setting j, its `isel` index, and whether it
        ends the stress's section of the table."""
        for i in range(self.ds.sizes["stress"]):
            if shocked_only and int(self.ds["shock_day"].values[i]) < 1:
                continue
            for j in range(self.n_enforce):
                yield i, j, {"stress": i, "enforce_limits": j}, j == self.n_enforce - 1

    def table(self, what: str, caption: str, columns: Sequence[str]) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.title}: {what}", caption=caption)
        table.add_column("stress", no_wrap=True)
        table.add_column("limits", justify="center")
        for heading in columns:
            table.add_column(heading, justify="right")
        return table

    def label(self, i: int, j: int) -> list[str]:
        name = self.names[i] if j == 0 else ""
        return [name, "on" if bool(self.ds["enforce_limits"].values[j]) else "off"]

    def value(self, name: str, index: dict) -> float:
        return float(self.ds[name].isel(index))


def print_stress_tables(ds: Any, console: Any) -> None:
    """The stress tables, one row per (stress, limits on/off): outcomes against the unstressed
    baseline and against cash; the shock day's mark-to-market loss; the paths that stopped
    trading after the shock and why; the stop-losses; the limits the sizing itself breaches
    (one line each); the share of paths breaching each other limit with the median day of the
    first breach; the mean horizon loss of the paths that breached each limit. A conditional
    statistic over fewer than `simkit.stress.MIN_CONDITIONAL` paths prints `n/a (k paths)`."""
    r = _StressRows(ds)
    for printer in (
        _stress_outcomes,
        _stress_shock_day,
        _stress_after_shock,
        _stress_stop_losses,
        _stress_limits,
    ):
        printer(r, console)


def _stress_outcomes(r: _StressRows, console: Any) -> None:
    ds, value = r.ds, r.value
    from simkit.stress import STOP_CAUSES

    cash = float(ds["cash_return"].max())
    outcomes = r.table(
        "outcomes",
        "returns over the horizon as fractions of the initial sleeve (negative: a loss; VaR and "
        "CVaR too), mean ±standard "
        f"error; 'vs cash': minus the {_fmt(cash, 'pct')} of holding the sleeve in cash at r; "
        "'vs unstressed': minus the same path's return unstressed; 'stopped trading': share "
        "of paths that sold no tranche from the shock's first day on (* see the notes)",
        ["mean return", "vs cash", "vs unstressed", "stopped trading"]
        + [heading for _, heading, _ in STRESS_SUMMARY],
    )
    notes = []
    for i, j, index, last in r.rows():
        mean = value("total_return_mean", index)
        stopped = value("prob_stopped_trading", index)
        cell = _fmt(stopped, "pct")
        if r.base is not None and i != r.base and not math.isnan(stopped):
            plain = value("total_return_mean", {"stress": r.base, "enforce_limits": j})
            sold = value("tranches_after_shock_per_path", index)
            sold_plain = value("tranches_after_shock_per_path_unstressed", index)
            halted = stopped > HALTED or (sold_plain > 0 and sold < HALTED * sold_plain)
            if mean > plain and halted:
                cell += " *"
                causes = ds["stopped_trading_share"].isel(index).values
                why = ", ".join(
                    f"{c.replace('_', ' ')} {_fmt(x, 'pct')}"
                    for c, x in zip(STOP_CAUSES, causes, strict=True)
                    if x > 0
                )
                notes.append(
                    f"* {r.names[i]}, limits {r.label(i, j)[1]}: mean return {_fmt(mean, 'pct')} "
                    f"beats the unstressed {_fmt(plain, 'pct')} because the stress halts "
                    f"trading: from day {int(ds['shock_day'].values[i])} on the paths sell "
                    f"{sold:.3g} tranches each against {sold_plain:.3g} unstressed, and "
                    f"{_fmt(stopped, 'pct')} sell none"
                    + (f" ({why})" if why else "")
                    + f" against {_fmt(value('prob_stopped_trading_unstressed', index), 'pct')} "
                    "unstressed: the stress stops a losing strategy from trading; against "
                    f"cash it is {_pm(ds, 'excess_over_cash', index)}"
                )
        outcomes.add_row(
            *r.label(i, j),
            _fmt(mean, "pct"),
            _pm(ds, "excess_over_cash", index),
            _pm(ds, "total_return_vs_baseline", index) if i != r.base else "-",
            cell,
            *[_fmt(value(n, index), k) for n, _, k in STRESS_SUMMARY],
            end_section=last,
        )
    console.print(outcomes)
    for note in notes:
        console.print(note)


def _stress_shock_day(r: _StressRows, console: Any) -> None:
    ds, value = r.ds, r.value
    quantiles = [float(q) for q in ds["quantile"].values]
    shown = [q for q in (0.5, 0.05, 0.01) if q in quantiles]
    day = r.table(
        "the shock day",
        "the sleeve's mark-to-market return on the shock's first day d, "
        "(E_d - E_{d-1}) / E_{d-1} with E_t the sleeve equity at the end of day t "
        "(negative: a loss), over paths, and the mean P&L in USD",
        ["day", "mean", *[f"{q:.0%}" if q != 0.5 else "median" for q in shown], "mean (USD)"],
    )
    for i, j, index, last in r.rows(shocked_only=True):
        count = value("shock_day_return_count", index)
        qs = ds["shock_day_return_quantile"].isel(index).values
        day.add_row(
            *r.label(i, j),
            str(int(ds["shock_day"].values[i])),
            _given(value("shock_day_return_mean", index), count),
            *[_fmt(qs[quantiles.index(q)], "pct") for q in shown],
            _fmt(value("shock_day_pnl_mean", index), "usd"),
            end_section=last,
        )
    console.print(day)


def _stress_after_shock(r: _StressRows, console: Any) -> None:
    from simkit.stress import STOP_CAUSES

    ds, value = r.ds, r.value
    after = r.table(
        "trading after the shock",
        "share of paths that sold no new tranche from the shock's first day to the "
        "horizon [95% interval], the same paths unstressed, and why: every entry day blocked "
        "by the close-all exits (thesis, liquidity, IV), by the HIGH limits, or by the entry "
        "signal (the first failing reason in that order: signal, limits, exit), or by a mix of "
        "them; 'other': an entry allowed but no contract sold, or no entry day left; "
        "'tranches/path': sold from the shock's first day on, stressed and unstressed",
        ["stopped trading", "unstressed"]
        + [cause.replace("_", " ") for cause in STOP_CAUSES]
        + ["tranches/path", "unstressed"],
    )
    for i, j, index, last in r.rows(shocked_only=True):
        causes = ds["stopped_trading_share"].isel(index).values
        after.add_row(
            *r.label(i, j),
            _with_ci(ds, "prob_stopped_trading", index, "pct"),
            _fmt(value("prob_stopped_trading_unstressed", index), "pct"),
            *[_fmt(x, "pct") for x in causes],
            _fmt(value("tranches_after_shock_per_path", index), "num"),
            _fmt(value("tranches_after_shock_per_path_unstressed", index), "num"),
            end_section=last,
        )
    console.print(after)


def _stress_stop_losses(r: _StressRows, console: Any) -> None:
    value = r.value
    stops = r.table(
        "stop-losses",
        "'saved': final equity with stop-losses minus without, same paths (> 0: the "
        "stops saved money); 'given fired': over the paths on which one fired (paths)",
        ["stops/path", "P(stop)", "saved (USD)", "saved given fired (USD)"],
    )
    for i, j, index, last in r.rows():
        stops.add_row(
            *r.label(i, j),
            _fmt(value("stop_losses_per_path", index), "num"),
            _fmt(value("prob_stop_loss", index), "pct"),
            _fmt(value("stop_loss_saved_mean", index), "usd"),
            _given(
                value("stop_loss_saved_given_fired", index),
                value("stop_loss_saved_given_fired_count", index),
                "usd",
            ),
            end_section=last,
        )
    console.print(stops)


def _stress_limits(r: _StressRows, console: Any) -> None:
    """The limits the sizing breaches (one line each), then the share of paths breaching each
    other limit and the loss given a breach."""
    ds, value = r.ds, r.value
    limits = [str(x) for x in ds["limit"].values]
    always, start = sizing_breaches(ds)
    rules = ds["limit_rule"].values if "limit_rule" in ds else [""] * len(limits)
    for limit in always:
        console.print(
            f"always breached at this sizing: {limit} (every day of every path, every "
            f"stress): {rules[limits.index(limit)]}"
        )
    for limit in start:
        k = limits.index(limit)
        days = ds["breach_share"].isel(limit=k).values
        console.print(
            f"always breached at this sizing: {limit} (by the first tranche, on day 0 of every "
            f"path, then on {_fmt(days.min(), 'pct')}-{_fmt(days.max(), 'pct')} of path-days): "
            f"{rules[k]}"
        )
    shown = [x for x in limits if x not in always and x not in start]
    breaches = r.table(
        "limit breaches",
        "share of paths that breached each limit at least once [median day of the "
        "first breach]"
        + ("; limits breached at this sizing are listed above" if start or always else ""),
        shown,
    )
    given = r.table(
        "loss given breach",
        "mean horizon loss (fraction of the initial sleeve, > 0 a loss) of the paths "
        "that breached each limit (paths); '-': none did",
        shown,
    )
    for i, j, index, last in r.rows():
        cells, losses = [], []
        for limit in shown:
            at = {**index, "limit": limits.index(limit)}
            share = value("breach_path_share", at)
            count = value("loss_given_breach_count", at) if "loss_given_breach_count" in ds else 0
            first = value("days_to_first_breach_median", at)
            if count == 0:
                cells.append(_fmt(share, "pct"))
            elif math.isnan(first):
                cells.append(f"{_fmt(share, 'pct')} [{_given(first, count)}]")
            else:
                cells.append(f"{_fmt(share, 'pct')} [day {first:.0f}]")
            losses.append(_given(value("loss_given_breach", at), count))
        breaches.add_row(*r.label(i, j), *cells, end_section=last)
        given.add_row(*r.label(i, j), *losses, end_section=last)
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
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="draw one slice of a run's grid: a grid key (market.sigma, or a key zipped with "
        "one) at one of its values (a number matches the nearest grid value within a relative "
        "1e-6); repeatable, one per axis. Without it, axes beyond the first two are drawn at "
        "their middle value",
    )
    p.set_defaults(func=report_command)


def _select_pairs(items: Sequence[str]) -> dict[str, str]:
    """`--select key=value ...` -> {key: value text} (BadInput: no `=`, a key twice)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise BadInput(f"--select {item}: expected KEY=VALUE, e.g. market.sigma=1.9")
        if key in pairs:
            raise BadInput(f"--select {item}: {key} is selected twice")
        pairs[key] = value
    return pairs


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
    select = _select_pairs(args.select)
    try:
        written = report.make_report(result, out, select=select)
    except (report.NotAResult, report.BadSelection) as exc:
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
    _add_run_flags(
        p,
        "paths per run (default: the scenario's paths, at most "
        f"{EXPLAIN_DEFAULT_PATHS:,}; the scenario and each change are one run each)",
        scheduler=True,
    )
    p.add_argument(
        "--out", metavar="FILE.nc", help="result file (default results/<scenario>.explain.nc)"
    )
    p.set_defaults(func=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    import json

    from simkit import explain, run
    from simkit.store import write_dataset

    scenario = _load(args.scenario, _simulation_overrides(args))
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
    one = " (a history replayed: the paired intervals need paths, n/a)" if paths == 1 else ""
    table = Table(
        title=f"{ds.attrs.get('title', 'simkit explain')}: what each rule or assumption costs "
        f"({paths:,} paths{one}, seed {ds.attrs.get('seed')}, every run on the same paths)",
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
            interval = "[n/a]" if paths == 1 else f"[{_signed(lo, kind)}, {_signed(hi, kind)}]"
            cells.append(f"{_signed(d, kind)} {interval}")
        table.add_row(str(label), *cells, f"{int(ds['paths_changed'].values[i]):,}")
    console.print(table)


COMMANDS += [_cmd_explain]


# --------------------------------------------------------------------------- sensitivity
# (global sensitivity over a [sensitivity] table: `_cmd_sensitivity(sub)` + its command)


def _cmd_sensitivity(sub: Any) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="global sensitivity (Morris or Sobol') of result metrics to the input ranges of "
        "the scenario's [sensitivity] table, every parameter set on the same paths",
    )
    p.add_argument(
        "scenario", metavar="SCENARIO.toml", help="scenario without [grid], with [sensitivity]"
    )
    p.add_argument(
        "--samples",
        type=int,
        help="Morris trajectories or the Sobol' base sample (overrides sensitivity.samples)",
    )
    _add_run_flags(p, "paths per parameter set (overrides sensitivity.paths)", scheduler=True)
    p.add_argument(
        "--out", metavar="FILE.nc", help="result file (default results/<scenario>.sensitivity.nc)"
    )
    p.set_defaults(func=sensitivity_command)


def sensitivity_command(args: argparse.Namespace) -> int:
    from simkit import run, sensitivity

    overrides = _overrides(args.overrides)
    for flag, key in (
        ("samples", "sensitivity.samples"),
        ("paths", "sensitivity.paths"),
        ("seed", "simulation.seed"),
        ("engine", "simulation.engine"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    scenario = _load(args.scenario, overrides)
    out = (
        Path(args.out)
        if args.out
        else Path("results") / f"{Path(args.scenario).stem}.sensitivity.nc"
    )
    check_output_path(out)
    _check_scheduler(args.scheduler)

    _enable_compile_cache()
    try:
        ds = sensitivity.sensitivity(
            scenario, scheduler=args.scheduler, out=out, progress=not args.no_progress
        )
    except run.SchedulerUnreachable as exc:
        raise BadInput(f"--scheduler {args.scheduler}: {exc}") from None
    console = _console()
    print_sensitivity_tables(ds, console)
    console.print(
        f"wrote {out} ({ds.attrs['evaluations']} parameter sets, "
        f"{ds.attrs['wall_time_s']:.1f} s, {ds.attrs['executor']})"
    )
    console.print(f"next: simkit report {out}   (index bars and each metric against each key)")
    return 0


def _g(x: Any, digits: int = 3) -> str:
    x = float(x)
    return "-" if math.isnan(x) else f"{x:.{digits}g}"


def _key_range_text(ds: Any, i: int) -> str:
    law = str(ds["key_law"].values[i])
    text = f"{_g(ds['key_low'].values[i], 4)} - {_g(ds['key_high'].values[i], 4)}"
    return text + (" (log)" if law == "log-uniform" else "")


def sensitivity_ranking(ds: Any, metric: str) -> list[int]:
    """Key positions by the metric's index (Morris mu*, Sobol' ST), largest first; NaN last."""
    name = "mu_star" if ds.attrs.get("method") == "morris" else "ST"
    values = [float(v) for v in ds[name].sel(metric=metric).values]
    return sorted(range(len(values)), key=lambda i: (math.isnan(values[i]), -values[i]))


def print_sensitivity_tables(ds: Any, console: Any) -> None:
    """One table per metric: the keys by their index, largest first, with SALib's 95 %
    half-widths, the noise share and floor, and the keys whose index noise could explain."""
    import numpy as np
    from rich.table import Table

    morris = ds.attrs.get("method") == "morris"
    n_keys = ds.sizes["key"]
    how = (
        f"Morris, {ds.attrs['samples']} trajectories x {n_keys + 1}"
        if morris
        else f"Sobol', N = {ds.attrs['samples']} x {n_keys + 2}"
    )
    console.print(
        f"{ds.attrs.get('title', 'simkit sensitivity')}: {how} = {ds.attrs['evaluations']} "
        f"parameter sets, {int(ds.attrs['paths']):,} paths each, seed {ds.attrs.get('seed')} "
        "(every set on the same paths)"
    )
    deciding = []
    for metric in [str(m) for m in ds["metric"].values]:
        sel = ds.sel(metric=metric)
        share = float(sel["noise_share"].values)
        floor = float(sel["noise_floor"].values)
        units = str(sel["metric_units"].values)
        y = np.asarray(sel["metric_value"].values, dtype=float)
        table = Table(
            title=f"{metric} ({units}): {_g(np.nanmin(y))} to {_g(np.nanmax(y))} over the sets; "
            f"noise share mean(se²)/Var = {_g(100 * share, 2)} %",
            caption=(
                "mu* = mean |elementary effect|: the metric's change over the key's whole range; "
                "mu = mean effect (sign = direction); sigma = spread (non-linearity, "
                f"interactions); ± = SALib's 95 % half-width; noise floor of mu* {_g(floor)}"
                if morris
                else "S1 = first-order share of the metric's variance, ST = total (with "
                f"interactions); ± = SALib's 95 % half-width; noise floor of ST {_g(floor)}"
            ),
        )
        table.add_column("key", no_wrap=True)
        table.add_column("range", no_wrap=True)
        names = ("mu_star", "mu", "sigma") if morris else ("S1", "ST")
        for name in names:
            table.add_column({"mu_star": "mu*"}.get(name, name), justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        order = sensitivity_ranking(ds, metric)
        for i in order:
            cells = []
            for name in names:
                value = _g(sel[name].values[i])
                if f"{name}_conf" in ds:
                    value += f" ± {_g(sel[f'{name}_conf'].values[i], 2)}"
                cells.append(value)
            flag = "within noise" if int(sel["within_noise"].values[i]) else ""
            table.add_row(str(ds["key"].values[i]), _key_range_text(ds, i), *cells, flag)
        console.print(table)
        top = order[0] if order else None
        if top is not None and not int(sel["within_noise"].values[top]):
            deciding.append(f"{metric}: {ds['key'].values[top]}")
        else:
            deciding.append(f"{metric}: no key above the noise floor")
    console.print("largest effect per metric: " + "; ".join(deciding))


COMMANDS += [_cmd_sensitivity]


# --------------------------------------------------------------------------- main


class _VersionAction(argparse.Action):
    """`simkit --version`: `simkit X.Y.Z`, then JAX's version and device (JAX is loaded only
    for this line, after the first is printed)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from simkit import __version__

        print(f"simkit {__version__}", flush=True)
        try:
            import jax

            devices = jax.devices()
            kinds = sorted({f"{d.platform} ({d.device_kind})" for d in devices})
            print(f"jax {jax.__version__}, {len(devices)} x {', '.join(kinds)}")
        except Exception as exc:  # a broken JAX install still shows simkit's version
            print(f"jax: not usable ({type(exc).__name__}: {exc})")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simkit", description="Monte Carlo simulation of a put-selling strategy.")
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="print simkit's version, JAX's and the device it computes on, and exit",
    )
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
