"""The result variable registry (`simkit.schema.results`, `simkit.schema.analyses`): every
variable of a run file (with its trade log), a stress file, an explain file and a sensitivity
file (Morris and Sobol') is declared there once, with the file's dimensions, units and long
name."""

from __future__ import annotations

import pytest
import xarray as xr
from scenario_files import GRID_2X2, write_scenario

from simkit import aggregate, explain, sensitivity, stress, trade_log
from simkit.paths.shocks import Shock, SpotShock, StressSpec
from simkit.run import simulate
from simkit.scenario import load_scenario
from simkit.schema import analyses, results
from simkit.store import write_dataset

HISTOGRAM_COORDINATES = {
    variable.name: variable
    for name in results.HISTOGRAMS
    for variable in results.histogram_coordinates(name)
}
RUN_TABLES = (
    results.RUN_VARIABLES,
    results.RUN_CURVES,
    results.PER_PATH_VARIABLES,
    results.COORDINATES,
    HISTOGRAM_COORDINATES,
    results.TRADE_LOG_VARIABLES,
    results.TRADE_LOG_DATES,
    results.TRADE_LOG_COORDINATES,
)
STRESS_TABLES = (results.STRESS_VARIABLES, results.STRESS_EXTRAS, results.COORDINATES)
EXPLAIN_TABLES = (analyses.EXPLAIN_VARIABLES, analyses.EXPLAIN_COORDINATES)
MORRIS_TABLES = (
    analyses.SENSITIVITY_VARIABLES,
    analyses.MORRIS_VARIABLES,
    analyses.SENSITIVITY_COORDINATES,
)
SOBOL_TABLES = (
    analyses.SENSITIVITY_VARIABLES,
    analyses.SOBOL_VARIABLES,
    analyses.SENSITIVITY_COORDINATES,
)
# file kind -> (its tables, whether a declaration lists all of a variable's dimensions (files
# without a grid) or those beyond the grid, the fewest data variables such a file has)
KINDS = {
    "run": (RUN_TABLES, False, 50),
    "stress": (STRESS_TABLES, False, 50),
    "explain": (EXPLAIN_TABLES, True, 30),
    "morris": (MORRIS_TABLES, True, 15),
    "sobol": (SOBOL_TABLES, True, 15),
}


def _declared(name, tables):
    """The one declaration of `name` in `tables` (a grid axis's and a trade's grid value's
    from their functions)."""
    if name.startswith("trade_") and "." in name:  # a trade's grid value (the trade log)
        key = name.removeprefix("trade_")
        return results.trade_grid_variable(key, results.grid_axis_attrs(key)["units"])
    found = {id(table[name]): table[name] for table in tables if name in table}
    assert len(found) == 1, f"{name}: declared {len(found)} times"
    (declared,) = found.values()
    return declared


def _check_file(path, kind):
    tables, all_dims, fewest = KINDS[kind]
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert len(ds.data_vars) >= fewest
        for name, variable in ds.variables.items():
            attrs = {k: variable.attrs[k] for k in ("units", "long_name") if k in variable.attrs}
            if "." in name and not name.startswith("trade_"):  # a grid axis (or zipped key)
                assert attrs == results.grid_axis_attrs(name), name
                continue
            declared = _declared(name, tables)
            assert attrs == declared.attrs, name
            dims = declared.dims
            if all_dims:
                own = (name,) if name in ds.dims else ()  # a coordinate on its own dimension
                assert variable.dims == (dims or own), name
            else:
                assert variable.dims[len(variable.dims) - len(dims) :] == dims, name


SENSITIVITY = """
[sensitivity]
method = "{method}"
samples = 2
paths = 8
metrics = ["annual_return_mean", "prob_loss"]

[sensitivity.keys]
"market.sigma" = {{ low = 0.5, high = 3.0 }}
"market.mu" = {{ low = -0.5, high = 0.5 }}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A file of each kind, small (reference engine, 13 days): a 2 x 2 grid run of 16 paths
    with every optional variable and the trades of 2 paths a cell, a one-stress file, an
    explain file of two changes with the per-path equity (16 paths) and Morris and Sobol'
    sensitivity files of two keys (6 and 8 sets of 8 paths)."""
    directory = tmp_path_factory.mktemp("registry")
    grid = load_scenario(write_scenario(directory, "grid.toml", paths=16, grid=GRID_2X2))
    out = {kind: directory / f"{kind}.nc" for kind in KINDS}
    write_dataset(
        simulate(
            grid, per_path=True, equity=True, trades=2, scheduler="synchronous", progress=False
        ),
        out["run"],
    )
    base = load_scenario(write_scenario(directory, paths=16))
    spec = StressSpec("crash", "a gap", Shock(spot=SpotShock(day=5, change=-0.3)))
    write_dataset(stress.run_stress(base, [spec], progress=False), out["stress"])
    compared = explain.explain(
        base, changes=explain.CHANGES[:2], per_path=True, progress=False, replicates=20
    )
    write_dataset(compared, out["explain"])
    for method in ("morris", "sobol"):
        path = write_scenario(directory, f"{method}.toml", paths=8)
        path.write_text(path.read_text() + SENSITIVITY.format(method=method))
        found = sensitivity.sensitivity(
            load_scenario(path), scheduler="synchronous", progress=False
        )
        write_dataset(found, out[method])
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_variable_of_a_file_is_declared_once_with_its_attrs(files, kind):
    _check_file(files[kind], kind)


def test_the_trade_log_and_the_indices_are_in_the_files(files):
    """The optional parts the registry declares are there to be checked."""
    with xr.open_dataset(files["run"], engine="h5netcdf") as ds:
        assert set(trade_log.names(ds)) == set(results.TRADE_LOG_VARIABLES)
        assert ds.sizes["trade"] > 0 and "trade_market.sigma" in ds.coords
    with xr.open_dataset(files["explain"], engine="h5netcdf") as ds:
        assert set(ds.variables) == set(analyses.EXPLAIN_VARIABLES) | {"change", "path"}
    for method, names in (
        ("morris", sensitivity.MORRIS_INDICES),
        ("sobol", sensitivity.SOBOL_INDICES),
    ):
        with xr.open_dataset(files[method], engine="h5netcdf") as ds:
            assert set(names) <= set(ds.data_vars) and ds.attrs["method"] == method


def test_no_name_is_declared_twice_for_one_file():
    for tables, _, _ in KINDS.values():
        for i, a in enumerate(tables):
            for b in tables[i + 1 :]:
                for name in set(a) & set(b):  # one entry in two tables, not two texts
                    assert a[name] is b[name], name
    table = results._Table()
    table.var("x", "1", "x")
    with pytest.raises(ValueError, match="'x' declared twice"):
        table.var("x", "USD", "another x")


def test_the_stress_reuses_the_run_s_entries_and_the_aliases_hold():
    assert aggregate.VARIABLES is results.RUN_VARIABLES
    assert stress.STRESS_VARIABLES is results.STRESS_VARIABLES
    assert trade_log.VARIABLES is results.TRADE_LOG_VARIABLES
    for name in ("paths", "prob_ruin", "prob_ruin_lo", "prob_ruin_hi", "total_return_quantile"):
        assert results.STRESS_VARIABLES[name] is results.RUN_VARIABLES[name]
    low, high = results.STRESS_VARIABLES["prob_stop_loss_lo"], results.RUN_VARIABLES["prob_ruin_hi"]
    assert low.long_name.startswith("lower bound of the 95% confidence interval of share of")
    assert high.long_name.startswith("upper bound of the 95% confidence interval of share of")
    se = results.with_interval("m", "USD", "a mean", se=True)
    assert [v.name for v in se] == ["m", "m_se", "m_lo", "m_hi"]
    assert {v.units for v in se} == {"USD"} and se[1].long_name == "standard error of a mean"


def test_explain_declares_each_metric_it_compares():
    assert [m.name for m in explain.METRICS] == list(analyses.EXPLAIN_METRICS)
    for name, (units, text) in analyses.EXPLAIN_METRICS.items():
        delta = analyses.EXPLAIN_VARIABLES[f"{name}_delta"]
        assert analyses.EXPLAIN_VARIABLES[f"base_{name}"].units == units == delta.units
        assert delta.long_name == f"change of the {text} (changed minus the scenario, same paths)"
        assert analyses.EXPLAIN_VARIABLES[f"{name}_delta_hi"].long_name.startswith(
            "upper bound of the paired 95% confidence interval of the change of the"
        )
    # the run's own words where they describe the same number
    assert analyses.EXPLAIN_METRICS["prob_loss"][1] == results.RUN_VARIABLES["prob_loss"].long_name
