"""The README a newcomer follows says what the code does: its two commands are the ones CI
runs, its CLI reference lists every command of ``hpo`` with exactly the options each one
takes (a renamed or added option that the README does not follow fails here), and its
ten-line Python example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from db.store import Store
from hpo.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _first_code_block_after(heading: str) -> str:
    section = README.split(f"\n{heading}\n", 1)[1]
    return section.split("```", 2)[1].split("\n", 1)[1]


CLI = typer.main.get_command(app)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf command of the CLI by its path (typer vendors its own click, so groups are
    known by their subcommands, not by class)."""
    found: dict[tuple[str, ...], Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.update(_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


def _reference() -> dict[tuple[str, ...], set[str]]:
    """Each command line of the README's CLI reference (continuation lines joined) as its
    command path and the options it names."""
    entries: list[str] = []
    for line in _first_code_block_after("## CLI").splitlines():
        if line.startswith("hpo "):
            entries.append(line)
        elif line.strip():
            entries[-1] += " " + line.strip()
    reference: dict[tuple[str, ...], set[str]] = {}
    for entry in entries:
        path: tuple[str, ...] = ()
        command = CLI
        for word in entry.split()[1:]:
            if not hasattr(command, "commands") or word not in command.commands:
                break
            path, command = (*path, word), command.commands[word]
        reference[path] = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", entry))
    return reference


def test_the_two_commands_are_the_ones_ci_runs() -> None:
    commands = [line for line in _first_code_block_after("## Two commands").splitlines() if line and not line.startswith("#")]
    assert commands == ["bash .ci/setup && .venv/bin/hpo demo", "bash .ci/run"]
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup postgres,dev" in ci_run and "python -m pytest" in ci_run
    assert "hpo demo --quick" in README and '_hpo("demo", "--quick"' in (ROOT / "tests" / "test_demo.py").read_text()


def test_the_cli_reference_lists_every_command_with_exactly_its_options() -> None:
    cli = _commands(CLI)
    reference = _reference()
    assert sorted(reference) == sorted(cli), "the README's CLI reference and the hpo commands differ"
    for path, named in reference.items():
        options = {opt for param in cli[path].params for opt in param.opts + param.secondary_opts if opt.startswith("--")}
        options.discard("--help")
        assert named <= options, f"hpo {' '.join(path)}: the README names {sorted(named - options)}, which it does not take"
        assert options <= named, f"hpo {' '.join(path)}: takes {sorted(options - named)}, which the README's reference omits"


@pytest.mark.timeout(600)
def test_the_ten_line_python_example_runs(tmp_path: Path) -> None:
    """The README's whole flow in Python, as printed, at narrower widths and one DEHB
    iteration per width (a minute instead of four): a sweep on a local Ray, a stored fit, and
    recommendations from it beside the published laws."""
    block = README.split("The whole flow (what `hpo demo` does) in ten lines:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    small = block.replace("(32, 64, 128)", "(8, 12, 16)").replace("max_trials=66", "max_trials=22")
    assert small != block, "the example's widths or trial count changed: update this test"
    script = tmp_path / "example.py"
    script.write_text(small)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=540, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    laws = [line.split()[0] for line in result.stdout.splitlines()]
    assert sorted(laws) == ["deepseek", "fit:gpt-widths", "steplaw"]
    store = Store(f"sqlite:///{tmp_path / 'hpo.db'}")
    try:
        assert store.get_fit("gpt-widths").sweep == "gpt-widths"
        assert sorted(s.study.name for s in store.list_studies(sweep="gpt-widths")) == ["gpt-w12", "gpt-w16", "gpt-w8"]
    finally:
        store.close()
