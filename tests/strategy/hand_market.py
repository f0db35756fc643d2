"""A hand-built market for the rule tests: baseline inputs on a few days, and the small
Black-Scholes kit the expected numbers are computed with (scipy's normal, written here, not
the engines').

Used by tests/strategy/test_rules.py (one rule at a time, both engines) and
tests/strategy/test_reference_trades.py (the reference engine's trade records).

Conventions of the hand computations (ENGINE_SPEC "Conventions"): 252 steps a year, option
T = steps_left / 252, cash grows by G = exp(r / 252) a step, bid/ask = mid -/+ spread / 2,
commission C per contract, 100 shares per contract.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from scipy.stats import norm

from simkit.strategy.config import StrategyConfig

R = 0.05
MKT = SimpleNamespace(rate=R, iv_long_run=2.17, kappa=6.0, eta=1.0)
G = math.exp(R / 252)  # cash growth per step
C = 0.65  # commission per contract
SPREAD = 0.10
SLEEVE = 200_000.0  # min(0.25 * 0.816, 0.20) * 1e6
OUTSIDE = 1_000_000.0 - SLEEVE

# Baseline values of every input (docs/MODELLING.md "The baseline market").
BASELINE = dict(
    spot=3.0,
    iv=4.2517,
    short_interest=42.88,
    vix=25.0,
    btc_correlation=0.5,
    bid_ask_spread=SPREAD,
    open_interest=5000.0,
    option_volume=1000.0,
    liquidity_score=8.0,
    borrow_cost=50.0,
    volume_ratio=1.5,
    thesis_event=0.0,
    early_u=0.5,
)


def market(n_steps, n_paths=1, **inputs):
    """(n_paths, n_steps + 1) float64 arrays; each input a scalar, a (N+1,) list (all paths) or
    a (P, 1) / (P, N+1) array (per path)."""
    out = {}
    for name, default in BASELINE.items():
        value = np.asarray(inputs.pop(name, default), dtype=np.float64)
        out[name] = np.broadcast_to(value, (n_paths, n_steps + 1)).copy()
    assert not inputs, f"unknown inputs {list(inputs)}"
    return out


def one_path(**inputs):
    """One path of `market` as the reference engine's `simulate_path` reads it: input name ->
    list of floats, its length that of `spot` (required)."""
    arrays = market(len(inputs["spot"]) - 1, **inputs)
    return {name: values[0].tolist() for name, values in arrays.items()}


def steps(*segments):
    """steps((3.0, 1), (2.5, 27)) -> [3.0, 2.5, 2.5, ...]: a piecewise-constant input."""
    return [value for value, count in segments for _ in range(count)]


def bs_put(spot, strike, steps_left, vol, r=R):
    t = steps_left / 252
    d1 = (math.log(spot / strike) + (r + 0.5 * vol**2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    return strike * math.exp(-r * t) * norm.cdf(-d2) - spot * norm.cdf(-d1)


def bs_call(spot, strike, steps_left, vol, r=R):
    return (
        bs_put(spot, strike, steps_left, vol, r) + spot - strike * math.exp(-r * steps_left / 252)
    )


def percentile(iv):
    return 100 * norm.cdf(math.log(iv / 2.17) / (1.0 / math.sqrt(12.0)))


def one_rung(**changes):
    """A ladder of one $3 strike, one tranche on step 0 only, no hedges, no covered calls.

    At the defaults the tranche is 100 contracts: budget = min(200 000, 0.15 * 200 000 / 1.5)
    = 20 000 of collateral at 3 * 100 / 1.5 = 200 a contract; the strike cap is lifted.
    """
    base = dict(
        strikes=(3.0,),
        weights=(1.0,),
        max_single_strike_pct=1.0,
        entry_every_days=10_000,
        hedges=False,
        covered_calls=False,
    )
    base.update(changes)
    return StrategyConfig(**base)
