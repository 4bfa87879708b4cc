"""Proxy headers are believed only from trusted peers, walking the chain from the right."""

from __future__ import annotations

import pytest

from djwire.server.protocols.proxy import TrustedProxies, apply_proxy_headers

LOCAL = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"])


def test_untrusted_peer_headers_are_ignored():
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    assert apply_proxy_headers(headers, ("8.8.8.8", 5), "http", LOCAL) == (("8.8.8.8", 5), "http")


def test_trusted_peer_sets_client_and_scheme():
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    assert apply_proxy_headers(headers, ("127.0.0.1", 5), "http", LOCAL) == (
        ("1.2.3.4", 0),
        "https",
    )


def test_websocket_scheme_becomes_wss():
    headers = [(b"x-forwarded-proto", b"https")]
    assert apply_proxy_headers(headers, ("127.0.0.1", 5), "ws", LOCAL)[1] == "wss"


def test_spoofed_leftmost_hop_is_skipped():
    # A client sends its own X-Forwarded-For; our proxies append the real address.
    headers = [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.1.1.1")]
    client, _ = apply_proxy_headers(headers, ("127.0.0.1", 5), "http", LOCAL)
    assert client == ("1.2.3.4", 0)


def test_forwarded_header_rfc7239():
    headers = [(b"forwarded", b'for="[2001:db8::1]:4711";proto=https, for=10.0.0.2')]
    assert apply_proxy_headers(headers, ("127.0.0.1", 5), "http", LOCAL) == (
        ("2001:db8::1", 0),
        "https",
    )


def test_star_trusts_everyone_and_unix_trusts_socket_peers():
    headers = [(b"x-forwarded-for", b"1.2.3.4")]
    everyone = TrustedProxies.parse(["*"])
    assert apply_proxy_headers(headers, ("8.8.8.8", 1), "http", everyone)[0] == ("1.2.3.4", 0)
    assert apply_proxy_headers(headers, None, "http", LOCAL)[0] is None
    unix = TrustedProxies.parse(["unix"])
    assert apply_proxy_headers(headers, None, "http", unix)[0] == ("1.2.3.4", 0)


def test_host_names_are_refused_instead_of_never_matching() -> None:
    with pytest.raises(ValueError, match="'proxy' is not an IP address or network"):
        TrustedProxies.parse(["10.0.0.1", "proxy"])
    trusted = TrustedProxies.parse([" 10.0.0.0/8 ", "", "fd00::/8", "unix"])
    assert "10.1.2.3" in trusted and "fd00::1" in trusted and None in trusted
    assert "proxy" not in trusted
