"""The result variables of the analyses on runs, declared once: name, dimensions, units and
long name of every variable `simkit explain` and `simkit sensitivity` write.

- `EXPLAIN_VARIABLES`, `EXPLAIN_COORDINATES`: `simkit explain` (`simkit.explain`), the scenario
  against itself with one rule or assumption changed, over `change` (and `path` with the
  per-path final equity); each metric it compares (`EXPLAIN_METRICS`) comes as `base_<metric>`,
  `<metric>`, `<metric>_delta` and the bounds `<metric>_delta_lo`, `<metric>_delta_hi`.
- `SENSITIVITY_VARIABLES`, `SENSITIVITY_COORDINATES`: `simkit sensitivity`
  (`simkit.sensitivity`) over `sample`, `key` and `metric`, with the indices of its method
  beside them: `MORRIS_VARIABLES` or `SOBOL_VARIABLES` (`MORRIS_INDICES`, `SOBOL_INDICES`).

A run's own variables (and its trade log) are in `simkit.schema.results`, with the record
(`ResultVariable`) and the rule that a table declares a name once. These files have no grid:
`dims` here are all of a variable's dimensions, as the file stores them (a coordinate on its
own dimension lists none).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from simkit.schema.results import CONFIDENCE, COORDINATES, RUN_VARIABLES, _Table

__all__ = [
    "EXPLAIN_COORDINATES",
    "EXPLAIN_METRICS",
    "EXPLAIN_VARIABLES",
    "MORRIS_INDICES",
    "MORRIS_VARIABLES",
    "SENSITIVITY_COORDINATES",
    "SENSITIVITY_VARIABLES",
    "SOBOL_INDICES",
    "SOBOL_VARIABLES",
]


# --------------------------------------------------------------------------- simkit explain


def _as_the_run_says(name: str) -> tuple[str, str]:
    """A run metric's units and long name (`RUN_VARIABLES`)."""
    variable = RUN_VARIABLES[name]
    return variable.units or "1", variable.long_name


# The metrics explain compares: name -> (units, what it is). Three in the run's words; the
# run's texts of the other two say how the run estimates them (the drawdown's sign, the Kelly
# fraction's delta-method interval), which explain's comparison does not use.
EXPLAIN_METRICS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "annual_return_mean": _as_the_run_says("annual_return_mean"),
        "prob_loss": _as_the_run_says("prob_loss"),
        "max_drawdown_median": ("1", "median over paths of the maximum drawdown"),
        "kelly_sleeve_fraction": (
            "1",
            "Kelly of the sleeve: growth-optimal share of the portfolio in the sleeve, the rest "
            "in cash (0 = do not allocate)",
        ),
        "final_equity_mean": _as_the_run_says("final_equity_mean"),
    }
)

_explain = _Table()
_explain.var("change_key", "1", "scenario key the change sets", ("change",))
_explain.var("change_value", "1", "value the change sets the key to (TOML text)", ("change",))
_explain.var("change_description", "1", "the change in words", ("change",))
for _name, (_units, _text) in EXPLAIN_METRICS.items():
    _explain.var(f"base_{_name}", _units, f"{_text}: the scenario")
    _explain.var(_name, _units, f"{_text}: the scenario with the change", ("change",))
    _delta = f"change of the {_text} (changed minus the scenario, same paths)"
    _explain.var(f"{_name}_delta", _units, _delta, ("change",))
    for _bound, _word in (("lo", "lower"), ("hi", "upper")):
        _explain.var(
            f"{_name}_delta_{_bound}",
            _units,
            f"{_word} bound of the paired {CONFIDENCE:.0%} confidence interval of the {_delta}",
            ("change",),
        )
_explain.var(
    "paths_changed",
    "count",
    "paths whose final sleeve equity differs from the scenario's (0: the change never acted on "
    "these paths)",
    ("change",),
)
_explain.var("paths", "count", "paths per run")
# with `per_path`: every run's final equity
_explain.var(
    "base_final_equity", "USD", "strategy sleeve equity at the horizon: the scenario", ("path",)
)
_explain.var(
    "final_equity",
    "USD",
    "strategy sleeve equity at the horizon: the scenario with the change",
    ("change", "path"),
)
EXPLAIN_VARIABLES = _explain.done()

_explain_coords = _Table()
_explain_coords.var(
    "change",
    "1",
    "the one rule or assumption changed: the TOML override KEY=VALUE applied to the scenario",
)
_explain_coords.reuse(COORDINATES, "path")
EXPLAIN_COORDINATES = _explain_coords.done()


# --------------------------------------------------------------------------- simkit sensitivity

# The indices SALib estimates, by method (`simkit.sensitivity.analyze`).
MORRIS_INDICES = ("mu_star", "mu_star_conf", "mu", "sigma")
SOBOL_INDICES = ("S1", "S1_conf", "ST", "ST_conf")
# Morris's effects are per whole range of the key: the metric's units, one per metric.
_PER_RANGE = "the metric's units per whole range of the key (metric_units)"
_NOISE_FLOOR = (
    "the index (Sobol' ST, Morris mu*) a key with no effect reaches on independent Monte Carlo "
    "noise alone"
)

_sensitivity = _Table()
_sensitivity.var(
    "input_value",
    "key_units",
    "value of the key in the parameter set (in the key's own units, key_units)",
    ("sample", "key"),
)
_sensitivity.var(
    "input_unit",
    "1",
    "position of the value in the key's range along its law, in [0, 1] (SALib's sample)",
    ("sample", "key"),
)
_sensitivity.var("key_low", "key_units", "low end of the key's range", ("key",))
_sensitivity.var("key_high", "key_units", "high end of the key's range", ("key",))
_sensitivity.var("key_law", "1", "sampling law: uniform or log-uniform", ("key",))
_sensitivity.var("key_units", "1", "units of the key", ("key",))
_sensitivity.var(
    "metric_value", "metric_units", "the metric of the parameter set's run", ("sample", "metric")
)
_sensitivity.var(
    "metric_se",
    "metric_units",
    "standard error of the metric (Monte Carlo noise of the run; NaN: none known)",
    ("sample", "metric"),
)
_sensitivity.var("metric_units", "1", "units of the metric", ("metric",))
_sensitivity.var("metric_long_name", "1", "what the metric is", ("metric",))
_sensitivity.var(
    "metric_variance",
    "metric_units squared",
    "variance of the metric over the parameter sets (ddof = 1)",
    ("metric",),
)
_sensitivity.var(
    "noise_share",
    "1",
    "mean(se^2) / Var(metric): the share of the metric's variance over the sets that "
    "independent Monte Carlo errors would make up (an upper bound under common random numbers)",
    ("metric",),
)
_sensitivity.var(
    "within_noise",
    "1",
    "1 where the index (Sobol' ST, Morris mu*) is at or below noise_floor: Monte Carlo noise of "
    "the runs could explain it",
    ("key", "metric"),
)
SENSITIVITY_VARIABLES = _sensitivity.done()

_morris = _Table()
_morris.var("noise_floor", _PER_RANGE, _NOISE_FLOOR, ("metric",))
_morris.var("trajectory", "1", "Morris trajectory of the set", ("sample",))
_morris.var(
    "mu_star",
    _PER_RANGE,
    "Morris mu*: mean absolute elementary effect, the metric's change per whole range of the "
    "key (along its law)",
    ("key", "metric"),
)
_morris.var(
    "mu_star_conf",
    _PER_RANGE,
    f"half-width of the {CONFIDENCE:.0%} bootstrap interval of mu*",
    ("key", "metric"),
)
_morris.var(
    "mu",
    _PER_RANGE,
    "Morris mu: mean elementary effect (its sign is the direction of the effect)",
    ("key", "metric"),
)
_morris.var(
    "sigma",
    _PER_RANGE,
    "Morris sigma: standard deviation of the elementary effects (non-linearity or interactions)",
    ("key", "metric"),
)
MORRIS_VARIABLES = _morris.done()

_sobol = _Table()
_sobol.var("noise_floor", "1", _NOISE_FLOOR, ("metric",))
_sobol.var(
    "S1",
    "1",
    "Sobol' first-order index: share of the metric's variance the key explains alone",
    ("key", "metric"),
)
_sobol.var(
    "S1_conf",
    "1",
    f"half-width of the {CONFIDENCE:.0%} bootstrap interval of S1",
    ("key", "metric"),
)
_sobol.var(
    "ST",
    "1",
    "Sobol' total index: share of the metric's variance due to the key with all its interactions",
    ("key", "metric"),
)
_sobol.var(
    "ST_conf",
    "1",
    f"half-width of the {CONFIDENCE:.0%} bootstrap interval of ST",
    ("key", "metric"),
)
SOBOL_VARIABLES = _sobol.done()

_sensitivity_coords = _Table()
_sensitivity_coords.var("sample", "1", "sampled parameter set")
_sensitivity_coords.var("key", "1", "sampled scenario key")
_sensitivity_coords.var("metric", "1", "result metric")
SENSITIVITY_COORDINATES = _sensitivity_coords.done()
