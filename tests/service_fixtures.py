"""A store with a finished sweep and a scaling fit, and the real ``hpo serve`` over it on a
free port: what the API, fuzz and browser tests run against."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

import hpo
import scaling
from search_spaces import get_builtin
from workers.problems import PROBLEMS

TOKEN = "test-token"
WIDTHS = (64, 128, 256)
LRS = [float(x) for x in np.geomspace(1e-3, 0.3, 9)]


def sweep_loss(width: int, lr: float) -> float:
    """A muTransfer-like bowl: the optimum at lr 0.02 for every width, lower loss when wider."""
    return 3.0 - 0.1 * math.log2(width / 64) + 0.05 * (math.log2(lr) - math.log2(0.02)) ** 2


def build_store(path: Path) -> str:
    """branin-dehb: 60 DEHB trials on multi-fidelity Branin (some pruned by hand for the curves);
    w64/w128/w256: the sweep 'widths' (9 learning rates each); fit 'grid' from Step-Law data."""
    url = f"sqlite:///{path}"
    study = hpo.create_study("branin-dehb", url, search_space=get_builtin("branin"), algorithm="dehb", objective="branin")
    hpo.optimize(study, PROBLEMS["branin"].objective(), n_trials=60)
    space = {"parameters": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}}
    for width in WIDTHS:
        st = hpo.create_study(f"w{width}", url, search_space=space, sweep="widths", tags={"width": width})
        for lr in LRS:
            st.enqueue({"learning_rate": lr})
            trial = st.claim("fixture")
            trial.report(1.0, sweep_loss(width, lr) + 0.5)
            trial.complete(sweep_loss(width, lr))
    runs = []
    rng = np.random.default_rng(0)
    law = scaling.PUBLISHED_LAWS["steplaw"]
    for n in (1e7, 3e7, 1e8):
        for d in (1e9, 3e9):
            lr0, b0 = law.predict(n, d)
            for dx in np.arange(-2, 2.01, 0.5):
                for dy in (-1.0, 0.0, 1.0):
                    loss = 3.0 * (1 + 0.01 * dx * dx + 0.005 * dy * dy) * (1 + 0.001 * rng.standard_normal())
                    runs.append(scaling.Run(n, d, lr0 * 2**dx, b0 * 2**dy, loss))
    scaling.fit(runs, name="grid", storage=url, form="steplaw", bootstrap=200)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(url: str, *, token: str | None = TOKEN) -> Iterator[str]:
    """``hpo serve`` in its own process; yields its base URL once it answers."""
    port = free_port()
    args = ["hpo", "serve", "--storage", url, "--port", str(port)] + (["--token", token] if token else [])
    env = {k: v for k, v in os.environ.items() if k != "HPO_TOKEN"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/studies", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hpo serve did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def build_large_study(url: str, n: int, *, name: str = "large", curves: int = 400) -> None:
    """A Branin study with ``n`` completed trials through the store's queue (one enqueue,
    then a claim and a finish each); the last ``curves`` also report an intermediate value."""
    import random

    from db.models import TrialState

    study = hpo.create_study(name, url, search_space=get_builtin("branin"))
    rng = random.Random(0)
    study.enqueue_many([{"x1": rng.uniform(-5, 10), "x2": rng.uniform(0, 15)} for _ in range(n)], budget=1.0)
    store = study.store
    branin, noise = PROBLEMS["branin"], np.random.default_rng(0)
    for i in range(n):
        trial = store.claim(study.id, "bulk")
        assert trial is not None
        value = float(branin.evaluate(trial.params, 1.0, noise))
        if i >= n - curves:
            store.report(trial.id, "bulk", 0.5, value + 1.0)
        store.finish(trial.id, "bulk", TrialState.COMPLETED, value=value)
