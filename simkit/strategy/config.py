"""The strategy's parameter record, declared in `simkit.schema.strategy` (no JAX); re-exported
here for the engines, which read it as `simkit.strategy.config.StrategyConfig`."""

from simkit.schema.strategy import (
    FILL_MODES,
    STRIKE_MODES,
    StrategyConfig,
    steps_for_calendar_days,
)

__all__ = ["FILL_MODES", "STRIKE_MODES", "StrategyConfig", "steps_for_calendar_days"]
