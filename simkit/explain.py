"""What each rule or assumption costs: the scenario against itself with one thing changed.

`explain` runs a scenario (no grid) once as written and once per *change*: one rule switched
off or one assumption replaced, everything else as written. Every run uses the scenario's own
paths: the same seed, cell and path indices, so the same market on every path (common random
numbers, docs/MODELLING.md "Reproducibility and precision"). The difference of a metric
between a change and the scenario is then the effect of that change alone, path by path, with
no path noise in it.

Changes (`CHANGES`), each labelled with the exact TOML override that makes it (`KEY=VALUE`, as
`--set` takes it): the call hedges off, each exit off (profit-take, stop-loss, time, IV,
liquidity, thesis), early exercise off, covered calls off, HIGH limits not enforced, margin
calls off, the capacity limits off, fills at mid, no commission. A change that leaves the
scenario's parameters as they are (the switch is already in that state, the commission is
already 0) is a no-op: it is not run, and the dataset lists it in the `skipped_changes`
attribute with the reason. A change that alters the parameters but never acts on these paths
(a thesis exit when the thesis never breaks) is run, and its deltas are exactly 0 with
zero-width intervals.

Metrics (`METRICS`), each `<metric>` (the changed run's value, as `simkit run` reports it),
`<metric>_delta` = metric(changed) - metric(scenario) and its paired 95 % interval
`<metric>_delta_lo`, `<metric>_delta_hi`:
  - `annual_return_mean`, `prob_loss`, `final_equity_mean` (mean-type): the interval is
    `delta +- z se`, `se` the standard error of the per-path differences
    `x_changed[i] - x_scenario[i]` (`std(ddof=1) / sqrt(n)`; for `prob_loss` `x` is the
    indicator of a loss on the path). Pairing removes the variation of the market between
    paths, which an unpaired interval (`sqrt(se_changed^2 + se_scenario^2)`) keeps.
  - `max_drawdown_median`, `kelly_sleeve_fraction` (a median, and the root of a mean score
    clipped at 0): a paired path bootstrap *(choice: percentile interval)*. Each of
    `BOOTSTRAP_REPLICATES` replicates draws `n` path indices with replacement (a fixed seed,
    `BOOTSTRAP_SEED`, so a rerun gives the same interval, and the same draws for every change),
    applies the same indices to both runs and takes the difference of the two statistics; the
    interval is the 2.5 % and 97.5 % quantiles of those differences. The Kelly fraction of a
    replicate is `simkit.kelly_sleeve.kelly_sleeve` of its paths' horizon returns against cash
    `expm1(rate * years)` (as the run's `kelly_sleeve_fraction`); when their mean does not beat
    cash the fraction is 0 without a root search (the same answer: the growth rate falls from
    f = 0 on).
The scenario's own values are scalar variables `base_<metric>`. Changes are sorted by
`|annual_return_mean_delta|`, largest first (no-op-like changes with delta 0 keep the order of
`CHANGES`). `paths_changed` counts the paths whose final sleeve equity moved at all.

Pure analysis: no printing, no argparse (`simkit.cli` prints the table; `simkit.report` draws
the tornado figure). Bad input raises `simkit.scenario.ScenarioError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from simkit import aggregate, kelly_sleeve, metrics, run, store
from simkit.progress import RunsBar
from simkit.scenario import Problem, ScenarioError, parse_scenario
from simkit.schema.analyses import EXPLAIN_COORDINATES, EXPLAIN_VARIABLES

__all__ = [
    "BOOTSTRAP_REPLICATES",
    "BOOTSTRAP_SEED",
    "CHANGES",
    "METRICS",
    "Change",
    "explain",
    "paired_bootstrap",
    "paired_mean_interval",
    "plan_changes",
    "sleeve_kelly_fraction",
]

BOOTSTRAP_REPLICATES = 1000  # paired path-bootstrap replicates (median, Kelly fraction)
BOOTSTRAP_SEED = 20_240_611  # fixed: a rerun gives the same intervals
CONF = aggregate.CONF  # 0.95


# --------------------------------------------------------------------------- the changes


def toml_value(value: Any) -> str:
    """`value` as TOML writes it: `false`, `0`, `"mid"` (the text after `=` in a label)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"no TOML text for {value!r}")


@dataclasses.dataclass(frozen=True)
class Change:
    """One rule switched off or one assumption replaced: a scenario key set to a value."""

    key: str  # dotted scenario key, e.g. "hedges.hedges"
    value: Any  # the value it is set to
    what: str  # the change in words

    @property
    def label(self) -> str:
        """The TOML override text, `KEY=VALUE` (what `--set` takes)."""
        return f"{self.key}={toml_value(self.value)}"


CHANGES: tuple[Change, ...] = (
    Change("hedges.hedges", False, "no call hedges: the whole net premium stays in sleeve cash"),
    Change("exits.profit_take", False, "no profit-take exit"),
    Change("exits.stop_loss", False, "no stop-loss exit"),
    Change("exits.time_exit", False, "no time exit: puts run to expiry (and assignment)"),
    Change("exits.iv_exit", False, "no close-all exit on low IV"),
    Change("exits.liquidity_exit", False, "no close-all exit on a wide spread"),
    Change("exits.thesis_exit", False, "no close-all exit on a thesis break"),
    Change("assignment.early_assignment", False, "no early exercise of short puts"),
    Change("assignment.covered_calls", False, "no covered calls on assigned shares"),
    Change("limits.enforce_limits", False, "HIGH limit breaches do not block new tranches"),
    Change("limits.margin_calls", False, "no margin-call buy-backs"),
    Change(
        "execution.capacity_limits",
        False,
        "opening trades not cut to the open-interest and volume limits",
    ),
    Change("execution.fill", "mid", "every fill at mid instead of the scenario's fill rule"),
    Change("execution.commission", 0, "no commission"),
)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric compared between runs and how its paired interval is found (its units and
    long name: `simkit.schema.analyses.EXPLAIN_METRICS`)."""

    name: str
    paired: str  # "mean": the se of per-path differences; "bootstrap": the paired bootstrap


METRICS: tuple[Metric, ...] = (
    Metric("annual_return_mean", "mean"),
    Metric("prob_loss", "mean"),
    Metric("max_drawdown_median", "bootstrap"),
    Metric("kelly_sleeve_fraction", "bootstrap"),
    Metric("final_equity_mean", "mean"),
)


def _variant(scenario: Any, change: Change) -> Any:
    """The scenario with `change` applied on top of its own overrides."""

    overrides = {**dict(scenario.overrides), change.key: change.value}
    return parse_scenario(scenario.text, path=scenario.path, overrides=overrides)


def plan_changes(
    scenario: Any, changes: Sequence[Change] = CHANGES
) -> tuple[list[tuple[Change, Any]], list[tuple[Change, str]]]:
    """Which changes alter the scenario: `([(change, variant scenario)], [(change, reason)])`.

    A change is a no-op (second list) when the variant's market and strategy parameters equal
    the scenario's: the key already holds that value.
    """
    run, skipped = [], []
    for change in changes:
        variant = _variant(scenario, change)
        if variant.strategy == scenario.strategy and variant.market == scenario.market:
            skipped.append((change, f"no-op: {change.key} is already {toml_value(change.value)}"))
        else:
            run.append((change, variant))
    return run, skipped


# --------------------------------------------------------------------------- the statistics


def paired_mean_interval(
    changed: np.ndarray, base: np.ndarray, delta: float, conf: float = CONF
) -> tuple[float, float, float]:
    """`(lo, hi, se)`: `delta +- z se`, `se` the standard error of `changed - base` per path.

    Args:
      changed, base: `(paths,)` the per-path values of the two runs on the same paths.
      delta: the difference of the two runs' means (the estimate the interval is centred on).
      conf: confidence. Default value: 0.95.
    """
    diff = np.asarray(changed, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if diff.size < 2:
        return math.nan, math.nan, math.nan
    se = float(diff.std(ddof=1) / math.sqrt(diff.size))
    z = metrics.z_score(conf)
    return delta - z * se, delta + z * se, se


def sleeve_kelly_fraction(total_return: np.ndarray, cash_return: float) -> float:
    """The sleeve Kelly fraction f* of horizon returns (`kelly_sleeve.kelly_sleeve`'s
    `fraction`), 0 at once when the mean return does not beat cash (where f* = 0 anyway:
    G'(0) = mean(R - c) / (1 + c) <= 0 and G is concave)."""
    r = np.asarray(total_return, dtype=np.float64)
    finite = np.isfinite(r)
    if not finite.all():
        r = r[finite]
    if r.size and not r.mean() > cash_return:
        return 0.0
    return float(kelly_sleeve.kelly_sleeve(r, cash_return, conf=CONF)["fraction"])


def _nan_median(x: np.ndarray) -> float:
    """`simkit.streaming.median(..., skip="nan")`'s value: the median of the non-NaN values."""
    if np.isnan(x).any():
        x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else math.nan


def _bootstrap_indices(n: int, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """The replicates' path indices, `(n,)` each; the same sequence for the same arguments."""
    rng = np.random.default_rng(seed)
    for _ in range(replicates):
        yield rng.integers(0, n, size=n)


def paired_bootstrap(
    statistic: Callable[[np.ndarray], float],
    changed: np.ndarray,
    base: np.ndarray,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    conf: float = CONF,
    base_replicates: np.ndarray | None = None,
) -> tuple[float, float, np.ndarray | None]:
    """Paired percentile bootstrap of `statistic(changed) - statistic(base)`.

    Each replicate draws path indices with replacement and applies the same indices to both
    runs. Returns `(lo, hi, base_stats)`: the interval and the base run's replicate statistics
    `(replicates,)` (pass them back as `base_replicates` for the next change: the same seed
    draws the same indices, so they need not be recomputed). When the two runs' values are
    identical on every path, the interval is `(0, 0)` without resampling (every replicate's
    difference is exactly 0) and `base_stats` is `base_replicates` as given.
    """
    changed = np.asarray(changed, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    n = base.shape[0]
    if n < 2:
        return math.nan, math.nan, np.full(replicates, math.nan)
    if np.array_equal(changed, base, equal_nan=True):  # every replicate's difference is 0
        return 0.0, 0.0, base_replicates
    compute_base = base_replicates is None
    base_stats = np.empty(replicates) if compute_base else np.asarray(base_replicates)
    deltas = np.empty(replicates)
    for b, idx in enumerate(_bootstrap_indices(n, replicates, seed)):
        if compute_base:
            base_stats[b] = statistic(base[idx])
        deltas[b] = statistic(changed[idx]) - base_stats[b]
    tail = (1.0 - conf) / 2.0
    lo, hi = np.quantile(deltas, [tail, 1.0 - tail])
    return float(lo), float(hi), base_stats


# --------------------------------------------------------------------------- the runs


@dataclasses.dataclass
class _Run:
    """What a run contributes: its metric values and the per-path columns behind them."""

    values: dict[str, float]  # metric name -> the run's value (its own dataset's)
    columns: dict[str, np.ndarray]  # per-path: annual_return, loss, final_equity, ...


def _collect(ds: Any) -> _Run:
    """A one-cell per-path run dataset -> its metric values and per-path columns (float64)."""
    values = {m.name: float(np.asarray(ds[m.name].values)) for m in METRICS}

    def col(name: str) -> np.ndarray:
        return np.asarray(ds[name].values, dtype=np.float64)

    final = col("final_equity")
    initial = float(np.asarray(ds["initial_equity"].values))
    pnl = final - col("contributions") - initial
    columns = {
        "annual_return_mean": col("annual_return"),
        "prob_loss": (pnl < 0).astype(np.float64),
        "max_drawdown_median": col("max_drawdown"),
        "kelly_sleeve_fraction": col("total_return"),
        "final_equity_mean": final,
    }
    return _Run(values, columns)


def explain(
    scenario: Any,
    *,
    paths: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    scheduler: Any = None,
    engine: str | None = None,
    float64: bool | None = None,
    progress: bool = True,
    changes: Sequence[Change] = CHANGES,
    per_path: bool = False,
    replicates: int = BOOTSTRAP_REPLICATES,
) -> Any:
    """Run the scenario and each change on the same paths; the comparison as a dataset.

    Args:
      scenario: a `simkit.scenario.Scenario` without a grid.
      paths, seed, chunk_size, engine, float64, scheduler: as for `simkit.run.simulate`.
        Default value: the scenario's.
      progress: a progress bar over the runs on a terminal. Default value: True.
      changes: the changes to try. Default value: `CHANGES`.
      per_path: also keep every run's per-path final equity (`final_equity` over (`change`,
        `path`), `base_final_equity` over `path`). Default value: False.
      replicates: paired-bootstrap replicates. Default value: `BOOTSTRAP_REPLICATES`.

    Returns:
      an `xarray.Dataset` over `change` (module docstring), sorted by
      `|annual_return_mean_delta|`, largest first.
    """
    _check_no_grid(scenario)
    started = time.perf_counter()
    settings = run.resolve_settings(
        scenario, paths=paths, seed=seed, chunk_size=chunk_size, engine=engine, float64=float64
    )
    planned, skipped = plan_changes(scenario, changes)
    base, rows, devices = _run_changes(
        scenario, planned, settings, scheduler, progress=progress, replicates=replicates
    )
    rows = _by_return_delta(rows)
    per_path_final = None
    if per_path:
        per_path_final = (base.columns["final_equity_mean"], [r["final_equity"] for r in rows])
    return _dataset(
        scenario,
        settings,
        rows,
        base.values,
        skipped,
        per_path_final,
        replicates=replicates,
        wall_time_s=time.perf_counter() - started,
        device="; ".join(sorted(d for d in devices if d)),
    )


def _check_no_grid(scenario: Any) -> None:
    """explain compares one scenario with itself: a grid is a `ScenarioError`."""
    if scenario.grid:
        raise ScenarioError(
            scenario.path,
            [
                Problem(
                    "grid",
                    None,
                    "explain compares one scenario with itself: use a scenario without [grid] "
                    "(write the cell you want as its own file)",
                )
            ],
        )


def _run_changes(
    scenario: Any,
    planned: list[tuple[Change, Any]],
    settings: Any,
    scheduler: Any,
    *,
    progress: bool,
    replicates: int,
) -> tuple[_Run, list[dict[str, Any]], set[str]]:
    """The scenario's run, then each planned change's on the same paths compared with it.

    Returns:
      (the scenario's run, one row per change in `planned`'s order (`_compare`), the devices
      the runs used).
    """
    kwargs = settings.per_path_kwargs(scheduler)
    statistics = _bootstrap_statistics(scenario, settings)
    bar = RunsBar(progress, 1 + len(planned), "explain", width=36)
    devices: set[str] = set()
    rows: list[dict[str, Any]] = []
    try:
        bar.show("the scenario as written")
        base = _simulate(scenario, kwargs, devices)
        bar.advance()
        base_boot: dict[str, np.ndarray] = {}
        for change, variant in planned:
            bar.show(change.label)
            changed = _simulate(variant, kwargs, devices)
            rows.append(_compare(change, changed, base, statistics, base_boot, replicates))
            bar.advance()
    finally:
        bar.close()
    return base, rows, devices


def _bootstrap_statistics(scenario: Any, settings: Any) -> dict[str, Callable[[Any], float]]:
    """The statistic of each bootstrapped metric, per-path values -> the metric."""
    market = scenario.cells()[0].market
    cash = math.expm1(float(market.rate) * settings.n_steps / aggregate.TRADING_DAYS)
    return {
        "max_drawdown_median": _nan_median,
        "kelly_sleeve_fraction": lambda r: sleeve_kelly_fraction(r, cash),
    }


def _simulate(scenario: Any, kwargs: dict[str, Any], devices: set[str]) -> _Run:
    """One run (`simkit.run.simulate(scenario, **kwargs)`), its device added to `devices`."""
    ds = run.simulate(scenario, **kwargs)
    devices.add(str(ds.attrs.get("device", "")))
    return _collect(ds)


def _compare(
    change: Change,
    changed: _Run,
    base: _Run,
    statistics: dict[str, Callable[[Any], float]],
    base_boot: dict[str, np.ndarray],
    replicates: int,
) -> dict[str, Any]:
    """One change's row: each metric's value, delta and paired interval, the paths it moved
    and their final equity (`(paths,)`).

    `base_boot`: the scenario's bootstrap statistics by metric, kept from one change to the
    next (filled on first use; the same seed draws the same path indices).
    """
    row: dict[str, Any] = {"change": change}
    for m in METRICS:
        value, delta = changed.values[m.name], changed.values[m.name] - base.values[m.name]
        x1, x0 = changed.columns[m.name], base.columns[m.name]
        if m.paired == "mean":
            lo, hi, _ = paired_mean_interval(x1, x0, delta)
        else:
            lo, hi, base_boot[m.name] = paired_bootstrap(
                statistics[m.name],
                x1,
                x0,
                replicates=replicates,
                base_replicates=base_boot.get(m.name),
            )
        row[m.name] = value
        row[f"{m.name}_delta"] = delta
        row[f"{m.name}_delta_lo"] = lo
        row[f"{m.name}_delta_hi"] = hi
    final1, final0 = changed.columns["final_equity_mean"], base.columns["final_equity_mean"]
    row["paths_changed"] = int(np.count_nonzero(final1 != final0))
    row["final_equity"] = final1
    return row


def _by_return_delta(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows by `|annual_return_mean_delta|`, largest first, NaN last (stable: equal deltas
    keep their order)."""
    order = sorted(
        range(len(rows)),
        key=lambda i: (
            math.isnan(rows[i]["annual_return_mean_delta"]),
            -abs(rows[i]["annual_return_mean_delta"]),
        ),
    )
    return [rows[i] for i in order]


# --------------------------------------------------------------------------- the dataset


def _interval_text(m: Metric, replicates: int) -> str:
    if m.paired == "mean":
        return "paired: delta +- 1.96 x the standard error of the per-path differences"
    return (
        f"paired path bootstrap ({replicates} replicates, the same path indices for both runs, "
        "percentile interval)"
    )


def _variable(name: str, data: Any, **extra: Any) -> Any:
    """Explain's variable `name` (`EXPLAIN_VARIABLES`: dims, units, long name) holding `data`,
    with `extra` attributes."""
    import xarray as xr

    declared = EXPLAIN_VARIABLES[name]
    return xr.Variable(declared.dims, data, {**declared.attrs, **extra})


def _coordinate(name: str, data: Any) -> Any:
    """Explain's coordinate `name` (`EXPLAIN_COORDINATES`) holding `data`."""
    import xarray as xr

    return xr.Variable(name, data, EXPLAIN_COORDINATES[name].attrs)


def _dataset(
    scenario: Any,
    settings: Any,
    rows: list[dict[str, Any]],
    base_values: dict[str, float],
    skipped: list[tuple[Change, str]],
    per_path_final: tuple[np.ndarray, list[np.ndarray]] | None,
    *,
    replicates: int,
    wall_time_s: float,
    device: str,
) -> Any:
    """The comparison as an `xarray.Dataset` (module docstring)."""
    import xarray as xr

    changes = [r["change"] for r in rows]
    coords = {"change": _coordinate("change", np.array([c.label for c in changes], dtype=str))}
    data_vars = {
        **_change_variables(changes),
        **_metric_variables(rows, base_values, replicates),
        "paths_changed": _variable(
            "paths_changed", np.array([r["paths_changed"] for r in rows], dtype=np.int64)
        ),
        "paths": _variable("paths", np.int64(settings.paths)),
    }
    if per_path_final is not None:
        base_final, finals = per_path_final
        coords["path"] = _coordinate("path", np.arange(settings.paths))
        data_vars["base_final_equity"] = _variable("base_final_equity", base_final)
        data_vars["final_equity"] = _variable(
            "final_equity",
            np.array(finals, dtype=np.float64).reshape(len(rows), settings.paths),
        )
    attrs = _attrs(
        scenario,
        settings,
        runs=1 + len(rows),
        skipped=skipped,
        per_path=per_path_final is not None,
        replicates=replicates,
        wall_time_s=wall_time_s,
        device=device,
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _change_variables(changes: list[Change]) -> dict[str, Any]:
    """What each change sets: its key, the value as TOML text, the change in words."""
    return {
        "change_key": _variable("change_key", np.array([c.key for c in changes], dtype=str)),
        "change_value": _variable(
            "change_value", np.array([toml_value(c.value) for c in changes], dtype=str)
        ),
        "change_description": _variable(
            "change_description", np.array([c.what for c in changes], dtype=str)
        ),
    }


def _metric_variables(
    rows: list[dict[str, Any]], base_values: dict[str, float], replicates: int
) -> dict[str, Any]:
    """Each metric: the scenario's value, each change's, the delta and its interval bounds."""
    data_vars = {}
    for m in METRICS:
        data_vars[f"base_{m.name}"] = _variable(f"base_{m.name}", base_values[m.name])
        for name in (m.name, f"{m.name}_delta", f"{m.name}_delta_lo", f"{m.name}_delta_hi"):
            extra = {"interval": _interval_text(m, replicates)} if name.endswith("_delta") else {}
            values = np.array([r[name] for r in rows], dtype=np.float64)
            data_vars[name] = _variable(name, values, **extra)
    return data_vars


def _attrs(
    scenario: Any,
    settings: Any,
    *,
    runs: int,
    skipped: list[tuple[Change, str]],
    per_path: bool,
    replicates: int,
    wall_time_s: float,
    device: str,
) -> dict[str, Any]:
    """The file's attributes: the run's (`simkit.store.run_attrs`) and explain's own."""
    attrs = store.run_attrs(
        scenario,
        settings,
        wall_time_s=wall_time_s,
        executor="explain",
        device=device,
        per_path=per_path,
    )
    name = scenario.path and str(scenario.path).rsplit("/", 1)[-1]
    attrs["title"] = f"simkit explain of {name or 'a scenario'}"
    attrs["simkit_result"] = "explain"
    attrs["runs"] = runs
    attrs["skipped_changes"] = json.dumps(
        [{"change": c.label, "reason": reason} for c, reason in skipped]
    )
    attrs["sorted_by"] = "|annual_return_mean_delta|, largest first"
    attrs["bootstrap_replicates"] = int(replicates)
    attrs["bootstrap_seed"] = int(BOOTSTRAP_SEED)
    attrs["interval_method"] = (
        "paired (common random numbers): annual_return_mean, prob_loss, final_equity_mean by "
        "the standard error of the per-path differences; max_drawdown_median, "
        f"kelly_sleeve_fraction by a paired path bootstrap ({replicates} replicates, seed "
        f"{BOOTSTRAP_SEED}, percentile interval)"
    )
    return attrs
