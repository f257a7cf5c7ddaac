# SPDX-License-Identifier: GPL-3.0-or-later
"""Signed tokens, pure: an unsubscribe link's only authority.

A token binds a user, a purpose and an expiry, signed with HMAC-SHA256 under the
server's key (:meth:`radicale_plugin.index.NotifyStore.secret`) and checked in
constant time.  A token says what it may do: an unsubscribe token
(:data:`UNSUBSCRIBE`) may set that user's e-mail notifications to none, nothing else —
whoever holds the e-mail (a mail scanner, a forwarded message) can do no more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from radicale_plugin.errors import Forbidden, SharingError

#: The purpose of the links in e-mails: turn off the user's e-mail notifications.
UNSUBSCRIBE = "unsubscribe-email"

_FORM = re.compile(r"[A-Za-z0-9_-]{4,800}\.[A-Za-z0-9_-]{43}")


class Expired(SharingError):
    """A token that was right, and is too old."""

    status = 410


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"mecard-token\0" + payload, hashlib.sha256).digest()


def make(secret: bytes, user: str, purpose: str, expires: float) -> str:
    """A token for ``user`` and ``purpose``, valid until ``expires`` (seconds since 1970)."""
    payload = "%s\n%s\n%d" % (purpose, user, int(expires))
    raw = payload.encode("utf-8")
    return "%s.%s" % (_b64(raw), _b64(_signature(secret, raw)))


def check(secret: bytes, token: str, purpose: str, now: float) -> str:
    """The user a token was made for, if it is ours, for ``purpose``, and not expired;
    else :class:`~radicale_plugin.errors.Forbidden` (or :class:`Expired`)."""
    refused = Forbidden("this link is not valid (it was changed, or is not an unsubscribe "
                        "link of this server)")
    if not isinstance(token, str) or not _FORM.fullmatch(token):
        raise refused
    body, signature = token.split(".")
    try:
        raw, given = _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError):
        raise refused from None
    if not hmac.compare_digest(_signature(secret, raw), given):
        raise refused
    try:
        kind, user, expires = raw.decode("utf-8").split("\n")
        until = int(expires)
    except ValueError:
        raise refused from None
    if not hmac.compare_digest(kind.encode(), purpose.encode()) or not user:
        raise refused
    if until <= now:
        raise Expired("this link has expired: change your notifications in your settings "
                      "instead")
    return user
