"""The search-space language: files and Python objects, validation messages, sampling, the
unit-cube encoding, configuration hashes, the built-in spaces and ``hpo spaces``."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from search_spaces import (
    BUILTIN_SPACES,
    Categorical,
    Fidelity,
    Fixed,
    Float,
    Int,
    SearchSpace,
    SpaceError,
    builtin_spaces,
    config_hash,
    get_builtin,
    load_space,
)

SPACE_YAML = """\
description: a small proxy
fidelity: {name: steps, min: 10, max: 270}
parameters:
  lr: {type: float, low: 1e-4, high: 1e-1, log: true}
  batch: {type: int, low: 8, high: 512, log: true}
  layers: {type: int, low: 1, high: 4}
  schedule: {type: categorical, choices: [cosine, wsd]}
  decay: {type: float, low: 0.1, high: 0.5, condition: {schedule: [wsd]}}
  decay_shape: {type: categorical, choices: [linear, sqrt], condition: {decay: [0.1, 0.5]}}
  seq_len: {type: fixed, value: 128}
"""


def python_space() -> SearchSpace:
    return SearchSpace(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "batch": Int(8, 512, log=True),
            "layers": Int(1, 4),
            "schedule": Categorical(["cosine", "wsd"]),
            "decay": Float(0.1, 0.5, condition={"schedule": ["wsd"]}),
            "decay_shape": Categorical(["linear", "sqrt"], condition={"decay": [0.1, 0.5]}),
            "seq_len": Fixed(128),
        },
        Fidelity("steps", 10, 270),
        "a small proxy",
    )


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE_YAML)
    return path


def test_yaml_and_python_objects_are_the_same_space(space_file: Path) -> None:
    from_file = load_space(space_file)
    assert from_file == python_space()
    assert SearchSpace.from_dict(from_file.to_dict()) == from_file
    assert load_space_from_text(space_file.parent, from_file.to_yaml()) == from_file
    assert from_file.dimensions == ["lr", "batch", "layers", "schedule", "decay", "decay_shape"]
    assert from_file.fidelity == Fidelity("steps", 10, 270)
    assert isinstance(from_file["lr"].low, float)  # "1e-4" is a string to YAML 1.1: read as a number


def load_space_from_text(folder: Path, text: str) -> SearchSpace:
    path = folder / "roundtrip.yaml"
    path.write_text(text)
    return load_space(path)


@pytest.mark.parametrize(
    "body,fragments",
    [
        ("parameters:\n  lr: {type: float, low: 0.1, high: 0.01}", ["parameter 'lr'", "low 0.1 must be < high 0.01"]),
        ("parameters:\n  lr: {type: float, low: 0, high: 1, log: true}", ["parameter 'lr'", "log range must be > 0"]),
        ("parameters:\n  b: {type: int, low: 0, high: 64, log: true}", ["parameter 'b'", "must start at >= 1"]),
        ("parameters:\n  b: {type: int, low: 1.5, high: 64}", ["parameter 'b'", "whole number"]),
        ("parameters:\n  lr: {type: flaot, low: 0, high: 1}", ["parameter 'lr'", "unknown type 'flaot'", "did you mean 'float'?"]),
        ("parameters:\n  lr: {type: float, low: 0, high: 1, lg: true}", ["parameter 'lr'", "unknown key 'lg'", "did you mean 'log'?"]),
        ("parameters:\n  lr: {type: float, low: zero, high: 1}", ["parameter 'lr'", "low must be a number, got 'zero'"]),
        ("parameters:\n  s: {type: categorical, choices: []}", ["parameter 's'", "at least one value"]),
        ("parameters:\n  s: {type: categorical, choices: [a, a]}", ["parameter 's'", "repeat a value"]),
        ("parameters:\n  d: {type: float, low: 0, high: 1, condition: {shedule: [wsd]}}\n  schedule: {type: categorical, choices: [wsd]}",
         ["parameter 'd'", "condition on unknown parameter 'shedule'", "did you mean 'schedule'?"]),
        ("parameters:\n  d: {type: float, low: 0, high: 1, condition: {s: [cosin]}}\n  s: {type: categorical, choices: [cosine]}",
         ["parameter 'd'", "condition value 'cosin' can never hold for 's'"]),
        ("parameters:\n  a: {type: categorical, choices: [1], condition: {b: [1]}}\n  b: {type: categorical, choices: [1], condition: {a: [1]}}",
         ["conditions form a cycle", "a -> b -> a"]),
        ("parameters:\n  lr: {type: float, low: 0, high: 1, default: 2}", ["parameter 'lr'", "value 2 is outside [0, 1]"]),
        ("parameter:\n  lr: {type: float, low: 0, high: 1}", ["unknown key 'parameter'", "did you mean 'parameters'?"]),
        ("description: nothing", ["'parameters' must map each parameter name"]),
        ("fidelity: {name: steps, min: 100, max: 10}\nparameters:\n  x: {type: float, low: 0, high: 1}", ["fidelity min 100 must be < max 10"]),
        ("fidelity: {name: steps, max: 10}\nparameters:\n  x: {type: float, low: 0, high: 1}", ["fidelity is missing 'min'"]),
        ("parameters:\n  x: {type: float, low: 0, high: [1\n", ["not valid YAML at line 3"]),
        ("- just\n- a list\n", ["must be a mapping with 'parameters', got list"]),
    ],
)
def test_bad_spaces_are_one_line_errors_naming_file_and_parameter(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(SpaceError) as error:
        load_space(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"nope\.yaml: no such file"):
        load_space(tmp_path / "nope.yaml")


def test_samples_are_valid_and_follow_their_priors() -> None:
    space = python_space()
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(4000)]
    for config in samples[:200]:
        assert space.validate_config(config) == config
        assert ("decay" in config) == (config["schedule"] == "wsd")
        assert ("decay_shape" in config) == (config.get("decay") in (0.1, 0.5))
        assert config["seq_len"] == 128
    lrs = np.log10([c["lr"] for c in samples])
    assert abs(np.median(lrs) - (-2.5)) < 0.1  # log-uniform: the median is the geometric middle
    assert abs(np.mean([c["schedule"] == "wsd" for c in samples]) - 0.5) < 0.05
    layers = Counter(c["layers"] for c in samples)
    assert set(layers) == {1, 2, 3, 4} and max(layers.values()) / min(layers.values()) < 1.2
    batches = np.log2([c["batch"] for c in samples])
    assert abs(np.mean(batches < 6) - 0.5) < 0.05  # 8..64 is half of 8..512 in log space


def test_encoding_round_trips_and_every_point_decodes_to_a_valid_config() -> None:
    space = python_space()
    rng = np.random.default_rng(1)
    for _ in range(300):
        config = space.sample(rng)
        point = space.encode(config)
        assert point.shape == (6,) and np.all((point >= 0) & (point <= 1))
        decoded = space.decode(point)
        assert decoded.keys() == config.keys()
        for name, value in config.items():
            assert decoded[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)
        assert space.validate_config(space.decode(rng.uniform(-0.5, 1.5, size=6))) is not None
    inactive = space.encode({"lr": 0.01, "batch": 64, "layers": 2, "schedule": "cosine", "seq_len": 128})
    assert inactive[4] == inactive[5] == 0.5
    # integers own equal slices of the cube, so uniform points give uniform integers
    ints = Counter(Int(1, 4).decode(u) for u in np.linspace(0, 1, 4001))
    assert sorted(ints) == [1, 2, 3, 4] and max(ints.values()) - min(ints.values()) <= 2
    assert Categorical(["a", "b", "c"]).encode("b") == pytest.approx(0.5)
    with pytest.raises(SpaceError, match="3 coordinates"):
        get_builtin("hartmann3").decode([0.5, 0.5])


def test_validate_config_names_the_parameter() -> None:
    space = python_space()
    good = {"lr": 0.01, "batch": 64.0, "layers": 2, "schedule": "wsd", "decay": 0.3, "seq_len": 128}
    assert space.validate_config(good)["batch"] == 64 and isinstance(space.validate_config(good)["batch"], int)
    cases = [
        ({**good, "lrr": 1}, "unknown parameter 'lrr'; did you mean 'lr'?"),
        ({k: v for k, v in good.items() if k != "lr"}, "parameter 'lr' is missing"),
        ({**good, "lr": 1.0}, "parameter 'lr': value 1 is outside [0.0001, 0.1]"),
        ({**good, "layers": 2.5}, "parameter 'layers': value 2.5 must be a whole number"),
        ({**good, "schedule": "cosine"}, "parameter 'decay' is inactive here (active only when schedule is one of ['wsd']); leave it out"),
        ({**good, "seq_len": 256}, "parameter 'seq_len': value 256 must be the fixed value 128"),
    ]
    for config, fragment in cases:
        with pytest.raises(SpaceError) as error:
            space.validate_config(config, source="enqueue")
        assert str(error.value) == f"enqueue: {fragment}"


def test_default_config_uses_defaults_then_middles() -> None:
    space = python_space()
    default = space.default_config()
    assert default["lr"] == pytest.approx(10**-2.5) and default["schedule"] == "cosine" and "decay" not in default
    assert get_builtin("mup-gpt").default_config()["learning_rate"] == 3e-3


def test_config_hash_is_stable_across_processes_and_key_order() -> None:
    config = {"lr": 0.001, "batch": 64, "schedule": "wsd"}
    here = config_hash(config)
    assert here == config_hash(dict(reversed(list(config.items()))))
    assert here == config_hash({"lr": np.float64(0.001), "batch": np.int64(64), "schedule": "wsd"})
    assert here != config_hash({**config, "lr": 0.0010001})
    code = "from search_spaces import config_hash; print(config_hash({'schedule': 'wsd', 'batch': 64, 'lr': 0.001}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "7"})
    assert other.stdout.strip() == here


def test_builtin_spaces() -> None:
    spaces = builtin_spaces()
    assert list(spaces) == list(BUILTIN_SPACES)
    gpt = spaces["mup-gpt"]
    for name in ("learning_rate", "init_std", "output_mult", "attn_mult", "batch_size", "weight_decay",
                 "warmup_fraction", "schedule"):
        assert name in gpt.names
    assert gpt.fidelity.name == "tokens" and gpt["learning_rate"].log
    for name, space in spaces.items():
        # the DEHB paper's range for counting ones; three rungs for the scaling sweep
        ratio = 162 if name.startswith("counting-ones") else 9 if name == "mup-gpt-scaling" else 27
        assert space.fidelity is not None and math.isclose(space.fidelity.max / space.fidelity.min, ratio), name
        assert SearchSpace.from_dict(space.to_dict()) == space
        config = space.sample(np.random.default_rng(0))
        assert space.validate_config(config) == config
    assert len(spaces["counting-ones-32-32"].dimensions) == 64
    per_width = spaces["mup-gpt-scaling"].with_fixed({"width": 128, "batch_size": 8})
    assert per_width.dimensions == ["learning_rate"] and per_width.sample(np.random.default_rng(1))["width"] == 128
    assert per_width.fidelity == spaces["mup-gpt-scaling"].fidelity and SearchSpace.from_dict(per_width.to_dict()) == per_width
    with pytest.raises(SpaceError, match="no built-in space 'mup-gtp'; did you mean 'mup-gpt'"):
        get_builtin("mup-gtp")


def hpo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpo.cli.main", *args], capture_output=True, text=True, check=False)


def test_spaces_cli(space_file: Path, tmp_path: Path) -> None:
    listed = hpo("spaces", "list")
    assert listed.returncode == 0
    for name in BUILTIN_SPACES:
        assert name in listed.stdout
    assert "tokens 131072..3538944" in listed.stdout

    shown = hpo("spaces", "show", "mup-gpt")
    assert shown.returncode == 0
    assert load_space_from_text(tmp_path, shown.stdout) == get_builtin("mup-gpt")

    valid = hpo("spaces", "validate", str(space_file))
    assert valid.returncode == 0 and "ok, 7 parameters (6 searched), fidelity steps 10..270" in valid.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  lr: {type: float, low: 1, high: 0.1, log: true}\n")
    invalid = hpo("spaces", "validate", str(bad))
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert invalid.stderr.strip() == f"hpo: error: {bad}: parameter 'lr': low 1 must be < high 0.1"
