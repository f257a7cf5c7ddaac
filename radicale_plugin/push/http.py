# SPDX-License-Identifier: GPL-3.0-or-later
"""One POST to a push service, to an address checked beforehand, within a time limit.

Why not ``requests``: it resolves the host name again when it connects (so
the address checked by :mod:`radicale_plugin.push.hosts` might not be the one
connected to), follows redirects unless told not to, and bounds each read
but not the whole exchange.  Here the connection goes to the checked
address, TLS still verifies the certificate against the host *name* (SNI and
hostname check), the ``Host`` header names the host, redirects are never
followed (a 3xx is just an answer), at most a few KB of the answer are read,
and a watchdog cuts the connection when ``timeout`` seconds are up, however
slowly the service trickles bytes.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from radicale_plugin.push.hosts import Destination, check_addresses

#: Most of an answer's body that is read (push services answer with little or nothing).
MAX_ANSWER = 4096
#: Addresses of one host tried per attempt.
MAX_ADDRESSES = 3

_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = ssl.create_default_context()
        return _tls


@dataclass(frozen=True)
class Answer:
    """What the push service answered."""

    status: int
    retry_after: str | None = None
    text: str = ""


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to a given address while speaking to the host by name (``Host`` header)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._wrap(sock)

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedHTTPS(_PinnedHTTP):
    """The same over TLS, the certificate checked against the host name."""

    default_port = 443

    def _wrap(self, sock: socket.socket) -> socket.socket:
        # the certificate must be the host name's, whatever address we connected to
        try:
            return _tls_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _cut(conn: http.client.HTTPConnection) -> None:
    """Shut the connection's socket from another thread: a blocked read returns at once."""
    sock = conn.sock
    if sock is not None:
        try:
            # the plain socket's shutdown, also under TLS: it wakes a blocked read
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def post(destination: Destination, addresses: Sequence[str], headers: Mapping[str, str],
         body: bytes, timeout: float) -> Answer:
    """POST ``body`` to ``destination`` at one of ``addresses`` within ``timeout`` seconds.

    Raises OSError (including timeouts) and ``http.client.HTTPException`` when
    no answer came.
    """
    deadline = time.monotonic() + timeout
    error: Exception = OSError("no address to connect to")
    for address in list(addresses)[:MAX_ADDRESSES]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer within %.1f s" % timeout)
        conn: http.client.HTTPConnection
        if destination.scheme == "https":
            conn = _PinnedHTTPS(destination.host, destination.port, address, remaining)
        else:
            conn = _PinnedHTTP(destination.host, destination.port, address, remaining)
        watchdog = threading.Timer(remaining, _cut, (conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                conn.connect()
            except OSError as e:
                error = e  # the next address, if there is one
                continue
            conn.request("POST", destination.target, body=body, headers=dict(headers))
            response = conn.getresponse()
            try:
                text = response.read(MAX_ANSWER).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""  # the status is the answer; the rest of the body does not matter
            return Answer(response.status, response.getheader("Retry-After"), text)
        finally:
            watchdog.cancel()
            conn.close()
    raise error


def resolve(destination_: Destination, insecure_loopback: bool = False) -> list[str]:
    """The checked addresses of the destination's host, in the resolver's order.

    Raises PushRefused for a refused address, OSError when the name does not
    resolve (a temporary failure, perhaps).
    """
    infos = socket.getaddrinfo(destination_.host, destination_.port, type=socket.SOCK_STREAM,
                               proto=socket.IPPROTO_TCP)
    found: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in found:
            found.append(str(sockaddr[0]))
    return check_addresses(destination_, found, insecure_loopback)
