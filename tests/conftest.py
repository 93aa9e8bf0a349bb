"""Fixtures shared by the integration and e2e suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aijobs.local.fake_model import create_fake_model
from aijobs.local.stack import UvicornThread, free_port


@pytest.fixture(scope="session")
def fake_model() -> Iterator[UvicornThread]:
    """The fake OpenAI-compatible model over real HTTP on 127.0.0.1; ``.url`` is its base URL."""
    server = UvicornThread(create_fake_model(), free_port())
    server.start()
    yield server
    server.stop()
