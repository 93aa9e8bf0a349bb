"""Every answer names the aijobs that made it: the version is the project's."""

from __future__ import annotations

import tomllib
from pathlib import Path

from aijobs import __version__


def test_the_version_every_answer_names_is_the_projects() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert __version__ == project["project"]["version"]
