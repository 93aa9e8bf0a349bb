"""The callback URL guard (server-side request forgery): what is refused, in every notation, and what is not."""

from __future__ import annotations

import ipaddress

import pytest

from aijobs.errors import InvalidRequest
from aijobs.webhooks.guard import CallbackGuard, parse_ipv4_loosely

STRICT = CallbackGuard()  # the deployed stack: https, public addresses only
DEV = CallbackGuard(allow_private=True, allow_http=True)  # `make run`

FORBIDDEN_EVERYWHERE = [
    # schemes and forms
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "//example.com/hook",
    "https://user:pass@example.com/hook",
    "https://user@example.com/hook",
    "https://example.com@169.254.169.254/",
    "https://example.com\\@169.254.169.254/",
    "https://exa mple.com/",
    "https://example.com/\r\nX-Injected: 1",
    "https://example.com:99999/",
    "https://example.com:0x50/",
    "https://[::1/",
    "https:///nohost",
    "https://exa%6dple.com/",
    # cloud metadata and link-local, in several notations
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254.:443/",
    "https://2852039166/",  # 169.254.169.254 as one decimal number
    "https://0xA9FEA9FE/",
    "https://0251.0376.0251.0376/",
    "https://169.254.43518/",
    "https://[fe80::1]/",
    "https://[fe80::1%25eth0]/",
    "https://[fd00:ec2::254]/",  # AWS's IPv6 metadata address is unique-local: refused strictly, see below
    # unspecified
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    # CGNAT, multicast, reserved, broadcast, documentation
    "https://100.64.0.1/",
    "https://100.127.255.254/",
    "https://224.0.0.1/",
    "https://239.255.255.250/",
    "https://[ff02::1]/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://192.0.2.10/",
    "https://198.18.0.1/",
    "https://[2001:db8::1]/",
    # IPv4 addresses dressed as IPv6
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:8.8.8.8]/",  # mapped addresses are refused whatever they map to
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[2002:a9fe:a9fe::]/",
]

FORBIDDEN_UNLESS_PRIVATE_ALLOWED = [
    "https://127.0.0.1/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.1/",
    "https://017700000001/",
    "https://0177.0.0.1/",
    "https://127.000.000.001/",
    "https://[::1]/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://172.31.255.255/",
    "https://192.168.1.1/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "https://localhost/",
    "https://LOCALHOST./",
    "https://api.localhost/",
    "https://printer.local/",
    "https://metadata.google.internal/",
    "https://intranet/",
]

ALLOWED = [
    "https://example.com/hooks/aijobs",
    "https://EXAMPLE.com./hooks?x=1&y=2",
    "https://hooks.example.co.uk:8443/a/b",
    "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    "https://bücher.example/hook",
    "https://172.32.0.1/",  # just past 172.16.0.0/12
    "https://100.128.0.1/",  # just past the CGNAT range
    "https://hooks.glocal/",  # ends in "local" but is not .local
]


@pytest.mark.parametrize("url", FORBIDDEN_EVERYWHERE + FORBIDDEN_UNLESS_PRIVATE_ALLOWED)
def test_forbidden_callback_url_is_a_typed_422(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        STRICT.check_url(url)
    assert refused.value.status == 422
    assert refused.value.code == "callback_url_forbidden"
    assert "169.254" not in refused.value.message and "@" not in refused.value.message  # the URL is not echoed


@pytest.mark.parametrize("url", [u for u in FORBIDDEN_EVERYWHERE if "fd00:ec2" not in u])
def test_development_mode_still_refuses_metadata_link_local_and_mapped_addresses(url: str) -> None:
    with pytest.raises(InvalidRequest):
        DEV.check_url(url)


@pytest.mark.parametrize("url", FORBIDDEN_UNLESS_PRIVATE_ALLOWED)
def test_development_mode_allows_loopback_and_private_receivers(url: str) -> None:
    DEV.check_url(url)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_https_callback_urls_are_accepted(url: str) -> None:
    STRICT.check_url(url)


def test_plain_http_is_refused_by_the_deployed_guard_only() -> None:
    with pytest.raises(InvalidRequest, match="https"):
        STRICT.check_url("http://example.com/hook")
    assert CallbackGuard(allow_http=True).check_url("http://example.com/hook").port == 80


def test_checked_target_keeps_name_port_and_path_for_a_pinned_connection() -> None:
    target = STRICT.check_url("https://Hooks.Example.com:8443/a/b?c=d#frag")
    assert (target.host, target.port, target.target) == ("hooks.example.com", 8443, "/a/b?c=d")
    assert target.host_header == "hooks.example.com:8443"
    assert target.url_for(ipaddress.ip_address("93.184.216.34")) == "https://93.184.216.34:8443/a/b?c=d"
    assert target.url_for(ipaddress.ip_address("2606:2800::1")) == "https://[2606:2800::1]:8443/a/b?c=d"


@pytest.mark.parametrize(("text", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"), ("0X7F.0.0.1", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1"), ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"), ("169.254.43518", "169.254.169.254"),
])
def test_ipv4_in_any_inet_aton_notation_is_recognised(text: str, address: str) -> None:
    assert parse_ipv4_loosely(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("text", ["example.com", "1.2.3.4.5", "256.0.0.1", "1.2.3.256", "4294967296", "08.1",
                                  "1..2", "1.2.3.example"])
def test_names_and_out_of_range_numbers_are_not_ipv4(text: str) -> None:
    assert parse_ipv4_loosely(text) is None
