#!/usr/bin/env bash
# The GPU check in one call on one GPU (under 8 minutes): the CUDA/bf16 tests, then the
# coordinate check at widths 256-2048 and a short muTransfer sweep at widths 256-1024
# (benchmarks/gpu_check.py), writing benchmarks/results/gpu_check.json (or $OUT/gpu_check.json
# where the device tool sets OUT). Packages the GPU machine's image lacks travel as wheels in
# .whl/ (see docs/proxies.md, "On a GPU"): they are installed first, without an index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps .whl/*.whl
fi
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print("GPU:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py
"$PY" benchmarks/gpu_check.py --out "${OUT:-benchmarks/results}"
