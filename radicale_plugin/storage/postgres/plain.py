# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's plain storage on PostgreSQL, without sharing:
``[storage] type = radicale_plugin.storage.postgres.plain`` (the product's storage,
:mod:`radicale_plugin.storage.postgres`, is this one with the sharing hooks).

Collections, items, properties and a change log per collection in one database
(:mod:`.schema`), shared by as many Radicale processes on as many hosts as needed.
There is no global lock: a write request runs in one transaction and holds the
advisory locks of the collection(s) it names (:meth:`Storage.acquire_lock`), so two
writes to one book are serialised as on the file backend while writes to different
books run side by side; a read request reads one snapshot.  The option
``[storage] postgresql_dsn`` names the database (a libpq connection string).

This is the plain storage: the sharing hooks subclass it (as :mod:`radicale_plugin.storage`
does the file one).  May import: the index's PostgreSQL database, the base modules
(``settings`` for the option schema), Radicale and psycopg.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import time
from typing import (Callable, ClassVar, ContextManager, Dict, Iterable, Iterator, List,
                    Mapping, Optional, Set, Tuple, Type)

import radicale.item as radicale_item
from radicale import config, pathutils, storage, types
from radicale.log import logger

from radicale_plugin.index.postgres.database import Database
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA
from radicale_plugin.storage.postgres import items as rows
from radicale_plugin.storage.postgres import schema
from radicale_plugin.storage.postgres.collection import Collection
from radicale_plugin.storage.postgres.connection import StorageUnavailable, database_for

__all__ = ["Collection", "Storage", "StorageUnavailable"]


@types.contextmanager
def _no_context(path: str, href: Optional[str]) -> Iterator[None]:
    yield


class Storage(storage.BaseStorage):
    """Radicale's storage on PostgreSQL (see the module's documentation)."""

    _collection_class: ClassVar[Type[Collection]] = Collection
    # PostgreSQL keeps any text as it is given (the file backend on Linux says the same)
    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True
    #: The item functions the fan-out's copy writer uses (it may not import this package).
    item_api = rows
    #: The version of the tables this code makes (``dav_schema_version``).
    SCHEMA_VERSION = schema.VERSION

    def __init__(self, configuration: config.Configuration) -> None:
        if "postgresql_dsn" not in configuration.options("storage"):
            # a subclass (the sharing's) may have added the plugin's options already
            configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database: Database = database_for(configuration.get("storage", "postgresql_dsn"))
        self.max_token_age = float(configuration.get("storage", "max_sync_token_age"))
        if configuration.get("storage", "hook"):
            logger.warning("PostgreSQL storage: [storage] hook is not run by this storage")

    # -- locking ----------------------------------------------------------------------
    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args, **kwargs) -> Iterator[None]:
        """"r": one snapshot for the request; "w": one transaction holding the locks of
        the collections the request names (its path and destination, and the
        collections above them; the user's home when it names none)."""
        if mode == "r":
            with self.database.snapshot():
                yield
            return
        with self.database.transaction():
            paths = [p for p in (kwargs.get("path"), kwargs.get("to_path")) if p]
            named = {pathutils.strip_path(pathutils.sanitize_path(p)) for p in paths}
            if not named and user:
                named = {user}
            rows.lock(self.database, *{q for p in named for q in (p, posixpath.dirname(p))})
            yield

    # -- finding ----------------------------------------------------------------------
    def _collection(self, path: str) -> Optional[Collection]:
        if not path:
            return self._collection_class(self, "/")
        return self._of(path, rows.book(self.database, path))

    def _of(self, path: str, book: Optional[rows.Book]) -> Optional[Collection]:
        """The collection of the row ``book`` read at ``path`` (None: there is none)."""
        if not path:
            return self._collection_class(self, "/")
        if book is None:
            return None
        return self._collection_class(self, pathutils.unstrip_path(path, True), book)

    def discover(self, path: str, depth: str = "0",
                 child_context_manager: Optional[
                     Callable[[str, Optional[str]], ContextManager[None]]] = None,
                 user_groups: Set[str] = set()) -> Iterator[types.CollectionOrItem]:
        context = child_context_manager or _no_context
        sane = pathutils.strip_path(path)
        if "/" in sane:  # an item's path, or a book's: both rows in one round trip
            found, above = rows.book_and_parent(self.database, sane)
            collection = self._of(sane, found)
        else:
            collection, above = self._collection(sane), None
        if collection is None:
            if "/" not in sane:
                return
            parent = self._of(posixpath.dirname(sane), above)
            if parent is None:
                return
            item = parent._get(posixpath.basename(sane))
            if item is not None:
                yield item
            return
        yield collection
        if depth == "0":
            return
        for item in collection.get_all():
            with context(sane, item.href):
                yield item
        for row in self.database.rows(
                "SELECT id, path, props, tag, incarnation, sync, oldest, modified FROM "
                "dav_collections WHERE parent = ? ORDER BY path", (sane,)):
            book = rows.Book.of(row)
            with context(book.path, None):
                yield self._collection_class(self, pathutils.unstrip_path(book.path, True),
                                             book)

    # -- writing ------------------------------------------------------------------------
    def _make(self, path: str, props: Mapping[str, str]) -> None:
        """Insert a collection row (and the plain collections above it, as the file
        backend's folders)."""
        now = time.time()
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            self.database.execute(
                "INSERT INTO dav_collections (path, parent, props, tag, incarnation, "
                "modified) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO NOTHING",
                (sub, posixpath.dirname(sub),
                 json.dumps(dict(props), sort_keys=True) if sub == path else "{}",
                 props.get("tag", "") if sub == path else "", secrets.token_hex(8), now))

    def _delete_tree(self, path: str) -> None:
        """Delete a collection and every collection under it (their items cascade)."""
        with self.database.transaction():
            if not path:
                raise ValueError("the root collection cannot be deleted")
            self.database.execute(
                "DELETE FROM dav_collections WHERE path = ? OR (path >= ? AND path < ?)",
                (path, path + "/", path + "0"))

    def create_collection(self, href: str,
                          items: Optional[Iterable[radicale_item.Item]] = None,
                          props: Optional[Mapping[str, str]] = None
                          ) -> Tuple[Collection, Dict[str, radicale_item.Item], List[str]]:
        sane = pathutils.strip_path(href)
        db = self.database
        with rows.all_or_nothing(db):  # a bad item: the book as it was, not half replaced
            if not sane:
                return self._collection_class(self, "/"), {}, []
            existing = self._collection(sane)
            if not props or (items is None and existing is not None
                             and dict(existing.get_meta()) == dict(props)):
                # nothing to replace: a second process creating the same home or
                # predefined book at once must not empty the first one's
                if existing is None:
                    self._make(sane, {})
                    existing = self._collection(sane)
                assert existing is not None
                return existing, {}, []
            old = {i.href: i for i in existing.get_all()} if existing is not None else {}
            if existing is not None:  # replaced as the file backend's folder: all of it
                self._delete_tree(sane)
            self._make(sane, props)
            collection = self._collection(sane)
            assert collection is not None and collection._book is not None
            suffix = {"VCALENDAR": ".ics", "VADDRESSBOOK": ".vcf"}.get(props.get("tag", ""))
            hrefs: list[str] = []
            if items is not None and suffix:
                for item in items:
                    href = self._free_href(item.uid, suffix, set(hrefs))
                    rows.put(db, collection._book.id, rows.of_item(href, item))
                    hrefs.append(href)
            collection._fresh()
        return collection, {h: old[h] for h in hrefs if h in old}, \
            [h for h in hrefs if h not in old]

    @staticmethod
    def _free_href(uid: str, suffix: str, taken: set[str]) -> str:
        """The href of an item of a collection PUT whole (the file backend's choice)."""
        def free(href: str) -> bool:
            return pathutils.is_safe_filesystem_path_component(href) and href not in taken
        for href in (uid if uid.lower().endswith(suffix.lower()) else uid + suffix,
                     radicale_item.get_etag(uid).strip('"') + suffix):
            if free(href):
                return href
        return radicale_item.find_available_uid(lambda h: not free(h), suffix)

    def move(self, item: radicale_item.Item, to_collection: storage.BaseCollection,
             to_href: str) -> None:
        if not pathutils.is_safe_filesystem_path_component(to_href):
            raise pathutils.UnsafePathError(to_href)
        assert isinstance(to_collection, Collection)
        assert isinstance(item.collection, Collection) and item.href
        source, db = item.collection, self.database
        with rows.all_or_nothing(db):
            stored = rows.get(db, source._id(), item.href)
            if stored is None:
                raise ValueError("no item %r in %r to move" % (item.href, source.path))
            target = to_collection._id()
            # the source first: a move within one collection replaces the href's row
            rows.remove(db, source._id(), item.href, self.max_token_age)
            rows.put(db, target, rows.Stored(
                to_href, stored.uid, stored.text, stored.etag, stored.name, stored.component,
                stored.start, stored.end, time.time()))
        source._fresh()
        to_collection._fresh()

    def verify(self) -> bool:
        """Every item readable (a broken one fails unless ``skip_broken_item``, as on the
        file storage); a UID twice in one collection is logged."""
        ok = True
        occurrences = self.configuration.get("server", "max_vevent_rrule_occurrence")
        skip = self.configuration.get("storage", "skip_broken_item")
        for row in self.database.rows("SELECT c.path, i.href, c.tag, i.text FROM dav_items i "
                                      "JOIN dav_collections c ON c.id = i.collection "
                                      "ORDER BY c.path, i.href"):
            try:
                radicale_item.check_and_sanitize_items(
                    radicale_item.read_components(row[3]), occurrences, tag=row[2])
            except Exception as e:
                if skip:
                    logger.warning("Skip broken item %r in %r: %s", row[1], row[0], e)
                else:
                    ok = False
                    logger.error("Invalid item %r in %r: %s", row[1], row[0], e)
        for row in self.database.rows("SELECT c.path, i.uid, COUNT(*) FROM dav_items i JOIN "
                                      "dav_collections c ON c.id = i.collection WHERE "
                                      "i.uid <> '' GROUP BY c.path, i.uid "
                                      "HAVING COUNT(*) > 1"):
            logger.error("UID %r appears %d times in %r", row[1], row[2], row[0])
        return ok
