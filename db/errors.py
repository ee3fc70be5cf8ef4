"""Exceptions raised by the study store.

Every message is one line that names the bad value and says what was expected, so the CLI
and the REST service can show it to a user as is.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error the study store raises on purpose."""


class StorageURLError(StoreError):
    """The storage URL is malformed or names a backend the store does not support."""


class StorageUnreachableError(StoreError):
    """The storage URL is well formed but the database cannot be opened."""


class SchemaVersionError(StoreError):
    """The database schema is not the one this version of hposcale speaks."""


class StudyNotFoundError(StoreError, LookupError):
    """No study of that name exists in the store."""


class DuplicateStudyError(StoreError):
    """A study of that name already exists and the caller did not ask to load it."""


class TrialNotFoundError(StoreError, LookupError):
    """No trial with that number exists in the study."""


class TrialNotHeldError(StoreError):
    """The worker reported on a trial it no longer holds (finished, or re-queued after its heartbeat stopped)."""


class FitNotFoundError(StoreError, LookupError):
    """No scaling fit of that name."""
