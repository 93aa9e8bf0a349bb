"""Fixtures shared by every suite: template.yaml, the fake model, a webhook receiver."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from aijobs.local.fake_model import create_fake_model
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import free_port
from aijobs.local.template import load_template
from tests.receiver import Receiver


@pytest.fixture(scope="session")
def template() -> Iterator[dict[str, Any]]:
    """template.yaml as the local stack reads it, parsed once. Read it only: a test that changes it works on a copy."""
    loaded = load_template()
    pristine = copy.deepcopy(loaded)
    yield loaded
    assert loaded == pristine, "a test changed the session's template fixture: change a copy.deepcopy(template)"


@pytest.fixture(scope="session")
def fake_model() -> Iterator[UvicornThread]:
    """The fake OpenAI-compatible model over real HTTP on 127.0.0.1; ``.url`` is its base URL."""
    server = UvicornThread(create_fake_model(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 with scripted answers; every request it got is in ``.received``."""
    server = Receiver().start()
    yield server
    server.stop()
