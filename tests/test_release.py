"""One version (docs/install.md): pyproject.toml writes it, the installed package's metadata
carries it, `reconcile --version` reads it from there, and CHANGELOG.md has its section."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from helpers import cli

ROOT = Path(__file__).resolve().parents[1]


def pyproject_version() -> str:
    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    return found.group(1)


def test_reconcile_version_is_the_installed_packages() -> None:
    shown = cli("--version")
    assert shown.stdout == f"reconcile, version {importlib.metadata.version('spike-reconcile')}\n"
    assert shown.code == 0


def test_the_changelog_has_a_dated_section_for_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", changelog, re.M)
    assert headings[0] == ("Unreleased", "")
    released = {version: date for version, date in headings[1:]}
    assert released.get(pyproject_version()), "CHANGELOG.md: no '## [X.Y.Z] - DATE' for it"
    for version in released:  # each heading links to its tag, as Keep a Changelog does
        assert f"\n[{version}]: https://github.com/" in changelog
