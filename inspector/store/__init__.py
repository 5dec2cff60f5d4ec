"""The project file: one SQLite database per project (``*.anomalens``)."""

from inspector.store.project import (
    NewerProjectError,
    NotAProjectError,
    ProjectFullError,
    ProjectLockedError,
    ProjectStore,
    StoreError,
    sha256_bytes,
)

__all__ = [
    "NewerProjectError",
    "NotAProjectError",
    "ProjectFullError",
    "ProjectLockedError",
    "ProjectStore",
    "StoreError",
    "sha256_bytes",
]
