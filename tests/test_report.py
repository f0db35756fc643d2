"""Reports: every figure for a single run, a grid and a stress result, and an HTML page that
holds (and links) each of them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
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
        "grid3": base
        + '[grid]\n"market.sigma" = [1.5, 3.0]\n"exits.stop_loss_multiple" = [1.0, 2.0]\n'
        + '[[grid.zip]]\n"market.mu" = [-0.5, 0.05, 0.5]\n"market.iv0" = [3.0, 4.0, 5.0]\n',
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
    summary = page[page.index("<h2>Summary</h2>") : page.index("<h2>Figures</h2>")]
    assert summary.count("<tr>") == 1 + 4  # header + one row per cell
    make_report(runs["grid1"], tmp_path / "g1")
    check_report(tmp_path / "g1", RUN_FIGURES | {"grid_lines"})


def test_an_older_file_without_histograms_still_reports(runs, tmp_path):
    with xr.open_dataset(runs["single"]) as ds:
        ds = ds.load()
    old = ds.drop_vars([v for v in ds.variables if "_hist" in v or "_bin" in v])
    assert "total_return_bin" not in old.coords and "total_return_hist" not in old
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


def test_the_fan_draws_the_bands_of_every_path(runs, tmp_path, monkeypatch):
    """The equity fan's bands are the stored quantiles over all paths of the cell
    (`equity_quantile`), not quantiles of the 200 sample paths; a file without them falls back
    to the sample and says so."""
    import matplotlib.axes

    from simkit import report

    drawn = []
    real = matplotlib.axes.Axes.fill_between

    def spy(self, x, y1, y2=0, **kwargs):
        drawn.append((kwargs.get("label"), np.asarray(y1), np.asarray(y2)))
        return real(self, x, y1, y2, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)
    with xr.open_dataset(runs["single"]) as ds:
        ds = ds.load()
    # moved off the sample's own quantiles (here the sample is every path), so that the test
    # tells which the fan drew
    ds["equity_quantile"] = ds["equity_quantile"] + 1000.0
    bands = ds["equity_quantile"]
    report._fan(ds, report._Grid(ds), tmp_path, [])
    lo = dict((label, (a, b)) for label, a, b in drawn)["1–99 %"]
    np.testing.assert_array_equal(lo[0], bands.sel(quantile=0.01).values)
    np.testing.assert_array_equal(lo[1], bands.sel(quantile=0.99).values)
    assert report._stored_bands(ds.drop_vars("equity_quantile"), [0.5]) is None


def test_the_page_shows_var_as_a_negative_return(runs, tmp_path):
    """VaR and CVaR are stored as positive losses; the page prints them as returns (negative for
    a loss), as the drawdown beside them and the printed summary do."""
    with xr.open_dataset(runs["single"]) as ds:
        var = float(ds["var_99"])
    assert var > 0
    make_report(runs["single"], tmp_path / "v")
    page = (tmp_path / "v" / "index.html").read_text(encoding="utf-8")
    cell = re.search(r"VaR 99 % \(horizon return\)</td><td>([^<]*)", page).group(1)
    assert cell.strip().startswith("-") and cell.strip() != "-"


# --------------------------------------------------------------------------- --select


def _titles(folder: Path) -> str:
    """Every text matplotlib wrote into the PNGs is not readable back; the titles are checked
    through `_Grid` instead, and the page through its text."""
    return (folder / "index.html").read_text(encoding="utf-8")


def test_select_cuts_a_3d_grid_and_names_the_slice(runs, tmp_path, capsys):
    from simkit.report import _Grid, select_cells

    with xr.open_dataset(runs["grid3"]) as ds:
        ds = ds.load()
    # a zipped key selects its axis; a number matches the nearest grid value within 1e-6
    where, selected = select_cells(ds, {"market.iv0": "4.000000001", "market.sigma": "3"})
    assert where == {"market.mu": 1, "market.sigma": 1}
    assert selected == {"market.iv0": 4.0, "market.sigma": 3.0}
    cut = ds.isel(where)
    grid = _Grid(cut, selected)
    assert grid.dims == ["exits.stop_loss_multiple"] and not grid.fixed
    assert grid.note().startswith(" (market.iv0 = 4, market.sigma = 3")
    # without a selection, the third axis is fixed at its middle value, and the titles say so
    assert "market.mu = 0.05: the middle value, --select picks another" in _Grid(ds).note()

    args = ["report", str(runs["grid3"]), "--out", str(tmp_path / "s")]
    assert main([*args, "--select", "market.mu=0.5"]) == 0
    page = check_report(tmp_path / "s", RUN_FIGURES | {"grid_heatmaps"})
    assert "market.mu = 0.5" in page
    summary = page[page.index("<h2>Summary</h2>") : page.index("<h2>Figures</h2>")]
    assert summary.count("<tr>") == 1 + 4  # the 2 x 2 slice, not the 12 cells
    capsys.readouterr()


@pytest.mark.parametrize(
    ("select", "message"),
    [
        (["sigma=3"], "'sigma' is not a key of this result's grid; its keys are market.sigma"),
        (["market.sigma=2"], "market.sigma takes the values 1.5, 3 (a number matches"),
        (["market.sigma=high"], "not a number"),
        (["market.sigma"], "expected KEY=VALUE"),
        (["market.sigma=3", "market.sigma=1.5"], "selected twice"),
        (["market.mu=0.5", "market.iv0=5"], "the grid axis market.mu is selected twice"),
    ],
)
def test_select_errors_exit_2_and_write_nothing(runs, tmp_path, capsys, select, message):
    out = tmp_path / "nothing"
    args = ["report", str(runs["grid3"]), "--out", str(out)]
    assert main([*args, *(f"--select={s}" for s in select)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_select_on_a_result_without_that_grid_is_exit_2(runs, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert main(["report", str(runs["single"]), "--out", str(out), "--select", "a=1"]) == 2
    assert "none (the result has no grid)" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------- small shares


def test_small_shares_never_read_as_zero():
    from simkit.cli import _summary_fmt
    from simkit.formats import percent, share

    assert percent(0.00014) == "<0.1 %" and percent(-0.00014) == ">-0.1 %"
    assert percent(0.00014, 0) == "<0.1 %" and percent(0.003, 0) == "0.3 %"
    assert percent(0.0) == "0.0 %" and percent(0.1234) == "12.3 %"
    assert percent(0.00014, sign=True) == "<+0.1 %" and percent(0.05, sign=True) == "+5.0 %"
    assert share(0.0) == "0 %" and share(0.00014) == "<0.1 %" and share(0.003) == "0.3 %"
    assert share(0.9996) == ">99.9 %" and share(1.0) == "100 %" and share(0.42) == "42 %"
    assert _summary_fmt(0.00014, "pct") == "<0.1" and _summary_fmt(-0.123, "pct") == "-12.3"


def test_report_writes_small_shares_as_below_a_tenth(runs, tmp_path):
    """A ruin probability of 0.014 % in the HTML summary and on the heatmap: '<0.1 %'."""
    from simkit import report

    with xr.open_dataset(runs["single"]) as ds:
        ds = ds.load()
    ds["prob_ruin"] = ds["prob_ruin"] * 0 + 0.00014
    ds["prob_ruin_lo"] = ds["prob_ruin"] * 0
    ds["prob_ruin_hi"] = ds["prob_ruin"] * 0 + 0.0004
    table = report._run_table(ds)
    row = html_unescape(table).split("<td>P(ruin)</td>")[1].split("</tr>")[0]
    assert row == '<td><0.1 % <span class="ci">[0.0 %, <0.1 %]</span></td>'


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# --------------------------------------------------------------------------- the page's head


def test_page_starts_with_the_scenario_and_the_claims_beside_it(runs, tmp_path):
    import json
    import shutil

    from simkit import report

    result = tmp_path / "single.nc"
    shutil.copy(runs["single"], result)
    with xr.open_dataset(result) as ds:
        ds = ds.load()
    assert report._claims_section(result, ds) == ""  # no claims file beside it: no section
    scenario = html_unescape(report._scenario_section(ds))
    for text in ("GBM, s0 $3.00", "realized vol 190 %", "425 % at the start", "portfolio $1,000,000",
                 "sleeve 20 % of the portfolio = $200,000", "$2.00 (15 %), $2.50 (25 %)",
                 "stop-loss when the mid exceeds (1 + 2) x the premium",
                 "calls bought with 20 %", "enforced"):  # fmt: skip
        assert text in scenario, text

    claims = {
        "meta": {"scenario": "scenarios/single.toml", "paths": 1000, "seed": 0, "engine": "jax"},
        "rows": [
            {
                "topic": "Returns",
                "claim": "135 % a year",
                "seed": "135.0 %",
                "simkit": "-18 %",
                "verdict": "refuted",
                "rule": "the interval excludes it",
                "markets": "none",
            },
        ],  # fmt: skip
    }
    (tmp_path / "single.claims.json").write_text(json.dumps(claims))
    make_report(result, tmp_path / "claims")
    page = (tmp_path / "claims" / "index.html").read_text(encoding="utf-8")
    head = page[: page.index("<h2>Summary</h2>")]
    assert head.index("<h2>Scenario</h2>") < head.index("<h2>Claims</h2>")
    assert "single.claims.json" in head and "<b>refuted</b>" in head
    assert 'title="the interval excludes it"' in head and "1,000 paths" in head


def test_grid_keys_are_named_beside_the_parameters_they_set(runs):
    from simkit import report

    with xr.open_dataset(runs["grid3"]) as ds:
        head = report._scenario_section(ds.load())
    assert "over the grid: market.sigma = 1.5, 3" in head
    assert "over the grid: market.iv0 = 3, 4, 5" in head
    assert "exits.stop_loss_multiple = 1, 2" in head
