# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI layer's answers: a response as a tuple, plain-text answers, and bodies
rewritten through Radicale's gzip.

Used by the layer's routing (:mod:`.wsgi`) and its parts (:mod:`.request_checks`,
:mod:`.apple`, :mod:`.push_dav_routes`).
"""

from __future__ import annotations

import gzip
from http import client
from typing import Callable

#: A DAV element every form of the layer reads or writes.
HREF = "{DAV:}href"

Response = tuple[int, dict[str, str], bytes]


def reason(status: int) -> str:
    return "%d %s" % (status, client.responses.get(status, ""))


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, (
        text + "\n").encode()


class Passed(Exception):
    """A request answered as it came (raised from deep in the layer)."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def rewritten(headers: dict[str, str], body: bytes, rewrite: Callable[[bytes], bytes]
              ) -> tuple[dict[str, str], bytes]:
    """A response body rewritten, through Radicale's gzip if it used it."""
    gzipped = any(k.lower() == "content-encoding" and v.lower() == "gzip"
                  for k, v in headers.items())
    try:
        raw = gzip.decompress(body) if gzipped else body
    except (OSError, EOFError):
        return headers, body
    new = rewrite(raw)
    if new is raw:
        return headers, body
    return headers, gzip.compress(new) if gzipped else new
