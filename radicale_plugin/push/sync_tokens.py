# SPDX-License-Identifier: GPL-3.0-or-later
"""The sync-token each push message carries (RFC 6578): the book's token as it is when
the message goes, read under Radicale's shared lock once per change of the book,
whatever its subscriptions (for the push sender, :mod:`.sender`).
"""

from __future__ import annotations

import threading

from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context


class SyncTokens:
    """Books' sync-tokens, read once per change noted (:meth:`changed`)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}               # book → changes noted (for tokens)
        self._tokens: dict[str, tuple[int, str]] = {}     # book → (version, sync-token)

    def changed(self, book: str) -> None:
        """The book changed: its token is read again for the next message."""
        with self._lock:
            self._versions[book] = self._versions.get(book, 0) + 1

    def token(self, book: str) -> str | None:
        """The book's sync-token now, read under Radicale's shared lock; None if it cannot
        be read."""
        with self._lock:
            version = self._versions.get(book, 0)
            known = self._tokens.get(book)
        if known is not None and known[0] == version:
            return known[1]
        storage = self._ctx.storage
        if storage is None:
            return None
        try:
            with storage.acquire_lock("r"):
                collection = store.book(storage, book)
                if collection is None:
                    return None
                token, _changes = collection.sync()
        except Exception as e:  # the message still goes, without a token
            logger.warning("WebDAV-Push: the sync-token of /%s/ cannot be read: %s", book, e)
            return None
        with self._lock:
            self._tokens[book] = (version, token)
            if len(self._tokens) > 10000:
                self._tokens.clear()
        return token
