"""Errors in running a sweep that the user can fix, each a one-line message (``hpo`` prints
it and exits 2)."""


class SweepError(Exception):
    """A sweep could not start or could not go on: no objective, no Ray at the address, not
    enough GPUs in the cluster, workers that keep dying."""


class ObjectiveError(SweepError):
    """An objective spec that names nothing runnable: a module that does not import, a
    missing or non-callable attribute, an unknown built-in."""
