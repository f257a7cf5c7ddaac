# SPDX-License-Identifier: GPL-3.0-or-later
"""``Push-Dont-Notify``: what the request this thread handles asked not to be told of
its changes (subscription ids, or :data:`ALL`), for the push sender (:mod:`.sender`).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Union

#: What a request asked not to be told (``Push-Dont-Notify``): subscription ids, or ALL.
Skip = Union[frozenset, str, None]

#: ``Push-Dont-Notify: *``: no subscription is told of the request's changes.
ALL = "*"

_request = threading.local()


@contextlib.contextmanager
def dont_notify(skip: Skip) -> Iterator[None]:
    """While this thread handles a request with ``Push-Dont-Notify``: what it asked not to be
    told (subscription ids, or :data:`ALL`).  The WSGI layer wraps each request in it."""
    previous = getattr(_request, "skip", None)
    _request.skip = skip
    try:
        yield
    finally:
        _request.skip = previous


def current() -> Skip:
    """What the request this thread handles asked not to be told (None: nothing)."""
    return getattr(_request, "skip", None)


def skipped(skip: Skip, subscription_id: str) -> bool:
    return skip == ALL or (isinstance(skip, frozenset) and subscription_id in skip)
