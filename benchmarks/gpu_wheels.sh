#!/usr/bin/env bash
# Run HERE (with PyPI) before the GPU check: puts into .whl/ the wheels of what the GPU
# machine's image lacks (mup, SQLAlchemy; it has torch, numpy, scipy, matplotlib, PyYAML) for
# its Python 3.12, and keeps .whl/ out of git. benchmarks/gpu_check.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# mup is published as a source distribution only: build its (pure-Python) wheel
"$PY" -m pip wheel --quiet --no-deps "mup>=1.0" -w .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl "sqlalchemy>=2.0"
ls -1 .whl
