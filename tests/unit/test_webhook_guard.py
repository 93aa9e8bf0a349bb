"""The callback URL guard (server-side request forgery): what is refused, in every notation, and what is not."""

from __future__ import annotations

import ipaddress

import pytest

from aijobs.errors import InvalidRequest
from aijobs.webhooks.guard import CallbackGuard, parse_ipv4_loosely

STRICT = CallbackGuard()  # the deployed stack: https, public addresses only
DEV = CallbackGuard(allow_private=True, allow_http=True)  # `make run`

# IPv6 addresses that carry an IPv4 address (most hold 127.0.0.1 or 169.254.169.254, one a public address).
EMBEDDED_IPV4 = [
    "https://[::ffff:127.0.0.1]/",  # IPv4-mapped, ::ffff:0:0/96
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:0:127.0.0.1]/",  # IPv4-translated, ::ffff:0:0:0/96
    "https://[::ffff:0:169.254.169.254]/latest/meta-data/",
    "https://[::ffff:0:7f00:1]/",
    "https://[0:0:0:0:ffff:0:a9fe:a9fe]/",
    "https://[::ffff:0:8.8.8.8]/",
    "https://[::10.0.0.1]/",  # IPv4-compatible, ::/96
    "https://[::7f00:1]/",
    "https://[64:ff9b::127.0.0.1]/",  # NAT64, 64:ff9b::/96 and the local-use 64:ff9b:1::/48
    "https://[64:ff9b:1::a9fe:a9fe]/",
    "https://[64:ff9b:1:ffff::7f00:1]/",
    "https://[2002:7f00:1::]/",  # 6to4, 2002::/16
    "https://[2002:a00:1::1]/",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, 2001::/32 (client 127.0.0.1, bits inverted)
    "https://[2001::5601:5601]/",
]

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
    "https://[fd00:ec2::254]/",  # AWS's IPv6 metadata address: unique-local, but refused with private ones allowed
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
    # an IPv4 address inside IPv6, every form: refused whatever it holds, with private addresses allowed too
    *EMBEDDED_IPV4,
    # a host whose last label is a number is an IPv4 address or nothing
    "https://1.2.3.256/",
    "https://example.123/",
    "https://08.1/",
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
    # read as a browser reads them: IDNA first (full-width digits and dots), then IPv4 in any notation
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # full-width digits
    "https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/",  # and ideographic full stops
    "https://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",  # and full-width full stops
    "https://\uff10\uff58\uff17\uff46.\uff11/",  # 0x7f.1 in full width
    "https://127.0.0.1./",
    "https://2130706433./",
    "https://0x7f.1./",
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


@pytest.mark.parametrize("url", FORBIDDEN_EVERYWHERE)
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


@pytest.mark.parametrize("url", EMBEDDED_IPV4)
@pytest.mark.parametrize("guard", [STRICT, DEV], ids=["deployed", "private-allowed"])
def test_an_ipv4_address_inside_ipv6_is_refused_in_every_form(guard: CallbackGuard, url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        guard.check_url(url)
    assert refused.value.code == "callback_url_forbidden"
    assert any(form in refused.value.message for form in ("IPv4-", "NAT64", "6to4", "Teredo"))


@pytest.mark.parametrize(("url", "address"), [
    ("https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11:8443/", "127.0.0.1"),
    ("https://0x7f.1/", "127.0.0.1"),
    ("https://2130706433/", "127.0.0.1"),
    ("https://127.1/", "127.0.0.1"),
    ("https://127.0.0.1./", "127.0.0.1"),
    ("https://\uff19\uff13.\uff11\uff18\uff14.\uff12\uff11\uff16.\uff13\uff14/", "93.184.216.34"),
])
def test_a_host_in_an_odd_notation_is_checked_as_the_address_it_is(url: str, address: str) -> None:
    target = DEV.check_url(url)
    assert target.address == ipaddress.ip_address(address) and target.host == address


def test_a_public_address_in_full_width_digits_is_accepted_as_that_address() -> None:
    target = STRICT.check_url("https://\uff19\uff13.\uff11\uff18\uff14.\uff12\uff11\uff16.\uff13\uff14/hook")
    assert target.url_for(target.address) == "https://93.184.216.34:443/hook"  # type: ignore[arg-type]
