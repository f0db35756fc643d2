"""Result files: round trip through h5netcdf, attributes, atomic writes, resume state."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest
import xarray as xr

import simkit
from simkit.run import RunSettings, simulate
from simkit.scenario import load_scenario
from simkit.store import ResumeState, partial_dir, write_dataset

# A bool axis, a string axis and a zipped coordinate: every kind of grid value a file holds.
MIXED_GRID = """
[grid]
"market.model" = ["gbm", "merton"]
"exits.stop_loss" = [true, false]
[grid.zip]
"market.sigma" = [1.5, 3.0]
"market.mu" = [0.0, 0.1]
"""


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mixed")
    path = directory / "mixed.toml"
    path.write_text(
        '[simulation]\npaths = 12\nseed = 1\nyears = 0.05\nchunk_size = 6\nengine = "reference"\n'
        + MIXED_GRID
    )
    out = directory / "mixed.nc"
    ds = simulate(load_scenario(path), per_path=True, out=out, scheduler="synchronous")
    return ds, out, path


def test_round_trip_is_exact(mixed_run):
    ds, out, _ = mixed_run
    with xr.open_dataset(out) as back:  # default engine detection: a NetCDF4/HDF5 file
        back = back.load()
    xr.testing.assert_identical(ds, back)
    assert back["exits.stop_loss"].dtype == bool
    assert list(back["market.model"].values) == ["gbm", "merton"]
    assert back["market.mu"].dims == ("market.sigma",)  # zipped: a coordinate on its axis
    assert back["final_equity"].dims == ("market.model", "exits.stop_loss", "market.sigma", "path")
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89HDF\r\n\x1a\n"


def test_units_and_long_name_on_every_variable(mixed_run):
    ds, _, _ = mixed_run
    for name, variable in ds.variables.items():
        assert variable.attrs.get("units") is not None, name
        assert variable.attrs.get("long_name"), name
    for name in (
        "win_rate_trade",
        "win_rate_path",
        "annual_return_mean",
        "annual_return_median",
        "sharpe",
        "max_drawdown_median",
        "var_95",
        "var_99",
        "cvar_99",
        "prob_ruin",
        "kelly_p",
        "kelly_avg_win",
        "kelly_avg_loss",
        "kelly_fraction",
        "initial_equity",
        "final_equity",
        "max_drawdown",
        "n_trades",
        "n_wins",
    ):
        assert name in ds, name
    assert ds["initial_equity"].attrs["units"] == "USD"


def test_dataset_attributes(mixed_run):
    ds, _, path = mixed_run
    attrs = ds.attrs
    assert attrs["scenario_text"] == path.read_text()
    assert attrs["seed"] == 1 and attrs["paths"] == 12 and attrs["n_steps"] == 13
    assert attrs["simkit_version"] == simkit.__version__
    for key in ("jax_version", "numpy_version", "xarray_version", "device", "created"):
        assert attrs[key], key
    assert "cpu" in attrs["device"].lower() or "gpu" in attrs["device"].lower()
    assert attrs["engine"] == "reference" and attrs["dtype"] == "float32"
    assert attrs["per_path"] == 1 and attrs["wall_time_s"] > 0


def test_bool_and_string_variables_round_trip(tmp_path):
    ds = xr.Dataset(
        {
            "flag": ("x", np.array([True, False, True]), {"units": "1", "long_name": "a flag"}),
            "label": ("x", np.array(["a", "bb", "ccc"]), {"units": "1", "long_name": "text"}),
        },
        coords={"x": ("x", [0.5, 1.5, 2.5], {"units": "1", "long_name": "x"})},
        attrs={"note": "ünïcode text", "count": 3},
    )
    out = write_dataset(ds, tmp_path / "small.nc")
    with xr.open_dataset(out) as back:
        back = back.load()
    xr.testing.assert_identical(ds, back)
    assert back["flag"].dtype == bool


def test_atomic_write_leaves_nothing_on_error(tmp_path, monkeypatch):
    ds = xr.Dataset({"a": ("x", np.arange(3.0), {"units": "1", "long_name": "a"})})
    target = tmp_path / "out.nc"
    write_dataset(ds, target)
    before = target.read_bytes()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600

    def half_then_fail(self, path, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"\x89HDF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(ds * 2, target)
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]  # no temporary left

    fresh = tmp_path / "new.nc"
    with pytest.raises(OSError):
        write_dataset(ds, fresh)
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def _settings(**changes):
    base = dict(paths=32, seed=1, n_steps=13, chunk_size=16, engine="reference", float64=False)
    base.update(changes)
    return RunSettings(**base)


def test_resume_state_is_kept_for_the_same_run_only(tiny_scenario, tmp_path, caplog):
    scenario = load_scenario(tiny_scenario)
    cells = scenario.cells()
    out = tmp_path / "r.nc"

    class Block:
        cell_number, path_start, n_paths = 0, 16, 16

    state = ResumeState.open(out, scenario, cells, _settings())
    arrays = {"x": np.arange(16.0), "_device": np.array("cpu")}
    state.save(Block, arrays)
    # a saved block counts once its cell's daily equity is kept beside it (or its bands)
    assert not state.has(Block) and state.load(Block) is None
    state.daily_file(0).write_bytes(b"")
    again = ResumeState.open(out, scenario, cells, _settings())
    assert again.has(Block)
    loaded = again.load(Block)
    assert np.array_equal(loaded["x"], arrays["x"]) and str(loaded["_device"]) == "cpu"
    state.daily_file(0).unlink()
    again.save_bands(0, np.ones((7, 14)))
    assert again.has(Block) and np.array_equal(again.load_bands(0), np.ones((7, 14)))
    keeps = ResumeState.open(tmp_path / "e.nc", scenario, cells, _settings(equity=True))
    keeps.save(Block, arrays)
    keeps.save_bands(0, np.ones((7, 14)))
    assert not keeps.has(Block)  # every path's equity is needed: bands are not enough
    keeps.finish()

    with caplog.at_level(logging.WARNING, logger="simkit"):
        other = ResumeState.open(out, scenario, cells, _settings(chunk_size=8))
    assert "chunk_size" in caplog.text
    assert other.load(Block) is None
    other.finish()
    assert not partial_dir(out).exists()


def test_overrides_change_the_resume_fingerprint(tiny_scenario):
    from simkit.store import run_fingerprint

    plain = load_scenario(tiny_scenario)
    changed = load_scenario(tiny_scenario, {"market.sigma": 2.5})
    a = run_fingerprint(plain, plain.cells(), _settings())
    b = run_fingerprint(changed, changed.cells(), _settings())
    assert a != b
