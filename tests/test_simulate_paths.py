"""`simkit.simulate_paths`: the strategy on market paths a user brings."""

from __future__ import annotations

import numpy as np
import pytest

import simkit
from simkit.paths.market import market_to_numpy, simulate_market
from simkit.precision import x64
from simkit.scenario import ScenarioError, parse_scenario

TEXT = """
[simulation]
paths = 16
seed = 11
years = 0.25
float64 = true
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(TEXT, path="own.toml")


def test_the_generated_market_given_back_reproduces_the_run(scenario):
    # Spot and IV of the scenario's own paths, the rest by default: the same per-path results
    # as `simulate` on those paths (the defaults are what the scenario would generate).
    with x64(True):
        generated = market_to_numpy(
            simulate_market(scenario.market, 11, 0, 0, 16, 63, dtype=np.float64)
        )
    own = simkit.simulate_paths({"spot": generated["spot"], "iv": generated["iv"]}, scenario)
    run = simkit.simulate(scenario, per_path=True, progress=False)
    np.testing.assert_allclose(own["final_equity"], run["final_equity"], rtol=1e-10)
    np.testing.assert_array_equal(own["n_trades"], run["n_trades"])
    np.testing.assert_allclose(own["max_drawdown"], run["max_drawdown"], rtol=1e-10)
    assert own.sizes == {"path": 16, "step": 64, "strike": 5}
    assert own["equity"].attrs["units"] == "USD" and own["annual_return"].attrs["long_name"]


def test_both_engines_agree_on_a_hand_made_market(scenario):
    days = np.arange(64)
    spot = np.vstack([3.0 * np.exp(0.004 * days), 3.0 * np.exp(-0.006 * days)])
    iv = np.full_like(spot, 3.5)
    market = {"spot": spot, "iv": iv, "bid_ask_spread": np.full_like(spot, 0.05)}
    fast = simkit.simulate_paths(market, scenario, engine="jax")
    slow = simkit.simulate_paths(market, scenario, engine="reference")
    np.testing.assert_allclose(fast["final_equity"], slow["final_equity"], rtol=1e-9)
    np.testing.assert_array_equal(fast["n_trades"], slow["n_trades"])
    assert int(fast["n_trades"].sum()) > 0
    # the rising path's puts expire worthless or are taken at a profit: it makes money
    assert float(fast["total_return"][0]) > float(fast["total_return"][1])


@pytest.mark.parametrize(
    ("market", "match"),
    [
        ({"spot": np.ones((2, 5))}, "needs iv"),
        ({"spot": np.ones((2, 5)), "iv": np.ones((2, 4))}, "shape"),
        ({"spot": np.ones((2, 5)), "iv": np.ones((2, 5)), "vol": np.ones((2, 5))}, "unknown"),
        ({"spot": -np.ones((2, 5)), "iv": np.ones((2, 5))}, "> 0"),
        ({"spot": np.ones((2, 1)), "iv": np.ones((2, 1))}, "two days"),
    ],
)
def test_bad_markets_are_clear_errors(scenario, market, match):
    with pytest.raises(ValueError, match=match):
        simkit.simulate_paths(market, scenario)


def test_a_grid_is_refused():
    grid = parse_scenario(TEXT + '[grid]\n"market.sigma" = [1.0, 2.0]\n')
    with pytest.raises(ScenarioError, match="one market"):
        simkit.simulate_paths({"spot": np.ones((1, 3)), "iv": np.ones((1, 3))}, grid)
