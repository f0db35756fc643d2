"""The backbone: the vectorized JAX engine and the scalar reference engine agree path by path.

Both engines get the same market paths (float64) and must return the same per-path summary:
final equity to 1e-6 relative, trade counts and wins exactly, on at least 99 % of paths (whole
contracts are floors, so a rounding hair can flip one contract on a rare path). The corpus below
is built so that every rule of docs/STRATEGY.md fires somewhere; the last test asserts it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from agreement_corpus import CORPUS

from simkit.paths.history import History, history_market, read_history, replay
from simkit.paths.market import MarketParams, market_to_numpy, simulate_market
from simkit.precision import x64
from simkit.schema.outcomes import UNDERLYING
from simkit.strategy import engine, reference
from simkit.strategy.config import StrategyConfig

N_PATHS = 24
N_STEPS = 252


INT_FIELDS_EXACT = ("n_trades", "n_wins")

# History markets (`simkit.paths.history`): the same engines on real and resampled days.
REPO = Path(__file__).resolve().parents[2]
SPX_VIX = REPO / "scenarios" / "data" / "spx_vix_2014_2018.csv"
SYNTHETIC = REPO / "tests" / "data" / "history_synthetic.csv"
# 17 paths: the JAX engine pads a block to 32 paths, the corpus's compiled shape (24 paths).
HISTORY_PATHS = 17


def _spx_windows(mkt):
    """HISTORY_PATHS replays of N_STEPS + 1 consecutive days of the S&P 500 (IV = VIX / 100,
    the vix input from the file), one a path, starting 62 trading days (a quarter) apart."""
    h = read_history(SPX_VIX)
    rows = []
    for start in range(0, 62 * HISTORY_PATHS, 62):
        days = slice(start, start + N_STEPS + 1)
        window = History(
            h.path, h.dates[days], h.close[days], h.iv[days], {"vix": h.inputs["vix"][days]}
        )
        rows.append(market_to_numpy(replay(window, mkt, seed=7, dtype=np.float64)))
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}


def _spx_scenario():
    """The market and strategy of scenarios/spx_vix.toml (the seed's rules, a moneyness ladder
    on the index, VIX's IV law for the percentile)."""
    from simkit.scenario import load_scenario

    scenario = load_scenario(REPO / "scenarios" / "spx_vix.toml")
    return scenario.market, scenario.strategy


def _history_runs():
    """(name, market arrays, strategy, market record) of the history corpus, float64."""
    spx_market, spx_strategy = _spx_scenario()
    boot = dataclasses.replace(
        MarketParams(), model="bootstrap", history=str(SYNTHETIC), block_len=10.0
    )
    with x64():
        spx = _spx_windows(spx_market)
        # The synthetic $3 stock (IV 425 %) resampled: the seed's rules on the seed's market.
        boot_arrays = market_to_numpy(
            history_market(boot, 7, 0, 0, HISTORY_PATHS, N_STEPS, dtype=np.float64)
        )
    return [
        ("replay_spx_vix", spx, spx_strategy, spx_market),
        ("bootstrap_synthetic", boot_arrays, StrategyConfig(), boot),
    ]


def _widen_spread_late(arrays):
    """The spread widens from 0.10 to 0.30 on day 60: the liquidity exit closes the book."""
    arrays = dict(arrays, bid_ask_spread=np.array(arrays["bid_ask_spread"]))
    arrays["bid_ask_spread"][:, 60:] = 0.30
    return arrays


TRANSFORMS = {"wide_spread": _widen_spread_late}


def _run_both(name, market_changes, strategy_changes):
    mkt = dataclasses.replace(MarketParams(), **market_changes)
    cfg = dataclasses.replace(StrategyConfig(), **strategy_changes)
    with x64():
        market = simulate_market(mkt, 7, len(name), 0, N_PATHS, N_STEPS, dtype=np.float64)
        arrays = market_to_numpy(market)
        arrays = TRANSFORMS.get(name, lambda a: a)(arrays)
        fast = engine.simulate_paths(arrays, cfg, mkt)
    slow = reference.simulate_paths(arrays, cfg, mkt)
    return fast, slow


HISTORY_CORPUS = ("replay_spx_vix", "bootstrap_synthetic")


@pytest.fixture(scope="module")
def corpus_results():
    results = {name: _run_both(name, m, s) for name, m, s in CORPUS}
    for name, arrays, cfg, mkt in _history_runs():
        with x64():
            fast = engine.simulate_paths(arrays, cfg, mkt)
        results[name] = (fast, reference.simulate_paths(arrays, cfg, mkt))
    return results


@pytest.mark.parametrize("name", [c[0] for c in CORPUS] + list(HISTORY_CORPUS))
def test_engines_agree_path_by_path(corpus_results, name):
    fast, slow = corpus_results[name]
    assert set(slow) >= {"final_equity", "n_trades", "n_wins", "equity"}
    equity_ok = np.isclose(fast["final_equity"], slow["final_equity"], rtol=1e-6, atol=1e-6)
    trades_ok = np.ones(len(slow["final_equity"]), bool)
    for field in INT_FIELDS_EXACT:
        trades_ok &= fast[field] == slow[field]
    agree = equity_ok & trades_ok
    bad = np.flatnonzero(~agree)
    detail = [
        (
            int(i),
            float(fast["final_equity"][i]),
            float(slow["final_equity"][i]),
            int(fast["n_trades"][i]),
            int(slow["n_trades"][i]),
        )
        for i in bad[:5]
    ]
    assert agree.mean() >= 0.99, f"{name}: paths disagree {detail}"
    if name in HISTORY_CORPUS:  # the history markets trade (quiet_market, by design, does not)
        assert np.sum(slow["n_trades"]) > 0, f"{name}: no trade to agree on"


@pytest.mark.parametrize("name", [c[0] for c in CORPUS] + list(HISTORY_CORPUS))
def test_engines_agree_on_every_summary_field(corpus_results, name):
    """Beyond equity and trades: every counter and bucket, on the paths that agree on equity."""
    fast, slow = corpus_results[name]
    same = np.isclose(fast["final_equity"], slow["final_equity"], rtol=1e-6, atol=1e-6)
    mismatched = []
    for field, value in slow.items():
        if field not in fast:
            mismatched.append(f"{field}: missing in the JAX engine")
            continue
        a, b = np.asarray(fast[field], float)[same], np.asarray(value, float)[same]
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        if not np.allclose(a, b, rtol=1e-6, atol=1e-6 * scale):
            mismatched.append(field)
    assert not mismatched, f"{name}: fields differ: {mismatched}"


def test_engines_agree_on_the_underlying_of_every_path(corpus_results):
    """What the stock did does not depend on the strategy: every path, every scenario, and
    against NumPy on the market's spots."""
    for name, (fast, slow) in corpus_results.items():
        for field in UNDERLYING:
            np.testing.assert_allclose(fast[field], slow[field], rtol=1e-12, err_msg=name)
    with x64():
        market = simulate_market(MarketParams(), 7, 8, 0, N_PATHS, N_STEPS, dtype=np.float64)
    spot = np.asarray(market.spot, dtype=np.float64)  # the "baseline" corpus entry's market
    fast, slow = corpus_results["baseline"]
    for engine_out in (fast, slow):
        np.testing.assert_array_equal(engine_out["spot_final"], spot[:, -1])
        np.testing.assert_array_equal(engine_out["spot_min"], spot.min(axis=1))
    vol = np.sqrt(252 * np.mean(np.diff(np.log(spot), axis=1) ** 2, axis=1))
    np.testing.assert_allclose(fast["realized_vol"], vol, rtol=1e-12)
    np.testing.assert_allclose(slow["underlying_return"], spot[:, -1] / spot[:, 0] - 1, rtol=1e-12)
    assert 1.5 < np.median(vol) < 2.3  # the baseline's sigma = 1.9


RULE_COUNTERS = (
    "n_close_profit",
    "n_close_stop",
    "n_close_time",
    "n_close_iv",
    "n_close_liquidity",
    "n_close_thesis",
    "n_close_assignment_risk",
    "n_close_margin",
    "n_close_ruin",
    "n_expired_otm",
    "n_assigned_expiry",
    "n_assigned_early",
    "shares_called_away",
    "n_cc_sold",
    "n_tranches",
    "n_blocked_signal",
    "n_blocked_limits",
    "n_blocked_exit",
    "n_orders_cut",
    "n_margin_calls",
    "ruined",
    "hedge_contracts",
    *(
        f"breach_{name}"
        for name in (
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
    ),
)


def test_corpus_makes_every_rule_fire(corpus_results):
    """Agreement means little on a rule that never fires: each one fires in some scenario."""
    totals = {c: 0.0 for c in RULE_COUNTERS}
    for fast, _ in corpus_results.values():
        for c in RULE_COUNTERS:
            totals[c] += float(np.sum(fast[c]))
    silent = [c for c, v in totals.items() if v == 0]
    assert not silent, f"rules that never fired in the corpus: {silent}"
