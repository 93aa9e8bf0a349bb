"""The callback URL guard against server-side request forgery.

A URL is checked when a job is submitted (its form, and the address when it is written as one in any
notation) and again when a webhook is sent: the host is resolved, every address is checked, and the
connection goes to the address that was checked, so a name cannot be re-pointed between check and use.

A host is read as a browser reads it (WHATWG URL): IDNA first (full-width digits and dots become ASCII), then
IPv4 in any ``inet_aton`` notation, so 127.0.0.1 in full-width digits and dots, ``0x7f.1``, ``2130706433`` and
``127.1`` are all checked as 127.0.0.1. IPv6 addresses that carry an IPv4 address (mapped, translated,
compatible, NAT64, 6to4, Teredo) are refused whatever they carry, even when private addresses are allowed: a
receiver has no reason to be written that way, and some networks route them to the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from aijobs.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

_net = ipaddress.ip_network

# Never reachable, and checked first: the private networks below must not let them through.
_ALWAYS_FORBIDDEN = [
    (_net("::/128"), "an unspecified address"),
    (_net("::ffff:0:0/96"), "an IPv4-mapped IPv6 address"),
    (_net("::ffff:0:0:0/96"), "an IPv4-translated IPv6 address"),
    (_net("::/96"), "an IPv4-compatible IPv6 address"),
    (_net("64:ff9b::/96"), "a NAT64 address"),
    (_net("64:ff9b:1::/48"), "a NAT64 address"),
    (_net("2002::/16"), "a 6to4 address"),
    (_net("2001::/32"), "a Teredo address"),
    (_net("fd00:ec2::254/128"), "a metadata address"),  # AWS's IPv6 instance metadata, inside fc00::/7
]
# Reachable with allow_private (the local stack): loopback and private networks.
_PRIVATE = [
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("10.0.0.0/8"), "a private address"),
    (_net("172.16.0.0/12"), "a private address"),
    (_net("192.168.0.0/16"), "a private address"),
    (_net("fc00::/7"), "a unique-local address"),
]
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")  # the one address of ::/96 that is no IPv4 address
# Never reachable.
_FORBIDDEN = [
    (_net("0.0.0.0/8"), "an unspecified address"),
    (_net("169.254.0.0/16"), "a link-local address"),
    (_net("fe80::/10"), "a link-local address"),
    (_net("100.64.0.0/10"), "a shared (CGNAT) address"),
    (_net("224.0.0.0/4"), "a multicast address"),
    (_net("ff00::/8"), "a multicast address"),
    (_net("240.0.0.0/4"), "a reserved address"),
    (_net("192.0.0.0/24"), "a reserved address"),
    (_net("198.18.0.0/15"), "a reserved address"),
    (_net("192.0.2.0/24"), "a documentation address"),
    (_net("198.51.100.0/24"), "a documentation address"),
    (_net("203.0.113.0/24"), "a documentation address"),
    (_net("2001:db8::/32"), "a documentation address"),
    (_net("fec0::/10"), "a site-local address"),
    (_net("100::/64"), "a discard address"),
]
# Names that only mean something inside a network.
_INTERNAL_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa", "intranet", "lan")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# A last label that is a number makes the host an IPv4 address or nothing (WHATWG URL): no top-level name is one.
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


def forbidden(reason: str) -> InvalidRequest:
    """The typed 422 of a refused callback URL; the URL itself is not echoed."""
    return InvalidRequest(f"callback_url is not allowed: {reason}", code="callback_url_forbidden")


@dataclass(frozen=True)
class CallbackTarget:
    """A checked callback URL, split into what the sender needs to connect to a checked address."""

    scheme: str
    host: str  # lower-case ASCII name, or an address without brackets
    port: int
    target: str  # path and query, as given
    address: IPAddress | None  # set when the host is written as an address

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL that reaches ``address`` directly, with this target's scheme, port, path and query."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def parse_ipv4_loosely(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any notation ``inet_aton`` accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``), else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            else:
                numbers.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
    if any(n < 0 for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def _parse_host(host: str) -> tuple[str, IPAddress | None]:
    if ":" in host:  # only an IPv6 literal has colons once the port is split off
        if "%" in host:
            raise forbidden("IPv6 zone identifiers are not accepted")
        try:
            return host, ipaddress.IPv6Address(host)
        except ValueError:
            raise forbidden("the host is not a valid IPv6 address") from None
    try:  # IDNA first: it maps full-width digits and dots (U+FF11, U+3002...) to the ASCII they stand for
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise forbidden("the host is not a valid name") from None
    if (address := parse_ipv4_loosely(name)) is not None:
        return str(address), address
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise forbidden("the host is not a valid name")
    if _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        raise forbidden("the host is not a valid IPv4 address")
    return name, None


@dataclass(frozen=True)
class CallbackGuard:
    """What a callback URL may point at. The defaults are the deployed stack's: https and public addresses only."""

    allow_private: bool = False
    allow_http: bool = False

    def check_url(self, url: str) -> CallbackTarget:
        """Check a URL's form and any literal address; raises the typed 422 (``callback_url_forbidden``)."""
        if len(url) > MAX_URL_LENGTH:
            raise forbidden(f"it is longer than {MAX_URL_LENGTH} characters")
        if any(ord(c) <= 32 or ord(c) == 127 for c in url) or "\\" in url:
            raise forbidden("it contains spaces, control characters or backslashes")
        try:
            parts = urlsplit(url)
        except ValueError:
            raise forbidden("it is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise forbidden("only http(s) URLs are accepted")
        if scheme == "http" and not self.allow_http:
            raise forbidden("it must use https")
        if "@" in parts.netloc:
            raise forbidden("it must not contain credentials")
        try:
            port = parts.port
        except ValueError:
            raise forbidden("the port is not valid") from None
        if port == 0:  # no server listens there; it is not the default port either
            raise forbidden("the port is not valid")
        port = port or (443 if scheme == "https" else 80)
        if not parts.hostname:
            raise forbidden("it has no host")
        host, address = _parse_host(parts.hostname)
        if address is not None:
            self.check_address(address)
        elif not self.allow_private and ("." not in host or any(host == s or host.endswith(f".{s}")
                                                                for s in _INTERNAL_SUFFIXES)):
            raise forbidden("the host must be a public, fully qualified name")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return CallbackTarget(scheme=scheme, host=host, port=port, target=target, address=address)

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why a webhook may not be sent to this address, or None when it may."""
        if address == _LOOPBACK_V6:  # in ::/96, but carries no IPv4 address
            return self._private("a loopback address")
        for network, label in _ALWAYS_FORBIDDEN:
            if address in network:
                return label
        for network, label in _PRIVATE:
            if address in network:
                return self._private(label)
        for network, label in _FORBIDDEN:
            if address in network:
                return label
        if not address.is_global or address.is_multicast:
            return "a non-public address"
        return None

    def _private(self, label: str) -> str | None:
        return None if self.allow_private else label

    def check_address(self, address: IPAddress) -> None:
        if (reason := self.address_refusal(address)) is not None:
            raise forbidden(f"it points at {reason}")
