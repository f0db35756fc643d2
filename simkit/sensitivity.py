"""Global sensitivity: which input ranges move which result metrics (`simkit sensitivity`).

The scenario's `[sensitivity]` table (`simkit.schema.tables.SensitivityTable`) names the keys
to vary, each over a range `[low, high]` with a law (uniform, or log-uniform: uniform in the
logarithm), the method, the sample size and the metrics. SALib draws the input sample and
estimates the indices; simkit supplies the model evaluations:

1. *The design.* Every key is sampled on the unit interval (SALib's problem has bounds
   [0, 1] for each key) and mapped to its range along its law: `low + u (high - low)`, or
   `low (high / low)^u`. Morris: `samples` trajectories of `keys + 1` points on a grid of
   `levels` levels (`SALib.sample.morris.sample`, seeded by `sensitivity.seed`); Sobol':
   the scrambled Sobol' sequence of `SALib.sample.sobol.sample` (seeded, first-order and
   total indices only: `samples * (keys + 2)` points, Saltelli's scheme without the
   second-order columns).
2. *The evaluations.* Each sampled parameter set is the scenario with those keys set
   (`--set` overrides, validated like the file: every set is checked before anything runs) and
   is run as one cell on the scenario's seed, cell 0 and path indices, so every set sees the
   same market paths (common random numbers, docs/MODELLING.md "Reproducibility and
   precision"): differences between sets carry no path noise. One set is one task of the
   existing executors (`simkit.run.choose_executor`: two threads in this process by default, a
   dask LocalCluster, or a dask scheduler by address); each task runs the whole set (its path
   blocks one after the other) and sends back the metrics' values and standard errors
   (`simkit.calibrate.metric_value`). The model is injectable (`model=`): any picklable
   callable from `{key: value}` to `{metric: (value, se)}`; the Ishigami test drives the whole
   path (design, executor, resume, estimators, dataset) with SALib's `test_functions.Ishigami`.
3. *Resume.* With `out`, each finished set is saved to `<out>.partial/` (one small `.npz`,
   written atomically, beside a manifest of the run's inputs: scenario, design, metrics,
   paths, seed, chunk size, engine, precision, simkit version); a rerun of the same command
   computes only the sets not saved, and the folder is removed once the result file is
   complete. A different run discards the folder (with a warning).
4. *The indices* (SALib, 95 % intervals by a bootstrap of `NUM_RESAMPLES`, seeded):
   - Morris (`SALib.analyze.morris.analyze`): `mu_star` (mean absolute elementary effect),
     `mu_star_conf` (its half-width), `mu` (mean effect: its sign is the direction), `sigma`
     (their standard deviation: non-linearity or interaction). An elementary effect is the
     change of the metric over one grid step divided by the step in unit-interval terms, so
     `mu_star` is the metric's change per whole range of the key (along its law): the keys
     are comparable in the metric's own units.
   - Sobol' (`SALib.analyze.sobol.analyze`): `S1` (first-order: the share of the metric's
     variance over the sample that the key explains alone) and `ST` (total: with all its
     interactions), each with `_conf` (half-width). Negative estimates of S1 near 0 are
     sampling noise of the estimator and are kept as estimated.
5. *Monte Carlo noise.* Each evaluation is an estimate over `paths` paths with a standard
   error `se`. `noise_share = mean(se^2) / Var(Y)` (per metric) is the share of the
   metric's variance over the sample that independent errors of that size would make up.
   Under common random numbers the errors of nearby sets are nearly the same (they share
   every path), so they cancel in differences and the real share is smaller: the flags below
   err on the side of "noise". `noise_floor`: what an index of a key with no effect reaches
   on independent noise alone: Sobol' `ST` = `noise_share` (Jansen's estimator picks up
   `2 se^2` in `E[(Y_A - Y_AB)^2]`); Morris `mu_star` = `2 rms(se) / (delta sqrt(pi))`, the
   mean of `|e_1 - e_2| / delta` for two independent errors, `delta = levels / (2 (levels -
   1))` the grid step. `within_noise` marks an index (ST, or mu_star) at or below the floor:
   Monte Carlo noise of the evaluations could explain it; more `paths` lower the floor.

Pure analysis: no printing, no argparse (`simkit.cli` prints the tables, `simkit.report`
draws the figures). Bad input raises `simkit.scenario.ScenarioError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simkit import run, store
from simkit.aggregate import VARIABLES
from simkit.calibrate import metric_names, metric_value
from simkit.progress import RunsBar
from simkit.scenario import Problem, ScenarioError, _line_index, parse_scenario
from simkit.schema.tables import TABLES
from simkit.version import __version__

__all__ = [
    "CONF",
    "NUM_RESAMPLES",
    "Design",
    "ScenarioModel",
    "analyze",
    "design",
    "noise_floor",
    "sensitivity",
]


CONF = 0.95  # confidence of SALib's intervals (`_conf` half-widths)
NUM_RESAMPLES = 1000  # SALib's bootstrap resamples for the intervals
MORRIS_INDICES = ("mu_star", "mu_star_conf", "mu", "sigma")
SOBOL_INDICES = ("S1", "S1_conf", "ST", "ST_conf")


# --------------------------------------------------------------------------- the design


@dataclasses.dataclass(frozen=True)
class Design:
    """The sampled parameter sets: `unit` (n, keys) on [0, 1] as SALib drew them, `values`
    (n, keys) in the keys' own units."""

    method: str
    keys: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    law: tuple[str, ...]
    samples: int
    levels: int
    seed: int
    unit: np.ndarray
    values: np.ndarray

    @property
    def problem(self) -> dict[str, Any]:
        return {
            "num_vars": len(self.keys),
            "names": list(self.keys),
            "bounds": [[0.0, 1.0]] * len(self.keys),
        }

    @property
    def n(self) -> int:
        return int(self.unit.shape[0])

    def row(self, i: int) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.keys, self.values[i], strict=True)}

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.method, self.keys, self.low, self.high, self.law]).encode())
        h.update(np.ascontiguousarray(self.values, dtype=np.float64).tobytes())
        return h.hexdigest()


def to_values(unit: np.ndarray, low: Any, high: Any, law: Any) -> np.ndarray:
    """Unit-interval positions (n, keys) -> values along each key's law."""
    unit = np.asarray(unit, dtype=np.float64)
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    log_law = np.asarray([w == "log-uniform" for w in law])
    linear = lo + unit * (hi - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.exp(
            np.log(np.where(log_law, lo, 1.0)) + unit * np.log(np.where(log_law, hi / lo, 1.0))
        )
    out = np.where(log_law, logs, linear)
    # The ends exactly (the Morris grid reaches them; exp(log(x)) may miss x by an ulp).
    out = np.where(unit == 0.0, lo, np.where(unit == 1.0, hi, out))
    return out


def design(table: Any) -> Design:
    """The input sample of a `[sensitivity]` table (`SensitivityTable`)."""
    ranges = table.ranges()
    keys = tuple(ranges)
    low = tuple(r[0] for r in ranges.values())
    high = tuple(r[1] for r in ranges.values())
    law = tuple(r[2] for r in ranges.values())
    problem = {"num_vars": len(keys), "names": list(keys), "bounds": [[0.0, 1.0]] * len(keys)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib's notes on N and the sequence's balance
        if table.method == "morris":
            from SALib.sample import morris

            unit = morris.sample(problem, table.samples, num_levels=table.levels, seed=table.seed)
        else:
            from SALib.sample import sobol

            unit = sobol.sample(
                problem, table.samples, calc_second_order=False, scramble=True, seed=table.seed
            )
    unit = np.asarray(unit, dtype=np.float64)
    return Design(
        table.method,
        keys,
        low,
        high,
        law,
        int(table.samples),
        int(table.levels),
        int(table.seed),
        unit,
        to_values(unit, low, high, law),
    )


# --------------------------------------------------------------------------- the model


class ScenarioModel:
    """The default model: one sampled parameter set -> a one-cell run of the scenario with
    those keys set, on the scenario's seed (common random numbers) -> each metric's value
    and standard error (`simkit.calibrate.metric_value`). Picklable (dask ships it)."""

    def __init__(self, scenario: Any, metrics: tuple[str, ...], run_kwargs: dict[str, Any]):
        self.text = scenario.text
        self.path = scenario.path
        self.overrides = dict(scenario.overrides)
        self.metrics = tuple(metrics)
        self.run_kwargs = dict(run_kwargs)

    def variant(self, values: Mapping[str, float]) -> Any:
        """The scenario with the sampled keys set (validated; ScenarioError if not valid)."""
        overrides = {**self.overrides, **{k: float(v) for k, v in values.items()}}
        return parse_scenario(self.text, path=self.path, overrides=overrides)

    def __call__(self, values: Mapping[str, float]) -> dict[str, Any]:
        ds = run.simulate(
            self.variant(values), scheduler="synchronous", progress=False, **self.run_kwargs
        )
        out: dict[str, Any] = {m: metric_value(ds, m) for m in self.metrics}
        out["_device"] = str(ds.attrs.get("device", ""))
        return out


@dataclasses.dataclass(frozen=True)
class _SampleTask:
    """One sampled parameter set: its number and its values (key -> value)."""

    number: int
    values: tuple[tuple[str, float], ...]

    @property
    def key(self) -> str:  # the dask task's name (`run._Dask.map_unordered`)
        return f"simkit-sensitivity-sample-{self.number}"


def _evaluate(
    model: Callable[[Mapping[str, float]], Mapping[str, Any]],
    metrics: tuple[str, ...],
    task: _SampleTask,
) -> dict[str, np.ndarray]:
    """Run the model on one set; runs on whichever worker the executor chose."""
    found = model(dict(task.values))
    value = np.array([float(found[m][0]) for m in metrics], dtype=np.float64)
    se = np.array([float(found[m][1]) for m in metrics], dtype=np.float64)
    device = str(found.get("_device", "")) if hasattr(found, "get") else ""
    return {"value": value, "se": se, "device": np.array(device)}


# --------------------------------------------------------------------------- resume


def _sample_name(number: int) -> str:
    """The checkpoint of design row `number` in `<out>.partial/`."""
    return f"sample{number:07d}"


# --------------------------------------------------------------------------- progress


# --------------------------------------------------------------------------- the indices


def noise_floor(method: str, se: np.ndarray, variance: float, levels: int) -> float:
    """What the index (Sobol' ST, Morris mu_star) of a key with no effect reaches on
    independent evaluation noise of standard errors `se` alone (module docstring, 5.)."""
    se = np.asarray(se, dtype=np.float64)
    if se.size == 0 or not np.all(np.isfinite(se)):
        return math.nan
    mean_sq = float(np.mean(se**2))
    if method == "sobol":
        return mean_sq / variance if variance > 0 else math.nan
    delta = levels / (2.0 * (levels - 1))
    return 2.0 * math.sqrt(mean_sq) / (delta * math.sqrt(math.pi))


def analyze(d: Design, y: np.ndarray, se: np.ndarray) -> dict[str, np.ndarray]:
    """The indices of every metric: arrays over (key, metric), and the noise figures over
    metric. `y`, `se`: (n, metrics). A metric that is NaN in any set gets NaN indices; a
    metric constant over the sample gets Morris effects 0 and NaN Sobol' indices (no
    variance to share out)."""
    n_keys, n_metrics = len(d.keys), y.shape[1]
    names = MORRIS_INDICES if d.method == "morris" else SOBOL_INDICES
    out = {name: np.full((n_keys, n_metrics), np.nan) for name in names}
    variance = np.full(n_metrics, np.nan)
    share = np.full(n_metrics, np.nan)
    floor = np.full(n_metrics, np.nan)
    for m in range(n_metrics):
        ym = np.asarray(y[:, m], dtype=np.float64)
        if not np.all(np.isfinite(ym)):
            continue
        variance[m] = float(np.var(ym, ddof=1))
        if variance[m] > 0 and np.all(np.isfinite(se[:, m])):
            share[m] = float(np.mean(se[:, m] ** 2)) / variance[m]
        floor[m] = noise_floor(d.method, se[:, m], variance[m], d.levels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if d.method == "morris":
                from SALib.analyze import morris

                found = morris.analyze(
                    d.problem,
                    d.unit,
                    ym,
                    num_resamples=NUM_RESAMPLES,
                    conf_level=CONF,
                    num_levels=d.levels,
                    seed=d.seed,
                )
            elif variance[m] > 0:
                from SALib.analyze import sobol

                found = sobol.analyze(
                    d.problem,
                    ym,
                    calc_second_order=False,
                    num_resamples=NUM_RESAMPLES,
                    conf_level=CONF,
                    seed=d.seed,
                )
            else:
                continue
        for name in names:
            out[name][:, m] = np.asarray(found[name], dtype=np.float64)
    index = out["mu_star" if d.method == "morris" else "ST"]
    within = np.zeros_like(index, dtype=bool)
    for m in range(n_metrics):
        if math.isfinite(floor[m]):
            within[:, m] = index[:, m] <= floor[m]
    return {
        **out,
        "variance": variance,
        "noise_share": share,
        "noise_floor": floor,
        "within": within,
    }


# --------------------------------------------------------------------------- the run


def _problem(scenario: Any, key: str, message: str) -> ScenarioError:
    line = _line_index(scenario.text).get(key) if scenario.text else None
    return ScenarioError(scenario.path, [Problem(key, line, message)])


def _check_table(scenario: Any, with_model: bool) -> None:
    table = scenario.sensitivity
    if scenario.grid:
        raise _problem(
            scenario,
            "grid",
            "sensitivity samples one scenario's inputs: use a scenario without [grid] (the "
            "sampled keys are its axes)",
        )
    if not table.ranges():
        raise _problem(
            scenario,
            "sensitivity.keys",
            'names no key; give each sampled key a range, e.g. "market.sigma" = '
            "{ low = 0.5, high = 3.0 }",
        )
    if with_model:
        return
    known = metric_names()
    for i, name in enumerate(table.metrics):
        if name not in known:
            raise _problem(
                scenario,
                "sensitivity.metrics",
                f"metrics[{i}] = {name!r} is not a scalar result metric; choose among "
                + ", ".join(known),
            )


def _key_unit(key: str) -> str:
    table, _, name = key.partition(".")
    info = TABLES[table].model_fields[name]
    return str((info.json_schema_extra or {}).get("unit", "—"))  # type: ignore[union-attr]


def _metric_meta(name: str) -> tuple[str, str]:
    if name in VARIABLES:
        return VARIABLES[name].units, VARIABLES[name].long_name
    return "1", name


def sensitivity(
    scenario: Any,
    *,
    samples: int | None = None,
    paths: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    scheduler: Any = None,
    engine: str | None = None,
    float64: bool | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    model: Callable[[Mapping[str, float]], Mapping[str, Any]] | None = None,
) -> Any:
    """Sample the `[sensitivity]` table's keys, run every set, estimate the indices.

    Args:
      scenario: a `simkit.scenario.Scenario` without a grid, with a `[sensitivity]` table.
      samples: Morris trajectories or the Sobol' base sample. Default: the table's.
      paths: paths per set. Default: the table's `paths`.
      seed, chunk_size, engine, float64: the runs' settings (`simkit.run.simulate`).
        Default: the scenario's `[simulation]`.
      scheduler: where the sets run (`simkit.run.choose_executor`: None = two threads here
        for the JAX engine; "synchronous", "threads", "processes", a dask address or a
        `distributed.Client`).
      out: write the result there (atomically) and keep finished sets in `<out>.partial/`
        while running; a rerun of the same run computes only the sets not saved.
      progress: a progress bar over the sets on a terminal.
      model: the model evaluation, `{key: value} -> {metric: (value, se)}` (picklable for
        dask). Default: `ScenarioModel` (a one-cell run of the scenario on its own seed).

    Returns:
      an `xarray.Dataset` over `sample`, `key` and `metric` (module docstring).
    """
    started = time.perf_counter()
    if samples is not None:
        overrides = {**dict(scenario.overrides), "sensitivity.samples": samples}
        scenario = parse_scenario(scenario.text, path=scenario.path, overrides=overrides)
    _check_table(scenario, with_model=model is not None)
    table = scenario.sensitivity
    paths = int(table.paths if paths is None else paths)
    settings = run.resolve_settings(
        scenario, paths=paths, seed=seed, chunk_size=chunk_size, engine=engine, float64=float64
    )
    metrics = tuple(table.metrics)
    d = design(table)
    if model is None:
        run_kwargs = dict(
            paths=settings.paths,
            seed=settings.seed,
            chunk_size=settings.chunk_size,
            engine=settings.engine,
            float64=settings.float64,
        )
        model = ScenarioModel(scenario, metrics, run_kwargs)
        for i in range(d.n):  # every set is valid before anything runs
            model.variant(d.row(i))
        model_name = "scenario"
        simulated = True
    else:
        simulated = False
        model_name = (
            f"{type(model).__module__}.{getattr(model, '__qualname__', type(model).__qualname__)}"
        )

    resume = None
    if out is not None:
        fingerprint = {
            "scenario_sha256": hashlib.sha256(scenario.to_toml().encode()).hexdigest(),
            "design_sha256": d.digest(),
            "metrics": list(metrics),
            "model": model_name,
            "paths": settings.paths,
            "seed": settings.seed,
            "n_steps": settings.n_steps,
            "chunk_size": settings.chunk_size,
            "engine": settings.engine,
            "dtype": settings.dtype,
            "simkit_version": __version__,
        }
        resume = store.Checkpoints.open(out, fingerprint, "samples")

    y = np.full((d.n, len(metrics)), np.nan)
    se = np.full((d.n, len(metrics)), np.nan)
    devices: set[str] = set()
    todo: list[_SampleTask] = []
    for i in range(d.n):
        saved = resume.load(_sample_name(i)) if resume is not None else None
        if saved is None:
            todo.append(_SampleTask(i, tuple(d.row(i).items())))
        else:
            y[i], se[i] = saved["value"], saved["se"]
            devices.add(str(saved["device"]))
    # The size that chooses the default executor: the runs' path-steps (an injected model's
    # sets run in this process).
    path_steps = settings.paths * (settings.n_steps + 1) * len(todo) if simulated else 0
    executor = run.choose_executor(scheduler, path_steps, settings.engine)
    bar = RunsBar(progress, d.n, f"sensitivity ({d.method})", done=d.n - len(todo))
    try:
        if todo:
            with executor:
                for task, arrays in executor.map_unordered(_evaluate, todo, model, metrics):
                    if resume is not None:
                        resume.save(_sample_name(task.number), arrays)
                    y[task.number], se[task.number] = arrays["value"], arrays["se"]
                    devices.add(str(arrays["device"]))
                    bar.advance()
    except BaseException:
        if resume is not None and resume.loaded == 0 and resume.saved == 0:
            resume.finish()  # nothing to resume: leave nothing behind
        raise
    finally:
        bar.close()

    found = analyze(d, y, se)
    attrs = store.run_attrs(
        scenario,
        settings,
        wall_time_s=time.perf_counter() - started,
        executor=executor.name if todo else "resumed",
        device="; ".join(sorted(x for x in devices if x)) or "",
        per_path=False,
    )
    ds = _dataset(scenario, d, metrics, y, se, found, attrs, model_name)
    if out is not None:
        store.write_dataset(ds, out)
        resume.finish()
    return ds


# --------------------------------------------------------------------------- the dataset

_INDEX_TEXT = {
    "mu_star": "Morris mu*: mean absolute elementary effect, the metric's change per whole "
    "range of the key (along its law)",
    "mu_star_conf": f"half-width of the {CONF:.0%} bootstrap interval of mu*",
    "mu": "Morris mu: mean elementary effect (its sign is the direction of the effect)",
    "sigma": "Morris sigma: standard deviation of the elementary effects (non-linearity or "
    "interactions)",
    "S1": "Sobol' first-order index: share of the metric's variance the key explains alone",
    "S1_conf": f"half-width of the {CONF:.0%} bootstrap interval of S1",
    "ST": "Sobol' total index: share of the metric's variance due to the key with all its "
    "interactions",
    "ST_conf": f"half-width of the {CONF:.0%} bootstrap interval of ST",
}


def _dataset(
    scenario: Any,
    d: Design,
    metrics: tuple[str, ...],
    y: np.ndarray,
    se: np.ndarray,
    found: dict[str, np.ndarray],
    attrs: dict[str, Any],
    model_name: str,
) -> Any:
    import xarray as xr

    units = [_metric_meta(m)[0] for m in metrics]
    index_units = "the metric's units per whole range of the key (metric_units)"
    coords = {
        "sample": xr.Variable(
            "sample", np.arange(d.n), {"units": "1", "long_name": "sampled parameter set"}
        ),
        "key": xr.Variable(
            "key", np.array(d.keys, dtype=str), {"units": "1", "long_name": "sampled scenario key"}
        ),
        "metric": xr.Variable(
            "metric", np.array(metrics, dtype=str), {"units": "1", "long_name": "result metric"}
        ),
    }

    def var(dims, data, units_, long_name, **extra):
        return xr.Variable(dims, data, {"units": units_, "long_name": long_name, **extra})

    data = {
        "input_value": var(
            ("sample", "key"),
            d.values,
            "key_units",
            "value of the key in the parameter set (in the key's own units, key_units)",
        ),
        "input_unit": var(
            ("sample", "key"),
            d.unit,
            "1",
            "position of the value in the key's range along its law, in [0, 1] (SALib's sample)",
        ),
        "key_low": var("key", np.array(d.low), "key_units", "low end of the key's range"),
        "key_high": var("key", np.array(d.high), "key_units", "high end of the key's range"),
        "key_law": var(
            "key", np.array(d.law, dtype=str), "1", "sampling law: uniform or log-uniform"
        ),
        "key_units": var(
            "key", np.array([_key_unit(k) for k in d.keys], dtype=str), "1", "units of the key"
        ),
        "metric_value": var(
            ("sample", "metric"), y, "metric_units", "the metric of the parameter set's run"
        ),
        "metric_se": var(
            ("sample", "metric"),
            se,
            "metric_units",
            "standard error of the metric (Monte Carlo noise of the run; NaN: none known)",
        ),
        "metric_units": var("metric", np.array(units, dtype=str), "1", "units of the metric"),
        "metric_long_name": var(
            "metric",
            np.array([_metric_meta(m)[1] for m in metrics], dtype=str),
            "1",
            "what the metric is",
        ),
        "metric_variance": var(
            "metric",
            found["variance"],
            "metric_units squared",
            "variance of the metric over the parameter sets (ddof = 1)",
        ),
        "noise_share": var(
            "metric",
            found["noise_share"],
            "1",
            "mean(se^2) / Var(metric): the share of the metric's variance over the sets that "
            "independent Monte Carlo errors would make up (an upper bound under common random "
            "numbers)",
        ),
        "noise_floor": var(
            "metric",
            found["noise_floor"],
            "1" if d.method == "sobol" else index_units,
            "the index (Sobol' ST, Morris mu*) a key with no effect reaches on independent "
            "Monte Carlo noise alone",
        ),
        "within_noise": var(
            ("key", "metric"),
            found["within"].astype(np.int8),
            "1",
            "1 where the index (Sobol' ST, Morris mu*) is at or below noise_floor: Monte Carlo "
            "noise of the runs could explain it",
        ),
    }
    if d.method == "morris":
        data["trajectory"] = var(
            "sample", np.arange(d.n) // (len(d.keys) + 1), "1", "Morris trajectory of the set"
        )
    for name in MORRIS_INDICES if d.method == "morris" else SOBOL_INDICES:
        data[name] = var(
            ("key", "metric"),
            found[name],
            index_units if d.method == "morris" else "1",
            _INDEX_TEXT[name],
        )
    name = scenario.path and Path(str(scenario.path)).name
    attrs = dict(attrs)
    attrs.update(
        {
            "title": f"simkit sensitivity of {name or 'a scenario'}",
            "simkit_result": "sensitivity",
            "method": d.method,
            "samples": d.samples,
            "levels": d.levels,
            "sample_seed": d.seed,
            "evaluations": d.n,
            "conf_level": CONF,
            "num_resamples": NUM_RESAMPLES,
            "model": model_name,
            "salib_version": _salib_version(),
            "common_random_numbers": "every parameter set runs on the scenario's seed, cell 0 "
            "and path indices: the same market paths",
        }
    )
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _salib_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("SALib")
    except importlib.metadata.PackageNotFoundError:
        return "?"
