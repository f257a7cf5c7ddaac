# SPDX-License-Identifier: GPL-3.0-or-later
"""A request that lost a database conflict is run again, whole: never a 500 for it.

On PostgreSQL a request is one transaction (the storage's ``acquire_lock``: its items,
and the index's records of its hooks).  PostgreSQL may end such a transaction for no
fault of the request: the victim of a deadlock with another transaction, one that
could not be serialised, or one that did not get a lock within ``lock_timeout``
(:data:`~radicale_plugin.index.postgres.database.RETRYABLE`).  Nothing of it was
committed, and Radicale answers 500.  The layer holds every answer until it is whole
(:mod:`.wrapped`), so nothing was sent to the client yet: the request is run again, up
to :data:`ATTEMPTS` times in all after a short random pause, with the same body
(:class:`Replay` keeps what Radicale read of it).  If it still loses, the answer is 503
with ``Retry-After``: the client tries again later, as for any busy server.

Only a 5xx answer of a request that met such a conflict is retried: one that met a
conflict inside a savepoint and went on (a fan-out record of one delivery) answered
normally.  On the file storage a request is not one transaction (its file is written
before the index's hooks): a retried PUT is answered as any repeated PUT would be.
"""

from __future__ import annotations

import io
import random
import time
from typing import Any, Callable

from radicale import types
from radicale.log import logger

from radicale_plugin.http.answers import Response
from radicale_plugin.index.postgres.database import conflicts

#: Runs of one request at most (the first one and the retries).
ATTEMPTS = 4
#: Seconds before the first retry (doubled for each next one, times 1 to 2 at random:
#: two requests that deadlocked do not meet again at the same moment).
PAUSE = 0.05
#: What a client is told to wait, in seconds, when every attempt lost.
RETRY_AFTER = 2


class Replay:
    """``wsgi.input`` that keeps what was read, to give it again to the next attempt
    (and then the rest of the stream, if the last attempt did not read it all)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._kept = bytearray()
        self._given: io.BytesIO | None = None

    def again(self) -> "Replay":
        self._given = io.BytesIO(bytes(self._kept))
        return self

    def read(self, size: int = -1) -> bytes:
        got = b""
        if self._given is not None:
            got = self._given.read(size)
            if size is not None and 0 <= size <= len(got):
                return got
        rest = self._stream.read(-1 if size is None or size < 0 else size - len(got))
        self._kept += rest
        return got + rest

    def readline(self, size: int = -1) -> bytes:
        if self._given is not None:
            line = self._given.readline(size)
            if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
                return line
            more = self._stream.readline(-1 if size is None or size < 0 else size - len(line))
            self._kept += more
            return line + more
        line = self._stream.readline(size)
        self._kept += line
        return line

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def retrying(environ: types.WSGIEnviron, run: Callable[[types.WSGIEnviron], Response]
             ) -> Response:
    """``run(environ)``, again while it lost a database conflict (see the module)."""
    stream = environ.get("wsgi.input")
    replay = Replay(stream) if stream is not None else None
    if replay is not None:
        environ = {**environ, "wsgi.input": replay}
    for attempt in range(1, ATTEMPTS + 1):
        before = conflicts()
        status, headers, body = run(environ)
        if status < 500 or conflicts() == before:
            if attempt > 1:
                logger.info("%s %r succeeded at attempt %d after a database conflict",
                            environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                            attempt)
            return status, headers, body
        if attempt < ATTEMPTS:
            logger.warning("%s %r lost a database conflict (attempt %d of %d): run again",
                           environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                           attempt, ATTEMPTS)
            time.sleep(PAUSE * 2 ** (attempt - 1) * (1 + random.random()))
            if replay is not None:
                replay.again()
    logger.warning("%s %r lost a database conflict %d times: answered 503",
                   environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), ATTEMPTS)
    return (503, {"Content-Type": "text/plain; charset=utf-8",
                  "Retry-After": str(RETRY_AFTER)},
            b"The database is busy (this request met a conflict with others); "
            b"try again in a moment.\n")
