"""The result variable registry (`simkit.schema.results`): every variable of a run file and of
a stress file is declared there once, with the file's units and long name."""

from __future__ import annotations

import pytest
import xarray as xr
from scenario_files import GRID_2X2, write_scenario

from simkit import aggregate, stress
from simkit.paths.shocks import Shock, SpotShock, StressSpec
from simkit.run import simulate
from simkit.scenario import load_scenario
from simkit.schema import results
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
)
STRESS_TABLES = (results.STRESS_VARIABLES, results.STRESS_EXTRAS, results.COORDINATES)


def _check_file(path, tables):
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert len(ds.data_vars) > 50
        for name, variable in ds.variables.items():
            attrs = {k: variable.attrs[k] for k in ("units", "long_name") if k in variable.attrs}
            if "." in name:  # a grid axis (or a key zipped with one)
                assert attrs == results.grid_axis_attrs(name), name
                continue
            found = {id(table[name]): table[name] for table in tables if name in table}
            assert len(found) == 1, f"{name}: declared {len(found)} times"
            (declared,) = found.values()
            assert attrs == declared.attrs, name
            extra = declared.dims
            assert variable.dims[len(variable.dims) - len(extra) :] == extra, name


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2 x 2 grid run with every optional variable and a one-stress file (reference engine,
    16 paths of 13 days)."""
    directory = tmp_path_factory.mktemp("registry")
    grid = load_scenario(write_scenario(directory, "grid.toml", paths=16, grid=GRID_2X2))
    run_file = directory / "run.nc"
    write_dataset(
        simulate(grid, per_path=True, equity=True, scheduler="synchronous", progress=False),
        run_file,
    )
    base = load_scenario(write_scenario(directory, paths=16))
    spec = StressSpec("crash", "a gap", Shock(spot=SpotShock(day=5, change=-0.3)))
    stress_file = directory / "stress.nc"
    write_dataset(stress.run_stress(base, [spec], progress=False), stress_file)
    return run_file, stress_file


def test_every_variable_of_a_run_file_is_declared_once_with_its_attrs(files):
    _check_file(files[0], RUN_TABLES)


def test_every_variable_of_a_stress_file_is_declared_once_with_its_attrs(files):
    _check_file(files[1], STRESS_TABLES)


def test_no_name_is_declared_twice_for_one_file():
    for tables in (RUN_TABLES, STRESS_TABLES):
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
    for name in ("paths", "prob_ruin", "prob_ruin_lo", "prob_ruin_hi", "total_return_quantile"):
        assert results.STRESS_VARIABLES[name] is results.RUN_VARIABLES[name]
    low, high = results.STRESS_VARIABLES["prob_stop_loss_lo"], results.RUN_VARIABLES["prob_ruin_hi"]
    assert low.long_name.startswith("lower bound of the 95% confidence interval of share of")
    assert high.long_name.startswith("upper bound of the 95% confidence interval of share of")
    se = results.with_interval("m", "USD", "a mean", se=True)
    assert [v.name for v in se] == ["m", "m_se", "m_lo", "m_hi"]
    assert {v.units for v in se} == {"USD"} and se[1].long_name == "standard error of a mean"
