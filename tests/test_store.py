"""The project file: schema, migrations, round trips, deduplication, failures an operator meets."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
import sqlite_utils

from inspector.model import (
    Case,
    CaseStatus,
    Decision,
    ParseStatus,
    Profile,
    Region,
    ScoreSource,
    Verdict,
    VerdictSource,
)
from inspector.store import NotAProjectError, ProjectFullError, ProjectLockedError, ProjectStore, StoreError
from inspector.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION


def _case(name: str = "a.png", sha: str = "ab" * 32) -> Case:
    return Case(name=name, modality="image", source_path=f"/data/{name}", source_sha256=sha)


def test_new_project_has_current_schema_and_wal(tmp_path):
    path = tmp_path / "p.anomalens"
    with ProjectStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"profiles", "reference_images", "cases", "prompts", "answers", "verdicts", "decisions", "blobs"} <= set(
            store.db.table_names()
        )


def test_migrates_a_version_1_file_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.anomalens"
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    MIGRATIONS[0](db)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db["cases"].insert(
        {
            "name": "old.png",
            "modality": "image",
            "source_path": "/x/old.png",
            "source_sha256": "cd" * 32,
            "metadata_json": "{}",
            "status": "normal",
        }
    )
    conn.commit()
    conn.close()
    with ProjectStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        cases = store.cases()
        assert [c.name for c in cases] == ["old.png"]
        assert cases[0].status == CaseStatus.NORMAL
        assert "sort_key" in store.db["cases"].columns_dict


def test_refuses_a_file_from_a_newer_release(tmp_path):
    path = tmp_path / "new.anomalens"
    ProjectStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer Anomalens"):
        ProjectStore(path)


def test_refuses_foreign_sqlite_and_garbage_files(tmp_path):
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(NotAProjectError):
        ProjectStore(foreign)
    assert sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    garbage = tmp_path / "garbage.anomalens"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(NotAProjectError):
        ProjectStore(garbage)


def test_profile_references_and_blob_deduplication(tmp_path):
    with ProjectStore(tmp_path / "p.anomalens") as store:
        profile = store.save_profile(Profile(name="Disc", class_name="brake disc", normal_standards="smooth"))
        store.add_reference(profile.id, "r1.png", b"PNGDATA-1", 10, 10)
        store.add_reference(profile.id, "r1-again.png", b"PNGDATA-1", 10, 10)  # same bytes
        store.add_reference(profile.id, "r2.png", b"PNGDATA-2", 10, 10)
        assert len(store.references(profile.id)) == 2
        assert store.blob_count() == 2
        prompt_a = store.save_prompt(
            "h1", "sys", "text", {}, [("reference", "r1", b"PNGDATA-1"), ("query", "q", b"QUERY")]
        )
        prompt_b = store.save_prompt("h1", "sys", "text", {}, [("reference", "r1", b"PNGDATA-1")])
        assert prompt_a == prompt_b
        assert store.blob_count() == 3
        assert [i.role for i in store.prompt(prompt_a).images] == ["reference", "query"]
        profile.normal_standards = "smooth, no rust"
        store.save_profile(profile)
        assert store.profile(profile.id).normal_standards == "smooth, no rust"


def test_verdict_sets_status_and_decision_wins(tmp_path):
    with ProjectStore(tmp_path / "p.anomalens") as store:
        case = store.add_case(_case(), source_bytes=b"source")
        assert store.case_source_bytes(case) == b"source"
        verdict = store.save_verdict(
            Verdict(
                case_id=case.id,
                source=VerdictSource.VLM,
                anomalous=True,
                score=0.93,
                score_source=ScoreSource.LOGPROB,
                explanation="crack",
                regions=[Region(1, 2, 30, 40, 0.9, "crack")],
            )
        )
        assert store.case(case.id).status == CaseStatus.ANOMALOUS
        assert store.case(case.id).score == pytest.approx(0.93)
        store.record_decision(Decision(case_id=case.id, label="normal", verdict_id=verdict.id))
        assert store.case(case.id).status == CaseStatus.NORMAL
        # A later machine verdict does not overwrite the operator's ground truth.
        store.save_verdict(
            Verdict(
                case_id=case.id,
                source=VerdictSource.VLM,
                anomalous=True,
                score=0.99,
                score_source=ScoreSource.STATED_CONFIDENCE,
            )
        )
        assert store.case(case.id).status == CaseStatus.NORMAL
        latest = store.latest_verdict(case.id)
        assert latest.score == pytest.approx(0.99)
        first = store.verdicts(case.id)[0]
        assert first.regions[0].label == "crack" and first.regions[0].x1 == 30
        with pytest.raises(ValueError):
            store.record_decision(Decision(case_id=case.id, label="maybe"))


def test_unparsed_answer_is_stored_as_undecided(tmp_path):
    with ProjectStore(tmp_path / "p.anomalens") as store:
        case = store.add_case(_case())
        store.save_verdict(
            Verdict(
                case_id=case.id,
                source=VerdictSource.VLM,
                anomalous=None,
                score=None,
                score_source=ScoreSource.NONE,
                parse_status=ParseStatus.UNPARSED,
                raw_answer="I'm not sure what you mean",
            )
        )
        assert store.case(case.id).status == CaseStatus.UNDECIDED
        assert store.latest_verdict(case.id).parse_status == ParseStatus.UNPARSED


def test_locked_project_is_reported_not_crashed(tmp_path):
    path = tmp_path / "p.anomalens"
    ProjectStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ProjectLockedError, match="locked by another program"):
            ProjectStore(path, busy_timeout_ms=100)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_full_disk_is_reported_and_earlier_work_survives(tmp_path):
    path = tmp_path / "p.anomalens"
    with ProjectStore(path) as store:
        case = store.add_case(_case())
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the file may not grow: a full disk
        with pytest.raises(ProjectFullError, match="full"):
            store.put_blob(b"x" * 200_000)
    with ProjectStore(path) as store:
        assert [c.id for c in store.cases()] == [case.id]


def test_answer_survives_a_crash_right_after_it_arrived(tmp_path):
    """A process that dies without closing the project loses nothing it had stored."""
    path = tmp_path / "crash.anomalens"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(__import__("inspector").__path__[0] + "/..")!r})
        from inspector.store import ProjectStore
        from inspector.model import Case
        store = ProjectStore({str(path)!r})
        case = store.add_case(Case(name="c.png", modality="image", source_path="/c.png", source_sha256="ef" * 32))
        store.save_answer(case.id, None, endpoint="http://x", model="m", params={{}}, raw_text="Anomalous: crack",
                          response={{}}, status="ok")
        os._exit(9)  # crash: no close, no checkpoint
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    with ProjectStore(path) as store:
        case = store.cases()[0]
        assert store.answers(case.id)[0].raw_text == "Anomalous: crack"
