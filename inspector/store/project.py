"""ProjectStore: the one place that reads and writes a project file.

Design points:
- WAL journal, every result committed as it arrives: a crash loses at most the answer in flight.
- Images (references, embedded case sources, images sent in prompts, heat maps) are stored once
  in ``blobs`` keyed by SHA-256, so the same reference sent in a thousand prompts costs nothing.
- SQLite errors that an operator can act on (file locked by another program, disk full, not a
  project file) become ``StoreError`` subclasses with a clear ``user_message``.
- One connection shared by threads behind a lock: writes are short, and serialising them is
  what SQLite would do anyway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from inspector.model import (
    Case,
    CaseStatus,
    Decision,
    ParseStatus,
    Profile,
    ReferenceImage,
    Region,
    ScoreSource,
    Verdict,
    VerdictSource,
)
from inspector.store.records import AnswerRecord, BatchItemRecord, BatchRecord, PromptRecord
from inspector.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

EMBED_LIMIT_BYTES = 64 * 1024 * 1024  # sources up to this size are copied into the project


class StoreError(Exception):
    """A project-file problem the operator can understand and act on."""

    def __init__(self, user_message: str):
        super().__init__(user_message)
        self.user_message = user_message


class ProjectLockedError(StoreError):
    pass


class ProjectFullError(StoreError):
    pass


class NotAProjectError(StoreError):
    pass


class NewerProjectError(StoreError):
    """The project was written by a newer version of the application: refused, left untouched."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in verdict details become plain JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return ProjectLockedError(
            f"The project file {path.name} is locked by another program (another Anomalens window "
            "or a sync tool). Close it there and try again; nothing was lost."
        )
    if "full" in text:
        return ProjectFullError(
            f"The disk holding {path.name} is full, so the last change could not be saved. "
            "Free some space; everything saved before is intact."
        )
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return NotAProjectError(f"{path.name} is not an Anomalens project file or it is damaged ({exc}).")
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"Cannot write to {path} ({exc}). Check the folder's permissions.")
    return StoreError(f"Project file error in {path.name}: {exc}")


class ProjectStore:
    """Open (or create) a project file and read/write its contents."""

    def __init__(self, path: str | Path, *, create: bool = True, busy_timeout_ms: int = 2000):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"The project file {self.path} does not exist.")
        self._lock = threading.RLock()
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._check_is_project(conn)  # before the first write
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError, StoreError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, OSError):
                raise StoreError(f"Cannot open {self.path}: {exc.strerror or exc}") from exc
            raise _translate(exc, self.path) from exc
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._migrate()

    # ----------------------------------------------------------------- lifecycle

    def _check_is_project(self, conn: sqlite3.Connection) -> None:
        """Refuse a foreign SQLite file or a project of a newer version before anything is written
        (switching the journal to WAL already changes the file's header)."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise NotAProjectError(
                f"{self.path.name} is an SQLite file but not an Anomalens project; it was left untouched."
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise NewerProjectError(
                f"{self.path.name} was written by a newer Anomalens (schema {version}, this version reads up "
                f"to {SCHEMA_VERSION}); it was left untouched. Update the application to open it."
            )

    def _migrate(self) -> None:
        with self.transaction():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:  # written by a newer version since the check at opening
                raise NewerProjectError(
                    f"{self.path.name} was written by a newer Anomalens (schema {version}, this "
                    f"version reads up to {SCHEMA_VERSION}). Update the application to open it."
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](self.db)
                self.conn.execute(f"PRAGMA user_version = {number}")
            if version == 0:
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.db["meta"].insert({"key": "created_at", "value": _now()}, replace=True)

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write; SQLite errors become operator-readable StoreErrors."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            try:
                yield
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise _translate(exc, self.path) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return list(self.db.query(sql, params))
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    # ----------------------------------------------------------------- blobs

    def put_blob(self, data: bytes, mime: str = "application/octet-stream") -> str:
        sha = sha256_bytes(data)
        with self.transaction():
            self._put_blob_locked(sha, data, mime)
        return sha

    def _put_blob_locked(self, sha: str, data: bytes, mime: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, mime, size, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (sha, mime, len(data), sqlite3.Binary(data), _now()),
        )

    def get_blob(self, sha: str) -> bytes:
        rows = self._rows("SELECT data FROM blobs WHERE sha256 = ?", (sha,))
        if not rows:
            raise KeyError(f"blob {sha} is not in the project")
        return bytes(rows[0]["data"])

    def blob_count(self) -> int:
        return self._rows("SELECT count(*) AS n FROM blobs")[0]["n"]

    # ----------------------------------------------------------------- profiles

    def save_profile(self, profile: Profile) -> Profile:
        record = {
            "name": profile.name,
            "class_name": profile.class_name,
            "modality": profile.modality,
            "normal_standards": profile.normal_standards,
            "expected_defects": profile.expected_defects,
            "domain_preset": profile.domain_preset,
            "settings_json": json.dumps(profile.settings),
            "updated_at": _now(),
        }
        with self.transaction():
            if profile.id is None:
                record["created_at"] = record["updated_at"]
                profile.id = self.db["profiles"].insert(record).last_pk
                profile.created_at = record["created_at"]
            else:
                self.db["profiles"].update(profile.id, record)
        profile.updated_at = record["updated_at"]
        return profile

    @staticmethod
    def _profile_from_row(row: dict[str, Any]) -> Profile:
        return Profile(
            id=row["id"],
            name=row["name"],
            class_name=row["class_name"] or "",
            modality=row["modality"] or "image",
            normal_standards=row["normal_standards"] or "",
            expected_defects=row["expected_defects"] or "",
            domain_preset=row["domain_preset"] or "industrial",
            settings=json.loads(row["settings_json"] or "{}"),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def profiles(self) -> list[Profile]:
        return [self._profile_from_row(r) for r in self._rows("SELECT * FROM profiles ORDER BY name, id")]

    def profile(self, profile_id: int) -> Profile:
        rows = self._rows("SELECT * FROM profiles WHERE id = ?", (profile_id,))
        if not rows:
            raise KeyError(f"profile {profile_id} does not exist")
        return self._profile_from_row(rows[0])

    def delete_profile(self, profile_id: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM reference_images WHERE profile_id = ?", (profile_id,))
            self.conn.execute("UPDATE cases SET profile_id = NULL WHERE profile_id = ?", (profile_id,))
            self.conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))

    def add_reference(
        self, profile_id: int, name: str, png: bytes, width: int, height: int, source: str | None = None
    ) -> ReferenceImage:
        sha = sha256_bytes(png)
        with self.transaction():
            self._put_blob_locked(sha, png, "image/png")
            existing = self.conn.execute(
                "SELECT id FROM reference_images WHERE profile_id = ? AND blob_sha256 = ?", (profile_id, sha)
            ).fetchone()
            if existing:
                ref_id = existing[0]
            else:
                ref_id = (
                    self.db["reference_images"]
                    .insert(
                        {
                            "profile_id": profile_id,
                            "name": name,
                            "blob_sha256": sha,
                            "width": width,
                            "height": height,
                            "created_at": _now(),
                            "source": source,
                        }
                    )
                    .last_pk
                )
        return ReferenceImage(
            profile_id=profile_id, name=name, blob_sha256=sha, width=width, height=height, id=ref_id, source=source
        )

    def references(self, profile_id: int) -> list[ReferenceImage]:
        rows = self._rows("SELECT * FROM reference_images WHERE profile_id = ? ORDER BY id", (profile_id,))
        return [
            ReferenceImage(
                profile_id=r["profile_id"],
                name=r["name"],
                blob_sha256=r["blob_sha256"],
                width=r["width"],
                height=r["height"],
                id=r["id"],
                source=r.get("source"),
            )
            for r in rows
        ]

    def remove_reference(self, reference_id: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM reference_images WHERE id = ?", (reference_id,))

    # ----------------------------------------------------------------- cases

    def add_case(self, case: Case, source_bytes: bytes | None = None) -> Case:
        """Store a case; its source bytes are embedded when given and small enough."""
        with self.transaction():
            if source_bytes is not None and len(source_bytes) <= EMBED_LIMIT_BYTES:
                case.blob_sha256 = case.source_sha256
                self._put_blob_locked(case.source_sha256, source_bytes, "application/octet-stream")
            case.created_at = _now()
            case.id = self.db["cases"].insert(self._case_record(case)).last_pk
            self.conn.execute("UPDATE cases SET sort_key = id WHERE id = ?", (case.id,))
        return case

    @staticmethod
    def _case_record(case: Case) -> dict[str, Any]:
        return {
            "name": case.name,
            "modality": case.modality,
            "source_path": case.source_path,
            "source_sha256": case.source_sha256,
            "blob_sha256": case.blob_sha256,
            "metadata_json": json.dumps(case.metadata, default=str),
            "ground_truth": case.ground_truth,
            "profile_id": case.profile_id,
            "status": CaseStatus(case.status).value,
            "error": case.error,
            "score": case.score,
            "created_at": case.created_at,
        }

    @staticmethod
    def _case_from_row(row: dict[str, Any]) -> Case:
        return Case(
            id=row["id"],
            name=row["name"],
            modality=row["modality"],
            source_path=row["source_path"],
            source_sha256=row["source_sha256"],
            blob_sha256=row["blob_sha256"],
            metadata=json.loads(row["metadata_json"] or "{}"),
            ground_truth=row["ground_truth"],
            profile_id=row["profile_id"],
            status=CaseStatus(row["status"]),
            error=row["error"],
            score=row["score"],
            created_at=row["created_at"],
        )

    def cases(self) -> list[Case]:
        return [self._case_from_row(r) for r in self._rows("SELECT * FROM cases ORDER BY sort_key, id")]

    def case(self, case_id: int) -> Case:
        rows = self._rows("SELECT * FROM cases WHERE id = ?", (case_id,))
        if not rows:
            raise KeyError(f"case {case_id} does not exist")
        return self._case_from_row(rows[0])

    def find_case_by_hash(self, source_sha256: str) -> Case | None:
        rows = self._rows("SELECT * FROM cases WHERE source_sha256 = ? ORDER BY id LIMIT 1", (source_sha256,))
        return self._case_from_row(rows[0]) if rows else None

    def update_case(self, case_id: int, **fields: Any) -> None:
        allowed = {"status", "error", "score", "profile_id", "ground_truth", "name"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update case fields {sorted(unknown)}")
        if "status" in fields:
            fields["status"] = CaseStatus(fields["status"]).value
        with self.transaction():
            self.db["cases"].update(case_id, fields)

    def delete_case(self, case_id: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM decisions WHERE case_id = ?", (case_id,))
            self.conn.execute("DELETE FROM verdicts WHERE case_id = ?", (case_id,))
            self.conn.execute("DELETE FROM answers WHERE case_id = ?", (case_id,))
            self.conn.execute("DELETE FROM cases WHERE id = ?", (case_id,))

    def case_source_bytes(self, case: Case) -> bytes:
        """The case's source: embedded copy first (survives a moved file), else the original path."""
        if case.blob_sha256:
            return self.get_blob(case.blob_sha256)
        try:
            return Path(case.source_path).read_bytes()
        except OSError as exc:
            raise StoreError(
                f"The source of case {case.name!r} is not embedded and {case.source_path} cannot be "
                f"read ({exc.strerror or exc})."
            ) from exc

    # ----------------------------------------------------------------- prompts and answers

    def save_prompt(
        self,
        sha256: str,
        system_text: str,
        user_text: str,
        record: dict[str, Any],
        images: list[tuple[str, str, bytes]],
    ) -> int:
        """Store a prompt exactly as sent (once per hash); images are (role, label, png bytes)."""
        with self.transaction():
            row = self.conn.execute("SELECT id FROM prompts WHERE sha256 = ?", (sha256,)).fetchone()
            if row:
                return row[0]
            prompt_id = (
                self.db["prompts"]
                .insert(
                    {
                        "sha256": sha256,
                        "system_text": system_text,
                        "user_text": user_text,
                        "record_json": json.dumps(record, default=str),
                        "created_at": _now(),
                    }
                )
                .last_pk
            )
            for position, (role, label, png) in enumerate(images):
                sha = sha256_bytes(png)
                self._put_blob_locked(sha, png, "image/png")
                self.db["prompt_images"].insert(
                    {
                        "prompt_id": prompt_id,
                        "position": position,
                        "role": role,
                        "label": label,
                        "blob_sha256": sha,
                    }
                )
        return prompt_id

    def prompt(self, prompt_id: int) -> PromptRecord:
        rows = self._rows("SELECT * FROM prompts WHERE id = ?", (prompt_id,))
        if not rows:
            raise KeyError(f"prompt {prompt_id} does not exist")
        images = self._rows(
            "SELECT role, label, blob_sha256 FROM prompt_images WHERE prompt_id = ? ORDER BY position",
            (prompt_id,),
        )
        return PromptRecord.from_row(rows[0], images)

    def save_answer(
        self,
        case_id: int,
        prompt_id: int | None,
        *,
        endpoint: str,
        model: str,
        params: dict[str, Any],
        raw_text: str,
        response: dict[str, Any] | None,
        status: str,
        error: str | None = None,
        latency_s: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> int:
        with self.transaction():
            return (
                self.db["answers"]
                .insert(
                    {
                        "case_id": case_id,
                        "prompt_id": prompt_id,
                        "endpoint": endpoint,
                        "model": model,
                        "params_json": json.dumps(params, default=str),
                        "raw_text": raw_text,
                        "response_json": json.dumps(response, default=str) if response is not None else None,
                        "status": status,
                        "error": error,
                        "latency_s": latency_s,
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "created_at": _now(),
                    }
                )
                .last_pk
            )

    def answers(self, case_id: int) -> list[AnswerRecord]:
        return [
            AnswerRecord.from_row(r)
            for r in self._rows("SELECT * FROM answers WHERE case_id = ? ORDER BY id", (case_id,))
        ]

    def all_answers(self) -> list[AnswerRecord]:
        """Every stored answer of the project, oldest first (the egress log is built from them)."""
        return [AnswerRecord.from_row(r) for r in self._rows("SELECT * FROM answers ORDER BY id")]

    def extraction_of(self, answer_id: int) -> AnswerRecord | None:
        """The stored extraction turn that followed an answer (`inspector.vlm.extraction`), or None."""
        rows = self._rows(
            "SELECT * FROM answers WHERE status = 'extraction' AND raw_text != '' "
            "AND json_extract(params_json, '$.extraction_of') = ? ORDER BY id DESC LIMIT 1",
            (answer_id,),
        )
        return AnswerRecord.from_row(rows[0]) if rows else None

    # ----------------------------------------------------------------- verdicts and decisions

    def save_verdict(self, verdict: Verdict, heatmap_png: bytes | None = None) -> Verdict:
        """Store a verdict and update the case's status and score in the same transaction."""
        with self.transaction():
            if heatmap_png is not None:
                verdict.heatmap_sha256 = sha256_bytes(heatmap_png)
                self._put_blob_locked(verdict.heatmap_sha256, heatmap_png, "image/png")
            verdict.created_at = _now()
            verdict.id = (
                self.db["verdicts"]
                .insert(
                    {
                        "case_id": verdict.case_id,
                        "answer_id": verdict.answer_id,
                        "prompt_id": verdict.prompt_id,
                        "source": VerdictSource(verdict.source).value,
                        "anomalous": None if verdict.anomalous is None else int(verdict.anomalous),
                        "score": verdict.score,
                        "score_source": ScoreSource(verdict.score_source).value,
                        "explanation": verdict.explanation,
                        "parse_status": ParseStatus(verdict.parse_status).value,
                        "model": verdict.model,
                        "regions_json": json.dumps([r.to_dict() for r in verdict.regions], default=_json_default),
                        "heatmap_sha256": verdict.heatmap_sha256,
                        "raw_answer": verdict.raw_answer,
                        "error": verdict.error,
                        "created_at": verdict.created_at,
                        "details_json": json.dumps(verdict.details, default=_json_default),
                    }
                )
                .last_pk
            )
            decided = self.conn.execute(
                "SELECT 1 FROM decisions WHERE case_id = ? LIMIT 1", (verdict.case_id,)
            ).fetchone()
            updates: dict[str, Any] = {"score": verdict.score, "error": verdict.error}
            if not decided:
                updates["status"] = _status_for(verdict).value
            self.db["cases"].update(verdict.case_id, updates)
        return verdict

    @staticmethod
    def _verdict_from_row(row: dict[str, Any]) -> Verdict:
        return Verdict(
            id=row["id"],
            case_id=row["case_id"],
            answer_id=row["answer_id"],
            prompt_id=row["prompt_id"],
            source=VerdictSource(row["source"]),
            anomalous=None if row["anomalous"] is None else bool(row["anomalous"]),
            score=row["score"],
            score_source=ScoreSource(row["score_source"]),
            explanation=row["explanation"] or "",
            parse_status=ParseStatus(row["parse_status"]),
            model=row["model"] or "",
            regions=[Region.from_dict(d) for d in json.loads(row["regions_json"] or "[]")],
            heatmap_sha256=row["heatmap_sha256"],
            raw_answer=row["raw_answer"] or "",
            error=row["error"],
            created_at=row["created_at"],
            details=json.loads(row.get("details_json") or "{}"),
        )

    def verdicts(self, case_id: int) -> list[Verdict]:
        rows = self._rows("SELECT * FROM verdicts WHERE case_id = ? ORDER BY id", (case_id,))
        return [self._verdict_from_row(r) for r in rows]

    def latest_verdict(self, case_id: int) -> Verdict | None:
        rows = self._rows("SELECT * FROM verdicts WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,))
        return self._verdict_from_row(rows[0]) if rows else None

    def record_decision(self, decision: Decision) -> Decision:
        """The operator's decision is ground truth: it sets the case status from now on."""
        if decision.label not in ("normal", "anomalous"):
            raise ValueError(f"decision must be 'normal' or 'anomalous', not {decision.label!r}")
        with self.transaction():
            decision.created_at = _now()
            decision.id = (
                self.db["decisions"]
                .insert(
                    {
                        "case_id": decision.case_id,
                        "verdict_id": decision.verdict_id,
                        "label": decision.label,
                        "note": decision.note,
                        "created_at": decision.created_at,
                    }
                )
                .last_pk
            )
            self.db["cases"].update(decision.case_id, {"status": decision.label})
        return decision

    def latest_decision(self, case_id: int) -> Decision | None:
        rows = self._rows("SELECT * FROM decisions WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,))
        if not rows:
            return None
        r = rows[0]
        return Decision(
            case_id=r["case_id"],
            label=r["label"],
            verdict_id=r["verdict_id"],
            note=r["note"] or "",
            id=r["id"],
            created_at=r["created_at"],
        )

    def decided_case_ids(self) -> set[int]:
        return {r["case_id"] for r in self._rows("SELECT DISTINCT case_id FROM decisions")}

    def counts(self) -> dict[str, int]:
        """How many cases per status, for the status bar."""
        rows = self._rows("SELECT status, count(*) AS n FROM cases GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    # ----------------------------------------------------------------- batches and response cache

    def create_batch(self, case_ids: list[int], endpoint: dict[str, Any], limits: dict[str, Any]) -> int:
        """Record a batch and its items (all pending), so it can be resumed after the app closes."""
        now = _now()
        with self.transaction():
            batch_id = (
                self.db["batches"]
                .insert(
                    {
                        "created_at": now,
                        "updated_at": now,
                        "status": "pending",
                        "endpoint_json": json.dumps(endpoint, default=str),
                        "limits_json": json.dumps(limits, default=str),
                        "message": None,
                    }
                )
                .last_pk
            )
            self.db["batch_items"].insert_all(
                {
                    "batch_id": batch_id,
                    "position": i,
                    "case_id": case_id,
                    "state": "pending",
                    "attempts": 0,
                    "updated_at": now,
                }
                for i, case_id in enumerate(case_ids)
            )
        return batch_id

    # One batch at a time per project, across processes: the window and any `main.py --batch` hold a
    # lease (a row in ``meta``) while they run, renewed as they go; a lease not renewed for
    # `stale_after_s` belongs to a process that died and is taken over.
    _LEASE_KEY = "batch_lease"

    def acquire_batch_lease(self, owner: str, info: dict[str, Any], stale_after_s: float = 120.0) -> dict | None:
        """Take the project's batch lease for `owner` (with `info`: who holds it, for the message a
        second process gets); returns None, or the live lease of another owner (``{"owner", "since",
        "renewed", **info}``), in which case nothing changes."""
        now = time.time()
        with self.transaction():
            rows = self.conn.execute("SELECT value FROM meta WHERE key = ?", (self._LEASE_KEY,)).fetchall()
            held = json.loads(rows[0][0]) if rows else None
            if held and held.get("owner") != owner and now - float(held.get("renewed", 0)) < stale_after_s:
                return held
            lease = {**info, "owner": owner, "since": now, "renewed": now}
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (self._LEASE_KEY, json.dumps(lease))
            )
        return None

    def renew_batch_lease(self, owner: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE meta SET value = json_set(value, '$.renewed', ?) WHERE key = ? "
                "AND json_extract(value, '$.owner') = ?",
                (time.time(), self._LEASE_KEY, owner),
            )

    def release_batch_lease(self, owner: str) -> None:
        with self.transaction():
            self.conn.execute(
                "DELETE FROM meta WHERE key = ? AND json_extract(value, '$.owner') = ?", (self._LEASE_KEY, owner)
            )

    def batch(self, batch_id: int) -> BatchRecord:
        rows = self._rows("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            raise StoreError(f"Batch {batch_id} is not in this project.")
        return BatchRecord.from_row(rows[0])

    def batch_items(self, batch_id: int) -> list[BatchItemRecord]:
        rows = self._rows("SELECT * FROM batch_items WHERE batch_id = ? ORDER BY position", (batch_id,))
        return [BatchItemRecord.from_row(r) for r in rows]

    def unfinished_batches(self) -> list[int]:
        """Ids of batches with pending items (cancelled, or interrupted by closing the app)."""
        rows = self._rows("SELECT DISTINCT batch_id FROM batch_items WHERE state = 'pending' ORDER BY batch_id")
        return [r["batch_id"] for r in rows]

    def update_batch(self, batch_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db["batches"].update(batch_id, {**fields, "updated_at": _now()})

    def finish_batch_item(
        self,
        batch_id: int,
        position: int,
        fields: dict[str, Any],
        cache_key: str | None = None,
        answer_id: int | None = None,
    ) -> None:
        """Record an item's outcome and (for a fresh answer) its cache entry in one transaction.

        Plain SQL, not sqlite_utils: this runs once per case of a batch on the event loop, and
        sqlite_utils re-reads the table's columns on every update."""
        fields = {**fields, "updated_at": _now()}
        columns = [c for c in fields if c in _BATCH_ITEM_COLUMNS]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self.transaction():
            self.conn.execute(
                f"UPDATE batch_items SET {assignments} WHERE batch_id = ? AND position = ?",
                (*[fields[c] for c in columns], batch_id, position),
            )
            if cache_key is not None and answer_id is not None:
                self.conn.execute(
                    "INSERT OR REPLACE INTO response_cache (key, answer_id, created_at) VALUES (?, ?, ?)",
                    (cache_key, answer_id, _now()),
                )

    def cached_answer(self, key: str) -> AnswerRecord | None:
        """The stored successful answer for a request key, or None (errors are never cached)."""
        rows = self._rows(
            "SELECT a.* FROM response_cache c JOIN answers a ON a.id = c.answer_id "
            "WHERE c.key = ? AND a.raw_text != ''",
            (key,),
        )
        return AnswerRecord.from_row(rows[0]) if rows else None

    def set_answer_status(self, answer_id: int, status: str) -> None:
        """Mark an answer, e.g. "cached": taken from the response cache, no request was sent."""
        with self.transaction():
            self.conn.execute("UPDATE answers SET status = ? WHERE id = ?", (status, answer_id))


_BATCH_ITEM_COLUMNS = frozenset(
    {"state", "error", "verdict_id", "model", "prompt_tokens", "completion_tokens", "attempts", "updated_at"}
)


def _status_for(verdict: Verdict) -> CaseStatus:
    if verdict.error:
        return CaseStatus.ERROR
    if verdict.anomalous is None:
        return CaseStatus.UNDECIDED
    return CaseStatus.ANOMALOUS if verdict.anomalous else CaseStatus.NORMAL
