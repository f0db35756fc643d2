"""Write the S&P 500 / VIX history CSV (`date,close,iv,vix`) of scenarios/spx_vix.toml.

A development tool, not part of simkit: it needs the `arch` package (`pip install arch`), whose
bundled datasets it reads (no download):

    arch.data.sp500.load()   S&P 500 index (^GSPC) daily Open/High/Low/Close/Adj Close/Volume
    arch.data.vix.load()     CBOE VIX daily close ("vix"; NaN on days the index was not computed)

The file holds the trading days from FIRST_DATE to LAST_DATE on which both series have a value
(the S&P 500 days with a finite VIX close: 2014-01-02 has no VIX in the dataset, so the file
starts on 2014-01-03), one line a day:

    date   ISO date
    close  the S&P 500 close, index points (1831.37 = $1,831.37 a share of the index)
    iv     VIX / 100: the 30-day implied volatility as an annual fraction (13.76 -> 0.1376)
    vix    the VIX close, index points (the entry signal's `vix` input)

`close` is the Close column, not Adj Close: the S&P 500 is a price index and its options
(SPX) settle on that price, so the replay must move the index as its options see it. The two
columns of this dataset are equal over the window (the script checks it): Yahoo's adjusted
close only differs for a security that pays dividends or splits, and an index pays neither
(a total-return series would be another index, not the one the options are written on).
Values are written with 10 significant digits (the datasets' own floats, unchanged).

The shipped scenarios/data/spx_vix_2014_2018.csv is

    python scripts/make_spx_vix.py scenarios/data/spx_vix_2014_2018.csv

Usage: python scripts/make_spx_vix.py OUT.csv [--first YYYY-MM-DD] [--last YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

FIRST_DATE = "2014-01-01"
LAST_DATE = "2018-12-31"


def spx_vix(first: str = FIRST_DATE, last: str = LAST_DATE):
    """(dates datetime64[D], S&P 500 close, VIX close) of the days both have, first..last."""
    try:
        from arch.data import sp500, vix
    except ImportError:
        sys.exit("make_spx_vix.py needs the arch package (pip install arch): its datasets")
    spx = sp500.load().loc[first:last]
    closes = spx["Close"]
    if not np.allclose(closes.to_numpy(), spx["Adj Close"].to_numpy(), rtol=0, atol=1e-9):
        sys.exit("the dataset's Close and Adj Close differ in the window: check the source")
    volatility = vix.load()["vix"].loc[first:last].dropna()
    both = closes.index.intersection(volatility.index)
    dates = np.asarray(both.values, dtype="datetime64[D]")
    return dates, closes.loc[both].to_numpy(np.float64), volatility.loc[both].to_numpy(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--first", default=FIRST_DATE, help="first date (YYYY-MM-DD)")
    parser.add_argument("--last", default=LAST_DATE, help="last date (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    dates, close, vix = spx_vix(args.first, args.last)
    if dates.size < 2:
        parser.error(f"fewer than 2 days between {args.first} and {args.last}")
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("date,close,iv,vix\n")
        for date, price, level in zip(dates, close, vix, strict=True):
            out.write(f"{date},{price:.10g},{level / 100:.10g},{level:.10g}\n")
    print(f"wrote {dates.size} days ({dates[0]} to {dates[-1]}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
