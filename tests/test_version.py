"""One version: ``inspector.__version__``; pyproject.toml (static, no build backend) must say the same.

The about dialog shows ``inspector.__version__``; pyinstaller.spec stamps the bundle with
pyproject's version. Nothing else may define a version of the workstation.
"""

from __future__ import annotations

import re
import tomllib

import inspector
from tests.conftest import ROOT


def test_pyproject_and_the_package_carry_the_same_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == inspector.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[.-]?(?:a|b|rc|dev|post)\d*)?", inspector.__version__)


def test_the_bundle_reads_its_version_from_pyproject():
    spec = (ROOT / "pyinstaller.spec").read_text(encoding="utf-8")
    assert re.search(r'^VERSION = tomllib\.loads\(.*"pyproject\.toml".*\["project"\]\["version"\]', spec, re.M)


def test_no_other_module_defines_a_version():
    sources = [
        ROOT / "main.py",
        *(p for d in ("inspector", "views", "plugins", "scripts", "benchmarks") for p in (ROOT / d).rglob("*.py")),
    ]
    defining = [
        p.relative_to(ROOT).as_posix()
        for p in sources
        if re.search(r"^\s*(__version__|VERSION|APP_VERSION)\s*=", p.read_text(encoding="utf-8"), re.M)
    ]
    assert defining == ["inspector/__init__.py"]


def test_the_changelog_has_a_section_for_what_comes_next_or_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog or f"## [{inspector.__version__}]" in changelog
