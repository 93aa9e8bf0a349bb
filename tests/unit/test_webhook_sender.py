"""The webhook sender on an in-memory transport: pinned addresses, resolved-address checks, no redirects, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from pytest_socket import disable_socket, enable_socket

from aijobs.webhooks.guard import CallbackGuard
from aijobs.webhooks.sender import SendResult, WebhookSender


@pytest.fixture(autouse=True)
def _event_loop_allowed(_no_network: None) -> Iterator[None]:
    enable_socket()
    disable_socket(allow_unix_socket=True)  # asyncio's loop wakes itself through a Unix socket pair; no network
    yield


def _resolver(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


def _send(sender: WebhookSender, url: str) -> SendResult:
    return asyncio.run(sender.send(url, b'{"type":"job.completed"}', {"webhook-id": "msg_1"}))


def test_connects_to_the_checked_address_keeping_name_for_host_and_tls() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver("93.184.216.34"),
                           transport=httpx.MockTransport(receiver))
    result = _send(sender, "https://hooks.example.com:8443/in?x=1")
    assert result.ok and result.status_code == 204 and result.error is None
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["webhook-id"] == "msg_1" and request.content == b'{"type":"job.completed"}'


@pytest.mark.parametrize("addresses", [("127.0.0.1",), ("93.184.216.34", "10.0.0.7"), ("169.254.169.254",),
                                       ("::ffff:93.184.216.34",), ("fe80::1%eth0",)])
def test_a_name_resolving_to_any_forbidden_address_is_never_contacted(addresses: tuple[str, ...]) -> None:
    seen: list[httpx.Request] = []
    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver(*addresses),
                           transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)))
    result = _send(sender, "https://rebinding.example.com/")
    assert result.forbidden and result.error == "callback_url_forbidden" and result.status_code is None
    assert seen == []


def test_a_name_that_does_not_resolve_is_a_retryable_dns_error() -> None:
    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver(),
                           transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    result = _send(sender, "https://nowhere.example.com/")
    assert result.error == "dns_error" and not result.forbidden


def test_redirects_are_not_followed() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"})

    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver("93.184.216.34"),
                           transport=httpx.MockTransport(receiver))
    result = _send(sender, "https://hooks.example.com/")
    assert (result.status_code, result.error, len(seen)) == (302, "http_302", 1)


@pytest.mark.parametrize(("status", "header", "expected"), [(429, "120", 120), (503, "7", 7), (500, "120", None),
                                                            (429, "soon", None)])
def test_retry_after_is_read_on_429_and_503(status: int, header: str, expected: int | None) -> None:
    answer = httpx.Response(status, headers={"retry-after": header})
    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver("93.184.216.34"),
                           transport=httpx.MockTransport(lambda r: answer))
    assert _send(sender, "https://hooks.example.com/").retry_after == expected


def test_a_receiver_slower_than_the_timeout_is_a_timeout() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    sender = WebhookSender(guard=CallbackGuard(), timeout_s=0.2, resolver=_resolver("93.184.216.34"),
                           transport=httpx.MockTransport(slow))
    result = _send(sender, "https://hooks.example.com/")
    assert result.error == "timeout" and result.duration_ms < 2000


def test_a_refused_connection_is_a_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sender = WebhookSender(guard=CallbackGuard(), resolver=_resolver("93.184.216.34"),
                           transport=httpx.MockTransport(refuse))
    assert _send(sender, "https://hooks.example.com/").error == "connection_error"


# An IPv4 address inside IPv6, in every form (mapped, translated, compatible, NAT64 and its local-use prefix, 6to4,
# Teredo), holding loopback or the metadata address.
EMBEDDED = ["::ffff:127.0.0.1", "::ffff:0:127.0.0.1", "::ffff:0:169.254.169.254", "::127.0.0.1",
            "64:ff9b::7f00:1", "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe"]
GUARDS = {"deployed": CallbackGuard(), "private-allowed": CallbackGuard(allow_private=True, allow_http=True)}


@pytest.mark.parametrize("address", EMBEDDED)
@pytest.mark.parametrize("guard", GUARDS)
def test_at_send_an_ipv4_address_inside_ipv6_is_refused_written_or_resolved(guard: str, address: str) -> None:
    seen: list[httpx.Request] = []
    sender = WebhookSender(guard=GUARDS[guard], resolver=_resolver(address),
                           transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)))

    written = _send(sender, f"https://[{address}]/latest/meta-data/")
    resolved = _send(sender, "https://rebinding.example.com/")

    assert written.forbidden and resolved.forbidden and seen == []


@pytest.mark.parametrize("url", ["https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/", "https://0x7f.1/",
                                 "https://2130706433/", "https://127.1/", "https://127.0.0.1./"])
def test_at_send_an_odd_notation_of_loopback_is_refused_without_resolving_it(url: str) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34"]  # what a resolver that reads the text as a name might answer

    sender = WebhookSender(guard=CallbackGuard(), resolver=resolver,
                           transport=httpx.MockTransport(lambda r: httpx.Response(200)))

    assert _send(sender, url).forbidden and asked == []
