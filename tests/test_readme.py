"""The README and docs/ a newcomer follows say what the code does: the README's two commands are
the ones CI runs and its ten-line Python example runs; the CLI reference in docs/cli.md lists
every command of ``hpo`` with exactly the options each one takes (a renamed or added option
that the reference does not follow fails here); the examples of docs/python-api.md run. The
README stays short and indexes every page of docs/, every relative link resolves (to a file,
and to a heading where it names one), and every benchmark script has its section in
benchmarks/README.md and its row in the README's headline table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import hpo
from db.models import TrialState
from db.store import Store
from hpo.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
BENCHMARKS_README = ROOT / "benchmarks" / "README.md"
MAX_README_LINES = 250


def _after(text: str, heading: str) -> str:
    parts = re.split(rf"^{re.escape(heading)}$", text, maxsplit=1, flags=re.M)
    assert len(parts) == 2, f"no heading {heading!r}"
    return parts[1]


def _first_code_block_after(text: str, heading: str) -> str:
    return _after(text, heading).split("```", 2)[1].split("\n", 1)[1]


def _section(text: str, heading: str) -> str:
    """The text under a ``## `` heading, up to the next heading of that level."""
    return _after(text, heading).split("\n## ", 1)[0]


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
    """Each command line of docs/cli.md's reference (continuation lines joined) as its command
    path and the options it names."""
    entries: list[str] = []
    cli_md = (ROOT / "docs" / "cli.md").read_text()
    for line in _first_code_block_after(cli_md, "# CLI reference").splitlines():
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


def _without_code(markdown: str) -> str:
    """The text outside fenced code blocks (links in code are code, not links)."""
    return "".join(part for i, part in enumerate(re.split(r"^```.*$", markdown, flags=re.M)) if i % 2 == 0)


def _links(markdown: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", _without_code(markdown))


def _anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation but - and _ dropped, spaces
    to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _without_code(markdown), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_two_commands_are_the_ones_ci_runs() -> None:
    commands = [line for line in _first_code_block_after(README, "## Two commands").splitlines() if line and not line.startswith("#")]
    assert commands == ["bash .ci/setup && .venv/bin/hpo demo", "bash .ci/run"]
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup postgres,dev" in ci_run and "python -m pytest" in ci_run
    assert "hpo demo --quick" in README and '_hpo("demo", "--quick"' in (ROOT / "tests" / "test_demo.py").read_text()


def test_the_cli_reference_lists_every_command_with_exactly_its_options() -> None:
    cli = _commands(CLI)
    reference = _reference()
    assert sorted(reference) == sorted(cli), "docs/cli.md's reference and the hpo commands differ"
    for path, named in reference.items():
        options = {opt for param in cli[path].params for opt in param.opts + param.secondary_opts if opt.startswith("--")}
        options.discard("--help")
        assert named <= options, f"hpo {' '.join(path)}: docs/cli.md names {sorted(named - options)}, which it does not take"
        assert options <= named, f"hpo {' '.join(path)}: takes {sorted(options - named)}, which docs/cli.md omits"


def test_the_ten_line_python_example_runs(tmp_path: Path) -> None:
    """The README's example, as printed, in a fresh directory: it prints the queued
    configuration as the best trial's, and leaves the trial completed with its intermediate
    value in a real SQLite store."""
    block = _first_code_block_after(README, "## Python in ten lines")
    assert len(block.splitlines()) <= 10, "the README's example has grown past ten lines"
    script = tmp_path / "example.py"
    script.write_text(block)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str({"lr": 3e-3, "batch_size": 64})
    study = hpo.load_study("lr-sweep", f"sqlite:///{tmp_path / 'hpo.db'}")
    try:
        (trial,) = study.trials
        assert (trial.state, trial.value, trial.intermediate_values) == (TrialState.COMPLETED, 2.9, {100: 3.1})
    finally:
        study.store.close()


def test_the_python_api_pages_search_and_held_trial_examples_run(tmp_path: Path) -> None:
    """docs/python-api.md's search on its own, then its worker of your own (which continues the
    first block's script), as printed: the held trial's configuration is the study's best."""
    api = (ROOT / "docs" / "python-api.md").read_text()
    search = _first_code_block_after(api, "## A search on its own")
    held = _first_code_block_after(api, "## Workers of your own: the held trial")
    script = tmp_path / "api.py"
    script.write_text(search + held)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    best = {"lr": 3e-3, "batch_size": 64}
    assert result.stdout.splitlines()[-1] == f"{best} 3.1"


@pytest.mark.timeout(600)
def test_the_whole_flow_in_python_runs(tmp_path: Path) -> None:
    """docs/python-api.md's whole flow, as printed, at narrower widths and one DEHB iteration
    per width (a minute instead of four): a sweep on a local Ray, a stored fit, and
    recommendations from it beside the published laws."""
    api = (ROOT / "docs" / "python-api.md").read_text()
    block = _first_code_block_after(api, "## The whole flow")
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


def test_the_readme_is_short() -> None:
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {MAX_README_LINES})"


def test_the_readme_indexes_every_page_of_docs() -> None:
    index = set(_links(_section(README, "## Documentation")))
    assert DOCS, "docs/ has no pages"
    missing = [f"docs/{page.name}" for page in DOCS if f"docs/{page.name}" not in index]
    assert not missing, f"the README's Documentation index does not link {missing}"
    assert "benchmarks/README.md" in index


@pytest.mark.parametrize("page", [ROOT / "README.md", BENCHMARKS_README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text()
    broken: list[str] = []
    for link in _links(text):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not ours to check offline
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text()):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_every_benchmark_has_its_section_and_its_headline_row() -> None:
    """A benchmark is a script of benchmarks/ that runs as a program (a helper module does not)."""
    scripts = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py") if '\nif __name__ == "__main__":' in path.read_text())
    assert len(scripts) >= 7, f"benchmark scripts not recognised: {scripts}"
    headings = re.findall(r"^## .+$", BENCHMARKS_README.read_text(), flags=re.M)
    headline = _section(README, "## Benchmarks")
    for script in scripts:
        assert any(f"`benchmarks/{script}`" in heading for heading in headings), f"benchmarks/README.md has no section for {script}"
        assert f"| `{script}` |" in headline, f"the README's headline table has no row for {script}"
