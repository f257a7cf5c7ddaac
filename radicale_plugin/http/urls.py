# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the client sees this server: the prefix Radicale is mounted at, the scheme
the client used, and a client's href as a path on this server (for the WSGI layer).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from radicale import types


def prefix(environ: types.WSGIEnviron) -> str:
    """Where Radicale is mounted: SCRIPT_NAME, or a reverse proxy's X-Script-Name."""
    prefix = environ.get("HTTP_X_SCRIPT_NAME") or environ.get("SCRIPT_NAME") or ""
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


def scheme(environ: types.WSGIEnviron) -> str:
    """The scheme the client used: a reverse proxy that ends TLS says so in
    X-Forwarded-Proto (the server itself then speaks plain http)."""
    forwarded = (environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[0].strip().lower()
    return forwarded if forwarded in ("http", "https") else str(
        environ.get("wsgi.url_scheme", "http"))


def local_path(environ: types.WSGIEnviron, href: str) -> str | None:
    """A client's href (absolute URL or path, under our prefix) as a path on this server."""
    try:
        parts = urlsplit(href.strip())
    except ValueError:
        return None
    host = (environ.get("HTTP_HOST") or "").lower()
    if parts.netloc and host and parts.netloc.lower() != host:
        return None
    path = unquote(parts.path)
    mounted = prefix(environ)
    if mounted and (path == mounted or path.startswith(mounted + "/")):
        path = path[len(mounted):]
    if not path.startswith("/") or "\x00" in path:
        return None
    return path
