# SPDX-License-Identifier: GPL-3.0-or-later
"""Why the plugin refused a write: carried from the storage hooks to the client's answer.

**The problem.**  The storage hooks refuse what breaks the rules (a me card
with a photo too large, two UIDs, a copy designated as one's own me card...)
by raising one of the plugin's errors (:mod:`radicale_plugin.errors`, each a
``ValueError`` whose text says what to fix).  Radicale turns any
``ValueError`` out of ``upload``, ``move``, ``create_collection`` or
``set_meta`` into its fixed ``400 Bad Request`` with the body
``Bad Request``: the reason reaches its log, never the client.

**The mechanism.**  Every storage method the plugin overrides is wrapped by
:func:`carried`: a :class:`~radicale_plugin.errors.SharingError` leaving it is
noted for the current thread (one request is handled by one thread, from the
WSGI entry point down to the storage) and raised on unchanged.  The WSGI layer
(:mod:`radicale_plugin.wsgi`), which calls Radicale's application in that same
thread, clears the note before and :func:`take` it after, and gives it to
:func:`answer`:

* when Radicale answered its plain-text 400 (its answer to the error) and a
  refusal was noted, the body becomes ``Bad Request: <the reason>`` (plain
  text, as Radicale writes its own error bodies); a 400 that is not plain
  text (the sharing API's JSON, which caught the refusal and says why itself)
  passes; when an error of the plugin escaped Radicale's handlers (a 500),
  the answer becomes the error's own 4xx with its reason.  Every other answer
  passes as it is.

Whatever error a hook raises is carried, however new: nothing here lists the
reasons.  Only the plugin's errors are: their text is advice written for the
user, while other exceptions may hold internals and stay in the log.  Radicale
itself is not patched: under stock ``radicale`` (no layer) a refusal is
Radicale's bare 400, and the reason is in Radicale's log (docs/known-limits.md).
"""

from __future__ import annotations

import functools
import threading
from http import client
from typing import Any, Callable, Iterable, TypeVar, cast

from radicale.log import logger

from radicale_plugin.errors import SharingError

F = TypeVar("F", bound=Callable[..., Any])

_state = threading.local()


def note(error: SharingError) -> None:
    """Remember the refusal of this thread's request (the first one counts)."""
    if getattr(_state, "error", None) is None:
        _state.error = error


def take() -> SharingError | None:
    """The refusal of this thread's request, if any; forgotten once taken."""
    error = getattr(_state, "error", None)
    _state.error = None
    return error


def carried(method: F) -> F:
    """Decorate a storage method: a refusal raised in it reaches the client's answer."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SharingError as e:
            note(e)
            raise
    return cast(F, wrapper)


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "").strip().lower()


def answer(status_text: str, headers: list[tuple[str, str]], answers: Iterable[bytes] | None,
           error: SharingError | None) -> tuple[str, list[tuple[str, str]],
                                                Iterable[bytes] | None]:
    """Radicale's answer, with the refusal's reason when it is a 400 (or an escaped 500)."""
    if error is None:
        return status_text, headers, answers
    status = int(status_text.split(None, 1)[0])
    if status == 500:
        status = error.status if 400 <= error.status < 500 else 400
    elif status != 400:
        return status_text, headers, answers  # answered otherwise: not the refusal's answer
    elif not _content_type(headers).startswith("text/plain"):
        # not Radicale's bare 400 but an answer that says why itself: the sharing API
        # caught the refusal and answered it as JSON (e.g. POST /me-card with a path the
        # me-card property hook refuses)
        return status_text, headers, answers
    phrase = client.responses.get(status, "Error")
    body = ("%s: %s" % (phrase, " ".join(str(error).split()))).encode("utf-8")
    kept = [(k, v) for k, v in headers
            if k.lower() not in ("content-type", "content-length", "content-encoding")]
    kept += [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return "%d %s" % (status, phrase), kept, [body]
