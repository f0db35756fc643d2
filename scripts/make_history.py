"""Write a synthetic daily history CSV (`date,close,iv`) for tests, demos and calibration checks.

The history is one path of `simulate_market` in float64 with the baseline market
(docs/MODELLING.md "The baseline market") under the Merton model (so `simkit calibrate market`
can be checked against known values):

    model = "merton", s0 = 3.0, mu = 0.05, sigma = 1.90,
    jump_intensity = 4.0, jump_mean = -0.25, jump_std = 0.35,
    iv0 = 4.2517, kappa = 6.0, iv_long_run = 2.17, eta = 1.0,
    iv_spot_corr = -0.5, iv_jump_beta = -0.5,
    seed = 20240601, cell = 0, path 0, dt = 1/252,

dated on business days (Monday to Friday) from 2016-01-04. `close` is written with 10
significant digits, `iv` with 8. The shipped `tests/data/history_synthetic.csv` is

    python scripts/make_history.py tests/data/history_synthetic.csv --days 2000

Usage: python scripts/make_history.py OUT.csv [--days N] [--seed N]
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # a script, not a library: its own process

from simkit.paths import MarketParams, simulate_market  # noqa: E402

TRUE_PARAMS = MarketParams(model="merton")
DEFAULT_SEED = 20240601
FIRST_DATE = "2016-01-04"


def make_history(n_days: int, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, ...]:
    """(dates datetime64[D], close dollars, iv annual fraction), each (n_days,)."""
    market = simulate_market(TRUE_PARAMS, seed, 0, 0, 1, n_days - 1, dtype=np.float64)
    offsets = np.arange(n_days)
    dates = np.busday_offset(np.datetime64(FIRST_DATE, "D"), offsets, roll="forward")
    return dates, np.asarray(market.spot[0]), np.asarray(market.iv[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--days", type=int, default=2000, help="number of days (>= 2)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation seed")
    args = parser.parse_args(argv)
    if args.days < 2:
        parser.error(f"--days must be >= 2; got {args.days}")
    dates, close, iv = make_history(args.days, args.seed)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("date,close,iv\n")
        for date, price, vol in zip(dates, close, iv, strict=True):
            out.write(f"{date},{price:.10g},{vol:.8g}\n")
    print(f"wrote {args.days} days to {args.out} (seed {args.seed}, {TRUE_PARAMS.model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
