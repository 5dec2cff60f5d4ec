"""The operator's review of the shown case: decisions, follow-up questions, and feedback into the
profile (a confirmed-normal case as a reference, a confirmed defect as an expected one).

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

from PySide6.QtCore import QTimer

from inspector.chat import ChatError, ChatTurn, ask_followup, conversation
from inspector.feedback import FeedbackError, add_expected_defect, changes_since, promote_to_reference
from inspector.model import Decision, Verdict
from inspector.store import StoreError
from views.window_base import WindowBase
from views.workers import Job


class ReviewActions(WindowBase):
    """Decisions, follow-up questions and profile feedback on the shown case."""

    def promote_current_case(self) -> None:
        """A confirmed-normal case becomes a reference of its profile (rendered off the GUI thread)."""
        profile, current, service = self.current_profile(), self._current, self.service
        if profile is None or current is None or service is None:
            return

        def work(job: Job) -> int:
            return promote_to_reference(service, current.case, profile)

        def done(count: int) -> None:
            self.notify(
                f"{current.case.name} is now a normal reference of {profile.name!r} ({count} image(s)); "
                "verdicts from before this change are marked as such.",
                "info",
            )
            self._recompose()

        self._run("Adding a reference", work, done, self.notify)

    def add_current_defect(self) -> None:
        """The operator describes a confirmed defect; it joins the profile's expected defects."""
        from PySide6.QtWidgets import QInputDialog

        profile, current = self.current_profile(), self._current
        if profile is None or current is None or self.service is None:
            return
        suggestion = current.verdict.explanation.split(". ")[0][:120] if current.verdict else ""
        text, ok = QInputDialog.getText(
            self, "Add an expected defect", f"Defect seen in {current.case.name} (one line):", text=suggestion
        )
        if not ok:
            return
        try:
            add_expected_defect(self.service, profile, text, current.case)
        except FeedbackError as exc:
            self.notify(str(exc), "warning")
            return
        self.notify(f"Added to the expected defects of {profile.name!r}: {text.strip()}", "info")
        self._recompose()

    def _show_profile_note(self, verdict: Verdict | None) -> None:
        profile = self.current_profile()
        later = changes_since(profile, verdict) if profile is not None and verdict is not None else []
        note = ""
        if later:
            note = f"Produced before {len(later)} later change(s) to the profile: " + "; ".join(
                f"{c.what} ({c.at[:16].replace('T', ' ')})" for c in later[-3:]
            )
        self.verdict_panel.set_profile_note(note)

    def _show_chat(self, verdict: Verdict | None, turns: list[ChatTurn]) -> None:
        chat = self.verdict_panel.chat
        chat.set_turns(turns)
        if verdict is None or verdict.prompt_id is None:
            chat.set_available(False, "Inspect the case with the VLM to ask follow-up questions.")
        elif not self.app_settings.endpoint.configured:
            chat.set_available(False, "Set a VLM endpoint to ask follow-up questions (Settings ▸ VLM endpoint).")
        else:
            chat.set_available(True)

    def ask_followup(self, question: str) -> None:
        """Ask the model about the shown verdict in the background; the turn is stored either way."""
        current = self._current
        if self.store is None or current is None or current.verdict is None:
            return
        store, case, verdict, endpoint = self.store, current.case, current.verdict, self.app_settings.endpoint
        if not self.key_destination_allowed(endpoint):
            return
        chat = self.verdict_panel.chat
        chat.set_busy(True, f"Asking {endpoint.model}…")

        async def ask(job: Job) -> tuple[list[ChatTurn], str]:
            problem = ""
            try:
                await ask_followup(store, case, verdict, question, endpoint)
            except ChatError as exc:  # failed requests are stored as turns; this says why
                problem = str(exc)
            return conversation(store, verdict), problem

        def done(result: tuple[list[ChatTurn], str]) -> None:
            turns, problem = result
            chat.set_busy(False, problem)
            if not problem:
                chat.question_sent()
            if (
                self._current is not None
                and self._current.verdict is not None
                and self._current.verdict.id == verdict.id
            ):
                self._current.turns = turns
                chat.set_turns(turns)
            self.followup_finished.emit(verdict.id)

        def failed(message: str) -> None:
            chat.set_busy(False, message)
            self.followup_finished.emit(-1)

        self._run("Asking a follow-up question", ask, done, failed, blocking=False)

    def record_decision(self, label: str) -> None:
        if self.store is None or self._current is None or self._current.case.id is None:
            return
        case_id = self._current.case.id
        verdict_id = self._current.verdict.id if self._current.verdict else None
        try:
            decision = self.store.record_decision(Decision(case_id=case_id, label=label, verdict_id=verdict_id))
        except StoreError as exc:
            self.notify(exc.user_message)
            return
        self._current.decision = decision
        self.verdict_panel.show_decision(decision)
        self._update_enabled()
        self._refresh_case_row(case_id)
        self.statusBar().showMessage(f"Recorded: {self._current.case.name} is {label}", 4000)
        QTimer.singleShot(0, self.case_browser.select_next)

    def _refresh_case_row(self, case_id: int) -> None:
        if self.store is None:
            return
        case = self.store.case(case_id)
        self.case_browser.update_case(case, self.store.latest_decision(case_id) is not None)
