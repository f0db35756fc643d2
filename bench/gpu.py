"""The steps of `bench/gpu.sh`, one per process: `python bench/gpu.py STEP`.

STEP is one of `plan`, `install`, `env`, `baseline` (1e6 paths, chunk sizes), `baseline_big`
(1e7 paths), `grid`, `stress`; `record STEP RC T0 T1 TIMEOUT` appends the step's JSON line to
`$OUT/gpu.jsonl`, `summary` prints them as a table. `bench/gpu.sh` sets the environment:

  OUT            where gpu.jsonl goes (the device tool brings $OUT back)
  GPU_WORK       this run's scratch folder: each step's figures (`<step>.json`, rewritten after
                 every measurement, so a step killed by its timeout keeps what it measured),
                 the JAX compilation cache shared by the steps, the wheels' target folder
  SMALL          1: CPU proof sizes (the sizes below are then the script's, not the device's)
  P1 P2 CHUNKS GRID_PATHS STRESS_PATHS   the sizes; STEP_BUDGET  this step's seconds
  DEVICE_*       the device sizes, for the plan line of a SMALL run

Every figure is measured in this process; nothing is estimated except where a field says so.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("OUT") or "/tmp/simkit-gpu")
WORK = Path(os.environ.get("GPU_WORK") or "/tmp/simkit-gpu-work")
SMALL = os.environ.get("SMALL", "0") == "1"
STARTED = time.monotonic()
BUDGET = float(os.environ.get("STEP_BUDGET") or 60)
WHEELS = REPO / "bench" / "wheels"
# (distribution, module) that simkit needs and the device image lacks
# (bench/README.md "Before the engine").
NEEDED = [
    ("dask", "dask"),
    ("distributed", "distributed"),
    ("h5netcdf", "h5netcdf"),
    ("pydantic", "pydantic"),
]
BASELINE = REPO / "scenarios" / "baseline.toml"
GRID = REPO / "scenarios" / "grid_vol_drift.toml"
STRESS_DIR = REPO / "scenarios" / "stress"


def _int(name: str, default: int) -> int:
    return int(float(os.environ.get(name) or default))


def _ints(name: str, default: str) -> list[int]:
    return [int(float(x)) for x in (os.environ.get(name) or default).split()]


def sizes(prefix: str = "") -> dict:
    return {
        "p1": _int(prefix + "P1", 1_000_000),
        "p2": _int(prefix + "P2", 10_000_000),
        "chunks": _ints(prefix + "CHUNKS", "262144 131072 524288"),
        "grid_paths": _int(prefix + "GRID_PATHS", 32768),
        "stress_paths": _int(prefix + "STRESS_PATHS", 16384),
    }


def left() -> float:
    """Seconds this step has left under its budget (gpu.sh kills it at the budget)."""
    return BUDGET - (time.monotonic() - STARTED)


class Figures(dict):
    """This step's figures, written to GPU_WORK/<step>.json after every change."""

    def __init__(self, step: str):
        super().__init__()
        self.path = WORK / f"{step}.json"

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self, default=str))
        os.replace(tmp, self.path)

    def set(self, **kw) -> None:
        self.update(kw)
        self.save()


def say(*args) -> None:
    print(*args, flush=True)


# --------------------------------------------------------------------------- steps


def step_plan(fig: Figures) -> None:
    """What this run measures; in a SMALL run also what the device run measures instead."""
    fig.set(small=SMALL, sizes=sizes(), python=sys.executable)
    if SMALL:
        fig.set(
            device_sizes=sizes("DEVICE_"),
            note="SMALL=1: a CPU proof of the script; its figures are not device figures",
        )


def _installed(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return r.returncode == 0


def step_install(fig: Figures) -> None:
    """pip install from bench/wheels what cannot be imported: into this Python's environment
    (pip resolves against what the device has and takes only what is missing from the wheels);
    if that fails, every carried wheel whose distribution is absent or older, --no-deps, into
    GPU_WORK/site (gpu.sh then puts it on PYTHONPATH); if pip itself fails there, those wheels
    unzipped into the same folder (a wheel is a zip of what goes on sys.path).
    WHEELS_MODE=env|target|unzip forces one way (to test each here)."""
    missing = [dist for dist, module in NEEDED if not _importable(module)]
    fig.set(missing_before=missing, wheels=sorted(p.name for p in WHEELS.glob("*.whl")))
    if missing:
        if not fig["wheels"]:
            raise SystemExit(
                f"{missing} missing and no wheels in {WHEELS}: run bench/fetch_wheels.sh"
            )
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--find-links",
            str(WHEELS),
        ]
        mode = os.environ.get("WHEELS_MODE", "auto")
        r = None
        if mode in ("auto", "env"):
            r = subprocess.run(pip + missing, capture_output=True, text=True)
            fig.set(mode="env", pip_rc=r.returncode, pip_tail=(r.stdout + r.stderr)[-1500:])
        if mode == "unzip" or r is None or r.returncode != 0:
            site = WORK / "site"
            chosen = []
            for wheel in sorted(WHEELS.glob("*.whl")):
                name, version = wheel.name.split("-")[:2]
                have = _installed(name)
                if have is None or _older(have, version):
                    chosen.append(str(wheel))
            rc = -1
            if mode != "unzip":
                r = subprocess.run(
                    pip + ["--no-deps", "--target", str(site)] + chosen,
                    capture_output=True,
                    text=True,
                )
                rc = r.returncode
                fig.set(pip_tail=(r.stdout + r.stderr)[-1500:])
            fig.set(
                mode="target" if rc == 0 else "unzip",
                target=str(site),
                target_wheels=[Path(c).name for c in chosen],
                pip_rc=rc,
            )
            if rc != 0:
                import zipfile

                for wheel in chosen:
                    with zipfile.ZipFile(wheel) as z:
                        z.extractall(site)
            (WORK / "pythonpath").write_text(str(site))
            os.environ["PYTHONPATH"] = f"{site}:{os.environ.get('PYTHONPATH', '')}"
    still = [dist for dist, module in NEEDED if not _importable(module)]
    versions = {}
    for dist, module in NEEDED:
        r = subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__version__)"],
            capture_output=True,
            text=True,
        )
        versions[dist] = r.stdout.strip() or None
    fig.set(missing_after=still, versions=versions)
    say(f"install: missing before {missing or 'none'}, after {still or 'none'}; {versions}")
    if still:
        raise SystemExit(f"still not importable: {still}")


def _older(have: str, carried: str) -> bool:
    try:
        from packaging.version import Version

        return Version(have) < Version(carried)
    except Exception:  # no packaging, or an odd version: keep what is there
        return False


def _backend_or_fail(fig: Figures) -> str:
    import jax

    backend = jax.default_backend()
    fig.set(backend=backend, device=str(jax.devices()[0]))
    if not SMALL and backend == "cpu":
        raise SystemExit(
            "JAX runs on the CPU here: the device sizes would not finish (SMALL=1 for a CPU proof)"
        )
    return backend


def _peak_bytes() -> int | None:
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def step_env(fig: Figures) -> None:
    smi = None
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        smi = r.stdout.strip() or r.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        smi = f"not available: {type(exc).__name__}"
    cpu = None
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        cpu = platform.processor() or None
    fig.set(nvidia_smi=smi, cpu=cpu, cpus=os.cpu_count(), python=platform.python_version())
    import jax
    import jax.numpy as jnp
    import jaxlib

    x = jnp.arange(1024.0).sum().block_until_ready()
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        pass
    fig.set(
        jax=jax.__version__,
        jaxlib=jaxlib.__version__,
        devices=[str(d) for d in jax.devices()],
        device_kind=jax.devices()[0].device_kind,
        backend=jax.default_backend(),
        smoke_sum=float(x),
        device_bytes_limit=(stats or {}).get("bytes_limit"),
        jax_platforms=os.environ.get("JAX_PLATFORMS"),
        compilation_cache=os.environ.get("JAX_COMPILATION_CACHE_DIR"),
    )
    say(
        f"env: {smi}; {fig['cpu']} x{fig['cpus']}; python {fig['python']}, jax {jax.__version__}, "
        f"jaxlib {jaxlib.__version__}; devices {fig['devices']}"
    )
    _backend_or_fail(fig)


def _summary(ds) -> dict:
    def val(name):
        try:
            return float(ds[name].values.ravel()[0])
        except KeyError:
            return None

    return {
        "annual_return_mean": val("annual_return_mean"),
        "win_rate_trade": val("win_rate_trade"),
        "device_attr": ds.attrs.get("device"),
    }


def _timed_run(scenario, paths: int, chunk: int) -> tuple[float, object]:
    import simkit

    t = time.perf_counter()
    ds = simkit.simulate(scenario, paths=paths, chunk_size=chunk, progress=False)
    return time.perf_counter() - t, ds


def step_baseline(fig: Figures) -> None:
    """The baseline at P1 paths, for each chunk size of CHUNKS while the budget allows: a first
    call of one block (`first_s`: compile + one block), the same again (`block_s`: the block
    alone; compile_s = first_s - block_s), then P1 paths (`warm_s`, everything compiled). The
    chunk with the least `warm_s` is chosen."""
    import simkit

    _backend_or_fail(fig)
    s = sizes()
    scenario = simkit.load_scenario(BASELINE)
    years = scenario.simulation.years
    trials = []
    fig.set(paths=s["p1"], years=years, trials=trials)
    for chunk in s["chunks"]:
        done = [t for t in trials if "warm_s" in t]
        if trials and done:  # room for this chunk's calls, from what was measured
            need = max(t["first_s"] + t["block_s"] + t["warm_s"] for t in done)
            if left() < need * 1.2 + 5:
                trials.append(
                    {"chunk": chunk, "skipped": f"needs ~{need:.0f} s, {left():.0f} left"}
                )
                fig.save()
                continue
        elif trials:
            trials.append({"chunk": chunk, "skipped": "the previous chunk did not finish"})
            fig.save()
            continue
        trial = {"chunk": chunk}
        trials.append(trial)
        fig.set(running=f"first call, one block of {chunk:,} paths (compile + run)")
        trial["first_s"] = round(_timed_run(scenario, chunk, chunk)[0], 3)
        fig.set(running=f"second call, one block of {chunk:,} paths")
        trial["block_s"] = round(_timed_run(scenario, chunk, chunk)[0], 3)
        trial["compile_s"] = round(trial["first_s"] - trial["block_s"], 3)
        say(
            f"baseline, chunk {chunk:,}: first call (one block) {trial['first_s']:.2f} s, "
            f"again {trial['block_s']:.2f} s"
        )
        fig.set(running=f"{s['p1']:,} paths in blocks of {chunk:,}")
        warm, ds = _timed_run(scenario, s["p1"], chunk)
        trial.update(
            warm_s=round(warm, 3),
            path_years_per_s=round(s["p1"] * years / warm),
            peak_bytes_so_far=_peak_bytes(),
            **_summary(ds),
        )
        fig.pop("running")
        fig.save()
        say(
            f"  {s['p1']:,} paths: {warm:.2f} s, {s['p1'] * years / warm:,.0f} path-years/s, "
            f"annual_return_mean {trial['annual_return_mean']:.4f}"
        )
    timed = [t for t in trials if "warm_s" in t]
    best = min(timed, key=lambda t: t["warm_s"])
    fig.set(chosen_chunk=best["chunk"])
    # The engine alone on one warm block of the chosen size (no per-path derivation, no
    # reduction, one thread): what the end-to-end time spends outside the engine.
    if left() > 3 * best["block_s"] + 5:
        from simkit.strategy import engine

        cell = next(iter(scenario.cells()))
        n_steps = scenario.simulation.n_steps
        args = dict(seed=0, cell=0, path_start=0, n_paths=best["chunk"], n_steps=n_steps)
        engine.simulate_block(cell.strategy, cell.market, **args)  # compiled already, or now
        t = time.perf_counter()
        engine.simulate_block(cell.strategy, cell.market, **args)
        block = time.perf_counter() - t
        fig.set(
            engine_block_s=round(block, 3),
            engine_block_paths=best["chunk"],
            engine_path_years_per_s=round(best["chunk"] * years / block),
        )
        say(f"  engine alone, one block of {best['chunk']:,}: {block:.2f} s")


def step_baseline_big(fig: Figures) -> None:
    """The baseline at P2 paths at the chunk chosen by `baseline`, if its time says it fits."""
    import simkit

    _backend_or_fail(fig)
    s = sizes()
    chosen, per_path = s["chunks"][0], None
    try:
        b = json.loads((WORK / "baseline.json").read_text())
        chosen = b.get("chosen_chunk") or chosen
        for t in b.get("trials", []):
            if t["chunk"] == chosen and "warm_s" in t:
                per_path = t["warm_s"] / b["paths"]
    except (OSError, ValueError, KeyError):
        pass
    fig.set(paths=s["p2"], chunk=chosen)
    if per_path is None:
        fig.set(skipped="no time at P1 from the baseline step to size it on")
        say("baseline_big: skipped (no P1 time)")
        return
    estimate = per_path * s["p2"] * 1.15 + 10  # + the engine's load from the compilation cache
    fig.set(estimate_s=round(estimate, 1), budget_left_s=round(left(), 1))
    if estimate > left():
        fig.set(skipped=f"estimated {estimate:.0f} s from the P1 time, {left():.0f} s left")
        say(f"baseline_big: skipped ({fig['skipped']})")
        return
    scenario = simkit.load_scenario(BASELINE)
    fig.set(running=f"{s['p2']:,} paths in blocks of {chosen:,}")
    seconds, ds = _timed_run(scenario, s["p2"], chosen)
    fig.pop("running")
    years = scenario.simulation.years
    fig.set(
        seconds_first_call=round(seconds, 3),
        path_years_per_s=round(s["p2"] * years / seconds),
        peak_bytes=_peak_bytes(),
        **_summary(ds),
    )
    say(
        f"baseline {s['p2']:,} paths, chunk {chosen:,}: {seconds:.2f} s "
        f"({s['p2'] / seconds:,.0f} path-years/s, first call in this process)"
    )


def step_grid(fig: Figures) -> None:
    import simkit

    _backend_or_fail(fig)
    s = sizes()
    scenario = simkit.load_scenario(GRID)
    n_cells = len(list(scenario.cells()))
    chunk = min(s["grid_paths"], max(s["chunks"]))
    fig.set(cells=n_cells, paths_per_cell=s["grid_paths"], chunk=chunk, running="the grid")
    seconds, ds = _timed_run(scenario, s["grid_paths"], chunk)
    fig.pop("running")
    ann = ds["annual_return_mean"].values
    years = scenario.simulation.years
    fig.set(
        seconds=round(seconds, 3),
        path_years_per_s=round(n_cells * s["grid_paths"] * years / seconds),
        annual_return_mean_min=float(ann.min()),
        annual_return_mean_max=float(ann.max()),
        dims=dict(ds["annual_return_mean"].sizes),
        peak_bytes=_peak_bytes(),
    )
    say(
        f"grid: {n_cells} cells x {s['grid_paths']:,} paths in {seconds:.2f} s; "
        f"annual_return_mean {ann.min():.3f} .. {ann.max():.3f}"
    )


def step_stress(fig: Figures) -> None:
    import simkit
    from simkit import stress
    from simkit.scenario import load_stress

    _backend_or_fail(fig)
    s = sizes()
    scenario = simkit.load_scenario(BASELINE)
    specs = [load_stress(p, scenario.simulation.n_steps) for p in sorted(STRESS_DIR.glob("*.toml"))]
    fig.set(stresses=[sp.name for sp in specs], paths=s["stress_paths"], running="run_stress")
    t = time.perf_counter()
    ds = stress.run_stress(
        scenario, specs, paths=s["stress_paths"], chunk_size=s["stress_paths"], progress=False
    )
    seconds = time.perf_counter() - t
    fig.pop("running")
    trm = ds["total_return_mean"]
    by = {}
    for i, name in enumerate(ds["stress"].values.tolist()):
        by[str(name)] = [round(float(v), 4) for v in trm.isel(stress=i).values.ravel()]
    fig.set(
        seconds=round(seconds, 3),
        total_return_mean=by,
        enforce_limits=ds["enforce_limits"].values.tolist(),
        peak_bytes=_peak_bytes(),
    )
    say(f"stress: {len(specs)} stresses x {s['stress_paths']:,} paths in {seconds:.2f} s")


STEPS = {
    "plan": step_plan,
    "install": step_install,
    "env": step_env,
    "baseline": step_baseline,
    "baseline_big": step_baseline_big,
    "grid": step_grid,
    "stress": step_stress,
}


# --------------------------------------------------------------------------- record, summary


def _tests_figures() -> dict:
    log = WORK / "tests.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    passed = len(re.findall(r" PASSED", text))
    failed = sorted(
        set(re.findall(r"(?:FAILED|ERROR) (\S*::\S+)", text))
        | set(re.findall(r"(\S*::\S+) (?:FAILED|ERROR)", text))
    )
    last = re.findall(r"^=+ (.*(?:passed|failed|error).*) =+$", text, re.M)
    return {
        "workers": os.environ.get("TESTS_WORKERS") if "[gw0]" in text else "1",
        "passed": passed,
        "failed": failed[:20],
        "pytest_summary": last[-1] if last else None,
        "files": os.environ.get("TESTS", "").split(),
    }


def record(step: str, rc: int, seconds: float, timeout: float) -> None:
    path = WORK / f"{step}.json"
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        figures = {}
    if step == "tests":
        figures = _tests_figures()
    status = "ok" if rc == 0 else ("timeout" if rc in (124, 137) else "failed")
    if rc == 0 and figures.get("skipped"):
        status = "skipped"
    line = {
        "step": step,
        "status": status,
        "rc": rc,
        "seconds": round(seconds, 2),
        "timeout_s": timeout,
        "figures": figures,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "gpu.jsonl", "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
    say(json.dumps(line, default=str))


def _gb(x) -> str:
    return f"{x / 2**30:.2f} GiB" if isinstance(x, (int, float)) else "n/a"


def _describe(step: str, f: dict) -> str:
    """One line of a step's figures."""
    if step == "install":
        return f"installed {f.get('missing_before') or 'nothing'} ({f.get('mode', '-')})"
    if step == "env":
        return f"{f.get('nvidia_smi')} | {f.get('devices')} | jax {f.get('jax')} | {f.get('cpu')}"
    if step == "tests":
        return f.get("pytest_summary") or f"{f.get('passed')} passed before it stopped"
    if step == "baseline":
        parts = []
        for t in f.get("trials", []):
            if "skipped" in t:
                parts.append(f"chunk {t['chunk']} skipped")
            elif "warm_s" in t:
                parts.append(
                    f"chunk {t['chunk']}: compile {t['compile_s']} s, block {t['block_s']} s, "
                    f"{f.get('paths', 0):,} paths {t['warm_s']} s "
                    f"({t['path_years_per_s']:,} path-years/s, peak {_gb(t['peak_bytes_so_far'])}"
                    f", annual_return_mean {t['annual_return_mean']:.4f})"
                )
        out = "; ".join(parts)
        if f.get("chosen_chunk"):
            out += f"; chosen {f['chosen_chunk']}"
        if f.get("engine_block_s"):
            out += f"; engine alone {f['engine_path_years_per_s']:,} path-years/s"
        return out
    if step == "baseline_big":
        if f.get("skipped"):
            return f"skipped: {f['skipped']}"
        if "seconds_first_call" not in f:
            return ""
        return (
            f"{f['paths']:,} paths, chunk {f['chunk']}: {f['seconds_first_call']} s "
            f"({f['path_years_per_s']:,} path-years/s, peak {_gb(f.get('peak_bytes'))}, "
            f"annual_return_mean {f['annual_return_mean']:.4f})"
        )
    if step == "grid" and "seconds" in f:
        return (
            f"{f['cells']} cells x {f['paths_per_cell']:,} paths: {f['seconds']} s "
            f"({f['path_years_per_s']:,} path-years/s)"
        )
    if step == "stress" and "seconds" in f:
        return f"{len(f['stresses'])} stresses x {f['paths']:,} paths: {f['seconds']} s"
    return ""


def summary() -> int:
    lines = [json.loads(x) for x in (OUT / "gpu.jsonl").read_text().splitlines() if x.strip()]
    say("")
    say("=" * 78)
    plan = next((x["figures"] for x in lines if x["step"] == "plan"), {})
    if plan.get("small"):
        d = plan.get("device_sizes", {})
        say("CPU PROOF (SMALL=1): the figures below are this machine's, at small sizes.")
        say(
            f"On a device the same steps measure: the baseline at {d.get('p1', 0):,} paths for "
            f"chunk sizes {d.get('chunks')} (compile, one block, the whole run, peak device "
            f"memory), {d.get('p2', 0):,} paths at the chosen chunk if the first time says it "
            f"fits, the 27-cell grid at {d.get('grid_paths', 0):,} paths a cell, and every "
            f"shipped stress at {d.get('stress_paths', 0):,} paths."
        )
    bad = 0
    for x in lines:
        if x["step"] == "plan":
            continue
        f, st = x["figures"], x["status"]
        bad += st not in ("ok", "skipped")
        what = _describe(x["step"], f)
        if f.get("running"):
            what = f"killed during: {f['running']}. " + what
        if f.get("error"):
            what = f"error: {f['error']}. " + what
        say(f"{x['step']:<13} {st:<8} {x['seconds']:>6.1f} s  {what}")
    say("=" * 78)
    say(f"{'all steps ok' if not bad else f'{bad} step(s) not ok'}; JSON lines: {OUT}/gpu.jsonl")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    if argv[0] == "record":
        name, rc, t0, t1, timeout = argv[1:6]
        record(name, int(rc), float(t1) - float(t0), float(timeout))
        return 0
    if argv[0] == "summary":
        return summary()
    step = argv[0]
    WORK.mkdir(parents=True, exist_ok=True)
    fig = Figures(step)
    fig.save()
    try:
        STEPS[step](fig)
    except SystemExit as exc:
        fig.set(error=str(exc))
        print(f"{step}: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        fig.set(error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
