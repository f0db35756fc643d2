#!/usr/bin/env bash
# The 27-cell grid (scenarios/grid_vol_drift.toml) on dask workers a user starts by hand
# (`dask scheduler`, `dask worker`), with nothing set but an empty XDG_CACHE_HOME: the workers
# find simkit's default compilation cache ($XDG_CACHE_HOME/simkit/jax) on their own. Prints the
# run's time on a first cluster (empty cache: the workers compile), on a second cluster of fresh
# workers (the cache the first left), and in one process with the cache warm.
#
#   bash bench/cluster_grid.sh            (~1 min on two cores)
#
# BIN: where dask and simkit are (default .venv/bin); PORT: the scheduler's (default 8799).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8799}
unset JAX_COMPILATION_CACHE_DIR
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
OUT=$(mktemp -d)
trap 'rm -rf "$XDG_CACHE_HOME" "$OUT"' EXIT

on_cluster() {
  "$BIN/dask" scheduler --port "$PORT" --no-dashboard >"$OUT/scheduler.log" 2>&1 &
  local scheduler=$!
  sleep 4
  "$BIN/dask" worker "tcp://127.0.0.1:$PORT" --nworkers 2 --nthreads 1 --no-dashboard \
    >"$OUT/workers.log" 2>&1 &
  local workers=$!
  sleep 8
  rm -f "$OUT/grid.nc"
  "$BIN/simkit" run scenarios/grid_vol_drift.toml --scheduler "tcp://127.0.0.1:$PORT" \
    --out "$OUT/grid.nc" --no-progress | grep wrote | sed "s/^/$1: /"
  kill "$workers"
  sleep 3
  kill "$scheduler"
  wait 2>/dev/null || true
}

grep -m1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc)"
on_cluster "first cluster, empty cache"
on_cluster "second cluster, fresh workers"
rm -f "$OUT/grid.nc"
"$BIN/simkit" run scenarios/grid_vol_drift.toml --out "$OUT/grid.nc" --no-progress |
  grep wrote | sed "s/^/in process, cache warm: /"
