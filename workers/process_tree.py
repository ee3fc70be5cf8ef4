"""A launched command's whole process tree, so that stopping a trial stops every process the
trial's command started, and a worker that dies takes its command down with it.

Why not the process group alone: torchrun starts each rank in a session of its own, so a
signal to torchrun's group never reaches the ranks, and ranks orphaned by a killed torchrun
would go on holding their GPUs. So the tree is found from ``/proc`` by parent pid (Linux), and
every process seen is remembered with its start time: a process orphaned meanwhile (its
parent killed first) is still known, and a pid the kernel reused for something else is never
signalled. Where there is no ``/proc`` the tree is the root's process group.

The guard (:func:`start_guard`, ``python -m workers.process_tree PID START``) is a small
process beside the worker, in a session of its own, watching the worker through a pipe: when
the pipe closes (the worker finished the trial, or was killed by Ray or the OOM killer, so no
``finally`` of the worker ran) it kills every process of the tree it has seen.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

_PROC = Path("/proc")
#: How often the guard looks at the tree while the worker lives.
_GUARD_POLL_S = 1.0


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None if there is no such process."""
    stat = _stat(pid)
    return None if stat is None else stat[2]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) from ``/proc/PID/stat``."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


class ProcessTree:
    """The root process (started by the caller with ``start_new_session=True``) and every
    process descended from it that has been seen alive since."""

    def __init__(self, root: int, root_start: int | None = None) -> None:
        self.root = root
        start = root_start if root_start is not None else start_time(root)
        self.seen: dict[int, int] = {} if start is None else {root: start}

    def refresh(self) -> None:
        """Add the processes now descended from any process of the tree still alive."""
        if not _PROC.is_dir():
            return
        children: dict[int, list[tuple[int, int]]] = {}
        for entry in _PROC.iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None and stat[0] != "Z":
                    children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
        stack = [pid for pid in self.seen if self._alive(pid)]
        while stack:
            for child, start in children.get(stack.pop(), []):
                if self.seen.get(child) != start:
                    self.seen[child] = start
                    stack.append(child)

    def alive(self) -> bool:
        """Whether any process of the tree still runs (a zombie does not)."""
        if not _PROC.is_dir():
            return _group_alive(self.root)
        self.refresh()
        return any(self._alive(pid) for pid in self.seen)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every live process of the tree, and to the root's process group
        while the root lives (a process forked since the last look is in it)."""
        self.refresh()
        if not _PROC.is_dir() or self._alive(self.root):
            _send(os.killpg, self.root, sig)
        for pid in list(self.seen):
            if self._alive(pid):
                _send(os.kill, pid, sig)

    def _alive(self, pid: int) -> bool:
        stat = _stat(pid)
        return stat is not None and stat[0] != "Z" and stat[2] == self.seen.get(pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _send(kill: Callable[[int, int], None], target: int, sig: int) -> None:
    try:
        kill(target, sig)
    except (ProcessLookupError, PermissionError):  # gone meanwhile, or no longer ours
        pass


def start_guard(tree: ProcessTree) -> subprocess.Popen[bytes]:
    """Start the guard of ``tree``; closing its stdin (``guard.stdin.close()``, or the worker
    dying) makes it kill what is left of the tree and exit."""
    start = tree.seen.get(tree.root)
    return subprocess.Popen(
        [sys.executable, "-m", "workers.process_tree", str(tree.root), str(start if start is not None else -1)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _guard(root: int, root_start: int) -> None:
    tree = ProcessTree(root, root_start if root_start >= 0 else None)
    stdin = sys.stdin.fileno()
    while True:
        tree.refresh()
        ready, _, _ = select.select([stdin], [], [], _GUARD_POLL_S)
        if ready and not os.read(stdin, 4096):
            break
    tree.signal(signal.SIGKILL)


if __name__ == "__main__":
    _guard(int(sys.argv[1]), int(sys.argv[2]))
