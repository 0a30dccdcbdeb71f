"""What the published metadata says: a license in the wheel, classifiers, no dev pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_license_file_ships() -> None:
    """LICENSE exists and is declared, so the wheel carries it."""
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]


def test_classifiers_say_status_versions_and_topic() -> None:
    """Development Status, the Python versions and a Topic are declared."""
    classifiers = PROJECT["classifiers"]
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert PROJECT["authors"]


def test_extras_are_for_users_only() -> None:
    """No extra pins tool versions: those live in dependency groups, not in the metadata."""
    extras = PROJECT["optional-dependencies"]
    assert set(extras) <= {"crypto", "metrics", "sim", "cli", "redis"}
    pinned = [req for reqs in extras.values() for req in reqs if "==" in req]
    assert pinned == []
