"""The one exception the search-space package raises on purpose, and help for its messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpaceError(ValueError):
    """A bad search space or config, in one line that names where (file, parameter) and what to fix.

    A ``ValueError`` so that callers who only know "bad input" can still catch it.
    """


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """``"; did you mean 'lr'?"`` when a close option exists, else ``""``: most unknown names are typos."""
    matches = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""
