"""Unit tests are pure logic: any network access fails the test (an event loop's own socket pair is allowed)."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket(allow_unix_socket=True)  # an event loop wakes itself through a local socket pair
    yield
    enable_socket()
