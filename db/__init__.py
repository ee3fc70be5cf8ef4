"""The study store: ORM models, engines per storage URL, migrations, and the atomic
create / claim / report / finish operations every worker coordinates through."""

from db.records import StudySettings
from db.store import Recovery, Store, StudySummary, open_store

__all__ = ["Recovery", "Store", "StudySettings", "StudySummary", "open_store"]
