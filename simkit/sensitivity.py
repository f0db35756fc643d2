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
from simkit.schema.analyses import (
    MORRIS_INDICES,
    MORRIS_VARIABLES,
    SENSITIVITY_COORDINATES,
    SENSITIVITY_VARIABLES,
    SOBOL_INDICES,
    SOBOL_VARIABLES,
)
from simkit.schema.results import CONFIDENCE, ResultVariable
from simkit.schema.tables import TABLES

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


CONF = CONFIDENCE  # confidence of SALib's intervals (`_conf` half-widths): 0.95
NUM_RESAMPLES = 1000  # SALib's bootstrap resamples for the intervals


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
                    # SALib seeds its bootstrap only `if seed:`: 0 would draw from NumPy's
                    # global generator. A SeedSequence is truthy and seeds default_rng exactly
                    # as the integer does, so every other seed keeps its numbers.
                    seed=np.random.SeedSequence(d.seed),
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
    simulated = model is None
    model, model_name = _the_model(scenario, settings, metrics, d, model)
    resume = None
    if out is not None:
        resume = _checkpoints(out, scenario, settings, d, metrics, model_name)
    found = _Evaluations.empty(d.n, len(metrics))
    todo = found.load(d, resume)
    # The size that chooses the default executor: the runs' path-steps (an injected model's
    # sets run in this process).
    path_steps = settings.paths * (settings.n_steps + 1) * len(todo) if simulated else 0
    executor = run.choose_executor(scheduler, path_steps, settings.engine)
    bar = RunsBar(progress, d.n, f"sensitivity ({d.method})", done=d.n - len(todo))
    _evaluate_sets(todo, executor, model, metrics, resume, found, bar)

    attrs = store.run_attrs(
        scenario,
        settings,
        wall_time_s=time.perf_counter() - started,
        executor=executor.name if todo else "resumed",
        device="; ".join(sorted(x for x in found.devices if x)) or "",
        per_path=False,
    )
    indices = analyze(d, found.value, found.se)
    ds = _dataset(scenario, d, metrics, found.value, found.se, indices, attrs, model_name)
    if out is not None:
        store.write_dataset(ds, out)
        resume.finish()
    return ds


def _the_model(
    scenario: Any,
    settings: Any,
    metrics: tuple[str, ...],
    d: Design,
    model: Callable[[Mapping[str, float]], Mapping[str, Any]] | None,
) -> tuple[Callable[[Mapping[str, float]], Mapping[str, Any]], str]:
    """The model that evaluates a set and its name: the injected `model`, or (None) a
    `ScenarioModel` of the scenario in `settings`, every set of the design checked valid
    before anything runs (ScenarioError if not)."""
    if model is not None:
        qualname = getattr(model, "__qualname__", type(model).__qualname__)
        return model, f"{type(model).__module__}.{qualname}"
    run_kwargs = dict(
        paths=settings.paths,
        seed=settings.seed,
        chunk_size=settings.chunk_size,
        engine=settings.engine,
        float64=settings.float64,
    )
    scenario_model = ScenarioModel(scenario, metrics, run_kwargs)
    for i in range(d.n):
        scenario_model.variant(d.row(i))
    return scenario_model, "scenario"


def _checkpoints(
    out: str | os.PathLike,
    scenario: Any,
    settings: Any,
    d: Design,
    metrics: tuple[str, ...],
    model_name: str,
) -> store.Checkpoints:
    """The finished sets of this run in `<out>.partial/`, kept under the run's inputs (a
    folder of another run is discarded)."""
    fingerprint = {
        "scenario_sha256": hashlib.sha256(scenario.to_toml().encode()).hexdigest(),
        "design_sha256": d.digest(),
        "metrics": list(metrics),
        "model": model_name,
        **store.settings_fingerprint(settings),
    }
    return store.Checkpoints.open(out, fingerprint, "samples")


@dataclasses.dataclass
class _Evaluations:
    """The model's answers so far: each metric's value and standard error per set, `(sets,
    metrics)` (NaN until the set is evaluated), and the devices that computed them."""

    value: np.ndarray
    se: np.ndarray
    devices: set[str]

    @classmethod
    def empty(cls, sets: int, metrics: int) -> _Evaluations:
        return cls(np.full((sets, metrics), np.nan), np.full((sets, metrics), np.nan), set())

    def put(self, number: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Set `number`'s answer (`_evaluate`'s arrays, or their checkpoint)."""
        self.value[number], self.se[number] = arrays["value"], arrays["se"]
        self.devices.add(str(arrays["device"]))

    def load(self, d: Design, resume: store.Checkpoints | None) -> list[_SampleTask]:
        """Take the sets saved by an earlier run; the sets still to evaluate."""
        todo = []
        for i in range(d.n):
            saved = resume.load(_sample_name(i)) if resume is not None else None
            if saved is None:
                todo.append(_SampleTask(i, tuple(d.row(i).items())))
            else:
                self.put(i, saved)
        return todo


def _evaluate_sets(
    todo: list[_SampleTask],
    executor: Any,
    model: Callable[[Mapping[str, float]], Mapping[str, Any]],
    metrics: tuple[str, ...],
    resume: store.Checkpoints | None,
    found: _Evaluations,
    bar: RunsBar,
) -> None:
    """Evaluate the sets of `todo` on `executor` into `found`, each saved as it arrives. On a
    failure before any set was saved or loaded, nothing is left behind."""
    try:
        if todo:
            with executor:
                for task, arrays in executor.map_unordered(_evaluate, todo, model, metrics):
                    if resume is not None:
                        resume.save(_sample_name(task.number), arrays)
                    found.put(task.number, arrays)
                    bar.advance()
    except BaseException:
        if resume is not None and resume.loaded == 0 and resume.saved == 0:
            resume.finish()  # nothing to resume: leave nothing behind
        raise
    finally:
        bar.close()


# --------------------------------------------------------------------------- the dataset


def _variable(declared: ResultVariable, data: Any) -> Any:
    """A declared variable (`simkit.schema.analyses`) holding `data`."""
    import xarray as xr

    return xr.Variable(declared.dims, data, declared.attrs)


def _coordinate(name: str, data: Any) -> Any:
    """The coordinate `name` (`SENSITIVITY_COORDINATES`, on its own dimension) holding `data`."""
    import xarray as xr

    return xr.Variable(name, data, SENSITIVITY_COORDINATES[name].attrs)


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
    """The design, the evaluations and the indices as an `xarray.Dataset` (module docstring)."""
    import xarray as xr

    coords = {
        "sample": _coordinate("sample", np.arange(d.n)),
        "key": _coordinate("key", np.array(d.keys, dtype=str)),
        "metric": _coordinate("metric", np.array(metrics, dtype=str)),
    }
    data = {
        **_input_variables(d),
        **_metric_variables(metrics, y, se, found),
        **_index_variables(d, found),
    }
    return xr.Dataset(data, coords=coords, attrs=_attrs(scenario, d, attrs, model_name))


def _input_variables(d: Design) -> dict[str, Any]:
    """The sampled sets and the keys' ranges."""
    values = {
        "input_value": d.values,
        "input_unit": d.unit,
        "key_low": np.array(d.low),
        "key_high": np.array(d.high),
        "key_law": np.array(d.law, dtype=str),
        "key_units": np.array([_key_unit(k) for k in d.keys], dtype=str),
    }
    return {name: _variable(SENSITIVITY_VARIABLES[name], v) for name, v in values.items()}


def _metric_variables(
    metrics: tuple[str, ...], y: np.ndarray, se: np.ndarray, found: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Each set's metrics, what the metrics are, and their spread and noise over the sets."""
    values = {
        "metric_value": y,
        "metric_se": se,
        "metric_units": np.array([_metric_meta(m)[0] for m in metrics], dtype=str),
        "metric_long_name": np.array([_metric_meta(m)[1] for m in metrics], dtype=str),
        "metric_variance": found["variance"],
        "noise_share": found["noise_share"],
    }
    return {name: _variable(SENSITIVITY_VARIABLES[name], v) for name, v in values.items()}


def _index_variables(d: Design, found: dict[str, np.ndarray]) -> dict[str, Any]:
    """The method's indices (`MORRIS_VARIABLES`, `SOBOL_VARIABLES`), their noise floor and
    where they are within it (and Morris's trajectory of each set)."""
    own = MORRIS_VARIABLES if d.method == "morris" else SOBOL_VARIABLES
    data = {
        "noise_floor": _variable(own["noise_floor"], found["noise_floor"]),
        "within_noise": _variable(
            SENSITIVITY_VARIABLES["within_noise"], found["within"].astype(np.int8)
        ),
    }
    if d.method == "morris":
        trajectory = np.arange(d.n) // (len(d.keys) + 1)
        data["trajectory"] = _variable(own["trajectory"], trajectory)
    for name in MORRIS_INDICES if d.method == "morris" else SOBOL_INDICES:
        data[name] = _variable(own[name], found[name])
    return data


def _attrs(scenario: Any, d: Design, attrs: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The run's attributes (`attrs`) and the sensitivity's own: the design and the method."""
    name = scenario.path and Path(str(scenario.path)).name
    return {
        **attrs,
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


def _salib_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("SALib")
    except importlib.metadata.PackageNotFoundError:
        return "?"
