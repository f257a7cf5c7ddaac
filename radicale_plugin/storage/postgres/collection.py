# SPDX-License-Identifier: GPL-3.0-or-later
"""A collection of the PostgreSQL storage: Radicale's ``BaseCollection`` on the tables.

The same answers as the file backend's: an item's etag is Radicale's (the hash of its
text), the CTag changes with every change of an item or a property, and a sync token
names a point of the collection's change log, so that it stays valid across
processes and restarts and an incremental sync lists exactly the hrefs written or
deleted since.  A token of another collection, of an earlier incarnation of this one
(deleted or replaced since), or older than the kept deletions raises ValueError, and
Radicale answers ``valid-sync-token``.
"""

from __future__ import annotations

import json
import time
from hashlib import sha256
from typing import (TYPE_CHECKING, Iterable, Iterator, Mapping, Optional, Tuple, Union,
                    overload)

import radicale.item as radicale_item
from radicale import pathutils, storage

from radicale_plugin.storage.postgres import items
from radicale_plugin.storage.postgres.items import Book, Stored

if TYPE_CHECKING:
    from radicale_plugin.storage.postgres.plain import Storage

TOKEN_PREFIX = "http://radicale.org/ns/sync/"


def http_date(seconds: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))


class Collection(storage.BaseCollection):
    """A collection row and its items (the root collection has no row)."""

    def __init__(self, storage_: "Storage", path: str, book: Optional[Book] = None) -> None:
        super().__init__()
        self._storage = storage_
        self._path = pathutils.strip_path(path)
        self._book = book

    @property
    def path(self) -> str:
        return self._path

    @property
    def _db(self):
        return self._storage.database

    def _fresh(self) -> Optional[Book]:
        """The collection's row as it is now (its counter moves with every write)."""
        if not self._path:
            return None
        self._book = items.book(self._db, self._path)
        return self._book

    def _id(self) -> int:
        book = self._book or self._fresh()
        if book is None:
            raise storage.ComponentNotFoundError(self._path)
        return book.id

    # -- items ------------------------------------------------------------------------
    def _item(self, stored: Stored) -> radicale_item.Item:
        return radicale_item.Item(
            collection=self, href=stored.href, last_modified=http_date(stored.modified),
            etag=stored.etag, text=stored.text, uid=stored.uid, name=stored.name,
            component_name=stored.component, time_range=(stored.start, stored.end))

    def get_multi(self, hrefs: Iterable[str]
                  ) -> Iterator[Tuple[str, Optional[radicale_item.Item]]]:
        wanted = list(dict.fromkeys(hrefs))
        if not wanted:
            return
        found = {}
        if self._book is not None:
            found = {s.href: s for s in items.get_many(self._db, self._book.id, wanted)}
        for href in wanted:
            stored = found.get(href)
            yield href, self._item(stored) if stored is not None else None

    def get_all(self) -> Iterator[radicale_item.Item]:
        if self._book is None:
            return
        for stored in items.get_many(self._db, self._book.id):
            yield self._item(stored)

    def _get(self, href: str) -> Optional[radicale_item.Item]:
        if self._book is None or not pathutils.is_safe_filesystem_path_component(href):
            return None
        stored = items.get(self._db, self._book.id, href)
        return self._item(stored) if stored is not None else None

    def has_uid(self, uid: str) -> bool:
        if self._book is None:
            return False
        return self._db.value("SELECT 1 FROM dav_items WHERE collection = ? AND uid = ? "
                              "LIMIT 1", (self._book.id, uid)) is not None

    def upload(self, href: str, item: radicale_item.Item
               ) -> Tuple[radicale_item.Item, Optional[radicale_item.Item]]:
        if not pathutils.is_safe_filesystem_path_component(href):
            raise pathutils.UnsafePathError(href)
        stored = items.of_item(href, item)
        with self._db.transaction():
            old = items.put(self._db, self._id(), stored)
        self._fresh()
        if old is not None and old.text == stored.text:
            stored = old
        return self._item(stored), self._item(old) if old is not None else None

    def delete(self, href: Optional[str] = None) -> None:
        if href is None:
            self._storage._delete_tree(self._path)
            self._book = None
            return
        if not pathutils.is_safe_filesystem_path_component(href):
            raise pathutils.UnsafePathError(href)
        with self._db.transaction():
            if not items.remove(self._db, self._id(), href, self._storage.max_token_age):
                raise storage.ComponentNotFoundError(href)
        self._fresh()

    # -- properties -------------------------------------------------------------------
    @overload
    def get_meta(self, key: None = None) -> Mapping[str, str]: ...

    @overload
    def get_meta(self, key: str) -> Optional[str]: ...

    def get_meta(self, key: Optional[str] = None
                 ) -> Union[Mapping[str, str], Optional[str]]:
        props = self._book.props if self._book is not None else {}
        return props if key is None else props.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        if not self._path:
            raise ValueError("the root collection has no properties")
        text = json.dumps(dict(props), sort_keys=True)
        with self._db.transaction():
            if self._db.execute("UPDATE dav_collections SET props = ?, tag = ?, modified = ? "
                                "WHERE path = ?", (text, props.get("tag", ""), time.time(),
                                                   self._path)).rowcount == 0:
                raise ValueError("no collection %r" % self._path)
        self._fresh()

    # -- what clients compare -----------------------------------------------------------
    @property
    def last_modified(self) -> str:
        book = self._fresh()  # its time moves with every change of an item or property
        return http_date(book.modified if book is not None else 0.0)

    @property
    def etag(self) -> str:
        """The CTag: it changes with every numbered change and every property change."""
        book = self._fresh()
        if book is None:
            return '"%s"' % sha256(b"").hexdigest()
        state = "%s/%d/%s" % (book.incarnation, book.sync,
                              json.dumps(book.props, sort_keys=True))
        return '"%s"' % sha256(state.encode()).hexdigest()

    def sync(self, old_token: str = "") -> Tuple[str, Iterable[str]]:
        book = self._fresh()
        if book is None:
            raise ValueError("the root collection has no sync token")
        token = "%s%s-%d" % (TOKEN_PREFIX, book.incarnation, book.sync)
        if not old_token:
            return token, [s.href for s in items.get_many(self._db, book.id)]
        if old_token == token:
            return token, []
        name = old_token[len(TOKEN_PREFIX):] if old_token.startswith(TOKEN_PREFIX) else ""
        incarnation, _, number = name.rpartition("-")
        if incarnation != book.incarnation or not number.isdigit():
            raise ValueError("Token not found: %r" % old_token)
        change = int(number)
        if not book.oldest <= change <= book.sync:
            raise ValueError("Token expired or unknown: %r" % old_token)
        return token, items.changed_since(self._db, book.id, change)
