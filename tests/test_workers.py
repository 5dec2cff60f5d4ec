"""The background runner: results, failures and cancellation reach the GUI thread as signals."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from views.workers import AsyncRunner

pytestmark = pytest.mark.gui  # Qt signals and QThread


@pytest.fixture
def runner(qapp):
    runner = AsyncRunner()
    runner.start_and_wait()
    yield runner
    runner.shutdown()
    runner.shutdown()  # idempotent: closing a window twice must not raise


def test_result_arrives_on_the_gui_thread(qtbot, runner):
    seen = {}

    def work(job):
        seen["thread"] = threading.current_thread().name
        job.report(0.5, "half")
        return 42

    progress = []
    runner.progress.connect(lambda job_id, fraction, message: progress.append((fraction, message)))
    with qtbot.waitSignal(runner.finished_job, timeout=5000) as blocker:
        job = runner.submit_blocking("answer", work)
    assert blocker.args == [job.id]
    assert runner.take_outcome(job.id) == 42
    assert runner.take_outcome(job.id) is None  # taken once
    assert seen["thread"].startswith("anomalens-cpu")
    qtbot.waitUntil(lambda: progress == [(0.5, "half")], timeout=2000)


def test_failure_carries_the_exception(qtbot, runner):
    def work(job):
        raise ValueError("disk on fire")

    with qtbot.waitSignal(runner.failed_job, timeout=5000):
        job = runner.submit_blocking("fail", work)
    error = runner.take_outcome(job.id)
    assert isinstance(error, ValueError) and "disk on fire" in str(error)


def test_cancelling_an_awaiting_job_is_immediate(qtbot, runner):
    async def slow(job):
        await asyncio.sleep(30)

    job = runner.submit("slow", slow)
    qtbot.wait(100)
    with qtbot.waitSignal(runner.cancelled_job, timeout=2000):  # long before the 30-s sleep ends
        job.cancel()  # (how fast: benchmarks/timings.py)


def test_cancelling_a_blocking_job_sets_its_flag(qtbot, runner):
    stopped = threading.Event()

    def loop(job):
        while not job.is_cancelled():
            time.sleep(0.01)
        stopped.set()
        return "stopped"

    job = runner.submit_blocking("spin", loop)
    qtbot.wait(100)
    with qtbot.waitSignal(runner.cancelled_job, timeout=2000):
        job.cancel()
    assert stopped.wait(2)
    assert runner.take_outcome(job.id) is None  # a cancelled job delivers no result


def test_jobs_cancelled_before_they_start_are_finished_and_forgotten(qtbot, runner):
    """Esc right after Ctrl+Return, or fast case switching: every job must end with a signal."""
    ended: list[int] = []
    runner.cancelled_job.connect(ended.append)
    runner.finished_job.connect(ended.append)
    jobs = [runner.submit_blocking(f"job {i}", lambda job: time.sleep(0.05)) for i in range(50)]
    for job in jobs:
        job.cancel()
    qtbot.waitUntil(lambda: len(ended) == 50, timeout=10000)
    assert sorted(ended) == sorted(job.id for job in jobs)
    assert runner.active_jobs() == []
