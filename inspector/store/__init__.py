"""The project file: one SQLite database per project (``*.anomalens``)."""

from inspector.store.project import (
    ProjectStore,
    StoreError,
    ProjectLockedError,
    ProjectFullError,
    NotAProjectError,
    sha256_bytes,
)

__all__ = [
    "ProjectStore", "StoreError", "ProjectLockedError", "ProjectFullError", "NotAProjectError",
    "sha256_bytes",
]
