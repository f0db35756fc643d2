"""How simkit writes a fraction as a percentage: one function for every table and figure.

`percent(0.123)` is "12.3 %". A share that is not zero but would print as zero at the given
decimals is written as below the smallest printed step instead, `percent(0.00014)` is
"<0.1 %" (">-0.1 %" for a negative one), so a rare event (a 0.014 % ruin probability) never
reads as "0 %" or "0.0 %". Only an exact zero prints as zero.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["percent", "share"]


def percent(
    x: Any,
    decimals: int = 1,
    *,
    unit: str = " %",
    sign: bool = False,
    missing: str = "n/a",
) -> str:
    """The fraction `x` as a percentage with `decimals` decimals and `unit` after it.

    Args:
      x: a fraction (0.123 = 12.3 %).
      decimals: digits after the decimal point. Default value: 1.
      unit: written after the number ("" in tables whose column names the unit).
        Default value: " %".
      sign: write "+" before a positive number. Default value: False.
      missing: the text for NaN. Default value: "n/a".

    Returns:
      "12.3 %"; for a nonzero `x` smaller than half the last printed digit, "<0.1 %" (or
      ">-0.1 %"; with no decimals it is first written to a tenth, "0.3 %", then "<0.1 %");
      "inf" / "-inf" (no unit) for infinities; `missing` for NaN.
    """
    x = float(x)
    if math.isnan(x):
        return missing
    if math.isinf(x):
        return "-inf" if x < 0 else ("+inf" if sign else "inf")
    step = 10.0**-decimals  # the smallest printed step, in percent
    if x != 0 and abs(100 * x) < step / 2:  # not zero, but below the printed digit
        if decimals < 1:  # whole percents: show a small one to a tenth, "0.3 %"
            return percent(x, 1, unit=unit, sign=sign, missing=missing)
        text = f"{step:.{decimals}f}"
        return f"<{'+' if sign else ''}{text}{unit}" if x > 0 else f">-{text}{unit}"
    return f"{100 * x:{'+' if sign else ''}.{decimals}f}{unit}"


def share(x: Any, *, unit: str = " %", missing: str = "n/a") -> str:
    """A share in [0, 1] with the decimals its ends need: "0 %", "<0.1 %", "0.3 %", "12 %",
    "99.5 %", ">99.9 %", "100 %": only exactly 0 and 1 read as 0 % and 100 %."""
    x = float(x)
    if math.isfinite(x) and 0.99 <= x < 1:
        return f">99.9{unit}" if 100 * x >= 99.95 else percent(x, 1, unit=unit)
    if math.isfinite(x) and x != 0 and abs(x) < 0.01:
        return percent(x, 1, unit=unit, missing=missing)
    return percent(x, 0, unit=unit, missing=missing)
