"""The agreement corpus: markets and strategies on which the two engines are compared path by
path (`test_agreement.py`), built so that every rule of docs/STRATEGY.md fires somewhere; the
trade log's tests (`test_reference_trades.py`) use some of them."""

# (name, market changes, strategy changes): the shipped scenarios' markets plus variants that
# make the rarer rules fire.
CORPUS = [
    ("baseline", {}, {}),
    ("hold_to_expiry", {"mu": -0.5}, {"time_exit": False}),
    ("merton_jumps", {"model": "merton"}, {}),
    ("fair_market_mid", {"risk_neutral": True, "sigma": 2.17, "iv0": 2.17}, {"fill": "mid"}),
    ("seed_fills_moneyness", {}, {"fill": "seed", "strike_mode": "moneyness"}),
    (
        "crash_leverage",
        {"model": "merton", "jump_intensity": 12.0, "jump_mean": -0.6, "jump_std": 0.3, "iv0": 1.5},
        {"max_leverage": 6.0, "max_concentration_single_expiration": 0.9, "enforce_limits": False},
    ),
    (
        "thin_market",
        {"open_interest": 300.0, "option_volume": 100.0, "thesis_break_intensity": 2.0},
        {"close_on_assignment_risk": True, "time_exit": False},
    ),
    ("wide_spread", {"iv0": 1.2, "sigma": 1.0}, {"iv_exit": False}),
    ("bull_hold", {"mu": 1.5}, {"time_exit": False, "profit_take": False, "iv_exit": False}),
    ("quiet_market", {"vix": 15.0, "liquidity_score": 5.0, "btc_correlation": 0.92}, {}),
    (
        "unhedged_levered_no_margin",
        {"model": "merton", "jump_intensity": 8.0, "jump_mean": -0.5},
        {
            "hedges": False,
            "portfolio_value": 250_000.0,
            "allocation": 200_000.0,
            "max_leverage": 4.0,
            "max_concentration_single_expiration": 0.6,
            "margin_calls": False,
            "enforce_limits": False,
        },
    ),
    ("fractional", {"mu": -0.8}, {"whole_contracts": False, "covered_calls": True}),
    (
        "low_iv_stops",
        {"iv0": 0.8, "iv_long_run": 0.8, "sigma": 1.2, "eta": 0.3, "model": "merton"},
        {"iv_exit": False, "signal_iv_percentile_min": 0.0, "profit_take": False},
    ),
    # Stochastic variance with linked IV: the IV percentile read in the stationary table.
    ("heston_linked", {"model": "heston"}, {}),
    ("bates_linked_calm_start", {"model": "bates", "iv0": 2.185}, {}),
    # GJR-GARCH daily returns, IV linked to the next day's conditional vol (a GARCH table).
    ("garch_linked", {"model": "garch"}, {}),
    # A zero rate: a deep put's European value equals its intrinsic value up to rounding; the
    # early-exercise margin keeps the last bit of each engine's arithmetic from deciding it.
    ("zero_rate", {"rate": 0.0, "mu": -0.8}, {"early_assignment_prob": 1.0}),
]
