"""Endpoint settings: base URL, model, where the API key comes from, timeout.

The key itself is only ever read from an environment variable or stored in the OS keyring; it is
never written to the settings file or the project.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
)

from inspector.settings import EndpointSettings, host_is_within, resolve_api_key, store_api_key


class SettingsDialog(QDialog):
    def __init__(self, endpoint: EndpointSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("VLM endpoint")
        self.resize(520, 340)
        self.base_url = QLineEdit(endpoint.base_url)
        self.base_url.setPlaceholderText("empty = offline detector; e.g. http://localhost:8000/v1")
        self.model = QLineEdit(endpoint.model)
        self.model.setPlaceholderText("e.g. gpt-4o, Qwen2.5-VL-7B-Instruct, llava")
        self.key_env = QLineEdit(endpoint.api_key_env)
        self.key_env.setPlaceholderText("empty = no key from the environment")
        self.key_warning = QLabel("")
        self.key_warning.setObjectName("warning")
        self.key_warning.setWordWrap(True)
        self.base_url.textChanged.connect(self._check_key_destination)
        self.key_env.textChanged.connect(self._check_key_destination)
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("leave empty to keep the stored key; saved only in the OS keyring")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(endpoint.timeout_s)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 8192)
        self.max_tokens.setValue(endpoint.max_tokens)
        self.logprobs = QCheckBox("Ask for log-probabilities (ranking scores)")
        self.logprobs.setChecked(endpoint.request_logprobs)
        self.structured = QCheckBox("Ask for the verdict as JSON (structured output, where the server has it)")
        self.structured.setChecked(endpoint.structured_output)
        self.extraction = QCheckBox(
            "When an answer cannot be read, ask the model once more for its verdict "
            "(one extra request for such answers)"
        )
        self.extraction.setChecked(endpoint.extraction_turn)
        has_key = resolve_api_key(endpoint) is not None
        self.key_state = QLabel(
            "An API key is available."
            if has_key
            else "No API key found (fine for local vLLM / Ollama / LM Studio servers)."
        )
        self.key_state.setObjectName("muted")
        form = QFormLayout()
        form.addRow("Base URL", self.base_url)
        form.addRow("Model", self.model)
        form.addRow("Key environment variable", self.key_env)
        form.addRow("API key (keyring)", self.key)
        form.addRow("", self.key_state)
        form.addRow("", self.key_warning)
        form.addRow("Timeout", self.timeout)
        form.addRow("Max answer tokens", self.max_tokens)
        form.addRow("", self.logprobs)
        form.addRow("", self.structured)
        form.addRow("", self.extraction)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, LM Studio. "
                "Leave the base URL empty to inspect with the offline detector."
            )
        )
        layout.addLayout(form)
        layout.addWidget(buttons)

        self._check_key_destination()

    def _check_key_destination(self) -> None:
        """Warn before an OpenAI key from the environment is sent to some other server."""
        host = (urlsplit(self.base_url.text().strip()).hostname or "").lower()
        variable = self.key_env.text().strip()
        risky = (
            bool(host) and not host_is_within(host, "openai.com") and bool(variable) and bool(os.environ.get(variable))
        )
        self.key_warning.setText(
            f"The key in ${variable} will be sent to {host}. If this server needs no key, clear the "
            "variable name above."
            if risky
            else ""
        )

    def endpoint(self) -> EndpointSettings:
        return EndpointSettings(
            base_url=self.base_url.text().strip(),
            model=self.model.text().strip(),
            api_key_env=self.key_env.text().strip(),
            timeout_s=self.timeout.value(),
            max_tokens=self.max_tokens.value(),
            request_logprobs=self.logprobs.isChecked(),
            structured_output=self.structured.isChecked(),
            extraction_turn=self.extraction.isChecked(),
        )

    def accept(self) -> None:
        key = self.key.text()
        if key:
            try:
                store_api_key(self.base_url.text().strip(), key)
            except Exception as exc:  # noqa: BLE001 - keyring backends fail in many ways
                QMessageBox.warning(
                    self,
                    "Key not saved",
                    f"The OS keyring is not available ({type(exc).__name__}). Set the key "
                    f"in the environment variable {self.key_env.text() or 'OPENAI_API_KEY'} "
                    "instead.",
                )
                return
            finally:
                self.key.clear()
        super().accept()
