"""Per-receiver slots: the cap on webhook attempts in flight to one receiver host, per process."""

from __future__ import annotations

import threading

import pytest

from aijobs.webhooks.slots import HostSlots, receiver_host


@pytest.mark.parametrize(("url", "host"), [
    ("https://Hooks.Example.com/a?b=1", "https://hooks.example.com:443"),
    ("https://hooks.example.com:443/other", "https://hooks.example.com:443"),
    ("https://hooks.example.com./a", "https://hooks.example.com:443"),
    ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080"),
    ("https://[2001:db8::1]/hook", "https://[2001:db8::1]:443"),
])
def test_a_receiver_host_is_its_scheme_name_and_port(url: str, host: str) -> None:
    assert receiver_host(url) == host


def test_the_attempts_over_the_cap_get_no_slot_until_one_is_given_back() -> None:
    slots = HostSlots(2)
    with (slots.take("https://a.example/1") as first, slots.take("https://a.example/2") as second,
          slots.take("https://a.example/3") as third, slots.take("https://b.example/") as other_host):
        assert (first, second, third, other_host) == (True, True, False, True)
        assert slots.in_flight("https://a.example/") == 2
    assert slots.in_flight("https://a.example/") == 0
    with slots.take("https://a.example/4") as again:
        assert again


def test_a_slot_is_given_back_when_its_attempt_raises() -> None:
    slots = HostSlots(1)
    with pytest.raises(RuntimeError), slots.take("https://a.example/") as taken:
        assert taken
        raise RuntimeError("the send failed")
    assert slots.in_flight("https://a.example/") == 0


def test_threads_never_hold_more_than_the_cap() -> None:
    slots = HostSlots(3)
    most, lock, start = [0], threading.Lock(), threading.Barrier(12)

    def attempt() -> None:
        start.wait()
        for _ in range(200):
            with slots.take("https://a.example/") as taken:
                if taken:
                    with lock:
                        most[0] = max(most[0], slots.in_flight("https://a.example/"))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert most[0] <= 3 and slots.in_flight("https://a.example/") == 0
