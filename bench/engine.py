"""Throughput of the strategy engines on the baseline. Prints one JSON line per measurement and a
table at the end.

    python bench/engine.py            # the default set (about 15 minutes on 2 cores)
    python bench/engine.py --quick    # a smoke run (about 3 minutes)
    python bench/engine.py --full     # adds 1e6 paths: the engine, processes, `simkit run`
    python bench/engine.py --only run,chunk       # some groups: engine, reference, precision,
                                                  # horizon, slots, chunk, process, floor, run

The vectorized engine is `simkit.strategy.engine.simulate_block` (the market generated inside
the engine), run block after block of `chunk` paths as `simkit run` does. `seconds` is the wall
time of all blocks once each block size is compiled, `compile_s` the first call of each block
size minus its steady time (a cold compile: JAX's persistent cache is off here),
`path_years_per_s` = paths x years / seconds, `peak_rss_mb` the process's peak resident memory
(`resource.getrusage`; XLA's compilation alone takes ~0.9 GB of it).

These machines are shared and their speed moves by tens of percent within minutes, so the
groups that compare variants (precision, horizon, slots, chunk, floor) run all of a group's
variants in one fresh process, back to back, several rounds, and report each variant's best
round and its ratio to the group's first variant (`x_first`): the ratios are the figures to
trust, the absolute rates less so. `engine` and `reference` each get a fresh process (peak RSS);
`process` alternates one process and two worker processes.

Lines (`bench` names the group):
- `engine`: the baseline at 1e4 and 1e5 paths (1e6 with --full), float32, 1 year.
- `reference`: the scalar reference engine on a few paths; `ratio` = engine / reference per path.
- `precision`: float32 and float64.
- `horizon`: 1, 2 and 5 years (memory must not grow with the horizon beyond the per-day equity
  the summary returns: 4 bytes a path and day).
- `slots`: the book's size: tranches every 10, 5 (baseline) and 3 days.
- `chunk`: paths per block, 1024 ... 32768.
- `process`: the same paths in one process, and split over two worker processes at once
  (timed from the first start to the last end, after both have compiled).
- `floor`: positions quoted and summed into the book's six sums per second, the engine's own
  way (`_marks`: one Black-Scholes evaluation; `_mark_sums`: three products per position and
  the slot factors as dot weights), measured back to back with the engine;
  `engine_over_floor` = the engine's time / (its quotes, one per slot and path-day, at that
  rate).
- `run`: `simkit.run.simulate` on `scenarios/baseline.toml` end to end (blocks, per-path
  figures, the cell's reduction; no file), each variant in a fresh process: `cold_s` includes
  the engine's compile, `warm_s` is a second run in the same process. Variants: one block at a
  time in process with 8192-path blocks (the 2026-11-27 morning default), two threads with
  8192, and the default (two threads, 2048-path blocks). `--full` adds 1e6 paths, default
  settings, cold: issue 7's measure.
- `memory`: `simkit.run.simulate` of the baseline over one month (21 steps) at 1e5 and 1e6
  paths in one cell (4e6 with --full), default settings, each in a fresh process: the peak
  RSS must not grow with the paths (the cell keeps 80 bytes a path for its order statistics,
  in files past 256 MiB; `spilled_mb` is how much went there).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time

N_STEPS = 252
GROUPS = (
    "engine", "reference", "precision", "horizon", "slots", "chunk", "process", "floor", "run",
    "memory",
)  # fmt: skip
BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios",
                        "baseline.toml")  # fmt: skip
_COMPILED: set = set()  # block shapes this process has compiled


def emit(**fields) -> dict:
    out = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in fields.items()}
    print(json.dumps(out), flush=True)
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup_jax() -> None:
    """In a worker: no persistent compilation cache (cold compiles are what is measured)."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)


def run_engine(
    n_paths: int,
    chunk: int,
    n_steps: int = N_STEPS,
    float64: bool = False,
    entry_every_days: int = 5,
    start: int = 0,
    barrier=None,
) -> dict:
    """Paths start … start + n_paths - 1 of the baseline, block after block, in this process."""
    _setup_jax()
    from simkit.paths.market import MarketParams
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.engine import _padded_size, simulate_block
    from simkit.strategy.params import engine_shape

    cfg = StrategyConfig(entry_every_days=entry_every_days)
    mkt = MarketParams()
    blocks = [(s, min(chunk, start + n_paths - s)) for s in range(start, start + n_paths, chunk)]

    def block(first, size):
        return simulate_block(
            cfg, mkt, seed=1, cell=0, path_start=first, n_paths=size, n_steps=n_steps,
            float64=float64,
        )  # fmt: skip

    compile_s = 0.0
    for size in sorted({_padded_size(size, 8) for _, size in blocks}):
        key = (entry_every_days, size, n_steps, float64)
        if key in _COMPILED:
            continue
        began = time.perf_counter()
        block(start, size)
        first = time.perf_counter() - began
        began = time.perf_counter()
        block(start, size)
        compile_s += max(first - (time.perf_counter() - began), 0.0)
        _COMPILED.add(key)
    if barrier is not None:
        barrier.wait()
    began = time.perf_counter()
    final = 0.0
    for first, size in blocks:
        final += float(block(first, size)["final_equity"].sum())
    seconds = time.perf_counter() - began
    shape = engine_shape(cfg)
    return dict(
        n_paths=n_paths,
        chunk=chunk,
        n_steps=n_steps,
        dtype="float64" if float64 else "float32",
        put_slots=shape.put_slots * shape.rungs,
        hedge_slots=shape.hedge_slots * shape.hedge_legs,
        seconds=seconds,
        compile_s=compile_s,
        path_years_per_s=n_paths * n_steps / N_STEPS / seconds,
        mean_final_equity=final / n_paths,
        peak_rss_mb=_peak_rss_mb(),
        began=began,
        ended=began + seconds,
    )


def compare(variants: list[dict], reps: int = 3) -> list[dict]:
    """Variants of `run_engine` (keyword dicts) in this one process, timed in turn for `reps`
    rounds (each compiled before its first round); each result is its best round, with its
    first compile time and its ratio of throughput to the first variant's."""
    best: list = [None] * len(variants)
    compile_s = [0.0] * len(variants)
    for _ in range(reps):
        for i, kwargs in enumerate(variants):
            result = run_engine(**kwargs)
            compile_s[i] = max(compile_s[i], result["compile_s"])
            if best[i] is None or result["seconds"] < best[i]["seconds"]:
                best[i] = result
    for i, result in enumerate(best):
        result["compile_s"] = compile_s[i]
        result["x_first"] = result["path_years_per_s"] / best[0]["path_years_per_s"]
    return best


def run_reference(n_paths: int) -> dict:
    import numpy as np

    _setup_jax()
    from simkit.paths.market import MarketParams, market_to_numpy, simulate_market
    from simkit.precision import x64
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.reference import simulate_paths

    mkt = MarketParams()
    with x64():
        market = market_to_numpy(simulate_market(mkt, 1, 0, 0, n_paths, N_STEPS, dtype=np.float64))
    began = time.perf_counter()
    simulate_paths(market, StrategyConfig(), mkt)
    seconds = time.perf_counter() - began
    return dict(
        n_paths=n_paths,
        n_steps=N_STEPS,
        dtype="float64",
        seconds=seconds,
        path_years_per_s=n_paths / seconds,
        peak_rss_mb=_peak_rss_mb(),
    )


def _quote_rate(n_paths: int) -> float:
    """Positions a second quoted by the engine's `_marks` over a (13, 3, paths) ring of calls
    and summed into the book's six sums by `_mark_sums`, as the engine does each day."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from simkit.paths.market import MarketParams
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.params import engine_params
    from simkit.strategy.rules.quotes import _mark_sums, _marks

    dtype = jnp.float32
    p = engine_params(StrategyConfig(), MarketParams(), dtype)
    rng = np.random.default_rng(0)
    slots, legs, days = 13, 3, 20
    strike = jnp.asarray(rng.uniform(1.0, 9.0, (slots, legs, n_paths)), dtype)
    n = jnp.asarray(rng.integers(0, 3, (slots, legs, n_paths)) * 5.0, dtype)
    spot = jnp.asarray(rng.uniform(2.0, 4.0, n_paths), dtype)
    iv = jnp.asarray(rng.uniform(1.0, 4.0, n_paths), dtype)
    tau = jnp.linspace(1.0, 62.0, slots, dtype=dtype)[:, None, None] / 252.0

    @jax.jit
    def quotes(spot, strike, n, iv):
        def day(total, i):
            s = spot * (1.0 + 1e-3 * i)
            m = _marks(s, strike, tau, iv, p, True, False)
            return total + jnp.stack(_mark_sums(m, n, s, iv, p, False)), None

        return jax.lax.scan(day, jnp.zeros((6, n_paths), dtype), jnp.arange(days))[0]

    quotes(spot, strike, n, iv).block_until_ready()
    began = time.perf_counter()
    quotes(spot, strike, n, iv).block_until_ready()
    return days * slots * legs * n_paths / (time.perf_counter() - began)


def run_floor(n_paths: int, chunk: int, reps: int = 3) -> dict:
    """The engine and the quote floor, back to back in this process; best of `reps` each."""
    _setup_jax()
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.params import engine_shape

    engine_s, rate = float("inf"), 0.0
    for _ in range(reps):
        engine_s = min(engine_s, run_engine(n_paths, chunk)["seconds"])
        rate = max(rate, _quote_rate(chunk))
    shape = engine_shape(StrategyConfig())
    per_day = shape.put_slots * shape.rungs + shape.hedge_slots * shape.hedge_legs + 1
    floor_s = n_paths * (N_STEPS + 1) * per_day / rate
    return dict(
        n_paths=n_paths,
        chunk=chunk,
        quotes_per_s=rate,
        quotes_per_path_day=per_day,
        floor_s=floor_s,
        engine_s=engine_s,
        engine_over_floor=engine_s / floor_s,
        path_years_per_s=n_paths / engine_s,
        floor_path_years_per_s=n_paths / floor_s,
    )


def run_pipeline(n_paths: int, chunk: int | None, scheduler: str | None, warm: bool = True):
    """`simkit.run.simulate` on the baseline scenario: cold (with the compile), then warm."""
    _setup_jax()
    from simkit import run
    from simkit.scenario import load_scenario

    scenario = load_scenario(BASELINE)
    times = []
    for _ in range(2 if warm else 1):
        began = time.perf_counter()
        ds = run.simulate(
            scenario, paths=n_paths, chunk_size=chunk, scheduler=scheduler, progress=False
        )
        times.append(time.perf_counter() - began)
    return dict(
        n_paths=n_paths,
        chunk=int(ds.attrs.get("chunk_size", chunk or 0)),
        n_steps=N_STEPS,
        dtype="float32",
        executor=ds.attrs["executor"],
        cold_s=times[0],
        warm_s=times[-1] if warm else None,
        seconds=times[-1],
        path_years_per_s=n_paths / times[-1],
        peak_rss_mb=_peak_rss_mb(),
    )


def run_memory(n_paths: int, years: float = 1 / 12) -> dict:
    """`simkit.run.simulate` on the baseline over a short horizon: peak RSS at many paths."""
    _setup_jax()
    from simkit import run, streaming
    from simkit.scenario import load_scenario

    spilled = []
    append = streaming.Columns.append

    def counting(self, segment):  # records how many bytes each cell sent to its files
        append(self, segment)
        if self.spilled:
            spilled.append(8 * len(self.names) * len(segment[self.names[0]]))

    streaming.Columns.append = counting
    scenario = load_scenario(BASELINE, overrides={"simulation.years": years})
    began = time.perf_counter()
    ds = run.simulate(scenario, paths=n_paths, progress=False)
    seconds = time.perf_counter() - began
    n_steps = int(ds.attrs.get("n_steps", round(N_STEPS * years)))
    return dict(
        n_paths=n_paths,
        chunk=int(ds.attrs.get("chunk_size", 0)),
        n_steps=n_steps,
        dtype="float32",
        executor=ds.attrs["executor"],
        seconds=seconds,
        path_years_per_s=n_paths * n_steps / N_STEPS / seconds,
        peak_rss_mb=_peak_rss_mb(),
        spilled_mb=sum(spilled) / 2**20,
    )


def _in_process(fn, *args, **kwargs):
    """Run `fn` in a fresh process and return its result."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args, kwargs)


def run_two_processes(n_paths: int, chunk: int) -> dict:
    """Two worker processes, each half of the paths, started together after both compiled."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        half = n_paths // 2
        parts = [
            pool.apply_async(run_engine, (half, chunk), dict(start=i * half, barrier=barrier))
            for i in range(2)
        ]
        results = [part.get() for part in parts]
    seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return dict(
        n_paths=2 * half,
        chunk=chunk,
        n_steps=N_STEPS,
        dtype="float32",
        processes=2,
        seconds=seconds,
        compile_s=max(r["compile_s"] for r in results),
        path_years_per_s=2 * half / seconds,
        peak_rss_mb=max(r["peak_rss_mb"] for r in results),
    )


def machine() -> dict:
    import jax
    from machine import cpu_model

    return dict(
        nproc=os.cpu_count(),
        cpu_model=cpu_model(),
        jax=jax.__version__,
        device=str(jax.devices()[0]),
        python=platform.python_version(),
    )


def _table(rows: list[dict]) -> None:
    print()
    print(f"{'bench':10s} {'paths':>9s} {'chunk':>6s} {'years':>5s} {'dtype':>7s} "
          f"{'path-yr/s':>10s} {'x first':>7s} {'compile s':>9s} {'RSS MB':>7s}  note")  # fmt: skip
    for r in rows:
        if "path_years_per_s" not in r or r["bench"] == "floor":
            continue
        note = ""
        if r["bench"] == "reference":
            note = f"engine / reference = {r['ratio']:.0f}x per path"
        elif r["bench"] == "process":
            note = f"{r['processes']} process(es)"
        elif r["bench"] == "run":
            warm = f", warm {r['warm_s']:.1f} s" if r.get("warm_s") else ""
            note = f"{r['executor']}: cold {r['cold_s']:.1f} s (compile included){warm}"
        elif r["bench"] == "memory":
            note = f"{r['executor']}: {r['seconds']:.1f} s, {r['spilled_mb']:.0f} MB to files"
        elif r["bench"] == "slots":
            note = f"every {r['entry_every_days']} days: {r['put_slots']}+{r['hedge_slots']} slots"
        x_first = f"{r['x_first']:.2f}" if "x_first" in r else ""
        print(
            f"{r['bench']:10s} {r.get('n_paths', 0):9d} {r.get('chunk', 0):6d} "
            f"{r.get('n_steps', N_STEPS) / N_STEPS:5.3g} {r.get('dtype', ''):>7s} "
            f"{r['path_years_per_s']:10.0f} {x_first:>7s} {r.get('compile_s') or 0.0:9.1f} "
            f"{r.get('peak_rss_mb', 0.0):7.0f}  {note}"
        )
    for r in rows:
        if r["bench"] == "floor":
            print(
                f"floor: {r['quotes_per_s']:.3g} quotes/s; {r['quotes_per_path_day']} quotes a "
                f"path-day = {r['floor_path_years_per_s']:.0f} path-years/s; the engine "
                f"({r['path_years_per_s']:.0f} path-years/s) takes {r['engine_over_floor']:.2f}x "
                "the floor's time"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--full", action="store_true", help="adds 1e6 paths")
    parser.add_argument("--chunk", type=int, default=8192, help="paths per block (default 8192)")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    args = parser.parse_args()
    groups = set(args.only.split(","))
    if groups - set(GROUPS):
        parser.error(f"--only: unknown groups {sorted(groups - set(GROUPS))}; from {GROUPS}")
    chunk = args.chunk
    small = 4 * 1024 if args.quick else 10_000
    reps = 2 if args.quick else 3
    rows = [emit(bench="setup", **machine(), quick=args.quick)]

    def record(bench, result, **extra):
        result = {k: v for k, v in result.items() if k not in ("began", "ended")}
        rows.append(emit(bench=bench, **extra, **result))
        return rows[-1]

    def record_all(bench, results, variants, label=None):
        for result, kwargs in zip(results, variants, strict=True):
            extra = {label: kwargs[label]} if label else {}
            record(bench, result, **extra)

    engine_row = None
    if groups & {"engine", "reference"}:
        sizes = [small] if args.quick else [10_000, 100_000] + [1_000_000] * args.full
        for n in sizes if "engine" in groups else [small]:
            row = record("engine", _in_process(run_engine, n, chunk))
            engine_row = engine_row or row
    if "reference" in groups:
        ref = _in_process(run_reference, 2 if args.quick else 8)
        record("reference", ref, ratio=engine_row["path_years_per_s"] / ref["path_years_per_s"])
    if "precision" in groups:
        variants = [dict(n_paths=small, chunk=chunk, float64=f) for f in (False, True)]
        record_all("precision", _in_process(compare, variants, reps), variants)
    if "horizon" in groups:
        years = (1, 2) if args.quick else (1, 2, 5)
        variants = [dict(n_paths=chunk, chunk=chunk, n_steps=y * N_STEPS) for y in years]
        record_all("horizon", _in_process(compare, variants, reps), variants)
    if "slots" in groups:
        variants = [dict(n_paths=small, chunk=chunk, entry_every_days=e) for e in (5, 10, 3)]
        record_all("slots", _in_process(compare, variants, reps), variants, "entry_every_days")
    if "chunk" in groups:
        sizes = (8192, 1024, 4096) if args.quick else (8192, 1024, 2048, 4096, 16384, 32768)
        total = 32768 if args.quick else 65536
        variants = [dict(n_paths=total, chunk=c) for c in sizes]
        record_all("chunk", _in_process(compare, variants, reps), variants)
    if "process" in groups:
        n = (4 if args.quick else 16) * chunk
        for total in [n] + [1_000_000] * args.full:
            for _ in range(1 if args.quick or total > n else 2):
                record("process", _in_process(run_engine, total, chunk), processes=1)
                record("process", run_two_processes(total, chunk))
    if "floor" in groups:
        record("floor", _in_process(run_floor, small, chunk, reps))
    if "run" in groups:
        n = 32_768 if args.quick else 131_072
        for _ in range(1 if args.quick else 2):
            for chunk_size, scheduler in ((8192, "synchronous"), (8192, None), (None, None)):
                record("run", _in_process(run_pipeline, n, chunk_size, scheduler))
        if args.full:
            record("run", _in_process(run_pipeline, 1_000_000, None, None, warm=False))
    if "memory" in groups:
        sizes = [20_000] if args.quick else [100_000, 1_000_000] + [4_000_000] * args.full
        for n in sizes:
            record("memory", _in_process(run_memory, n))
    _table(rows[1:])


if __name__ == "__main__":
    main()
