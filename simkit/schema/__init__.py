"""The records simkit's layers share, without JAX: what a scenario's tables become.

- `tables`: one pydantic record per TOML table (`[simulation]`, `[market]`, `[capital]`,
  `[strategy]`, `[execution]`, `[exits]`, `[assignment]`, `[hedges]`, `[limits]`, `[claims]`),
  each key declared once with its default, unit, bounds and meaning; docs/SCENARIO.md is
  generated from them.
- `market.MarketParams`: one simulated market (the engines' and paths' record of `[market]`).
- `strategy.StrategyConfig`: the strategy's parameters (the engines' record of the seven
  strategy tables).
- `outcomes`: the names of what the strategy produces (trade ends, limits, buckets, inputs).
- `results`: every result variable of a run (with its trade log) and a stress file, declared
  once (name, extra dimensions, units, long name); `analyses`: those of an explain and a
  sensitivity file.

Nothing here imports JAX, the engines, the run or I/O (import-linter contracts in
pyproject.toml); every other layer may import it.
"""
