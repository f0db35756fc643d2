"""Where a day of the engine goes: XLA kernel time per rule of the day (issue 18).

Compiles the engine (`simkit.strategy.day._run_generated`, the baseline, one block), runs a few
blocks under `jax.profiler`, and sums the time of every kernel the trace records by the rule
whose `jax.named_scope` its op_name carries (`_day` names its steps: accrue, expiries, quotes,
exits, hedges, ruin, covered_calls, entry, end_of_day; `_scan_days` names the market). Kernels
without a rule: the copies XLA inserts to carry the loop state ("loop state (copies)"), and
those whose op_name lost its scope ("no scope": the dot products of the book's sums, mostly).

    .venv/bin/python bench/profile_day.py [--paths 2048] [--blocks 3] [--float64]

Prints one JSON line per rule, then a table. Times are summed over the threads that ran the
kernels, under the profiler (each recorded kernel costs ~1 us more than it does unprofiled, so
the many small ones weigh more than in a plain run): read shares, not seconds.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

RULES = (
    "accrue",
    "expiries",
    "quotes",
    "exits",
    "hedges",
    "ruin",
    "covered_calls",
    "entry",
    "end_of_day",
    "market",
)


def _kernel_names(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """Instruction name -> (opcode, shape, op_name) of the compiled module."""
    out = {}
    pattern = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+(?: \S+)?) ([a-z][\w\-]*)\(")
    for line in hlo_text.splitlines():
        m = pattern.match(line)
        if m:
            op_name = re.search(r'op_name="([^"]*)"', line)
            out[m.group(1)] = (m.group(3), m.group(2), op_name.group(1) if op_name else "")
    return out


def _rule(opcode: str, op_name: str) -> str | None:
    if opcode in ("conditional", "while", "call"):
        return None  # their time is their kernels'
    for rule in RULES:
        if f"/{rule}/" in op_name:
            return rule
    if opcode == "copy":
        return "loop state (copies)"
    return "no scope"


def profile(n_paths: int, blocks: int, float64: bool) -> tuple[dict, float]:
    import jax
    import numpy as np

    from simkit.paths.keys import cell_key
    from simkit.paths.market import MarketParams
    from simkit.precision import x64
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.day import _run_generated
    from simkit.strategy.params import engine_params, engine_shape

    cfg, mkt = StrategyConfig(), MarketParams()
    with x64(float64):
        dtype = jax.numpy.float64 if float64 else jax.numpy.float32
        params = engine_params(cfg, mkt, dtype)
        static = dict(shape=engine_shape(cfg), n_paths=n_paths, n_days=256, dtype=dtype)
        compiled = _run_generated.lower(
            mkt, cell_key(1, 0), np.uint32(0), np.int32(252), params, **static
        ).compile()
        names = _kernel_names(compiled.as_text())

        def block(i):
            out = compiled(mkt, cell_key(1, 0), np.uint32(i * n_paths), np.int32(252), params)
            jax.block_until_ready(out)

        block(0)
        with tempfile.TemporaryDirectory() as trace_dir:
            jax.profiler.start_trace(trace_dir)
            for i in range(1, blocks + 1):
                block(i)
            jax.profiler.stop_trace()
            (trace,) = Path(trace_dir).rglob("*.trace.json.gz")
            events = json.load(gzip.open(trace))["traceEvents"]
    per_rule = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("ph") != "X" or e.get("name") not in names:
            continue
        rule = _rule(*(names[e["name"]][i] for i in (0, 2)))
        if rule is not None:
            per_rule[rule][0] += e["dur"] / 1e3 / blocks  # ms a block
            per_rule[rule][1] += 1 / blocks / 253  # kernels a day
    return dict(per_rule), sum(v[0] for v in per_rule.values())


def main() -> None:
    from machine import cpu_model  # bench/, beside this script

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=2048, help="paths a block (default 2048)")
    parser.add_argument("--blocks", type=int, default=3, help="blocks profiled (default 3)")
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SIMKIT_COMPILE_CACHE", "0")
    per_rule, total = profile(args.paths, args.blocks, args.float64)
    rows = sorted(per_rule.items(), key=lambda kv: -kv[1][0])
    for rule, (ms, kernels) in rows:
        print(
            json.dumps(
                dict(
                    bench="profile_day",
                    rule=rule,
                    ms_per_block=round(ms, 2),
                    share=round(ms / total, 4),
                    kernels_per_day=round(kernels, 1),
                    paths=args.paths,
                    dtype="float64" if args.float64 else "float32",
                    cpu=cpu_model(),
                )
            )
        )
    print(
        f"\nkernel time of a {args.paths:,}-path year, summed over threads: {total:.1f} ms "
        f"({cpu_model()}, {os.cpu_count()} cores)",
        file=sys.stderr,
    )
    print(f"{'rule':22s} {'ms':>7s} {'share':>6s} {'kernels/day':>12s}", file=sys.stderr)
    for rule, (ms, kernels) in rows:
        print(f"{rule:22s} {ms:7.1f} {ms / total:6.1%} {kernels:12.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
