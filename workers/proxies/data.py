"""Training data for the proxies, all of it on the machine already: nothing is downloaded.

* ``stdlib`` (the default for the GPT): the Python standard library's own ``.py`` sources,
  read as bytes (vocabulary 256). Packages named ``test``/``tests``, ``idlelib`` and
  ``site-packages`` are left out; files are taken in sorted order and every tenth file is
  held out, so the held-out part is whole modules the model never saw. On CPython 3.11 that
  is 674 files, 11.4 MB: about 10.2 MB to train on and 1.2 MB held out
  (:func:`corpus_summary` prints the figures for the running interpreter).
* A user's text: a file or a folder of files, read as bytes (vocabulary 256); the last 10%
  of a file, or every tenth file of a folder, is held out.
* A user's tokens: a ``.npy`` array, or a raw file of ``uint16``/``uint32`` tokens (any other
  suffix, read as a memory map), with its vocabulary size; the last 10% is held out.
* ``digits`` for the MLP: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes),
  standardised, with a fixed 20% held out.
"""

from __future__ import annotations

import functools
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workers.proxies.parameterization import ProxyConfigError

HELD_OUT_EVERY = 10
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "__pycache__"}
TOKEN_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


@dataclass(frozen=True)
class TokenData:
    """A token stream split into train and held-out parts."""

    name: str
    train: np.ndarray
    heldout: np.ndarray
    vocab_size: int

    def check(self, seq_len: int) -> None:
        for part, tokens in (("train", self.train), ("held-out", self.heldout)):
            if len(tokens) < seq_len + 2:
                raise ProxyConfigError(
                    f"data {self.name!r}: its {part} part has {len(tokens)} tokens, fewer than one "
                    f"sequence of {seq_len} + 1; use more data or a shorter seq_len"
                )

    def batch(self, batch_size: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` random windows of the train part: inputs and next-token targets."""
        starts = torch.randint(0, len(self.train) - seq_len - 1, (batch_size,), generator=generator)
        return _windows(self.train, starts.tolist(), seq_len)

    def eval_batches(self, seq_len: int, sequences: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same held-out windows every time (evenly spaced), so losses compare across trials."""
        span = len(self.heldout) - seq_len - 1
        starts = np.linspace(0, span, num=min(sequences, span + 1)).astype(np.int64).tolist()
        return [_windows(self.heldout, starts[i : i + batch_size], seq_len) for i in range(0, len(starts), batch_size)]


def _windows(tokens: np.ndarray, starts: list[int], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])
    block = torch.from_numpy(rows)
    return block[:, :-1], block[:, 1:]


def _split_tail(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cut = len(tokens) - len(tokens) // HELD_OUT_EVERY
    return tokens[:cut], tokens[cut:]


def _files_under(root: Path, suffix: str | None) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        found.extend(Path(dirpath, f) for f in sorted(filenames) if suffix is None or f.endswith(suffix))
    return sorted(found)


def _bytes_by_file(name: str, files: list[Path]) -> TokenData:
    train: list[bytes] = []
    heldout: list[bytes] = []
    for i, path in enumerate(files):
        (heldout if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else train).append(path.read_bytes())
    return TokenData(
        name,
        np.frombuffer(b"".join(train), dtype=np.uint8),
        np.frombuffer(b"".join(heldout), dtype=np.uint8),
        256,
    )


@functools.lru_cache(maxsize=1)
def stdlib_corpus() -> TokenData:
    """The standard library's sources as bytes (read once per process)."""
    return _bytes_by_file("stdlib", _files_under(Path(sysconfig.get_paths()["stdlib"]), ".py"))


def corpus_summary(data: TokenData) -> str:
    total = len(data.train) + len(data.heldout)
    return (
        f"{data.name}: {total / 1e6:.1f} M tokens (vocabulary {data.vocab_size}), "
        f"{len(data.train) / 1e6:.1f} M train, {len(data.heldout) / 1e6:.2f} M held out"
    )


@functools.lru_cache(maxsize=4)
def load_tokens(spec: str = "stdlib", vocab_size: int | None = None, dtype: str = "uint16") -> TokenData:
    """The data a spec names: ``stdlib``, a text file or folder, or a token file (see the module)."""
    if spec == "stdlib":
        return stdlib_corpus()
    path = Path(spec).expanduser()
    if not path.exists():
        raise ProxyConfigError(f"data {spec!r} does not exist; give 'stdlib', a text file or folder, or a token file")
    if path.is_dir():
        files = _files_under(path, None)
        if not files:
            raise ProxyConfigError(f"data folder {spec!r} holds no files")
        return _bytes_by_file(spec, files)
    if path.suffix in (".txt", ".md", ".py", ".text"):
        return TokenData(spec, *_split_tail(np.frombuffer(path.read_bytes(), dtype=np.uint8)), 256)
    if vocab_size is None:
        raise ProxyConfigError(f"token file {spec!r} needs its vocabulary size (vocab_size)")
    if path.suffix == ".npy":
        tokens = np.load(path, mmap_mode="r")
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise ProxyConfigError(f"token file {spec!r} holds a {tokens.dtype} array of shape {tokens.shape}, not 1-D integers")
    else:
        if dtype not in TOKEN_DTYPES:
            raise ProxyConfigError(f"token dtype {dtype!r} is not one of {', '.join(TOKEN_DTYPES)}")
        tokens = np.memmap(path, dtype=TOKEN_DTYPES[dtype], mode="r")
    top = int(tokens.max()) if len(tokens) else 0
    if top >= vocab_size:
        raise ProxyConfigError(f"token file {spec!r} holds token {top}, outside its vocabulary of {vocab_size}")
    return TokenData(spec, *_split_tail(tokens), vocab_size)


@dataclass(frozen=True)
class TableData:
    """Features and labels split into train and held-out parts (the MLP's data)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_heldout: torch.Tensor
    y_heldout: torch.Tensor

    @property
    def in_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def classes(self) -> int:
        return int(torch.cat([self.y_train, self.y_heldout]).max()) + 1

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.x_train), (batch_size,), generator=generator)
        return self.x_train[idx], self.y_train[idx]

    def eval_batches(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x_heldout)
        return [(self.x_heldout[i : i + batch_size], self.y_heldout[i : i + batch_size]) for i in range(0, n, batch_size)]


@functools.lru_cache(maxsize=1)
def digits() -> TableData:
    """scikit-learn's bundled digits, standardised on the train part; the split never changes."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    cut = len(x) - len(x) // 5
    train, held = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    xs = torch.tensor((x - mean) / std, dtype=torch.float32)
    ys = torch.tensor(y, dtype=torch.int64)
    return TableData("digits", xs[train], ys[train], xs[held], ys[held])
