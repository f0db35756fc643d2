"""Verdicts across markets (`simkit.claims_markets`): break-evens found where a known metric
crosses the claim, `null` where it never does, the grid's count, the sentence and the map."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import xarray as xr

from simkit.claims import MARKET_CLAIMS, check_claims, to_json, to_markdown
from simkit.claims_markets import claim_values, judge_across_markets, plot_claim_map
from simkit.scenario import parse_scenario

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TEXT = """
[simulation]
paths = 64
seed = 5
[market]
sigma = 1.9
mu = 0.05
[claims]
paths = 64
scan_points = 5
sigma = [0.2, 3.0]
mu = [-0.5, 1.5]
iv_long_run = []
"""


def known(sigma: float, mu: float) -> dict[str, float]:
    """Metrics with known crossings: annual return 2 - sigma + 0 mu (holds where sigma < 0.65),
    win rate 0.95 - 0.1 sigma (sigma < 0.58), drawdown quantile -0.1 - 0.1 sigma
    (sigma < 1.66), Sharpe 1 (never)."""
    return {
        "annual_return_mean": 2.0 - sigma,
        "annual_return_mean_se": 0.01,
        "win_rate_trade": 0.95 - 0.1 * sigma,
        "win_rate_trade_lo": 0.94 - 0.1 * sigma,
        "win_rate_trade_hi": 0.96 - 0.1 * sigma,
        "sharpe": 1.0,
        "q05": -0.1 - 0.1 * sigma,
    }


def _dataset(values: dict[str, float]) -> xr.Dataset:
    q = np.full(len(QUANTILES), np.nan)
    q[1] = values.pop("q05")
    data = {k: ((), v) for k, v in values.items()}
    data["max_drawdown_quantile"] = (("quantile",), q)
    return xr.Dataset(data, coords={"quantile": list(QUANTILES)})


def stub_simulate(scenario, **kwargs):
    """What `simkit.run.simulate` returns, for the `known` metrics (no engine)."""
    if not scenario.grid:
        return _dataset(known(scenario.market.sigma, scenario.market.mu))
    dims = [axis.name for axis in scenario.grid]
    cells = [_dataset(known(c.market.sigma, c.market.mu)) for c in scenario.cells()]
    shape = scenario.shape
    out = {}
    for name in cells[0].data_vars:
        stacked = np.stack([c[name].values for c in cells]).reshape(*shape, *cells[0][name].shape)
        out[name] = ((*dims, *cells[0][name].dims), stacked)
    coords = {a.name: a.values for a in scenario.grid} | {"quantile": list(QUANTILES)}
    return xr.Dataset(out, coords=coords)


@pytest.fixture(scope="module")
def found():
    scenario = parse_scenario(TEXT, path="family.toml")
    return judge_across_markets(scenario, MARKET_CLAIMS, simulate=stub_simulate)


def test_break_evens_are_the_known_crossings(found):
    assert set(found.family) == {"market.sigma", "market.mu"}
    assert found.left_out == ["market.jump_intensity (the market model is gbm)"]
    width = 3.0 - 0.2
    annual = found.break_even["annual_return"]["market.sigma"]
    assert annual["holds"] == "below"
    assert annual["value"] == pytest.approx(0.65, abs=1e-3 * width)
    assert annual["se"] == pytest.approx(0.01 / 1.0, rel=1e-6)  # se(metric) / |slope|
    win = found.break_even["win_rate"]["market.sigma"]
    assert win["value"] == pytest.approx(0.58, abs=1e-3 * width)
    assert win["se"] == pytest.approx((0.02 / (2 * 1.959964)) / 0.1, rel=1e-4)
    dd = found.break_even["max_drawdown"]["market.sigma"]
    assert dd["value"] == pytest.approx(1.66, abs=1e-3 * width) and dd["se"] is None
    # mu moves nothing: at the scenario's sigma the return never reaches 135 %
    assert found.break_even["annual_return"]["market.mu"] is None
    assert found.break_even["sharpe"] == {"market.sigma": None, "market.mu": None}


def test_grid_counts_and_sentences(found):
    assert found.grid_cells == 9  # 3 sigma x 3 mu
    # sigma in (0.2, 1.6, 3.0): the return holds at 0.2 only, the drawdown at 0.2 and 1.6
    assert found.grid_holds["annual_return"] == 3
    assert found.grid_holds["max_drawdown"] == 6 and found.grid_holds["sharpe"] == 0
    assert found.holds_anywhere == {
        "annual_return": True, "sharpe": False, "win_rate": True, "max_drawdown": True
    }  # fmt: skip
    assert found.verdict["sharpe"].startswith("refuted: holds in none of the 9 grid cells")
    assert found.verdict["annual_return"].startswith("holds where market.sigma < 0.65")
    assert "in 3 of 9 grid cells" in found.verdict["annual_return"]


def test_claim_map_and_json(found, tmp_path):
    assert set(found.influential) == {"market.sigma", "market.mu"}
    grid = np.asarray(found.map["annual_return"])
    sigmas = np.asarray(found.map["values"][found.map["keys"].index("market.sigma")])
    expected = 2.0 - sigmas
    axis = found.map["keys"].index("market.sigma")
    np.testing.assert_allclose(np.moveaxis(grid, axis, 0)[:, 0], expected)
    out = tmp_path / "map.png"
    assert plot_claim_map(found, out) and out.stat().st_size > 10_000
    data = found.to_json()
    assert data["claims"]["sharpe"]["break_even"]["market.sigma"] is None
    assert data["claims"]["annual_return"]["holds_anywhere"] is True


def test_several_crossings_and_undefined_metrics_are_said():
    from simkit.claims_markets import Claim, _break_even

    claim = Claim("annual_return", "a", 1.0, "pct")
    values = [0.0, 1.0, 2.0, 3.0]
    curve = [(x - 1.5) ** 2 for x in values]  # 2.25, 0.25, 0.25, 2.25: holds at both ends

    def markets(changes):
        x = changes["k"]
        return {"annual_return": ((x - 1.5) ** 2, 0.01)}

    found = _break_even(markets, "k", values, curve, claim, own=0.4)
    assert found["crossings"] == 2 and found["holds"] == "below"
    assert found["value"] == pytest.approx(0.5, abs=0.01)
    undefined = _break_even(markets, "k", values, [2.0, math.nan, math.nan, 0.0], claim, 0.0)
    assert undefined["holds"] == "undetermined"


def test_claim_values_from_per_path_figures():
    rng = np.random.default_rng(0)
    n = 2_000
    sharpe, dd = rng.normal(1.0, 0.5, n), -rng.uniform(0, 0.6, n)
    ds = _dataset(known(1.0, 0.0))
    ds["path_sharpe"] = ("path", sharpe)
    ds["max_drawdown"] = ("path", dd)
    got = claim_values(ds)
    assert got["sharpe"][0] == pytest.approx(np.median(sharpe))
    assert got["max_drawdown"][0] == pytest.approx(np.quantile(dd, 0.05))
    # the median's order-statistic interval: about 1.2533 sd / sqrt(n) for a normal
    assert got["sharpe"][1] == pytest.approx(1.2533 * 0.5 / math.sqrt(n), rel=0.15)


def test_claims_report_carries_the_market_verdicts(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from scenario_files import write_scenario

    path = write_scenario(tmp_path, paths=32, chunk_size=32)
    text = path.read_text() + "\n[claims]\npaths = 32\nscan_points = 3\nmu = []\niv_long_run = []\n"
    scenario = parse_scenario(text, path=str(path))
    report = check_claims(scenario, fills=False)
    rows = {r.claim_id: r for r in report.rows if r.claim_id}
    assert set(rows) == {c.name for c in MARKET_CLAIMS}
    assert all(r.markets for r in rows.values())
    assert "across markets" in to_markdown(report) and '"markets"' in to_json(report)
    assert report.markets.evaluations >= 4  # 3 scan values + the scenario's own sigma
    for combo in itertools.product(*report.markets.family.values()):
        assert len(combo) == 1
