#!/usr/bin/env bash
# Fill bench/wheels/ (git-ignored: `wheels/` in .gitignore) with the wheels that bench/gpu.sh
# installs on a device machine, which reaches no package registry. The device image
# (bench/README.md "Before the engine") has Python 3.12, JAX 0.11.2 (CUDA 13),
# numpy, scipy, xarray, h5py, pandas, pytest, hypothesis, ... but not dask, distributed,
# h5netcdf or pydantic. Those are fetched here with the part of their dependency closure that
# the image lacks, each pinned (the versions of the development venv, Python 3.11, on which
# the tests pass) and fetched with --no-deps, so nothing the image has (numpy, scipy, jax,
# xarray, h5py, ...) is ever downloaded. bench/gpu.sh installs only those that the device
# cannot import (or has too old), so the "already there" group below is insurance only.
#
# Run it from the repository root, where pip reaches the registry:
#   PYTHON=.venv/bin/python bash bench/fetch_wheels.sh
# (Any Python with pip will do: --python-version/--platform select the device's wheels.)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=bench/wheels

# What the image lacks: dask + distributed, h5netcdf, pydantic, and their missing needs.
MISSING=(
  dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2
  tornado==6.6.1 zict==3.0.0
  h5netcdf==1.8.3
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0  # pydantic 2.14 needs >= 4.16, newer than the image may hold
  flatbuffers==25.12.19  # jax.export's serialization (simkit.compile_cache.call)
)
# Listed in the image (KINDS.md "Python packages already there"): carried in case a version
# there is missing or too old for dask/distributed; small.
ALREADY_THERE=(
  click==8.5.1 cloudpickle==3.1.3 fsspec==2026.9.0 toolz==1.2.0 pyyaml==6.0.4
  msgpack==1.2.4 psutil==7.2.2 sortedcontainers==2.4.0 jinja2==3.1.6 markupsafe==3.0.4
  packaging==26.4
)

mkdir -p "$DEST"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$DEST" "${MISSING[@]}" "${ALREADY_THERE[@]}"

# One version of each: a second one would stop the install.
names=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort)
dups=$(echo "$names" | uniq -d)
if [ -n "$dups" ]; then
  echo "fetch_wheels: more than one version of: $dups (remove the older from $DEST)" >&2
  exit 1
fi
echo "fetch_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
