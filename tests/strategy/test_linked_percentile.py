"""The IV percentile under linked IV: the JAX engine's and the reference engine's lookups of the
stationary table agree with each other and with the table's law; independent IV is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from simkit.paths.iv import iv_percentile
from simkit.paths.linked_iv import KNOTS, linked_iv_table
from simkit.paths.market import MarketParams
from simkit.precision import x64
from simkit.strategy.config import StrategyConfig
from simkit.strategy.params import engine_params
from simkit.strategy.reference import market as reference_market
from simkit.strategy.rules.quotes import _iv_percentile

IVS = np.array([1e-4, 0.3, 1.0, 1.7, 2.0, 2.185, 2.5, 3.3, 4.2517, 9.0, 40.0])


# Where the calm start IV 2.185 (= 1.9 x 1.15) sits: near the median of a Heston variance, above
# it under GARCH (the stationary law of its variance is skewed: the mean is above the median);
# and the least percentile of the seed's 425 % (GARCH's variance has the longer right tail).
CALM_START_PERCENTILE = {"heston": (45, 60, 99), "bates": (45, 60, 99), "garch": (55, 75, 98)}


@pytest.mark.parametrize("model", ["heston", "bates", "garch"])
def test_both_engines_read_the_linked_table(model):
    mkt = MarketParams(model=model)
    table = linked_iv_table(mkt)
    grid = table.start + table.step * np.arange(KNOTS)
    expected = np.interp(np.log(IVS), grid, table.percentiles)
    with x64():
        p = engine_params(StrategyConfig(), mkt, np.float64)
        assert p.iv_table is not None
        fast = np.asarray(_iv_percentile(np.asarray(IVS), p))
    slow = np.array([reference_market.iv_percentile(float(iv), mkt) for iv in IVS])
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(slow, expected, rtol=0, atol=1e-9)
    low, high, top = CALM_START_PERCENTILE[model]
    assert slow[0] < 1e-6 and slow[-1] > 100 - 1e-6 and low < slow[5] < high and slow[8] > top
    p32 = engine_params(StrategyConfig(), mkt, np.float32)
    np.testing.assert_allclose(np.asarray(_iv_percentile(IVS.astype(np.float32), p32)), expected,
                               atol=2e-3)  # fmt: skip


def test_independent_iv_keeps_the_log_ou_percentile():
    for mkt in (MarketParams(), MarketParams(model="heston", iv_model="independent")):
        p = engine_params(StrategyConfig(), mkt, np.float32)
        assert p.iv_table is None
        expected = np.asarray(iv_percentile(IVS.astype(np.float32), 2.17, 6.0, 1.0))
        np.testing.assert_array_equal(
            np.asarray(_iv_percentile(IVS.astype(np.float32), p)), expected
        )
        slow = [reference_market.iv_percentile(float(iv), mkt) for iv in IVS]
        np.testing.assert_allclose(slow, expected, atol=1e-3)


@pytest.mark.parametrize(
    "model",
    [
        "bates",
        pytest.param("heston", marks=pytest.mark.slow),
        # A compile of its own (25-30 s on 2 cores); tests/paths/test_market.py checks the
        # generator bit for bit in the fast suite.
        pytest.param("garch", marks=pytest.mark.slow),
    ],
)
def test_in_loop_generation_is_simulate_markets_market(model):
    """The JAX engine generates a Heston/Bates/GARCH day inside its loop (market_step with the
    variance and z in its state): the same results as on simulate_market's arrays, which the
    reference engine reads."""
    from simkit.paths.market import market_to_numpy, simulate_market
    from simkit.strategy import engine

    mkt, cfg = MarketParams(model=model), StrategyConfig()
    generated = engine.simulate_block(
        cfg, mkt, seed=5, cell=2, path_start=8, n_paths=16, n_steps=63, float64=True
    )
    with x64():
        market = simulate_market(mkt, 5, 2, 8, 16, 63, dtype=np.float64)
        given = engine.simulate_paths(market_to_numpy(market), cfg, mkt)
    np.testing.assert_allclose(generated["final_equity"], given["final_equity"], rtol=1e-9)
    np.testing.assert_array_equal(generated["n_trades"], given["n_trades"])
    assert generated["n_trades"].sum() > 0
    # what the stock did, watched in the loop over the days, from the same spots
    spot = np.asarray(market.spot)
    np.testing.assert_array_equal(generated["spot_final"], spot[:, -1])
    np.testing.assert_array_equal(generated["spot_min"], spot.min(axis=1))
    for name in ("realized_vol", "underlying_return"):
        np.testing.assert_allclose(generated[name], given[name], rtol=1e-14, err_msg=name)
