#!/usr/bin/env bash
# bench/gpu.sh: the one command a session runs when it is lent a device (issue 18 item 2).
#
#   bash bench/gpu.sh                                   # on the device (bench/README.md "GPU")
#   JAX_PLATFORMS=cpu SMALL=1 OUT=/tmp/gpuout PYTHON=.venv/bin/python bash bench/gpu.sh
#                                                       # the CPU proof, small sizes
#
# Installs from bench/wheels (bench/fetch_wheels.sh fills it here; `carry: ["bench/wheels"]`
# takes it along) what the device cannot import, then runs each step in its own process under
# its own `timeout`, appending one JSON line per step to $OUT/gpu.jsonl as it goes (step,
# status ok|failed|timeout|skipped, seconds, the figures; bench/gpu.py writes them), and ends
# with a table on stdout. A step that fails or times out does not stop the next one. The whole
# run stays under TOTAL_BUDGET seconds (the sum of the steps' budgets, below): 345 s on a device.
# simkit is used from this tree through PYTHONPATH (no build).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PYTHON=${PYTHON:-python3}
SMALL=${SMALL:-0}
OUT=${OUT:-/tmp/simkit-gpu}
mkdir -p "$OUT"

# --- sizes and budgets (seconds). The device's first; SMALL=1 shrinks them for a CPU proof.
DEVICE_P1=${DEVICE_P1:-1000000}         # baseline paths, tried at each chunk size
DEVICE_P2=${DEVICE_P2:-10000000}        # baseline paths at the chosen chunk, if P1's time fits
DEVICE_CHUNKS=${DEVICE_CHUNKS:-"262144 131072 524288"}  # README's GPU chunk first; others if time
DEVICE_GRID_PATHS=${DEVICE_GRID_PATHS:-32768}     # paths a cell of the 27-cell grid
DEVICE_STRESS_PATHS=${DEVICE_STRESS_PATHS:-16384} # paths of each stress run (4 per stress + 4)
# The numerics and engine-agreement tests: no dask, no CLI subprocess (145 tests).
TESTS="tests/test_pricing.py tests/paths tests/strategy/test_agreement.py tests/strategy/test_precision.py"
# Seconds a step may take (in run order). A step's timeout is what is left of TOTAL_BUDGET
# less the budgets of the steps after it: a step that ends early leaves its time to the later
# ones, and a late one cannot take theirs.
STEPS=(install env tests baseline baseline_big grid stress)
if [ "$SMALL" = 1 ]; then
  P1=4096 P2=8192 CHUNKS="2048 4096" GRID_PATHS=64 STRESS_PATHS=64
  # The full TESTS take ~3 min on two CPU cores (cold compiles); the proof runs two files.
  TESTS=${SMALL_TESTS:-"tests/test_pricing.py tests/paths/test_keys.py"}
  TESTS_WORKERS=${TESTS_WORKERS:-2}
  BUDGETS=(120 60 300 300 120 300 600)
else
  P1=$DEVICE_P1 P2=$DEVICE_P2 CHUNKS=$DEVICE_CHUNKS GRID_PATHS=$DEVICE_GRID_PATHS
  STRESS_PATHS=$DEVICE_STRESS_PATHS
  TESTS_WORKERS=${TESTS_WORKERS:-4}
  BUDGETS=(15 15 80 75 55 45 60)       # 345 s: under 6 min; a device call of 480 s has room
fi
read -r -a BUDGETS <<< "${GPU_BUDGETS:-${BUDGETS[*]}}"   # GPU_BUDGETS="15 15 ...": override
TOTAL_BUDGET=0; for b in "${BUDGETS[@]}"; do TOTAL_BUDGET=$(( TOTAL_BUDGET + b )); done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/simkit-gpu.XXXXXX")
export PYTHON OUT SMALL TESTS TESTS_WORKERS P1 P2 CHUNKS GRID_PATHS STRESS_PATHS GPU_WORK=$WORK
export DEVICE_P1 DEVICE_P2 DEVICE_CHUNKS DEVICE_GRID_PATHS DEVICE_STRESS_PATHS
export JAX_COMPILATION_CACHE_DIR=$WORK/jax-cache   # empty at the start: first calls compile
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
rm -f "$OUT/gpu.jsonl" "$OUT/gpu.log" "$OUT/tests.log"
START=$(date +%s)

main() {
echo "bench/gpu.sh: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"\
     "SMALL=$SMALL, JAX_PLATFORMS=${JAX_PLATFORMS:-}, python $(command -v "$PYTHON"), budget ${TOTAL_BUDGET} s"

# step I CMD...: run step STEPS[I] under its timeout (above), then record its JSON line.
step() {
  local i=$1 name=${STEPS[$1]}; shift
  local later=0 j
  for (( j = i + 1; j < ${#STEPS[@]}; j++ )); do later=$(( later + BUDGETS[j] )); done
  local t=$(( TOTAL_BUDGET - ($(date +%s) - START) - later ))
  if (( t < 5 )); then
    echo '{"skipped": "no time left in the total budget"}' > "$WORK/$name.json"
    "$PYTHON" bench/gpu.py record "$name" 0 0 0 "$t"
    return
  fi
  echo "--- $name (timeout $t s)"
  local t0 rc
  t0=$(date +%s.%N)
  STEP_BUDGET=$t timeout -k 5 "$t" "$@"
  rc=$?
  "$PYTHON" bench/gpu.py record "$name" "$rc" "$t0" "$(date +%s.%N)" "$t"
  if [ -f "$WORK/pythonpath" ]; then   # the install step used a target folder
    export PYTHONPATH=$REPO:$(cat "$WORK/pythonpath")${PYTHONPATH#"$REPO"}
    rm -f "$WORK/pythonpath"
  fi
}

# The tests in TESTS_WORKERS processes (pytest-xdist, one file a process: the device image has
# it) when xdist imports, else in one; each process takes GPU memory as it needs it.
run_tests() {
  local files=() par=()
  for f in $TESTS; do [ -e "$f" ] && files+=("$f") || echo "tests: $f not found, skipped"; done
  if (( TESTS_WORKERS > 1 )) && "$PYTHON" -c "import xdist" 2>/dev/null; then
    par=(-n "$TESTS_WORKERS" --dist loadfile)
  fi
  echo "tests: ${files[*]} ${par[*]}"
  XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest -v -x -p no:cacheprovider "${par[@]}" \
    "${files[@]}" > "$GPU_WORK/tests.log" 2>&1
  local rc=$?
  tail -n 15 "$GPU_WORK/tests.log"
  return $rc
}

"$PYTHON" bench/gpu.py plan && "$PYTHON" bench/gpu.py record plan 0 0 0 0
step 0 "$PYTHON" bench/gpu.py install
step 1 "$PYTHON" bench/gpu.py env
step 2 bash -c "$(declare -f run_tests); run_tests"
cp "$WORK/tests.log" "$OUT/tests.log" 2>/dev/null
step 3 "$PYTHON" bench/gpu.py baseline
step 4 "$PYTHON" bench/gpu.py baseline_big
step 5 "$PYTHON" bench/gpu.py grid
step 6 "$PYTHON" bench/gpu.py stress

echo "bench/gpu.sh: $(( $(date +%s) - START )) s in all"
"$PYTHON" bench/gpu.py summary
}

main 2>&1 | tee -a "$OUT/gpu.log"
rc=${PIPESTATUS[0]}
rm -rf "$WORK"
exit "$rc"
