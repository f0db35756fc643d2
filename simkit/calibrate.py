"""Calibration behind `simkit calibrate kelly | market | target` (no printing, no argparse).

- `kelly`: run a scenario and measure the Kelly of the whole sleeve (`simkit.kelly_sleeve`:
  the growth-optimal share of the portfolio in the sleeve, the rest in cash, from every path's
  horizon return and from its 21-day returns) beside the per-trade reading (`p`, average win
  `a`, average loss `b`, path-clustered 95 % intervals; short-put trades only). The TOML
  fragment (`kelly_fragment`) sets `[capital] kelly_fraction` to the sleeve Kelly f*, so the
  seed's rule sizes the sleeve at `kelly_multiplier * f*` (capped); when f* = 0 there is no
  fragment: do not allocate. Everything else is comments (scenario files reject unknown tables
  and keys). Merge it by pasting its `[capital]` table into a scenario that has none, by copying
  the `kelly_fraction` line into the scenario's own `[capital]` table, or with
  `--set capital.kelly_fraction=VALUE`.
- `market`: maximum likelihood of GBM, Merton and/or GJR-GARCH on a history CSV
  (`simkit.calibrate_market.fit_history` on `simkit.paths.history.read_history`), ranked by
  log-likelihood and AIC on the same returns, with warnings (few returns, Merton jumps that
  look like volatility clustering); the fragment is `simkit.calibrate_market.to_toml_fragment`'s
  (`[market]` and a `[fit]` record: it loads into a scenario as written).
- `target`: the value of one scenario parameter at which an aggregate metric reaches a target,
  by Brent's method on the metric computed with common random numbers (every evaluation runs
  the same seed, so the metric is a deterministic function of the parameter), with an
  uncertainty `se(metric) / |d metric / d param|` at the root.

Bad input raises `CalibrationError` (the CLI's exit code 2) or `ScenarioError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from simkit.aggregate import VARIABLES
from simkit.calibrate_market import (
    CLUSTERING_JUMP_STD,
    CLUSTERING_JUMPS_PER_YEAR,
    FEW_RETURNS,
    MODELS,
    fit_history,
    merton_looks_like_clustering,
)
from simkit.paths.history import read_history
from simkit.run import simulate as run_simulate
from simkit.scenario import ScenarioError, load_scenario

__all__ = [
    "CalibrationError",
    "TargetResult",
    "calibrate_kelly",
    "calibrate_market",
    "calibrate_target",
    "kelly_from_dataset",
    "kelly_fragment",
    "over_bet",
    "metric_names",
    "metric_value",
]

CONF = 0.95
KELLY_KEYS = ("p", "avg_win", "avg_loss", "seed_fraction", "growth_optimal")
_DATASET_NAMES = {
    "p": "kelly_p",
    "avg_win": "kelly_avg_win",
    "avg_loss": "kelly_avg_loss",
    "seed_fraction": "kelly_fraction",
    "growth_optimal": "kelly_growth_optimal",
}


_SLEEVE_NAMES = {
    "sleeve": "kelly_sleeve_fraction",
    "sleeve_lo": "kelly_sleeve_fraction_lo",
    "sleeve_hi": "kelly_sleeve_fraction_hi",
    "sleeve_21d": "kelly_sleeve_fraction_21d",
    "sleeve_21d_lo": "kelly_sleeve_fraction_21d_lo",
    "sleeve_21d_hi": "kelly_sleeve_fraction_21d_hi",
    "sleeve_max": "kelly_sleeve_fraction_max",
    "sleeve_unbounded": "kelly_sleeve_unbounded",
    "sleeve_growth": "kelly_sleeve_growth",
    "sleeve_growth_cash": "kelly_sleeve_growth_cash",
    "sleeve_growth_seed": "kelly_sleeve_growth_seed",
    "sleeve_share_seed": "kelly_sleeve_share_seed",
}


class CalibrationError(ValueError):
    """Input that calibration cannot use (reported by the CLI with exit code 2)."""


def _one_cell(scenario: Any, command: str) -> None:
    if scenario.grid:
        raise ScenarioError(
            scenario.path,
            [("grid", None, f"{command} calibrates one market: use a scenario without [grid]")],
        )


# --------------------------------------------------------------------------- kelly


def kelly_from_dataset(ds: Any, strategy: Any) -> dict[str, Any]:
    """Kelly inputs and fractions measured by a one-cell run.

    Returns:
      mapping with, for each of `p`, `avg_win`, `avg_loss`, `seed_fraction`,
      `growth_optimal`, the estimate and its `_lo`, `_hi` (95 %); `recommended` (the seed's
      sizing rule, `kelly_multiplier * seed_fraction` capped at `max_total_strategy_pct`,
      floored at 0), `multiplier`, `cap`, `trades_per_path`, `paths`.
    """
    out: dict[str, Any] = {}
    for key in KELLY_KEYS:
        name = _DATASET_NAMES[key]
        for suffix in ("", "_lo", "_hi"):
            out[key + suffix] = float(np.asarray(ds[name + suffix].values))
    out["recommended"] = float(np.asarray(ds["kelly_recommended"].values))
    for key, name in _SLEEVE_NAMES.items():
        out[key] = float(np.asarray(ds[name].values))
    out["multiplier"] = float(strategy.kelly_multiplier)
    out["cap"] = float(strategy.max_total_strategy_pct)
    out["trades_per_path"] = float(np.asarray(ds["trades_per_path"].values))
    out["paths"] = int(ds.attrs.get("paths", np.asarray(ds["paths"].values)))
    return out


def over_bet(result: Mapping[str, Any]) -> float:
    """How many times the sleeve Kelly fraction the scenario's own sleeve share is (inf when
    the sleeve Kelly is 0 and the scenario allocates anything)."""
    share, sleeve = result["sleeve_share_seed"], result["sleeve"]
    if sleeve > 0:
        return share / sleeve
    return math.inf if share > 0 else math.nan


def kelly_fragment(result: Mapping[str, Any], source: str) -> str | None:
    """A TOML fragment with `[capital] kelly_fraction` = the sleeve Kelly fraction f* (so the
    seed's rule sizes the sleeve at `kelly_multiplier * f*`, capped), the per-trade reading
    and the intervals as comments; None when f* = 0 (do not allocate: nothing to size)."""
    fraction = result["sleeve"]
    if not math.isfinite(fraction) and result.get("paths") == 1:
        raise CalibrationError(
            f"{source}: one path (a history replayed) has one horizon return, and f* needs a "
            f"distribution of them (its 21-day returns give {result.get('sleeve_21d', math.nan):.3g}"
            ' in the run\'s summary); calibrate on model = "bootstrap" for paths of this history'
        )
    if not math.isfinite(fraction):
        raise CalibrationError(
            f"{source}: the sleeve Kelly fraction is undefined (no path had a sleeve return); "
            "simulate more paths"
        )
    if fraction <= 0:
        return None

    def line(label: str, key: str) -> str:
        return (
            f"#   {label:<38} = {result[key]:.6g}  "
            f"[{result[key + '_lo']:.6g}, {result[key + '_hi']:.6g}]"
        )

    lines = [
        f"# simkit calibrate kelly: Kelly of the whole sleeve, measured by simulating {source}",
        f"# ({result['paths']} paths; 95 % intervals)",
        line("sleeve Kelly f* (horizon returns)", "sleeve"),
        line("sleeve Kelly f* (21-day returns)", "sleeve_21d"),
        f"#   scenario's own sleeve share            = {result['sleeve_share_seed']:.6g} "
        f"({over_bet(result):.3g} x f*)",
        "# Per trade (short puts only: hedges and share moves after assignment excluded;",
        "# overlapping trades of a path counted as separate bets), for reference:",
        line("p (win probability of a trade)", "p"),
        line("a (average win on collateral)", "avg_win"),
        line("b (average loss on collateral)", "avg_loss"),
        line("seed formula p - (1-p) b/a", "seed_fraction"),
        "# The seed's rule then sizes the sleeve at min(kelly_multiplier x kelly_fraction,",
        f"# max_total_strategy_pct) = min({result['multiplier']:g} x {fraction:.6g}, "
        f"{result['cap']:g}) of the portfolio.",
        "# Merge: paste this [capital] table into a scenario that has none, copy the",
        "# kelly_fraction line into the scenario's [capital] table, or run with",
        f"# --set capital.kelly_fraction={fraction!r}",
        "[capital]",
        f"kelly_fraction = {fraction!r}",
    ]
    return "\n".join(lines) + "\n"


def calibrate_kelly(
    scenario: Any,
    *,
    paths: int | None = None,
    seed: int | None = None,
    engine: str | None = None,
    progress: bool = False,
    simulate: Callable[..., Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Run a one-cell scenario; return (`kelly_from_dataset` result, the dataset)."""

    _one_cell(scenario, "calibrate kelly")
    simulate = simulate or run_simulate
    ds = simulate(scenario, paths=paths, seed=seed, engine=engine, progress=progress)
    return kelly_from_dataset(ds, scenario.strategy), ds


# --------------------------------------------------------------------------- market


def calibrate_market(path: str | Path, models: Sequence[str] = ("gbm", "merton", "garch")) -> dict:
    """Fit each model of `models` to the history CSV at `path` and rank them by AIC.

    The log-likelihoods are all of the same daily log returns as fractions (every return
    counted), so they and AIC compare across models (`simkit.calibrate_market`).

    Returns:
      mapping with `history` (the `History`), `fits` (model -> `fit_history` result),
      `best` (the model with the lowest AIC), `delta_aic` (model -> AIC minus the best's),
      `provenance` (what the fragment's `[fit]` records: file, close column, dates) and
      `warnings` (sentences: a model that could not be fitted and is left out, too few
      returns, a Merton fit whose jumps look like volatility clustering, a GARCH fit that did
      not converge).

    Raises:
      HistoryError: the CSV cannot be used (names the file, line and field).
      CalibrationError: no model can be fitted to these data (e.g. constant returns; a GARCH
        fit alone whose persistence reaches 1).
    """

    for model in models:
        if model not in MODELS:
            raise CalibrationError(f"--model: must be one of {', '.join(MODELS)}; got {model!r}")
    history = read_history(path)
    fits, failed = {}, {}
    for model in models:
        try:
            fits[model] = fit_history(history.close, history.iv, model=model)
        except ValueError as exc:
            failed[model] = f"cannot fit {model}: {exc}"
    if not fits:  # every model failed: the first reason, as the single model's error reads
        raise CalibrationError(f"{path}: {failed[models[0]]}")
    aic = {m: float(f["fit"]["aic"]) for m, f in fits.items()}
    best = min(aic, key=lambda m: aic[m])
    delta_aic = {m: a - aic[best] for m, a in aic.items()}
    unranked = [f"{reason} (left out of the ranking)" for reason in failed.values()]
    return {
        "history": history,
        "fits": fits,
        "best": best,
        "delta_aic": delta_aic,
        "provenance": {
            "history": str(path),
            "close_column": history.close_column,
            "first_date": str(history.dates[0]),
            "last_date": str(history.dates[-1]),
        },
        "warnings": unranked + _market_warnings(history.n_days - 1, fits, best, delta_aic),
    }


def _market_warnings(
    n_returns: int, fits: Mapping[str, Any], best: str, delta_aic: Mapping[str, float]
) -> list[str]:
    """What a reader of `calibrate market` should distrust, one sentence each."""
    out = []
    if n_returns < FEW_RETURNS:
        out.append(
            f"only {n_returns} daily returns (fewer than {FEW_RETURNS}, about a year): the "
            "estimates are loose (see their standard errors), and a jump or GARCH fit may not "
            "be identified"
        )
    merton = fits.get("merton")
    if merton is not None and merton_looks_like_clustering(merton):
        if best != "merton":
            verdict = (
                f"the better model by AIC is {best} (merton is {delta_aic['merton']:.1f} above)"
            )
        else:
            runner_up = min((m for m in fits if m != "merton"), key=delta_aic.get, default=None)
            verdict = "merton has the lowest AIC of the models fitted" + (
                f" ({runner_up} is {delta_aic[runner_up]:.1f} above)" if runner_up else ""
            )
        if "garch" not in fits:
            verdict += "; fit --model all to compare it with GARCH"
        out.append(
            f"the Merton fit's jumps look like volatility clustering, not jumps: "
            f"{merton['jump_intensity']:.0f} a year of std {merton['jump_std']:.1%} (more than "
            f"{CLUSTERING_JUMPS_PER_YEAR:.0f} a year or a std below {CLUSTERING_JUMP_STD:.0%}); "
            + verdict
        )
    garch = fits.get("garch")
    if garch is not None and not garch["fit"]["converged"]:
        out.append("arch's optimizer did not report convergence for GARCH: check its estimates")
    return out


# --------------------------------------------------------------------------- target


def metric_names() -> list[str]:
    """Aggregate variables of a result dataset that hold one number per cell."""

    return [
        name
        for name, variable in VARIABLES.items()
        if not variable.dims and name != "paths" and not name.endswith(("_lo", "_hi", "_se"))
    ]


def metric_value(ds: Any, name: str) -> tuple[float, float]:
    """(value, standard error) of a scalar metric of a one-cell dataset. The standard error is
    the variable's `_se` when the dataset has one, else its 95 % interval's half-width over
    z, else NaN."""
    value = float(np.asarray(ds[name].values))
    if f"{name}_se" in ds:
        return value, float(np.asarray(ds[f"{name}_se"].values))
    if f"{name}_lo" in ds and f"{name}_hi" in ds:
        lo = float(np.asarray(ds[f"{name}_lo"].values))
        hi = float(np.asarray(ds[f"{name}_hi"].values))
        return value, (hi - lo) / (2 * float(stats.norm.ppf(0.5 + CONF / 2)))
    return value, math.nan


@dataclasses.dataclass
class TargetResult:
    """The outcome of `calibrate_target`.

    `status`: "root" (found: `root`, `uncertainty`), "no_root" (the metric does not cross
    the target between the bracket's ends: see `evaluations`), or "undefined" (the metric is
    NaN somewhere it was needed: `message`).
    """

    param: str
    metric: str
    target: float
    bracket: tuple[float, float]
    status: str
    root: float = math.nan
    uncertainty: float = math.nan  # se(metric at root) / |slope|
    metric_at_root: float = math.nan
    metric_se: float = math.nan
    slope: float = math.nan  # d metric / d param at the root (central difference)
    slope_step: float = math.nan
    xtol: float = math.nan
    evaluations: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    message: str = ""


class _Undefined(Exception):
    pass


def _check_bracket(bracket: Sequence[float]) -> tuple[float, float]:
    if len(bracket) != 2:
        raise CalibrationError(f"--bracket: give two numbers LO HI; got {list(bracket)}")
    lo, hi = (float(b) for b in bracket)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CalibrationError(f"--bracket: must be finite; got {lo!r} {hi!r}")
    if not lo < hi:
        raise CalibrationError(f"--bracket: LO must be below HI; got {lo!r} {hi!r}")
    return lo, hi


def _check_target_args(
    param: str,
    metric: str,
    target: float,
    bracket: Sequence[float],
    overrides: Mapping[str, object] | None,
    xtol: float | None,
    slope_step: float | None,
) -> tuple[float, float, float, float, float, dict[str, object]]:
    """`calibrate_target`'s arguments checked: (lo, hi, target, xtol, slope half-step, the other
    overrides), with the defaults of its docstring."""
    names = metric_names()
    if metric not in names:
        raise CalibrationError(
            f"--metric {metric!r}: not a scalar variable of a result; choose one of "
            + ", ".join(names)
        )
    lo, hi = _check_bracket(bracket)
    target = float(target)
    if not math.isfinite(target):
        raise CalibrationError(f"--target: must be finite; got {target!r}")
    width = hi - lo
    xtol = 1e-3 * width if xtol is None else float(xtol)
    step = 2e-2 * width if slope_step is None else float(slope_step)
    if not xtol > 0 or not step > 0:
        raise CalibrationError("--xtol and the slope step must be > 0")
    base = dict(overrides or {})
    if param in base:
        raise CalibrationError(f"--param {param}: also given with --set; give it once")
    return lo, hi, target, xtol, step, base


@dataclasses.dataclass
class _MetricOfParam:
    """The metric as a function of the parameter: the scenario at `param = x` simulated with the
    same seed (common random numbers), each `x` once, every evaluation recorded in order."""

    scenario_path: str | Path
    param: str
    metric: str
    target: float
    base: dict[str, object]  # the other overrides
    simulate: Callable[..., Any]
    run_settings: dict[str, Any]  # paths, seed, engine
    on_evaluation: Callable[[float, float, float], None] | None
    cache: dict[float, tuple[float, float]] = dataclasses.field(default_factory=dict)
    evaluations: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)

    def scenario_at(self, x: float) -> Any:
        """The scenario with `param = x` (checked by the scenario layer; one cell)."""
        scenario = load_scenario(self.scenario_path, {**self.base, self.param: x})
        _one_cell(scenario, "calibrate target")
        return scenario

    def evaluate(self, x: float) -> tuple[float, float]:
        """(metric, standard error) at `param = x`, simulated on the first call only."""
        x = float(x)
        if x not in self.cache:
            ds = self.simulate(self.scenario_at(x), **self.run_settings, progress=False)
            value, se = metric_value(ds, self.metric)
            self.cache[x] = (value, se)
            self.evaluations.append((x, value, se))
            if self.on_evaluation is not None:
                self.on_evaluation(x, value, se)
        return self.cache[x]

    def gap(self, x: float) -> float:
        """metric - target at `param = x`; raises `_Undefined` where the metric is NaN."""
        value, _ = self.evaluate(x)
        if math.isnan(value):
            raise _Undefined(f"{self.metric} is undefined (NaN) at {self.param} = {x!r}")
        return value - self.target


def _bracketed_root(
    gap: Callable[[float], float], lo: float, hi: float, xtol: float
) -> tuple[float | None, float, float]:
    """(the root of `gap` in [lo, hi], or None when `gap` has one sign at both ends; gap(lo),
    gap(hi)): an end where the gap is 0, else Brent's method."""
    g_lo, g_hi = gap(lo), gap(hi)
    if not (g_lo == 0 or g_hi == 0 or np.sign(g_lo) != np.sign(g_hi)):
        return None, g_lo, g_hi
    if g_lo == 0:
        return lo, g_lo, g_hi
    if g_hi == 0:
        return hi, g_lo, g_hi
    root = float(optimize.brentq(gap, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps))
    return root, g_lo, g_hi


def _at_root(
    result: TargetResult,
    evaluate: Callable[[float], tuple[float, float]],
    root: float,
    step: float,
) -> None:
    """Fill `result` at its root: the metric and its standard error, the slope by a central
    difference over +/- `step` (inside the bracket), the root's uncertainty se / |slope|."""
    lo, hi = result.bracket
    value, se = evaluate(root)
    left, right = max(lo, root - step), min(hi, root + step)
    slope = (evaluate(right)[0] - evaluate(left)[0]) / (right - left)
    result.status = "root"
    result.root = root
    result.metric_at_root = value
    result.metric_se = se
    result.slope = slope
    result.slope_step = (right - left) / 2
    result.uncertainty = se / abs(slope) if slope != 0 else math.inf
    if not math.isfinite(se):
        result.message = f"{result.metric} has no standard error: the root's uncertainty is unknown"
    elif slope == 0:
        result.message = f"{result.metric} is flat around the root: the root is not identified"


def calibrate_target(
    scenario_path: str | Path,
    param: str,
    metric: str,
    target: float,
    bracket: Sequence[float],
    *,
    overrides: Mapping[str, object] | None = None,
    paths: int | None = None,
    seed: int | None = None,
    engine: str | None = None,
    xtol: float | None = None,
    slope_step: float | None = None,
    simulate: Callable[..., Any] | None = None,
    on_evaluation: Callable[[float, float, float], None] | None = None,
) -> TargetResult:
    """Find `param` in `bracket` at which the result's `metric` equals `target`.

    Every evaluation loads the scenario with `param` overridden (validated by the scenario
    layer: an unknown key or a bad value raises `ScenarioError`) and simulates it with the
    same seed (common random numbers), so the metric is a deterministic function of the
    parameter. Brent's method (`scipy.optimize.brentq`) brackets the crossing; a metric
    that jumps (a win rate counts trades) still gets its crossing point to within `xtol`.

    Args:
      scenario_path: a scenario file without `[grid]`.
      param: dotted key, e.g. `market.sigma`.
      metric: a scalar variable of the result (`metric_names()`), e.g. `win_rate_trade`.
      target: the metric value sought.
      bracket: (lo, hi) values of `param` to search between.
      overrides: further `--set` overrides applied to every evaluation.
      paths, seed, engine: run settings. Default value: the scenario's.
      xtol: absolute tolerance on the root. Default value: 1e-3 x (hi - lo).
      slope_step: half-step of the central difference for the slope at the root. Default
        value: 2e-2 x (hi - lo) (wide enough to average over the jumps of a count-based metric).
      simulate: the simulator. Default value: `simkit.run.simulate`.
      on_evaluation: called with (param value, metric, se) after each evaluation.
    """
    lo, hi, target, xtol, step, base = _check_target_args(
        param, metric, target, bracket, overrides, xtol, slope_step
    )
    search = _MetricOfParam(
        scenario_path,
        param,
        metric,
        target,
        base,
        simulate or run_simulate,
        {"paths": paths, "seed": seed, "engine": engine},
        on_evaluation,
    )
    # Validate the key and both ends before simulating anything.
    search.scenario_at(lo)
    search.scenario_at(hi)

    result = TargetResult(param, metric, target, (lo, hi), "no_root", xtol=xtol)
    result.evaluations = search.evaluations
    try:
        root, g_lo, g_hi = _bracketed_root(search.gap, lo, hi, xtol)
        if root is None:
            result.message = (
                f"no value of {param} in [{lo:g}, {hi:g}] reaches {metric} = {target:g}: "
                f"{metric} is {g_lo + target:.6g} at {lo:g} and {g_hi + target:.6g} at {hi:g}"
            )
            return result
        _at_root(result, search.evaluate, root, step)
    except _Undefined as exc:
        result.status = "undefined"
        result.message = str(exc)
    return result
