"""Forwarded headers, believed only from the reverse proxies named in DESK_TRUSTED_PROXIES.

A request that reaches the desk from a trusted proxy carries the client's address in
X-Forwarded-For (each proxy appends the address it received the request from), and
the scheme and host the client used in X-Forwarded-Proto and X-Forwarded-Host. From
anyone else these headers are ignored: a client could write anything in them.

The client is the right-most X-Forwarded-For address that is not itself a trusted
proxy: hops a client wrote in front of it (spoofed) are never reached. The sign-in
throttle, the Secure cookie flag and HSTS then see the real client and scheme.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.7:5123
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """WSGI middleware: ProxyFix's X-Forwarded-For/-Proto/-Host handling, applied
    only when the connection comes from one of `networks`."""

    def __init__(self, app, networks: Iterable[str]) -> None:
        self.app = app
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def trusted(self, address: IPAddress | None) -> bool:
        return address is not None and any(
            address.version == n.version and address in n for n in self.networks
        )

    def client(self, forwarded_for: str) -> str | None:
        """The right-most address in X-Forwarded-For that is not a trusted proxy
        (the left-most one when every hop is trusted); None when a hop to be
        believed is not an address."""
        hops = [h for h in (x.strip() for x in forwarded_for.split(",")) if h]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return None  # garbage where the client should be: believe nothing
            if not self.trusted(address):
                return str(address)
        return str(_address(hops[0])) if hops else None

    @staticmethod
    def _last(value: str) -> str:
        """The value the nearest proxy set (right-most of a comma-separated list)."""
        return value.rsplit(",", 1)[-1].strip()

    def __call__(self, environ, start_response):
        remote = environ.get("REMOTE_ADDR", "")
        environ["billing_desk.proxy.orig"] = {
            "REMOTE_ADDR": remote,
            "wsgi.url_scheme": environ.get("wsgi.url_scheme"),
            "HTTP_HOST": environ.get("HTTP_HOST"),
        }
        if self.trusted(_address(remote)):
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "")
            client = self.client(forwarded_for) if forwarded_for else None
            if client:
                environ["REMOTE_ADDR"] = client
            proto = self._last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            host = self._last(environ.get("HTTP_X_FORWARDED_HOST", ""))
            if host:
                environ["HTTP_HOST"] = environ["SERVER_NAME"] = host
                if ":" in host and not host.endswith("]"):  # "]": IPv6 without a port
                    environ["SERVER_NAME"], environ["SERVER_PORT"] = host.rsplit(":", 1)
        return self.app(environ, start_response)
