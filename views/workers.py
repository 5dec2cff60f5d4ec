"""Background work for the GUI: one QThread running an asyncio loop, jobs with progress and cancel.

Why asyncio in a QThread: a VLM request is network I/O, and cancelling an in-flight request means
cancelling its asyncio task (the `openai` SDK's async client then aborts the HTTP exchange at
once), which a plain blocking call in a thread cannot do. CPU-bound work (the offline detector,
decoding) runs in the loop's thread pool and checks a cancel flag between steps.

Results come back through Qt signals, which Qt queues onto the GUI thread, so slots may touch
widgets freely. The GUI thread never waits on a job. Signals carry only the job id (and numbers);
the result or exception itself is handed over through a locked dictionary and taken with
`take_outcome`, so no Python object is marshalled through Qt's queued connections across threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

log = logging.getLogger(__name__)


class Job:
    """Handle to one background job; `cancel()` is safe from any thread and idempotent."""

    def __init__(self, job_id: int, title: str, runner: AsyncRunner):
        self.id = job_id
        self.title = title
        self._runner = runner
        self._cancel_event = threading.Event()
        self.task: asyncio.Task | None = None

    def is_cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def cancel(self) -> None:
        self._cancel_event.set()
        loop = self._runner.loop
        if loop is not None and self.task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.task.cancel)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def report(self, fraction: float, message: str = "") -> None:
        """Called from the job (any thread) to show progress in the GUI."""
        self._runner.progress.emit(self.id, float(fraction), message)


class AsyncRunner(QThread):
    """Runs coroutines and blocking callables off the GUI thread."""

    started_job = Signal(int, str)
    progress = Signal(int, float, str)
    finished_job = Signal(int)
    failed_job = Signal(int)
    cancelled_job = Signal(int)

    def __init__(self, parent: QObject | None = None, max_workers: int = 2):
        super().__init__(parent)
        self.setObjectName("anomalens-worker")
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._outcomes: dict[int, Any] = {}
        self._outcome_lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="anomalens-cpu"
        )

    def run(self) -> None:  # QThread entry point
        loop = asyncio.new_event_loop()
        loop.set_default_executor(self._executor)
        asyncio.set_event_loop(loop)
        self.loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait(10)

    def submit(self, title: str, coroutine_factory: Callable[[Job], Awaitable[Any]]) -> Job:
        """Schedule `coroutine_factory(job)` on the worker loop; results arrive as signals."""
        if self.loop is None:
            self.start_and_wait()
        job = Job(next(self._ids), title, self)
        self._jobs[job.id] = job

        def schedule() -> None:
            if job.is_cancelled():  # cancelled before it could start: still say so, once
                self._jobs.pop(job.id, None)
                self.cancelled_job.emit(job.id)
                return
            job.task = self.loop.create_task(self._run_job(job, coroutine_factory))
            job.task.add_done_callback(lambda _task: self._never_started(job))

        self.loop.call_soon_threadsafe(schedule)
        return job

    def submit_blocking(self, title: str, function: Callable[[Job], Any]) -> Job:
        """Run a blocking callable in the pool; it should poll `job.is_cancelled()`."""

        async def in_executor(job: Job) -> Any:
            return await asyncio.get_running_loop().run_in_executor(None, function, job)

        return self.submit(title, in_executor)

    async def _run_job(self, job: Job, factory: Callable[[Job], Awaitable[Any]]) -> None:
        self.started_job.emit(job.id, job.title)
        try:
            result = await factory(job)
        except asyncio.CancelledError:
            self.cancelled_job.emit(job.id)
        except Exception as exc:
            if job.is_cancelled():
                self.cancelled_job.emit(job.id)
            else:
                log.debug("job %s failed", job.title, exc_info=True)
                self._put_outcome(job.id, exc)
                self.failed_job.emit(job.id)
        else:
            if job.is_cancelled():
                self.cancelled_job.emit(job.id)
            else:
                self._put_outcome(job.id, result)
                self.finished_job.emit(job.id)
        finally:
            self._jobs.pop(job.id, None)

    def _never_started(self, job: Job) -> None:
        """A task cancelled before its first step never runs `_run_job`'s body (no signal, no
        clean-up); its done callback finishes the job instead."""
        if self._jobs.pop(job.id, None) is not None:
            self.cancelled_job.emit(job.id)

    def _put_outcome(self, job_id: int, outcome: Any) -> None:
        with self._outcome_lock:
            self._outcomes[job_id] = outcome

    def take_outcome(self, job_id: int) -> Any:
        """The result (or exception) of a finished job; each outcome is taken once."""
        with self._outcome_lock:
            return self._outcomes.pop(job_id, None)

    def active_jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Cancel everything and stop the loop (on window close)."""
        for job in list(self._jobs.values()):
            job.cancel()
        self._jobs.clear()
        if self.loop is not None and not self.loop.is_closed() and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.wait(timeout_ms)
        self._executor.shutdown(wait=False, cancel_futures=True)
