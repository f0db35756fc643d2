"""simulate_market: reproducibility by path index, fields, parameters, events, the day step."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit.paths import (
    Market,
    MarketParams,
    cell_key,
    market_init,
    market_step,
    market_to_numpy,
    path_keys,
    simulate_market,
)
from simkit.paths.market import _simulate

N_SE = 4.0
PATHS, STEPS = 20, 12  # the small shape most tests share (one compilation per model)
STAT = (10_000, 63)  # paths and steps of the statistical checks (one compilation)


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def assert_markets_equal(a: Market, b: Market):
    for name in Market._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("model", ["gbm", "merton", "heston", "bates", "garch"])
def test_a_path_depends_only_on_seed_cell_and_index(model):
    params = MarketParams(
        model=model, thesis_break_intensity=5.0, short_interest_kappa=3.0, short_interest_eta=20.0
    )
    whole = simulate_market(params, seed=7, cell=3, path_start=0, n_paths=60, n_steps=STEPS)
    block = simulate_market(params, seed=7, cell=3, path_start=25, n_paths=PATHS, n_steps=STEPS)
    assert_markets_equal(Market(*(f[25:45] for f in whole)), block)
    # Even a block of one path (XLA compiles a batch of one differently: simkit pads it).
    single = simulate_market(params, seed=7, cell=3, path_start=30, n_paths=1, n_steps=STEPS)
    assert_markets_equal(Market(*(f[30:31] for f in whole)), single)
    # Another cell gives other paths.
    other = simulate_market(params, seed=7, cell=4, path_start=25, n_paths=PATHS, n_steps=STEPS)
    assert not np.array_equal(other.spot, block.spot)


def test_a_shorter_horizon_is_a_prefix():
    whole = simulate_market(MarketParams(), 7, 3, 0, PATHS, STEPS)
    short = simulate_market(MarketParams(), 7, 3, 0, PATHS, 5)
    assert_markets_equal(Market(*(f[:, :6] for f in whole)), short)


def test_reproducible_by_index_in_float64(x64):
    params = MarketParams(model="merton")
    whole = simulate_market(params, 1, 0, 0, 60, STEPS, dtype=jnp.float64)
    block = simulate_market(params, 1, 0, 10, PATHS, STEPS, dtype=jnp.float64)
    assert whole.spot.dtype == jnp.float64 and whole.early_u.dtype == jnp.float64
    assert_markets_equal(Market(*(f[10:30] for f in whole)), block)


def test_fields_shapes_and_initial_column():
    p = MarketParams()
    m = simulate_market(p, seed=0, cell=0, path_start=0, n_paths=PATHS, n_steps=STEPS)
    for name in Market._fields:
        assert getattr(m, name).shape == (PATHS, STEPS + 1), name
    np.testing.assert_allclose(m.spot[:, 0], p.s0)
    np.testing.assert_allclose(m.iv[:, 0], p.iv0, rtol=1e-6)
    for name in (
        "short_interest",
        "vix",
        "btc_correlation",
        "bid_ask_spread",
        "open_interest",
        "option_volume",
        "liquidity_score",
        "borrow_cost",
        "volume_ratio",
    ):
        np.testing.assert_allclose(getattr(m, name), getattr(p, name), rtol=1e-6, err_msg=name)
    assert m.thesis_event.dtype == jnp.bool_ and m.jump.dtype == jnp.bool_
    assert not m.thesis_event.any() and not m.jump.any()  # gbm, no thesis events by default
    assert m.spot.dtype == jnp.float32
    assert np.all((m.early_u > 0) & (m.early_u < 1))


def test_zero_steps():
    m = simulate_market(MarketParams(), 0, 0, 0, 3, 0)
    assert m.spot.shape == (3, 1)


def test_new_cell_or_parameters_do_not_recompile():
    simulate_market(MarketParams(sigma=1.0), 0, 0, 0, PATHS, STEPS)
    before = _simulate._cache_size()
    simulate_market(MarketParams(sigma=2.5, iv_long_run=1.0, kappa=3.0), 4, 9, 1000, PATHS, STEPS)
    simulate_market(
        MarketParams(sigma=2.5, rate=0.01, vix=30.0), 5, 2, 16, PATHS, STEPS, dt=1 / 365
    )
    assert _simulate._cache_size() == before


def test_risk_neutral_sets_the_drift_to_the_rate():
    risk_neutral = MarketParams(mu=0.9, rate=0.03, risk_neutral=True)
    plain = MarketParams(mu=0.03, rate=0.03)
    np.testing.assert_array_equal(
        simulate_market(risk_neutral, 2, 0, 0, PATHS, STEPS).spot,
        simulate_market(plain, 2, 0, 0, PATHS, STEPS).spot,
    )
    assert risk_neutral.drift == 0.03 and plain.drift == 0.03


def test_thesis_events_arrive_at_the_poisson_rate():
    lam = 30.0
    m = simulate_market(MarketParams(thesis_break_intensity=lam), 3, 0, 0, *STAT)
    flags = np.asarray(m.thesis_event)
    assert not flags[:, 0].any()
    p = -math.expm1(-lam / 252)
    n = flags[:, 1:].size
    assert_within_se(flags[:, 1:].mean(), p, math.sqrt(p * (1 - p) / n), "event rate")


def test_early_assignment_draws_are_uniform():
    u = np.asarray(simulate_market(MarketParams(), 4, 0, 0, *STAT).early_u, np.float64).ravel()
    n = u.size
    assert_within_se(u.mean(), 0.5, math.sqrt(1 / 12 / n), "mean")
    assert_within_se(u.var(), 1 / 12, math.sqrt(1 / 180 / n), "variance")


def test_short_interest_mean_reverts_in_its_bounds():
    p = MarketParams(
        short_interest=60.0,
        short_interest_long_run=40.0,
        short_interest_kappa=4.0,
        short_interest_eta=10.0,
    )
    m = simulate_market(p, 5, 0, 0, *STAT)
    si = np.asarray(m.short_interest, np.float64)
    assert np.all((si >= 0) & (si <= 100))
    t = 0.25
    mean = 40 + 20 * math.exp(-4 * t)
    sd = 10 * math.sqrt((1 - math.exp(-8 * t)) / 8)
    assert_within_se(si[:, -1].mean(), mean, sd / math.sqrt(si.shape[0]), "mean")
    # A wild one stays clipped to [0, 100].
    wild = simulate_market(dataclasses.replace(p, short_interest_eta=400.0), 5, 0, 0, *STAT)
    assert float(wild.short_interest.min()) == 0.0 and float(wild.short_interest.max()) == 100.0


@pytest.mark.parametrize(
    ("model", "iv_model"),
    [
        ("merton", None),
        ("heston", "linked"),
        ("bates", "linked"),
        ("bates", "independent"),
        ("garch", "linked"),
        ("garch", "independent"),
    ],
)
def test_day_step_in_a_scan_reproduces_simulate_market(model, iv_model):
    """The engine's way: generate day by day inside its own scan, bit for bit the same."""
    params = MarketParams(model=model, iv_model=iv_model, thesis_break_intensity=8.0)
    n_paths, n_steps = PATHS, STEPS
    keys = path_keys(cell_key(11, 2), 5, n_paths)

    @jax.jit
    def by_day(params):
        state, day0 = market_init(params, keys)

        def one_day(state, day):
            state, market = market_step(params, keys, state, day)
            return state, market

        _, days = jax.lax.scan(one_day, state, jnp.arange(1, n_steps + 1))
        return day0, days

    day0, days = by_day(params)
    whole = simulate_market(params, 11, 2, 5, n_paths, n_steps)
    for name in Market._fields:
        np.testing.assert_array_equal(getattr(whole, name)[:, 0], getattr(day0, name), err_msg=name)
        np.testing.assert_array_equal(
            getattr(whole, name)[:, 1:], getattr(days, name).T, err_msg=name
        )


def test_market_to_numpy():
    arrays = market_to_numpy(simulate_market(MarketParams(), 0, 0, 0, PATHS, STEPS))
    assert set(arrays) == set(Market._fields)
    shape = (PATHS, STEPS + 1)
    assert all(isinstance(a, np.ndarray) and a.shape == shape for a in arrays.values())


def test_params_are_a_pytree_with_static_model():
    p = MarketParams(model="merton")
    leaves, tree = jax.tree_util.tree_flatten(p)
    assert len(leaves) == 39 and all(isinstance(x, float) for x in leaves)
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, p)
    assert doubled.model == "merton" and doubled.sigma == 2 * p.sigma
    # vmap over a grid of sigmas: one compiled function for the whole grid axis.
    sigmas = jnp.array([0.5, 1.0, 2.0])
    grid = jax.vmap(lambda s: dataclasses.replace(p, sigma=s).sigma * 1.0)(sigmas)
    np.testing.assert_array_equal(grid, sigmas)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "model",
            "arch",
            "one of 'gbm', 'merton', 'heston', 'bates', 'garch', 'replay', 'bootstrap'; got 'arch'",
        ),
        ("iv_model", "both", "iv_model must be one of 'linked', 'independent' or None"),
        ("rho", -1.5, "MarketParams.rho must be a number in [-1, 1]; got -1.5"),
        ("theta_v", 0.0, "MarketParams.theta_v must be a finite number > 0; got 0.0"),
        ("xi", -1.0, "MarketParams.xi must be a finite number >= 0; got -1.0"),
        ("sigma", -0.1, "MarketParams.sigma must be a finite number >= 0; got -0.1"),
        ("s0", 0.0, "MarketParams.s0 must be a finite number > 0; got 0.0"),
        ("iv_spot_corr", 1.5, "MarketParams.iv_spot_corr must be a number in [-1, 1]; got 1.5"),
        ("short_interest", 120.0, "short_interest must be a number in [0, 100]; got 120.0"),
        ("mu", float("nan"), "MarketParams.mu must be a finite number"),
        ("risk_neutral", "yes", "risk_neutral must be True or False; got 'yes'"),
    ],
)
def test_params_are_checked_with_one_clear_sentence(field, value, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")
    ):
        MarketParams(**{field: value})


def test_arguments_are_checked():
    with pytest.raises(
        ValueError, match="dtype must be one of float32, float64; got dtype\\('int32'\\)"
    ):
        simulate_market(MarketParams(), 0, 0, 0, PATHS, STEPS, dtype=jnp.int32)
    if not jax.config.read("jax_enable_x64"):
        with pytest.raises(ValueError, match="x64"):
            simulate_market(MarketParams(), 0, 0, 0, 2, 2, dtype=jnp.float64)
    with pytest.raises(ValueError, match="n_paths must be an integer >= 1; got 0"):
        simulate_market(MarketParams(), 0, 0, 0, 0, 2)
    with pytest.raises(ValueError, match="path_start must be an integer >= 0; got -1"):
        simulate_market(MarketParams(), 0, 0, -1, 2, 2)
    with pytest.raises(ValueError, match=r"cell must be an integer in \[0, 4294967296\); got -1"):
        simulate_market(MarketParams(), 0, -1, 0, 2, 2)
    with pytest.raises(ValueError, match="dt must be a finite number of years > 0; got 0.0"):
        simulate_market(MarketParams(), 0, 0, 0, 2, 2, dt=0.0)
    with pytest.raises(ValueError, match=r"path indices must stay below 2\*\*32"):
        simulate_market(MarketParams(), 0, 0, 2**32 - 1, 2, 2)
    with pytest.raises(TypeError, match="params must be a MarketParams"):
        simulate_market({"sigma": 1.0}, 0, 0, 0, 2, 2)
