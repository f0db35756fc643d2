"""Reports: every figure for a single run, a grid and a stress result, and an HTML page that
holds (and links) each of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xarray as xr

from simkit.cli import main
from simkit.report import default_folder, make_report
from simkit.run import simulate
from simkit.scenario import load_scenario
from simkit.store import write_dataset

PNG = b"\x89PNG\r\n\x1a\n"
RUN_FIGURES = {
    "equity_fan",
    "return_distribution",
    "drawdown_distribution",
    "close_reasons",
    "attribution",
    "kelly",
    "breaches",
}
LIMITS = (
    "allocation",
    "leverage",
    "var",
    "expiry",
    "strike",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)
STRESS_FIGURES = {
    "stress_outcomes",
    "stress_returns",
    "stress_equity",
    "stress_shock",
    "stress_stops",
    "stress_attribution",
    "breaches_overview",
    *(f"breach_{limit}" for limit in LIMITS),
}


def check_report(folder: Path, expected: set[str]) -> str:
    """Every expected PNG is a PNG, the page embeds and links each, and nothing else."""
    pngs = {p.stem for p in folder.glob("*.png")}
    assert pngs == expected
    for name in expected:
        assert (folder / f"{name}.png").read_bytes()[:8] == PNG, name
    page = (folder / "index.html").read_text(encoding="utf-8")
    for name in expected:
        assert f'href="{name}.png"' in page, name
        assert f'<figure id="{name}">' in page, name
    assert page.count("data:image/png;base64,") == len(expected)
    assert page.count("<table>") >= 1
    return page


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A single run (with and without per-path data), a 2 x 2 grid and a 1-axis grid."""
    directory = tmp_path_factory.mktemp("runs")
    base = (
        '[simulation]\npaths = 24\nseed = 3\nyears = 0.05\nchunk_size = 24\nengine = "reference"\n'
    )
    files = {
        "single": base,
        "grid2": base
        + '[grid]\n"market.sigma" = [1.5, 3.0]\n"exits.stop_loss_multiple" = [1.0, 2.0]\n',
        "grid1": base + '[grid]\n"market.mu" = [-0.5, 0.05, 0.5]\n',
    }
    out = {}
    for name, text in files.items():
        path = directory / f"{name}.toml"
        path.write_text(text)
        out[name] = directory / f"{name}.nc"
        simulate(load_scenario(path), out=out[name])
    out["per_path"] = directory / "per_path.nc"
    simulate(load_scenario(directory / "single.toml"), per_path=True, out=out["per_path"])
    return out


def test_single_run_report(runs, tmp_path):
    report = make_report(runs["single"], tmp_path / "single")
    page = check_report(tmp_path / "single", RUN_FIGURES)
    assert report.index == tmp_path / "single" / "index.html"
    assert "win rate (trades)" in page and "Kelly of the sleeve" in page
    assert report.seconds < 60


def test_per_path_report_uses_the_paths(runs, tmp_path):
    make_report(runs["per_path"], tmp_path / "pp")
    check_report(tmp_path / "pp", RUN_FIGURES | {"payoff"})  # the sleeve against the stock


def test_grid_reports_have_heatmaps_or_lines(runs, tmp_path):
    make_report(runs["grid2"], tmp_path / "g2")
    page = check_report(tmp_path / "g2", RUN_FIGURES | {"grid_heatmaps"})
    assert page.count("<tr>") == 1 + 4  # header + one row per cell
    make_report(runs["grid1"], tmp_path / "g1")
    check_report(tmp_path / "g1", RUN_FIGURES | {"grid_lines"})


def test_an_older_file_without_histograms_still_reports(runs, tmp_path):
    with xr.open_dataset(runs["single"]) as ds:
        ds = ds.load()
    old = ds.drop_vars([v for v in ds.data_vars if "_hist_" in v])
    write_dataset(old, tmp_path / "old.nc")
    make_report(tmp_path / "old.nc", tmp_path / "old")
    check_report(tmp_path / "old", RUN_FIGURES)


def test_stress_report(tmp_path, make_scenario, capsys):
    scenario = make_scenario(paths=8, chunk_size=8)  # reference engine, 13 days
    crash = tmp_path / "crash.toml"
    crash.write_text('[stress]\ndescription = "a gap"\nday = 5\n[spot]\nchange = -0.6\n')
    squeeze = tmp_path / "squeeze.toml"
    squeeze.write_text("[stress]\nday = 4\n[spot]\nchange = 3.0\ndays = 5\n")
    result = tmp_path / "stress.nc"
    args = ["stress", str(crash), str(squeeze), "--scenario", str(scenario), "--out", str(result)]
    assert main([*args, "--no-progress"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["report", str(result)]) == 0
    stdout = capsys.readouterr().out
    folder = default_folder(result)
    assert folder == tmp_path / "stress_report" and f"wrote {folder / 'index.html'}" in stdout
    page = check_report(folder, STRESS_FIGURES)
    assert "a gap" in page and "squeeze" in page and "P(margin call)" in page
    assert "vs cash" in page and "stopped trading" in page


def test_report_cli_default_folder_and_bad_input(runs, tmp_path, capsys):
    assert main(["report", str(runs["single"]), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing.nc")]) == 2
    assert "no such file" in capsys.readouterr().err
    text = tmp_path / "notes.nc"
    text.write_text("not a result")
    assert main(["report", str(text)]) == 2
    err = capsys.readouterr().err
    assert str(text) in err and "Traceback" not in err
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(other, engine="h5netcdf")
    assert main(["report", str(other)]) == 2
    assert re.search(r"not a simkit result", capsys.readouterr().err)
