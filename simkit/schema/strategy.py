"""The strategy's parameters: one frozen record of plain Python numbers.

Both engines read this record (the vectorized JAX engine turns it into traced arrays; the scalar
reference engine reads the floats directly). It holds data only, no rule: the rules live in each
engine, written separately, so that their agreement path by path means something.

Every default is the seed's (see ``docs/STRATEGY.md``); the comment on each field gives the
seed section it comes from and its unit. ``docs/ENGINE_SPEC.md`` says exactly how each is used.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

FILL_MODES = ("bid_ask", "mid", "seed")

# Early exercise needs the put's value below intrinsic by more than this share of the strike
# (docs/ENGINE_SPEC.md step 3): at a zero rate a deep put's European value equals its intrinsic
# value up to rounding, and without a margin the last bit of each engine's arithmetic decided
# the exercise. 1e-5 of a $3 strike is $0.00003 a share; at r = 5 % a deep put 26 days out is
# below intrinsic by K (1 - e^{-r T}) = 0.5 % of the strike.
EARLY_EXERCISE_MARGIN = 1e-5
STRIKE_MODES = ("fixed", "moneyness")


class ConfigProblems(ValueError):
    """A record that cannot be built: every problem at once, as 'field: what is wrong'."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class StrategyConfig:
    """Parameters of the seed strategy (defaults = the seed's numbers)."""

    # --- capital (seed: "Position Sizing Algorithm", "Risk Management Framework")
    portfolio_value: float = 1_000_000.0  # USD, whole portfolio
    kelly_fraction: float = 0.816  # input to the sizing rule (the seed's formula on its inputs)
    kelly_multiplier: float = 0.25  # seed: "25% of full Kelly"
    max_total_strategy_pct: float = 0.20  # seed: 20 % portfolio maximum (also the HIGH limit)
    allocation: float | None = None  # USD; a fixed sleeve that overrides the Kelly rule
    monthly_addition: float = 0.0  # USD added to sleeve cash every 21 trading days
    max_leverage: float = 1.5  # seed: 'max_leverage': 1.5 (collateral = K*100/max_leverage)

    # --- the put ladder (seed: "Strike Selection & Allocation Matrix")
    strikes: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0, 5.0)  # USD
    weights: tuple[float, ...] = (0.15, 0.25, 0.30, 0.20, 0.10)  # of the tranche budget
    strike_mode: str = "fixed"  # "fixed" | "moneyness"
    reference_spot: float = 3.0  # USD, the spot the ladder is quoted at (moneyness mode)
    strike_grid: float = 0.5  # USD, moneyness strikes are rounded half-up to this grid
    entry_every_days: int = 5  # trading days between tranches
    dte_calendar: float = 37.0  # calendar days to expiry of a new put (seed: 30-45 DTE)
    whole_contracts: bool = True  # floor contracts; False allows fractional contracts
    max_concentration_single_expiration: float = 0.15  # of sleeve equity, notional
    max_single_strike_pct: float = 0.30  # of the sleeve's short-put notional

    # --- entry signal (seed: "Entry Conditions", 6 of 8)
    signal_iv_percentile_min: float = 75.0
    signal_short_interest_min: float = 30.0  # percent
    signal_dte_min: float = 21.0  # calendar days
    signal_dte_max: float = 45.0  # calendar days
    signal_spread_max: float = 0.15  # USD
    signal_open_interest_min: float = 50.0  # contracts
    signal_liquidity_min: float = 7.0
    signal_vix_min: float = 20.0
    signal_btc_corr_max: float = 0.9  # absolute value
    signal_min_conditions: int = 6

    # --- fills and costs (seed: "Order Execution Framework")
    fill: str = "bid_ask"  # "bid_ask" | "mid" | "seed"
    price_improvement_target: float = 0.05  # USD per share, for fill = "seed"
    commission: float = 0.65  # USD per contract
    min_quote: float = 0.01  # USD per share, floor of bid and ask
    skew: float = 0.0  # IV_K = IV * (K/S)^(-skew)

    # --- capacity (seed: "market_impact_limits")
    capacity_limits: bool = True
    max_open_interest_pct: float = 0.10  # of the strike's open interest
    max_volume_participation: float = 0.20  # of the strike's daily option volume

    # --- exits (seed: "Exit Conditions"); urgency thesis 5 > stop 4 > time 3 = liquidity 3 > iv 2 > profit 1
    profit_take: bool = True
    profit_take_pct: float = 0.50  # close when mid < (1 - pct) * premium
    stop_loss: bool = True
    stop_loss_multiple: float = 2.0  # close when mid > (1 + multiple) * premium
    time_exit: bool = True
    time_exit_dte: float = 7.0  # close when calendar DTE < this
    iv_exit: bool = True
    iv_exit_percentile: float = 30.0  # close all when IV percentile < this
    liquidity_exit: bool = True
    liquidity_exit_spread: float = 0.25  # close all when spread > this (USD)
    thesis_exit: bool = True
    thesis_short_interest_min: float = 20.0  # thesis broken when short interest < this
    thesis_btc_corr_max: float = 0.95  # thesis broken when |BTC correlation| > this

    # --- assignment (seed: "Assignment Management Protocol")
    early_assignment: bool = True
    early_assignment_prob: float = 1.0
    close_on_assignment_risk: bool = False
    assignment_score_close: int = 5
    covered_calls: bool = True
    cc_basis_good: float = 2.00  # USD: basis below -> sell covered calls
    cc_basis_hold: float = 2.50  # USD: basis below (and >= good) -> hold shares, no calls
    cc_strike_markup: float = 1.15
    cc_dte_calendar: float = 30.0

    # --- hedges (seed: "Dynamic Hedging Specifications")
    hedges: bool = True
    hedge_base_ratio: float = 0.20
    hedge_max_ratio: float = 0.40
    hedge_iv_extreme_percentile: float = 95.0
    hedge_iv_extreme_mult: float = 1.5
    hedge_squeeze_threshold: float = 0.4
    hedge_squeeze_mult: float = 2.0
    hedge_delta_threshold: float = -50.0  # contracts, seed convention
    hedge_delta_mult: float = 1.3
    vol_spike_threshold: float = 0.25  # IV_t / IV_{t-1} > 1 + this
    hedge_vol_spike_mult: float = 1.4
    hedge_dte_calendar: float = 90.0
    hedge_regime_percentile: float = 90.0  # above: far OTM strikes
    hedge_high_iv_moneyness: tuple[float, ...] = (1.5, 2.0, 3.0)
    hedge_high_iv_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    hedge_normal_moneyness: tuple[float, ...] = (1.2, 1.5)
    hedge_normal_weights: tuple[float, ...] = (0.7, 0.3)

    # --- limits (seed: "Risk Management Framework")
    enforce_limits: bool = True
    daily_var_limit: float = 0.02  # of portfolio value
    var_level: float = 0.99
    delta_min: float = -70.0  # contracts, seed convention
    delta_max: float = -30.0
    gamma_alert: float = 0.10  # percent of portfolio value per 1 % spot move (dollar gamma)
    theta_minimum: float = 0.02  # percent of portfolio value a calendar day
    vega_limit: float = 0.15  # percent of portfolio value per vol point
    rho_limit: float = 0.05  # percent of portfolio value per 1 % rate

    # --- ruin
    margin_calls: bool = True

    def __post_init__(self) -> None:
        # The one place the record is checked: a scenario file's reader reports every problem
        # this raises (`ConfigProblems.problems`), keyed by field.
        problems = self.problems()
        if problems:
            raise ConfigProblems(problems)

    def problems(self) -> list[str]:
        """Every inconsistency of the record, as 'field: what is wrong' strings."""
        out: list[str] = []
        if self.fill not in FILL_MODES:
            out.append(f"fill: must be one of {FILL_MODES}, got {self.fill!r}")
        if self.strike_mode not in STRIKE_MODES:
            out.append(f"strike_mode: must be one of {STRIKE_MODES}, got {self.strike_mode!r}")
        if len(self.strikes) != len(self.weights):
            out.append(
                f"weights: {len(self.weights)} weights for {len(self.strikes)} strikes; "
                "give one weight per strike"
            )
        for name, w in (
            ("weights", self.weights),
            ("hedge_high_iv_weights", self.hedge_high_iv_weights),
            ("hedge_normal_weights", self.hedge_normal_weights),
        ):
            if abs(sum(w) - 1.0) > 1e-9:
                out.append(f"{name}: must sum to 1, sum is {sum(w)!r}")
        if len(self.hedge_high_iv_moneyness) != len(self.hedge_high_iv_weights):
            out.append("hedge_high_iv_weights: one weight per hedge_high_iv_moneyness entry")
        if len(self.hedge_normal_moneyness) != len(self.hedge_normal_weights):
            out.append("hedge_normal_weights: one weight per hedge_normal_moneyness entry")
        if any(k <= 0 for k in self.strikes):
            out.append(f"strikes: must be > 0, got {self.strikes!r}")
        if self.entry_every_days < 1:
            out.append(f"entry_every_days: must be >= 1, got {self.entry_every_days!r}")
        if self.put_expiry_steps < 1:
            out.append(
                f"dte_calendar: must give at least one trading day, got {self.dte_calendar!r}"
            )
        if self.max_leverage <= 0:
            out.append(f"max_leverage: must be > 0, got {self.max_leverage!r}")
        return out

    # --- derived integers (shapes of the vectorized state depend on these)
    @property
    def put_expiry_steps(self) -> int:
        """Trading-day steps from sale to expiry of a put: round(D * 252 / 365), half up."""
        return steps_for_calendar_days(self.dte_calendar)

    @property
    def hedge_expiry_steps(self) -> int:
        return steps_for_calendar_days(self.hedge_dte_calendar)

    @property
    def cc_expiry_steps(self) -> int:
        return steps_for_calendar_days(self.cc_dte_calendar)

    @property
    def sleeve_initial(self) -> float:
        """USD given to the strategy at the start (docs/STRATEGY.md "Capital")."""
        if self.allocation is not None:
            return float(self.allocation)
        frac = min(self.kelly_multiplier * self.kelly_fraction, self.max_total_strategy_pct)
        return self.portfolio_value * max(frac, 0.0)

    def replace(self, **changes) -> StrategyConfig:
        return dataclasses.replace(self, **changes)


def steps_for_calendar_days(days: float) -> int:
    """Calendar days to trading-day steps, rounded half up (37 -> 26, 90 -> 62, 30 -> 21)."""
    return int(math.floor(days * 252.0 / 365.0 + 0.5))
