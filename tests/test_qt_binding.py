"""Guards the Qt binding against a refcount bug that crashes the workstation after hours of use.

PySide6 6.12.0 on CPython 3.11 releases one reference to None each time Qt calls a Python slot;
after a few thousand signals (mouse moves, timers) None is deallocated and the process aborts.
This test fails on such a binding instead of letting an operator find it on the shop floor.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, QTimer, Signal

pytestmark = pytest.mark.gui  # needs Qt


class _Emitter(QObject):
    fired = Signal(int)


def test_python_slots_do_not_leak_references_to_none(qapp):
    calls = []
    before = sys.getrefcount(None)
    emitter = _Emitter()
    emitter.fired.connect(lambda value: calls.append(value))
    for value in range(3000):
        emitter.fired.emit(value)
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: calls.append(-1))
    timer.start()
    for _ in range(1000):
        qapp.processEvents()
    timer.stop()
    assert len(calls) >= 3500
    assert sys.getrefcount(None) >= before - 50
