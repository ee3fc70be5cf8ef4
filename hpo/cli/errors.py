"""Errors in what the user typed, found by the CLI itself (not by the store)."""


class CLIError(Exception):
    """A one-line message for the user; ``hpo`` prints it and exits with code 2."""
