# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI layer's calls of the application it wraps: a request passed on as it came,
an internal request to the sharing API with the client's credentials, and Radicale's
own 401 challenge.  The refusal a storage hook noted reaches the answer's body here
(:mod:`radicale_plugin.http.refusals`).
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Iterable

from radicale import types
from radicale.log import logger

from radicale_plugin.http import refusals
from radicale_plugin.http.answers import Response
from radicale_plugin.http.web import PREFIX as API


class Wrapped:
    """Radicale's WSGI application, called by the layer (:class:`.wsgi.Layer`)."""

    def __init__(self, app: Callable[[types.WSGIEnviron, types.WSGIStartResponse],
                                     Iterable[bytes]]) -> None:
        self._app = app

    def _pass(self, environ: types.WSGIEnviron, body: bytes | None) -> Response:
        """The request as it came, answered by Radicale."""
        if body is not None:
            environ = {**environ, "wsgi.input": io.BytesIO(body),
                       "CONTENT_LENGTH": str(len(body))}
        return self._run(environ)

    def _run(self, environ: types.WSGIEnviron) -> Response:
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], object]:
            got["status"], got["headers"] = int(status.split(None, 1)[0]), dict(headers)
            return lambda data: None
        refusals.take()  # a request starts with no refusal noted for this thread
        parts = self._app(environ, start_response)
        try:
            body = b"".join(parts)
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()
        refused = refusals.take()
        if refused is None:
            return got["status"], got["headers"], body
        logger.info("%s %r refused: %s", environ.get("REQUEST_METHOD", ""),
                    environ.get("PATH_INFO", ""), refused)
        status_text, headers, answers = refusals.answer(
            str(got["status"]), list(got["headers"].items()), [body], refused)
        return (int(status_text.split(None, 1)[0]), dict(headers),
                b"".join(answers or ()))

    def _api(self, environ: types.WSGIEnviron, method: str, call: str,
             data: dict | None = None, query: str = "") -> tuple[int, dict]:
        """An internal request to the sharing API, with the client's credentials."""
        raw = json.dumps(data).encode() if data is not None else b""
        sub = {**{k: v for k, v in environ.items() if k != "HTTP_ACCEPT_ENCODING"},
               "REQUEST_METHOD": method, "PATH_INFO": API + call,
               "QUERY_STRING": query, "wsgi.input": io.BytesIO(raw),
               "CONTENT_LENGTH": str(len(raw)),
               "CONTENT_TYPE": "application/json" if data is not None else ""}
        status, _headers, body = self._run(sub)
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}

    def _challenge(self, environ: types.WSGIEnviron) -> Response:
        """Radicale's own answer to a request without valid credentials (401 and its realm)."""
        return self._run({**environ, "REQUEST_METHOD": "PROPFIND", "PATH_INFO": "/",
                          "HTTP_DEPTH": "0", "wsgi.input": io.BytesIO(b""),
                          "CONTENT_LENGTH": "0"})
