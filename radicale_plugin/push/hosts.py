# SPDX-License-Identifier: GPL-3.0-or-later
"""Which push services this server may talk to: the admin's allow-list and the address check.

A push subscription names a URL that the server will later POST to, on
every change of a book.  Without limits, registering subscriptions would let
any user make the server send requests wherever they like (to the admin's
router, a database on localhost, a cloud metadata address).  So a push
resource must

* be ``https`` (RFC 8030 §8 requires TLS),
* name a host on the admin's allow-list (``mecard_push_services``), on the
  port the entry gives (443 unless the entry says ``host:port``), and
* resolve only to public addresses: never private, loopback, link-local,
  multicast, reserved or unspecified ones.

The sender resolves the name itself, checks every address, and connects to
an address it checked (:mod:`radicale_plugin.push.http`), so a name that
resolves differently a moment later (DNS rebinding) gains nothing.

``mecard_push_allow_insecure_loopback`` exists for the tests: it admits
loopback addresses, and plain ``http`` to them only.  Private networks stay
refused even then.

:func:`parse_entry`, :func:`destination` and :func:`check_addresses` are
pure; :func:`radicale_plugin.push.http.resolve` asks the system's resolver.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

#: The push services that clients such as DAVx5 (through UnifiedPush) hand out
#: endpoints of: Google FCM (also behind UnifiedPush's embedded FCM distributor),
#: Mozilla's autopush (browsers, Sunup), Apple's web push, and ntfy.sh (the default
#: server of the ntfy distributor).
DEFAULT_SERVICES = ("fcm.googleapis.com", "updates.push.services.mozilla.com",
                    "web.push.apple.com", "ntfy.sh")

#: Longest push resource accepted (FCM's are about 200 characters).
MAX_URL = 2048

_DEFAULT_PORTS = {"https": 443, "http": 80}
# NAT64 addresses carry an IPv4 address inside: checked as that one
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PushRefused(ValueError):
    """A push resource this server will not send to; the text says why, in one line."""


@dataclass(frozen=True)
class Destination:
    """A push resource, taken apart: where to connect and what to ask for."""

    scheme: str
    host: str           # lower case, without brackets for IPv6
    port: int
    target: str         # path and query, as sent in the request line

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: the VAPID audience (RFC 8292 §2)."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return "%s://%s" % (self.scheme, host)
        return "%s://%s:%d" % (self.scheme, host, self.port)


@dataclass(frozen=True)
class Entry:
    """One entry of the allow-list."""

    host: str                  # a host name or address; "*.example.org" for subdomains
    port: int | None = None    # None: the scheme's default port

    def admits(self, host: str, port: int, scheme: str) -> bool:
        if port != (self.port if self.port is not None else _DEFAULT_PORTS[scheme]):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])  # ".example.org": subdomains only
        return host == self.host


def _host(value: str) -> str:
    host = value.strip().lower().rstrip(".")
    if not host.isascii():
        raise ValueError("%r is not ASCII: write an international name in its xn-- form"
                         % value)
    return host


def parse_entry(entry: str) -> Entry:
    """An allow-list entry: ``host``, ``host:port``, ``*.domain``, ``[v6]:port``."""
    try:
        parts = urlsplit("//" + entry)
        port = parts.port
    except ValueError as e:
        raise ValueError("%r is not a host or host:port (%s)" % (entry, e)) from e
    if not parts.hostname or parts.username is not None or parts.path or parts.query:
        raise ValueError("%r is not a host or host:port" % entry)
    host = _host(parts.hostname)
    if "*" in host.lstrip("*") or (host.startswith("*") and not host.startswith("*.")):
        raise ValueError("%r: a wildcard stands only for subdomains, as in *.example.org"
                         % entry)
    return Entry(host, port)


def destination(url: str, allowed: tuple[str, ...], insecure_loopback: bool = False
                ) -> Destination:
    """The push resource ``url`` taken apart, if the allow-list admits it; else PushRefused."""
    if not isinstance(url, str) or not url:
        raise PushRefused("the push resource must be a URL")
    if len(url) > MAX_URL:
        raise PushRefused("the push resource is longer than %d characters" % MAX_URL)
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise PushRefused("the push resource contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise PushRefused("the push resource is not a URL: %s" % e) from e
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and insecure_loopback):
        raise PushRefused("the push resource must be an https:// URL")
    if not parts.hostname:
        raise PushRefused("the push resource names no host")
    if parts.username is not None or parts.password is not None:
        raise PushRefused("the push resource must not carry a user name or password")
    try:
        host = _host(parts.hostname)
    except ValueError as e:
        raise PushRefused("the push resource's host %s" % e) from e
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    if not any(parse_entry(e).admits(host, port, scheme) for e in allowed):
        raise PushRefused("this server does not send to the push service %s%s (the admin "
                          "allows: %s)" % (host, "" if port == _DEFAULT_PORTS[scheme]
                                           else ":%d" % port, " ".join(allowed) or "none"))
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return Destination(scheme, host, port, target)


def _unwrapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: Address) -> bool:
    """Whether ``address`` is a public unicast address."""
    a = _unwrapped(address)
    return a.is_global and not (a.is_private or a.is_loopback or a.is_link_local
                                or a.is_multicast or a.is_reserved or a.is_unspecified)


def check_addresses(destination_: Destination, addresses: list[str],
                    insecure_loopback: bool = False) -> list[str]:
    """``addresses`` if every one may be connected to for ``destination_``; else PushRefused.

    Every address must pass, not just one: the connection may go to any of them.
    """
    if not addresses:
        raise PushRefused("%s has no address" % destination_.host)
    for text in addresses:
        try:
            address = _unwrapped(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError as e:
            raise PushRefused("%s resolves to %r, which is no address"
                              % (destination_.host, text)) from e
        if insecure_loopback and address.is_loopback:
            continue
        if destination_.scheme != "https":
            raise PushRefused("plain http goes to loopback addresses only (a test setting)")
        if not is_public(address):
            raise PushRefused("%s resolves to %s, which is not a public address"
                              % (destination_.host, address))
    return addresses
