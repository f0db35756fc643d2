"""Throughput of simkit's market paths and pricing. Prints one JSON line per configuration.

    python bench/paths.py            # 1e4, 1e5, 1e6 paths x 252 steps (a few minutes on 2 cores)
    python bench/paths.py --quick    # 1e3, 1e4 paths: a smoke run in seconds

Lines (`bench` names the kind):
- `gbm`, `merton`: `simkit.paths.gbm` / `merton`, whole `(n_paths, n_steps + 1)` arrays.
- `simulate_market`: every `Market` field as `(n_paths, n_steps + 1)` arrays (14 of them).
- `market_scan`: `market_init` / `market_step` inside a `lax.scan` that keeps only the final
  spot: what the strategy engine pays to generate its market day by day.
- `floor`: `jax.random.normal` draws/s, simkit's own normal draws/s (`day_uniforms` + `to_normal`),
  `bs_price`, `bs_greeks` and `implied_vol` evaluations/s on 5e6 (quick: 5e5) puts.
`seconds` is the best steady-state call, `compile_s` the first call minus it (trace + compile),
`paths_steps_per_s` = n_paths * n_steps / seconds. float32 runs first with x64 off, then x64 is
turned on for the float64 runs (this is a script: its own process).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from simkit.paths import MarketParams, gbm, market_init, market_step, merton, simulate_market
from simkit.paths.keys import cell_key, day_uniforms, path_keys, to_normal
from simkit.pricing import bs_greeks, bs_price, implied_vol

N_STEPS = 252


def timed(fn, *args, reps: int = 3) -> tuple[float, float]:
    """(best steady seconds, first call minus best) of `fn(*args)`."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
        if best > 5.0:  # one steady run is enough for the big ones
            break
    return best, max(first - best, 0.0)


def emit(**fields) -> None:
    out = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in fields.items()}
    print(json.dumps(out), flush=True)


def bench_paths(dtype, sizes) -> None:
    one = np.dtype(dtype).type
    key = jax.random.PRNGKey(0)
    for model in ("gbm", "merton"):
        for n_paths in sizes:
            if model == "gbm":

                def run(key, n_paths=n_paths):
                    return gbm(key, one(3.0), one(0.05), one(1.9), n_paths, N_STEPS)
            else:

                def run(key, n_paths=n_paths):
                    return merton(
                        key, one(3.0), one(0.05), one(1.9), one(4.0), one(-0.25), one(0.35),
                        n_paths, N_STEPS,
                    )  # fmt: skip

            seconds, compile_s = timed(run, key)
            emit(
                bench=model,
                model=model,
                dtype=np.dtype(dtype).name,
                n_paths=n_paths,
                n_steps=N_STEPS,
                seconds=seconds,
                paths_steps_per_s=n_paths * N_STEPS / seconds,
                compile_s=compile_s,
            )


def bench_market(dtype, sizes) -> None:
    for model in ("gbm", "merton"):
        params = MarketParams(model=model)
        for n_paths in sizes:
            if n_paths * (N_STEPS + 1) * 14 * np.dtype(dtype).itemsize > 4e9:
                continue  # whole arrays over 4 GB: see market_scan

            def run(n_paths=n_paths, params=params):
                return simulate_market(params, 1, 0, 0, n_paths, N_STEPS, dtype=dtype)

            seconds, compile_s = timed(run)
            emit(
                bench="simulate_market",
                model=model,
                dtype=np.dtype(dtype).name,
                n_paths=n_paths,
                n_steps=N_STEPS,
                seconds=seconds,
                paths_steps_per_s=n_paths * N_STEPS / seconds,
                compile_s=compile_s,
            )
        for n_paths in sizes:

            @jax.jit
            def scan(keys, params=params):
                state, _ = market_init(params, keys, dtype)

                def one_day(state, day):
                    state, _ = market_step(params, keys, state, day)
                    return state, None

                state, _ = jax.lax.scan(one_day, state, jnp.arange(1, N_STEPS + 1))
                return jnp.exp(state.log_spot)

            keys = path_keys(cell_key(1, 0), 0, n_paths)
            seconds, compile_s = timed(scan, keys)
            emit(
                bench="market_scan",
                model=model,
                dtype=np.dtype(dtype).name,
                n_paths=n_paths,
                n_steps=N_STEPS,
                seconds=seconds,
                paths_steps_per_s=n_paths * N_STEPS / seconds,
                compile_s=compile_s,
            )


def bench_floor(dtype, n: int) -> None:
    name = np.dtype(dtype).name
    key = jax.random.PRNGKey(0)
    normals = jax.jit(lambda key: jax.random.normal(key, (n,), dtype))
    seconds, _ = timed(normals, key)
    emit(bench="floor", what="jax.random.normal draws", dtype=name, per_s=n / seconds)

    keys = path_keys(key, 0, n // 8)
    ours = jax.jit(lambda keys: to_normal(day_uniforms(keys, 1, 8, dtype)))
    seconds, _ = timed(ours, keys)
    emit(bench="floor", what="simkit day_uniforms+to_normal draws", dtype=name, per_s=n / seconds)

    spot = jax.random.uniform(key, (n,), dtype, 1.0, 5.0)
    strike = jnp.full((n,), 3.0, dtype)
    t = jnp.full((n,), 30 / 365, dtype)
    rate, vol = jnp.asarray(0.05, dtype), jnp.asarray(4.25, dtype)
    seconds, _ = timed(jax.jit(bs_price), spot, strike, t, rate, vol)
    emit(bench="floor", what="bs_price put evaluations", dtype=name, per_s=n / seconds)
    seconds, _ = timed(jax.jit(bs_greeks), spot, strike, t, rate, vol)
    emit(bench="floor", what="bs_greeks (5 Greeks) evaluations", dtype=name, per_s=n / seconds)
    prices = bs_price(spot, strike, t, rate, vol)
    m = n // 10
    seconds, _ = timed(jax.jit(implied_vol), prices[:m], spot[:m], strike[:m], t[:m], rate)
    emit(bench="floor", what="implied_vol evaluations", dtype=name, per_s=m / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-float64", action="store_true", help="skip the float64 runs")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000, 1_000_000)
    n_floor = 500_000 if args.quick else 5_000_000
    emit(
        bench="setup",
        jax=jax.__version__,
        device=str(jax.devices()[0]),
        cpus=jax.device_count(),
        python=platform.python_version(),
        quick=args.quick,
    )
    dtypes = [jnp.float32] if args.no_float64 else [jnp.float32, jnp.float64]
    for dtype in dtypes:
        if dtype == jnp.float64:
            jax.config.update("jax_enable_x64", True)
        bench_floor(dtype, n_floor)
        bench_paths(dtype, sizes)
        bench_market(dtype, sizes)


if __name__ == "__main__":
    main()
