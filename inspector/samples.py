"""Demo samples: what a modality plugin contributes to the demo project.

A plugin's ``samples(folder)`` writes its demo files into `folder` (once; nothing is downloaded)
and describes the profiles that use them; `inspector.demo` builds the demo project from every
plugin's samples, so a third-party modality can be tried from the demo like the built-in ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inspector.model import Profile


@dataclass
class DemoSet:
    """One demo profile with its normal references and its cases (file -> ground truth)."""

    profile: Profile
    references: list[Path] = field(default_factory=list)
    cases: dict[Path, str | None] = field(default_factory=dict)  # ground truth, None when unknown
