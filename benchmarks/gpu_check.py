"""The GPU check: the paths no CI machine runs (CUDA, bf16 autocast, proxies thousands wide).

Measures, on one GPU:
1. The coordinate check of the GPT proxy at widths 256, 512, 1024 and 2048 under bf16
   autocast, in muP and in SP: each watched layer's slope of log RMS on log width at the
   last step (``workers.proxies.coord_check``).
2. A short muTransfer sweep of the GPT proxy at widths 256, 512 and 1024
   (``benchmarks/mutransfer.py`` with a 7-point learning-rate grid and 200 steps), and its
   optimum log2 lr per width and parameterization.

Targets: muP's largest |slope| < 0.25 (``hpo mup coord-check``'s flat rule) and SP's largest
slope >= 0.25 (else the check could not tell the two apart); muP's drift of the optimum
across the widths within ``scaling.transfer.TOLERANCE_LOG2``, SP's beyond it.

Run: ``bash benchmarks/gpu_check.sh`` (the CUDA tests, then this), which writes
``benchmarks/results/gpu_check.json``; ``python benchmarks/gpu_check.py --device cpu --quick``
runs the same pipeline at small widths on a CPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS_DIR, log, machine, write_json
from scaling.transfer import TOLERANCE_LOG2
from workers.proxies.coord_check import FLAT_SLOPE, coord_check

COORD_WIDTHS, QUICK_COORD_WIDTHS = (256, 512, 1024, 2048), (32, 64, 128)
TRANSFER_WIDTHS, QUICK_TRANSFER_WIDTHS = (256, 512, 1024), (32, 64)
LOG2_LRS, QUICK_LOG2_LRS = (-12, -11, -10, -9, -8, -7, -6), (-10, -8, -6)
STEPS, QUICK_STEPS = 200, 20


def coordinate_checks(widths: Sequence[int], device: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in ("mup", "sp"):
        check = coord_check("gpt", widths, param=param, lr=1e-2, steps=4, device=device)
        last = check.steps - 1
        slopes = {layer: check.slope(layer, last) for layer in check.layers}
        worst = max(slopes, key=lambda layer: abs(slopes[layer]))
        out[param] = {"slopes": slopes, "largest": {"layer": worst, "slope": slopes[worst]}}
    out["targets"] = {
        "mup_flat": {"target": f"|largest muP slope| < {FLAT_SLOPE}", "met": abs(out["mup"]["largest"]["slope"]) < FLAT_SLOPE},
        "sp_grows": {"target": f"largest SP slope >= {FLAT_SLOPE}", "met": out["sp"]["largest"]["slope"] >= FLAT_SLOPE},
    }
    return out


def transfer_sweep(widths: Sequence[int], log2_lrs: Sequence[float], steps: int) -> dict[str, Any]:
    """benchmarks/mutransfer.py's own grid and analysis, at GPU widths, into a scratch folder
    (its committed CPU results stay as they are)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, str(Path(__file__).with_name("mutransfer.py")), "--widths", *map(str, widths),
                   "--log2-lrs", *map(str, log2_lrs), "--steps", str(steps), "--seeds", "1", "--confirm-seeds", "1",
                   "--out", scratch]
        subprocess.run(command, check=True)
        result = json.loads((Path(scratch) / "mutransfer.json").read_text())
    return {"widths": list(widths), "log2_lrs": list(log2_lrs), "steps": steps,
            "mup_drift_log2": result["mup_drift_log2"], "sp_drift_log2": result["sp_drift_log2"],
            "tolerance_log2": TOLERANCE_LOG2, "targets": result["targets"], "wall_s": result["wall_s"]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to check the script itself")
    parser.add_argument("--quick", action="store_true", help="small widths and grid: a smoke run of the pipeline")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder (benchmarks/results)")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU here; run it on a GPU machine, or pass --device cpu --quick")
    started = time.perf_counter()
    log(f"coordinate check on {args.device}")
    coords = coordinate_checks(QUICK_COORD_WIDTHS if args.quick else COORD_WIDTHS, args.device)
    log("muTransfer sweep")
    transfer = transfer_sweep(QUICK_TRANSFER_WIDTHS if args.quick else TRANSFER_WIDTHS,
                              QUICK_LOG2_LRS if args.quick else LOG2_LRS, QUICK_STEPS if args.quick else STEPS)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    payload = {"benchmark": "gpu_check", "quick": args.quick, "device": args.device, "gpu": gpu,
               "torch": torch.__version__, "coordinate_check": coords, "mutransfer": transfer,
               "wall_s": time.perf_counter() - started, "machine": machine()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gpu_check.json", payload)
    for name, target in {**coords["targets"], **transfer["targets"]}.items():
        if isinstance(target, dict) and "met" in target:
            print(f"{name:24s} {'met' if target['met'] else 'MISSED':7s} {target['target']}")
    log(f"wrote {args.out / 'gpu_check.json'} in {payload['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
