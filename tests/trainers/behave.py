"""Trainers that behave in one way each, launched by tests/test_command_objective.py as
``behave.py MODE X`` (MODE and X from the trial's configuration). Each notes its pid in the
trial's output directory (``pid-RANK``), so a test can check that no process outlived its trial.

Modes: ``report`` reports X + 1/step at every step up to the budget, the first line written in
two pieces; ``stubborn`` the same, but ignores SIGTERM and, once stopped, never exits;
``obedient`` ends at once, exit code 0, on SIGTERM or when stopped; ``crash`` prints a marker
and exits 3; ``silent`` exits 0 reporting nothing; ``bad-metrics`` writes a line that is not
JSON, then waits; ``nan`` reports a NaN, then waits; ``hang`` reports once, then waits.
"""

import os
import signal
import sys
import time

from hpo import client

mode, x = sys.argv[1], float(sys.argv[2])
out = client.output_dir()
assert out is not None, "run by a command objective, HPO_OUTPUT_DIR is set"
(out / f"pid-{client.rank()}").write_text(str(os.getpid()))
metrics = os.environ[client.METRICS_FILE]


def wait_to_be_killed() -> None:
    while True:
        time.sleep(0.05)


if mode == "crash":
    print("MARKER: the loss went sideways", flush=True)
    sys.exit(3)
if mode == "silent":
    sys.exit(0)
if mode == "bad-metrics":
    with open(metrics, "a") as file:
        file.write('{"budget": 1, "value": 0.5}\nloss=0.4\n')
    wait_to_be_killed()
if mode == "nan":
    client.report(1, float("nan"))
    wait_to_be_killed()
if mode == "hang":
    client.report(1, x)
    wait_to_be_killed()

terminated = []
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "obedient":
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))

if client.is_reporting_rank():
    with open(metrics, "a") as file:  # a line in two writes: the worker must wait for its end
        file.write('{"budget": 1, ')
        file.flush()
        time.sleep(0.3)
        file.write(f'"value": {x + 1.0}}}\n')
for step in range(2, int(client.budget() or 1) + 1):
    if client.should_stop() or terminated:
        break
    client.report(step, x + 1.0 / step)
    time.sleep(0.05)
if client.should_stop():
    (out / "saw-stop").touch()
    if mode == "stubborn":
        wait_to_be_killed()
    if terminated or mode == "obedient":
        (out / "clean-exit").touch()
