"""Scalar reference engine: the seed strategy, one path at a time, in plain Python.

This package is the slow, obviously-correct twin of the vectorized JAX engine. It shares nothing
with it but the parameter record (``simkit.strategy.config.StrategyConfig``) and the written
contract (``docs/ENGINE_SPEC.md``, which fixes the arithmetic of one day; ``docs/STRATEGY.md``
fixes what each rule means). Positions are small dataclasses in lists, one function per step of
the day, floats are Python float64. Every rule cites the seed section it comes from, so a reviewer
can check it against the seed sentence by sentence; ``# choice:`` marks a reading made here where
the spec is silent.

Modules, one per section of a day (docs/STRATEGY.md "A day, in order"), named as the JAX engine's
rules are:
    state       the book (ShortPut, HedgeCall, CoveredCall, Book), the Tally, summary names
    pricing     normal CDF and density, Black-Scholes price and Greeks (seed units)
    market      step 1: the day's inputs (MarketDay, IV percentile); interest, share marks
    quotes      mids, bid/ask, fills, contract flooring, sleeve equity at the day's mids
    trades      a put's trade ends: bought back or assigned; the Kelly inputs
    expiries    step 2: puts, hedge calls and covered calls settle
    assignment  step 3: early exercise; step 6: covered calls on assigned shares
    exits       step 4: the holding exits, by the seed's urgency
    ruin        step 5: margin call and ruin
    limits      steps 7-8: Greeks, VaR, notionals, and the limits they breach
    entry       step 7: the signal, the tranche's sizing and sale
    hedges      step 7: the tranche's call hedges
    day         the loop over days, end of day, the summary (simulate_path, simulate_paths)
Imports point one way: day -> rule modules -> trades -> quotes -> market -> pricing -> state.

Public entry points:
    simulate_path(path, cfg, mkt)    -> dict     one path, inputs of length N + 1
    simulate_paths(market, cfg, mkt) -> dict     (P, N + 1) arrays in, stacked summaries out

``mkt`` is any object with float attributes ``rate``, ``iv_long_run``, ``kappa`` and ``eta``
(in the project: ``simkit.paths.market.MarketParams``).
"""

from simkit.schema.outcomes import HIGH_LIMITS, LIMIT_NAMES
from simkit.strategy.reference.day import simulate_path, simulate_paths
from simkit.strategy.reference.market import INPUT_NAMES
from simkit.strategy.reference.pricing import OptionValue, black_scholes, norm_cdf, norm_pdf
from simkit.strategy.reference.state import CLOSE_REASONS, FLOAT_FIELDS, INT_FIELDS

__all__ = [
    "CLOSE_REASONS",
    "FLOAT_FIELDS",
    "HIGH_LIMITS",
    "INPUT_NAMES",
    "INT_FIELDS",
    "LIMIT_NAMES",
    "OptionValue",
    "black_scholes",
    "norm_cdf",
    "norm_pdf",
    "simulate_path",
    "simulate_paths",
]
