"""Proxy headers without I/O: who the client really is, and over which scheme.

A reverse proxy tells the server the original client address and scheme in
``Forwarded`` (RFC 7239) or the de facto ``X-Forwarded-For``/``X-Forwarded-Proto``.
Anyone can send those headers, so they are believed only when the TCP peer is a
trusted proxy, and a chain is walked from the right, skipping trusted proxies: the
first untrusted hop is the client (RFC 7239 section 7.4 on spoofing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from djwire.server.asgi_types import Headers

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Addresses or networks allowed to speak for the client.

    Entries are IP addresses or networks, ``"*"`` (everyone) or ``"unix"`` (peers on
    a Unix domain socket). Host names are refused rather than resolved: a name's
    addresses can change while the server runs, and a lookup per connection would
    put DNS on the request path. Give a proxy's address or its network instead.
    """

    everyone: bool
    #: Trust connections over a Unix domain socket (they have no peer address).
    unix: bool
    networks: tuple[_Network, ...]
    #: Answers for hosts already looked at (bounded): parsing an address for
    #: every request would cost more than the rest of this module.
    _seen: dict[str | None, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Raise ValueError for an entry that is not an address, a network, * or unix."""
        networks: list[_Network] = []
        everyone = unix = False
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if entry == "*":
                everyone = True
            elif entry == "unix":
                unix = True
            else:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"forwarded_allow_ips: {entry!r} is not an IP address or network "
                        '(host names are not resolved); give addresses, networks, "*" or "unix"'
                    ) from None
        return cls(everyone, unix, tuple(networks))

    def __contains__(self, host: str | None) -> bool:
        known = self._seen.get(host)
        if known is not None:
            return known
        answer = self._decide(host)
        if len(self._seen) < 1024:
            self._seen[host] = answer
        return answer

    def _decide(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None:
            return self.unix
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def _strip_port(node: str) -> str:
    """``"[::1]:80"`` -> ``"::1"``, ``"1.2.3.4:80"`` -> ``"1.2.3.4"``."""
    node = node.strip().strip('"')
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node[1:]
    if node.count(":") == 1:
        return node.split(":", 1)[0]
    return node


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """Parse ``Forwarded: for=1.2.3.4;proto=https, for="[::1]"`` (RFC 7239 4)."""
    elements = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, val = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = val.strip().strip('"')
        elements.append(pairs)
    return elements


def _first_untrusted(hops: list[str], trusted: TrustedProxies) -> int:
    """Index of the rightmost hop that is not a trusted proxy (or 0)."""
    for index in range(len(hops) - 1, -1, -1):
        if hops[index] not in trusted:
            return index
    return 0


def apply_proxy_headers(
    headers: Headers,
    peer: tuple[str, int] | None,
    scheme: str,
    trusted: TrustedProxies,
    *,
    peer_trusted: bool | None = None,
) -> tuple[tuple[str, int] | None, str]:
    """The client address and scheme after believing a trusted proxy's headers.

    ``peer_trusted`` passes on a decision already taken for this connection.
    """
    if peer_trusted is None:
        peer_trusted = (peer[0] if peer else None) in trusted
    if not peer_trusted:
        return peer, scheme
    forwarded: list[str] = []
    x_for: list[str] = []
    x_proto: bytes | None = None
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value.decode("latin-1"))
        elif name == b"x-forwarded-for":
            x_for.append(value.decode("latin-1"))
        elif name == b"x-forwarded-proto":
            x_proto = value
    client = peer
    if forwarded:
        elements = _forwarded_elements(",".join(forwarded))
        hosts = [_strip_port(e.get("for", "")) for e in elements]
        if hosts:
            index = _first_untrusted(hosts, trusted)
            if hosts[index] and hosts[index] != "unknown":
                client = (hosts[index], 0)
            proto = elements[index].get("proto")
            if proto:
                scheme = _scheme(proto.lower(), scheme)
        return client, scheme
    if x_for:
        hops = [_strip_port(hop) for hop in ",".join(x_for).split(",") if hop.strip()]
        if hops:
            client = (hops[_first_untrusted(hops, trusted)], 0)
    if x_proto is not None:
        # Several proxies may append: the first value is the client's view.
        proto = x_proto.decode("latin-1").split(",")[0].strip().lower()
        scheme = _scheme(proto, scheme)
    return client, scheme


def _scheme(proto: str, current: str) -> str:
    websocket = current in ("ws", "wss")
    if proto in ("https", "wss"):
        return "wss" if websocket else "https"
    if proto in ("http", "ws"):
        return "ws" if websocket else "http"
    return current
