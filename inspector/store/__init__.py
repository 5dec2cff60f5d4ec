"""The project file: one SQLite database per project (``*.anomalens``)."""

from inspector.store.project import (
    NotAProjectError,
    ProjectFullError,
    ProjectLockedError,
    ProjectStore,
    StoreError,
    sha256_bytes,
)

__all__ = [
    "NotAProjectError",
    "ProjectFullError",
    "ProjectLockedError",
    "ProjectStore",
    "StoreError",
    "sha256_bytes",
]
