"""Black-Scholes on floats: the normal CDF and density, prices and Greeks in the seed's units.

seed: "Black-Scholes Foundation" and "Greeks Calculations". Plain ``math`` in float64, written
apart from ``simkit.pricing`` (the JAX engine's), so that agreement between the two means
something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simkit.schema.outcomes import CALENDAR_DAYS_PER_YEAR


def norm_cdf(x: float) -> float:
    """Standard normal CDF, through erfc (accurate in both tails)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    """Standard normal density (0 at +-inf)."""
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class OptionValue:
    """Black-Scholes price and Greeks of one option, per share, in the seed's units."""

    price: float  # USD per share
    delta: float  # dPrice/dS (negative for puts)
    gamma: float  # d2Price/dS2
    theta: float  # USD per calendar day (seed: theta / 365)
    vega: float  # USD per vol point (seed: vega / 100)
    rho: float  # USD per 1 % of rate (seed: rho / 100)


def black_scholes(
    kind: str, spot: float, strike: float, years: float, rate: float, vol: float
) -> OptionValue:
    """European put or call on a non-dividend stock (seed: q = 0 — "ASST pays no dividends").

    Args:
        kind: "put" or "call".
        spot, strike: USD per share.
        years: time to expiry in years (steps_left / 252).
        rate: continuously compounded, annual.
        vol: implied volatility, annual fraction (4.25 = 425 %).
    At years <= 0 the value is the intrinsic value (the T -> 0 limit); with zero total
    volatility or zero spot it is the discounted-forward intrinsic value (the sigma -> 0 limit).
    """
    # choice: ENGINE_SPEC is silent on these degenerate inputs; open options always have
    # steps_left >= 1, so only a zero spot or a zero IV in the inputs can reach them.
    if kind not in ("put", "call"):
        raise ValueError(f"kind: must be 'put' or 'call', got {kind!r}")
    if years <= 0.0:
        if kind == "put":
            itm = strike > spot
            return OptionValue(max(strike - spot, 0.0), -1.0 if itm else 0.0, 0.0, 0.0, 0.0, 0.0)
        itm = spot > strike
        return OptionValue(max(spot - strike, 0.0), 1.0 if itm else 0.0, 0.0, 0.0, 0.0, 0.0)

    sqrt_t = math.sqrt(years)
    vol_sqrt_t = vol * sqrt_t
    discount = math.exp(-rate * years)
    if spot <= 0.0 or vol_sqrt_t <= 0.0:
        # Deterministic limit: d1 = d2 = +-inf by the sign of the forward moneyness.
        forward_moneyness = -math.inf if spot <= 0.0 else math.log(spot / strike) + rate * years
        d1 = d2 = math.inf if forward_moneyness > 0.0 else -math.inf
        pdf_d1 = 0.0
        gamma = 0.0
    else:
        d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / vol_sqrt_t
        d2 = d1 - vol_sqrt_t
        pdf_d1 = norm_pdf(d1)
        gamma = pdf_d1 / (spot * vol_sqrt_t)
    vega_annual = spot * pdf_d1 * sqrt_t
    decay = -spot * pdf_d1 * vol / (2.0 * sqrt_t)  # the theta term both kinds share
    if kind == "put":
        # seed: Put = K e^{-rT} N(-d2) - S N(-d1)
        price = strike * discount * norm_cdf(-d2) - spot * norm_cdf(-d1)
        delta = -norm_cdf(-d1)
        theta_annual = decay + rate * strike * discount * norm_cdf(-d2)
        rho_annual = -strike * years * discount * norm_cdf(-d2)
    else:
        price = spot * norm_cdf(d1) - strike * discount * norm_cdf(d2)
        delta = norm_cdf(d1)
        theta_annual = decay - rate * strike * discount * norm_cdf(d2)
        rho_annual = strike * years * discount * norm_cdf(d2)
    # seed: "Greeks Calculations" — 'theta': theta/365, 'vega': vega/100, 'rho': rho/100
    return OptionValue(
        price=price,
        delta=delta,
        gamma=gamma,
        theta=theta_annual / CALENDAR_DAYS_PER_YEAR,
        vega=vega_annual / 100.0,
        rho=rho_annual / 100.0,
    )
