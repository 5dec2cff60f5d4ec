"""Project-file schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. Each migration is a function that
takes a project from version N-1 to N inside one transaction; opening an older file runs the
missing ones in order, opening a file written by a newer release is refused (we cannot know what
it contains), and a file that is not one of ours is refused with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

APPLICATION_ID = 0x414E4D4C  # "ANML": marks the SQLite file as an Anomalens project


def _v1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["blobs"].create({"sha256": str, "mime": str, "size": int, "data": bytes, "created_at": str}, pk="sha256")
    db["profiles"].create(
        {
            "id": int,
            "name": str,
            "class_name": str,
            "modality": str,
            "normal_standards": str,
            "expected_defects": str,
            "domain_preset": str,
            "settings_json": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"name"},
    )
    db["reference_images"].create(
        {"id": int, "profile_id": int, "name": str, "blob_sha256": str, "width": int, "height": int, "created_at": str},
        pk="id",
        foreign_keys=[("profile_id", "profiles", "id"), ("blob_sha256", "blobs", "sha256")],
    )
    db["cases"].create(
        {
            "id": int,
            "name": str,
            "modality": str,
            "source_path": str,
            "source_sha256": str,
            "blob_sha256": str,
            "metadata_json": str,
            "ground_truth": str,
            "profile_id": int,
            "status": str,
            "error": str,
            "score": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("profile_id", "profiles", "id"), ("blob_sha256", "blobs", "sha256")],
    )
    db["prompts"].create(
        {"id": int, "sha256": str, "system_text": str, "user_text": str, "record_json": str, "created_at": str},
        pk="id",
    )
    db["prompts"].create_index(["sha256"], unique=True)
    db["prompt_images"].create(
        {"prompt_id": int, "position": int, "role": str, "label": str, "blob_sha256": str},
        pk=("prompt_id", "position"),
        foreign_keys=[("prompt_id", "prompts", "id"), ("blob_sha256", "blobs", "sha256")],
    )
    db["answers"].create(
        {
            "id": int,
            "case_id": int,
            "prompt_id": int,
            "endpoint": str,
            "model": str,
            "params_json": str,
            "raw_text": str,
            "response_json": str,
            "status": str,
            "error": str,
            "latency_s": float,
            "prompt_tokens": int,
            "completion_tokens": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id"), ("prompt_id", "prompts", "id")],
    )
    db["verdicts"].create(
        {
            "id": int,
            "case_id": int,
            "answer_id": int,
            "prompt_id": int,
            "source": str,
            "anomalous": int,
            "score": float,
            "score_source": str,
            "explanation": str,
            "parse_status": str,
            "model": str,
            "regions_json": str,
            "heatmap_sha256": str,
            "raw_answer": str,
            "error": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id"), ("answer_id", "answers", "id")],
    )
    db["decisions"].create(
        {"id": int, "case_id": int, "verdict_id": int, "label": str, "note": str, "created_at": str},
        pk="id",
        foreign_keys=[("case_id", "cases", "id"), ("verdict_id", "verdicts", "id")],
    )
    for table, column in [
        ("cases", "profile_id"),
        ("answers", "case_id"),
        ("verdicts", "case_id"),
        ("decisions", "case_id"),
        ("reference_images", "profile_id"),
    ]:
        db[table].create_index([column])


def _v2(db: sqlite_utils.Database) -> None:
    """Cases get an explicit order, so the case list keeps the order the operator gave them."""
    db["cases"].add_column("sort_key", int)
    db.execute("UPDATE cases SET sort_key = id")


def _v3(db: sqlite_utils.Database) -> None:
    """Verdicts carry modality details (per-frame or per-sample scores, the heat map's slice)."""
    db["verdicts"].add_column("details_json", str)


def _v4(db: sqlite_utils.Database) -> None:
    """References remember their source (the video or series they were taken from): the offline
    detector's calibration holds out a whole source, not one of its near-identical frames."""
    db["reference_images"].add_column("source", str)


def _v5(db: sqlite_utils.Database) -> None:
    """Batch inspection: a batch (its settings) and its items (per-case state) survive closing the
    app, so an unfinished batch can be resumed; the response cache maps a request's key to the
    stored answer, so an identical request is never sent twice."""
    db["batches"].create(
        {
            "id": int,
            "created_at": str,
            "updated_at": str,
            "status": str,
            "endpoint_json": str,
            "limits_json": str,
            "message": str,
        },
        pk="id",
    )
    db["batch_items"].create(
        {
            "batch_id": int,
            "position": int,
            "case_id": int,
            "state": str,
            "error": str,
            "verdict_id": int,
            "model": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "attempts": int,
            "updated_at": str,
        },
        pk=("batch_id", "position"),
        foreign_keys=[("batch_id", "batches", "id")],
    )
    # no foreign key: deleting a case deletes its answers, and a dangling entry is simply a miss
    db["response_cache"].create({"key": str, "answer_id": int, "created_at": str}, pk="key")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)
