"""The webhook sender: checks the resolved addresses of a callback URL, then posts to the checked address.

The connection goes to the very address that passed the guard (the URL is rewritten to it; the Host header
and, for https, the TLS server name and certificate check keep the original name), so a name that changes
what it resolves to between check and connect is never followed. Redirects are not followed; at most
``MAX_RESPONSE_BYTES`` of a response are read.

Three bounds, so that a dead or slow receiver holds an attempt briefly: resolving the name, then connecting, get
``connect_timeout_s`` each; no byte from the receiver for ``read_timeout_s`` ends the attempt; and the whole exchange
ends at ``timeout_s`` whatever happens, even against a receiver that trickles its answer a byte at a time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

import httpx

from aijobs.errors import InvalidRequest
from aijobs.retry import retry_after_s
from aijobs.webhooks.guard import CallbackGuard, CallbackTarget, IPAddress

MAX_RESPONSE_BYTES = 4096

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for a name (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    import certifi  # httpx's own CA bundle; made once per process

    return ssl.create_default_context(cafile=certifi.where())


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


class Unresolvable(Exception):
    """The callback host has no address (for now)."""


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    duration_ms: int
    error: str | None = None
    retry_after: int | None = None
    forbidden: bool = False  # the URL or an address it resolves to is refused: never worth a retry

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, *, guard: CallbackGuard, timeout_s: float = 10.0, connect_timeout_s: float = 3.0,
                 read_timeout_s: float = 5.0, resolver: Resolver = resolve_host,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._guard = guard
        self._timeout_s = timeout_s
        self._connect_timeout_s = min(connect_timeout_s, timeout_s)
        self._timeouts = httpx.Timeout(min(read_timeout_s, timeout_s), connect=self._connect_timeout_s,
                                       pool=self._connect_timeout_s)
        self._resolve = resolver
        self._transport = transport

    async def checked_address(self, target: CallbackTarget) -> IPAddress:
        """Resolve the host and check every address it has; raises the guard's error if any is refused."""
        if target.address is not None:
            return target.address
        try:
            found = await self._resolve(target.host, target.port)
        except OSError:
            found = []
        if not found:
            raise Unresolvable(target.host)
        addresses = []
        for text in found:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:  # e.g. a scoped link-local IPv6 address
                raise InvalidRequest("callback_url is not allowed: it resolves to an unusable address",
                                     code="callback_url_forbidden") from None
            self._guard.check_address(address)
            addresses.append(address)
        return addresses[0]

    def build_request(self, client: httpx.AsyncClient, target: CallbackTarget, address: IPAddress,
                      body: bytes, headers: dict[str, str]) -> httpx.Request:
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.address is None else {}
        return client.build_request("POST", target.url_for(address), content=body,
                                    headers={**headers, "host": target.host_header}, extensions=extensions)

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        """POST one webhook; every outcome, failures included, comes back as a result (never raises)."""
        started = time.monotonic()

        def result(status: int | None, error: str | None = None, *, retry_after: int | None = None,
                   forbidden: bool = False) -> SendResult:
            return SendResult(status, int((time.monotonic() - started) * 1000), error, retry_after, forbidden)

        try:
            target = self._guard.check_url(url)
            async with asyncio.timeout(self._timeout_s):
                async with asyncio.timeout(self._connect_timeout_s):
                    address = await self.checked_address(target)
                async with httpx.AsyncClient(
                    transport=self._transport, verify=_tls_context(), follow_redirects=False, trust_env=False,
                    timeout=self._timeouts, limits=httpx.Limits(max_keepalive_connections=0),
                ) as client:
                    request = self.build_request(client, target, address, body, headers)
                    response = await client.send(request, stream=True)
                    try:
                        read = 0
                        # Raw bytes (no decompression), and only the first few KiB: the body is not used.
                        async for chunk in (response.aiter_raw() if not response.is_stream_consumed else _nothing()):
                            read += len(chunk)
                            if read >= MAX_RESPONSE_BYTES:
                                break
                    finally:
                        await response.aclose()
        except InvalidRequest:
            return result(None, "callback_url_forbidden", forbidden=True)
        except Unresolvable:
            return result(None, "dns_error")
        except (TimeoutError, httpx.TimeoutException):
            return result(None, "timeout")
        except httpx.HTTPError:
            return result(None, "connection_error")
        status = response.status_code
        error = None if 200 <= status < 300 else f"http_{status}"
        return result(status, error, retry_after=retry_after_s(response.headers) if status in (429, 503) else None)
