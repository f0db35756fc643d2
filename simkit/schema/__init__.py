"""The records simkit's layers share, without JAX: what a scenario's tables become.

`market.MarketParams`: one simulated market (the `[market]` table). Further records (the strategy
tables, outcome names, calendar constants) move here step by step (issue 14).
"""
