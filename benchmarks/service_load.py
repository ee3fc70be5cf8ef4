"""Load on the service: 200 concurrent clients for 10 s on loopback against ``/recommend`` and
against a 100-trial page of a study holding 10,000 trials, beside ``/api/health``.

What it measures
    Each client is a closed loop (send, wait for the answer, send again) on its own
    keep-alive connection, all in one asyncio process, against ``hpo serve --workers N``
    over a SQLite store holding the study ``load`` (10,000 completed trials) and one stored
    fit. Trial pages start at random offsets. Each endpoint first gets ``WARM_S`` seconds of
    the same load, not measured. Latency is send to last byte: p50/p90/p99/max over the
    window, with requests per second (closed-loop latency is bounded below by clients /
    throughput, and client and server share the cores). ``/api/health`` does no work: what
    any routed request costs on the machine; it has no target.

Targets
    p99 < 50 ms on ``/recommend`` and < 200 ms on trial pages (``TARGETS_MS``), no errors.

How to run it
    ``python benchmarks/service_load.py [--quick] [--workers 2] [--clients 200] [--seconds 10]
    [--trials 10000] [--out DIR]`` -> ``DIR/service_load.json`` and ``.png`` (DIR:
    benchmarks/results; ``--quick``: 20 clients, 2 s, 1,000 trials). Findings: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import new_figure
from scaling.plot import readable_log_axes

ROOT = Path(__file__).resolve().parents[1]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TARGETS_MS = {"recommend": 50.0, "trials_page": 200.0}
#: The fractions of requests the JSON's p50_ms, p90_ms, p99_ms and max_ms stand for.
PERCENTILES = (0.5, 0.9, 0.99, 1.0)
#: Seconds of load on each endpoint before the measured window.
WARM_S = 2.0


def build_store(path: Path, n_trials: int) -> str:
    import hpo
    import scaling

    url = f"sqlite:///{path}"
    space = {"parameters": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                            "batch": {"type": "int", "low": 8, "high": 512, "log": True}},
             "fidelity": {"name": "steps", "min": 10, "max": 270}}
    study = hpo.create_study("load", url, search_space=space, algorithm="random")
    rng = np.random.default_rng(0)
    configs = [{"lr": float(10 ** rng.uniform(-4, 0)), "batch": int(2 ** rng.integers(3, 10))} for _ in range(n_trials)]
    study.enqueue_many(configs, budget=270.0)
    while (trial := study.claim("loader")) is not None:
        trial.report(90.0, 3.5)
        trial.complete(float(3 + rng.random()))
    law = scaling.PUBLISHED_LAWS["steplaw"]
    runs = []
    for n in (1e7, 3e7, 1e8):
        for d in (1e9, 3e9):
            lr0, b0 = law.predict(n, d)
            for dx in np.arange(-2, 2.01, 0.5):
                for dy in (-1.0, 0.0, 1.0):
                    runs.append(scaling.Run(n, d, lr0 * 2**dx, b0 * 2**dy, 3 * (1 + 0.01 * dx * dx + 0.005 * dy * dy)))
    scaling.fit(runs, name="grid", storage=url, form="steplaw")
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    hpo_bin = str(Path(sys.executable).parent / "hpo")
    proc = subprocess.Popen([hpo_bin, "serve", "--storage", url, "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/studies", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("hpo serve did not start")


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; the status code. A bare client:
    httpx's async pool costs more CPU per request than the server does, and on 2 cores the
    load generator must not be what is measured."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: loopback\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return status


async def _load(base: str, make_path: Any, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    host, port = base.removeprefix("http://").split(":")

    async def one_client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                status = await _request(reader, writer, make_path(rng))
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1e3
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "latencies_ms": ms.tolist(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        url = build_store(Path(tmp) / "load.db", args.trials)
        build_s = time.perf_counter() - t0
        proc, base = start_server(url, args.workers)
        try:
            endpoints = {
                "health": lambda rng: "/api/health",  # no work: what the web stack alone allows here
                "recommend": lambda rng: f"/recommend?params={rng.choice(['1e9', '7e9', '7e10'])}&tokens={rng.choice(['1e11', '2e12'])}",
                "trials_page": lambda rng: f"/api/studies/load/trials?limit=100&offset={rng.randrange(0, args.trials - 100)}&sort=value",
            }
            for make in endpoints.values():  # warm-up, not measured: every server process reads the study once
                asyncio.run(_load(base, make, args.clients, WARM_S))
            results = {name: asyncio.run(_load(base, make, args.clients, args.seconds)) for name, make in endpoints.items()}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name, r in results.items():
        if name in TARGETS_MS:  # /api/health has none: it is what an ordinary routed request costs
            r["target_p99_ms"] = TARGETS_MS[name]
            r["met"] = r["p99_ms"] < TARGETS_MS[name] and r["errors"] == 0
    return {
        "benchmark": "service_load",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_start": list(os.getloadavg())},
        "config": {"clients": args.clients, "seconds": args.seconds, "trials": args.trials, "server_workers": args.workers,
                   "client": "one asyncio process, bare keep-alive HTTP/1.1 connections, closed loop", "store": "SQLite on local disk",
                   "store_build_s": build_s},
        "results": results,
        "wall_s": time.perf_counter() - started,
    }


def report(data: dict[str, Any], out: Path) -> None:
    """Print the table, write the JSON (without the raw latencies) and the figure drawn from it."""
    print(f"\n{data['config']['clients']} clients x {data['config']['seconds']:g} s, hpo serve --workers {data['config']['server_workers']}, "
          f"{data['config']['trials']} trials, {data['machine']['cpus']} cores")
    print(f"{'endpoint':<13}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'target p99':>12}  met  errors")
    for name, r in data["results"].items():
        target, met = (f"{r['target_p99_ms']:.0f}", "yes" if r["met"] else "NO") if "met" in r else ("-", "-")
        print(f"{name:<13}{r['requests']:>10}{r['requests_per_s']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{target:>12}  {met:<4} {r['errors']}")
        r.pop("latencies_ms")
    out.mkdir(parents=True, exist_ok=True)
    (out / "service_load.json").write_text(json.dumps(data, indent=1))
    figure(data).savefig(out / "service_load.png", dpi=120)
    print(f"wrote {out / 'service_load.json'} and {out / 'service_load.png'} ({data['wall_s']:.0f} s)")


def figure(results: dict[str, Any]) -> Figure:
    """Per endpoint, the latency distribution through the percentiles the JSON records (p50,
    p90, p99, max), with each target p99 dotted."""
    fig = new_figure(7.5, 4.4)
    ax = fig.subplots()
    for name, r in results["results"].items():
        ms = [r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]]
        line, = ax.plot(ms, PERCENTILES, "o-", label=f"{name} (p99 {r['p99_ms']:.0f} ms, {r['requests_per_s']:.0f} req/s)")
        if "met" in r:
            ax.axvline(r["target_p99_ms"], ls=":", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(f"{results['config']['clients']} concurrent clients, {results['config']['seconds']:g} s each\n"
                 "points: p50, p90, p99, max; dotted: p99 targets", fontsize=11)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.8)
    fig.draw_without_rendering()
    readable_log_axes(fig)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 clients, 2 s, 1,000 trials: a smoke test")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="hpo serve --workers")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.trials = 20, 2.0, 1000
    report(run(args), args.out)


if __name__ == "__main__":
    main()
