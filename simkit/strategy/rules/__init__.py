"""The rules of the vectorized engine, one module per section of the seed (and of docs/STRATEGY.md
"A day, in order"); `simkit.strategy.day` applies them in that order.

    sums.py        sums over a path's positions; where XLA materializes a value
    quotes.py      seed "Black-Scholes Foundation", "Greeks Calculations": marks, quotes, the
                   book's mark sums; "Order Execution Framework": fills; the IV percentile
    trades.py      the short puts' trades: collateral, tallies of closed trades, packed tallies
    expiries.py    steps 1-2: interest on the cash; puts, hedge calls, covered calls expiring
    assignment.py  seed "Assignment Management Protocol": step 3 early exercise (the seed's
                   early-assignment score), step 6 covered calls
    exits.py       seed "Exit Conditions": step 4, close-all conditions and the put decisions
    ruin.py        step 5: margin call and liquidation (docs/STRATEGY.md "Ruin")
    limits.py      seed "Position Limits & Controls": measures (Greeks, VaR, leverage, notional,
                   concentration) and breaches
    hedges.py      seed "Dynamic Hedging Specifications": squeeze probability, hedge ratio and
                   instruments, the sums over the calls held
    entry.py       seed "Entry Conditions", "Strike Selection & Allocation Matrix": step 7, the
                   signal, the ladder, sizing and capacity, the tranche and its ring slots

Imports point one way: sums <- quotes, trades <- the step rules; exits reads assignment's
record of step 3, ruin reads exits' record of step 4, and entry (an entry is blocked by limits
and exits and buys hedges) reads limits, exits and hedges.
"""
