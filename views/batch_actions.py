"""Batch inspection, A/B comparison and the evaluation, as the main window starts them.

The use cases themselves are `inspector.session.InspectionSession`'s (as for
``main.py --batch``); this part runs them off the GUI thread and shows their progress.

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

from inspector.session import InspectionSession, RunSettings
from inspector.vlm.batch import BatchProgress
from views.window_base import WindowBase
from views.workers import Job


class BatchActions(WindowBase):
    """Inspect selected / pending cases, A/B comparison, evaluation dashboard."""

    def inspect_selected(self) -> None:
        """Inspect the selected cases (or, with one or none selected, finish the interrupted batches and
        every case not inspected yet) in the background: with the VLM (concurrent, rate-limited,
        retried, cached, resumable) or offline. The use case is `InspectionSession`'s, as for
        ``main.py --batch``."""
        if self.service is None or self.store is None or self._batch_job is not None:
            return
        session = self._session()
        selected = self.case_browser.selected_case_ids()
        explicit = len(selected) > 1
        ids = selected if explicit else session.pending_case_ids()
        default = session.default_profile(self.current_profile())
        if not ids and (explicit or not self.store.unfinished_batches()):
            self.notify("Nothing to inspect: select cases, or add cases that are not inspected yet.", "info")
            return
        if default is None:
            self.notify("Create a profile first (Profile ▸ New profile): it says what normal means.", "warning")
            return

        if session.settings.endpoint.configured:
            if not self.key_destination_allowed(session.settings.endpoint):
                return

            async def work(job: Job) -> BatchProgress:
                report = self._batch_reporter(job)
                if explicit:
                    return await session.inspect_cases(ids, default, report, job.is_cancelled)
                results = await session.inspect_pending(default, None, report, job.is_cancelled)
                return results[-1] if results else BatchProgress(batch_id=0, total=0, status="done")

            self._batch_job = self._run("Batch inspection", work, self._batch_done, self._batch_failed, blocking=False)
        else:

            def offline(job: Job) -> BatchProgress:
                return session.inspect_offline(ids, default, self._batch_reporter(job), job.is_cancelled)

            self._batch_job = self._run("Batch inspection (offline)", offline, self._batch_done, self._batch_failed)
        self.batch_panel.show_progress(BatchProgress(batch_id=0, total=len(ids), cost=None))
        self._update_enabled()

    def ab_comparison(self, variants=None) -> None:
        """Run variant A, then B, on the selected cases (or all), then show the evaluation by variant and
        model. `variants` skips the dialog (tests, scripts)."""
        from views.ab_dialog import ABDialog

        if self.service is None or self.store is None or self._batch_job is not None:
            return
        session = self._session()
        endpoint = session.settings.endpoint
        if not endpoint.configured:
            self.notify("An A/B comparison asks the VLM: set an endpoint first (Settings ▸ VLM endpoint).", "warning")
            return
        selected = self.case_browser.selected_case_ids()
        ids = selected if len(selected) > 1 else [c.id for c in self.store.cases() if c.id is not None]
        if variants is None:
            dialog = ABDialog(endpoint.model, self.prompt_panel.switches(), len(ids), self)
            if dialog.exec() != ABDialog.DialogCode.Accepted:
                return
            variants = dialog.variants()
        default = session.default_profile(self.current_profile())
        if default is None or not ids:
            self.notify("An A/B comparison needs a profile and cases.", "warning")
            return
        if not self.key_destination_allowed(endpoint):
            return

        async def work(job: Job) -> BatchProgress:
            return await session.ab_comparison(ids, variants, default, self._batch_reporter(job), job.is_cancelled)

        def done(progress: BatchProgress) -> None:
            self._batch_done(progress)
            if progress.status == "done":
                self.show_evaluation(grouping="prompt variant × model")

        self._batch_job = self._run("A/B comparison", work, done, self._batch_failed, blocking=False)
        self.batch_panel.show_progress(BatchProgress(batch_id=0, total=len(ids), cost=None))
        self._update_enabled()

    def _session(self) -> InspectionSession:
        """The use cases over the open project, with the settings as they are now (read once per run;
        a section of the settings file that cannot be read is said, and its defaults used)."""
        run_settings = RunSettings.from_settings(self.app_settings)
        for warning in run_settings.warnings:
            self.notify(warning, "warning")
        assert self.service is not None
        return InspectionSession(self.service, run_settings)

    def _batch_reporter(self, job: Job):
        """Called in the worker: keep the latest snapshot; the signal carries only the job id."""

        def report(progress: BatchProgress) -> None:
            with self._batch_lock:
                self._batch_progress = progress
            job.report((progress.done + progress.failed) / max(1, progress.total))

        return report

    def cancel_batch(self) -> None:
        if self._batch_job is not None:
            self._batch_job.cancel()

    def _batch_done(self, progress: BatchProgress) -> None:
        self._batch_job = None
        self.batch_panel.show_progress(progress)
        self.refresh_cases()
        if progress.message:
            self.notify(progress.message)
        self._update_enabled()
        self.batch_finished.emit(progress.batch_id)

    def _batch_failed(self, message: str) -> None:
        self._batch_job = None
        self.notify(message)
        self.refresh_cases()
        self._update_enabled()
        self.batch_finished.emit(-1)

    def show_evaluation(self, grouping: str | None = None) -> None:
        """Compute the metrics off the GUI thread, then show the dashboard (non-modal)."""
        from inspector.evaluation import evaluate

        store = self.store
        if store is None:
            self.notify("Open a project first.", "warning")
            return

        def done(results) -> None:
            from views.evaluation_dialog import EvaluationDialog

            if not results["overall"]:
                self.notify(
                    "Nothing to evaluate yet: decide some cases (N / A) after inspecting them, or import "
                    "labelled cases.",
                    "info",
                )
            self.evaluation_dialog = EvaluationDialog(results, self)
            if grouping:
                self.evaluation_dialog.grouping.setCurrentText(grouping)
            self.evaluation_dialog.show()
            self.evaluation_shown.emit()

        self._run("Evaluating", lambda job: evaluate(store), done, self.notify)
