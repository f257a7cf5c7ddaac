# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing service: the parts of one storage folder, wired together once.

One service exists per storage folder and process: Radicale creates its
``Storage`` twice (the app, and its own sharing module) and the web plugin
loads a third, and all of them must share one index and one fan-out worker.

The storage hooks (``on_*``) run inside a request that holds the storage
write lock; they keep the card-key index, the links and the me cards
current, and never write into anybody else's book.  They also note which
books changed; WebDAV-Push hears of them when the lock is released
(:meth:`SharingService.wake`).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import IO, Any, ClassVar

import radicale.item as radicale_item
from radicale import config, group
from radicale import storage as radicale_storage
from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.delivery import recovery
from radicale_plugin.index import running
from radicale_plugin.delivery.card_index import CardKeys
from radicale_plugin.context import Context
from radicale_plugin.delivery.copy_files import CopyFiles
from radicale_plugin.delivery.copy_rows import CopyRows
from radicale_plugin.delivery.writer import CopyWriter
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.consent.discovery import Discovery
from radicale_plugin.fanout.worker import FanoutWorker
from radicale_plugin.index import SharingIndex
from radicale_plugin.recipient.invites import Invites
from radicale_plugin.consent.links import Links
from radicale_plugin.recipient.offers import Offers
from radicale_plugin.notify.choices import Choices
from radicale_plugin.notify.sender import NotifySender
from radicale_plugin.recipient.undo import Undo
from radicale_plugin.owner.me_cards import ME_CARD_PROPERTY, Owners
from radicale_plugin.consent.policies import Policies
from radicale_plugin.push.service import Push
from radicale_plugin.push.keys import VapidKeys
from radicale_plugin.push.sender import PushSender
from radicale_plugin.owner.targets import Targets
from radicale_plugin.settings import Settings
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.index.postgres import PostgresIndex
from radicale_plugin.index.postgres import running as pg_running
from radicale_plugin.owner.verification import Verification

__all__ = ["SharingService", "ME_CARD_PROPERTY"]


def open_index(store_: radicale_storage.BaseStorage, settings: Settings,
               checkpoint_wait: float = 0.0) -> SharingIndex:
    """The sharing index of a storage's deployment: on a storage on PostgreSQL (it has a
    ``database``) in that database, on the storage's own :class:`Database` object (one
    transaction of a thread holds an item and the index's rows); else the SQLite file of
    ``settings``.  The server (:meth:`SharingService.for_storage`) and the admin command
    open theirs here."""
    database = getattr(store_, "database", None)
    if database is not None:
        return PostgresIndex(database)
    return SQLiteIndex(settings.database, settings.region, checkpoint_wait=checkpoint_wait)


def copy_writer(store_: radicale_storage.BaseStorage) -> CopyWriter:
    """How the fan-out reads and writes cards of this storage: as rows of its database
    (PostgreSQL, through the storage's ``item_api``), else as files."""
    database = getattr(store_, "database", None)
    if database is not None:
        return CopyRows(database, getattr(store_, "item_api"))
    return CopyFiles(store_)


def _groups_backend(configuration: config.Configuration | None):
    """Radicale's ``[group]`` backend, for pre-authorisation by group (or None)."""
    if configuration is None or configuration.get("group", "type") == "none":
        return None
    return group.load(configuration)


class SharingService:
    """Me cards, sharing settings, consent and the fan-out for one storage folder."""

    _services: ClassVar[dict[str, "SharingService"]] = {}
    _services_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store_: radicale_storage.BaseStorage, settings: Settings,
                 index: SharingIndex, configuration: config.Configuration | None = None,
                 writer: CopyWriter | None = None) -> None:
        backend = _groups_backend(configuration)
        self.ctx = Context(store_, settings, index,
                           groups_of=backend.groups if backend else (lambda user: set()))
        self.discovery = Discovery(self.ctx)
        self.owners = Owners(self.ctx, self.discovery)
        self.card_keys = CardKeys(self.ctx)
        self.ctx.region_changed = self.card_keys.region_changed
        self.links = Links(self.ctx)
        self.policies = Policies(self.ctx, self.links)
        self.targets = Targets(self.ctx, self.discovery)
        # copies as files (the file storage), or as rows of the storage's database
        self.deliverer = Deliverer(self.ctx, writer if writer is not None
                                   else copy_writer(store_))
        self.offers = Offers(self.ctx, self.deliverer)
        self.invites = Invites(self.ctx, self.deliverer)
        self.undo = Undo(self.ctx, self.deliverer)  # the recipient's history and undo
        self.verification = Verification(self.ctx, self.owners)
        self.worker = FanoutWorker(self.ctx, self.owners, self.card_keys, self.targets,
                                   self.deliverer, self.offers)
        self.ctx.wake = self.worker.wake
        self.push = Push(self.ctx, VapidKeys(settings.push_vapid_key or os.path.join(
            os.path.dirname(settings.database), ".mecard-vapid.pem")))
        self.push_sender = PushSender(self.ctx, self.push.keys, self.push.topic)
        self.ctx.books_changed = self.push_sender.mark
        #: notifications: the users' choices, and the e-mail sender's thread
        self.notify = Choices(self.ctx)
        self.notify_sender = NotifySender(self.ctx, self.notify)
        #: Books this thread changed under the storage lock, told to push when it is released.
        self._changed = threading.local()
        #: The server's mark on its database (:mod:`radicale_plugin.index.running`, or
        #: :mod:`radicale_plugin.index.postgres.running`).
        self._running_mark: IO[bytes] | pg_running.Mark | None = None
        #: The database, as the logs name it.
        self._where = settings.database

    @property
    def index(self) -> SharingIndex:
        return self.ctx.index

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def storage(self) -> radicale_storage.BaseStorage:
        return self.ctx.storage

    @classmethod
    def for_storage(cls, store_: radicale_storage.BaseStorage, settings: Settings,
                    configuration: config.Configuration | None = None) -> "SharingService":
        """The process's service for this storage's database, created once."""
        database = getattr(store_, "database", None)
        if database is not None:  # the storage on PostgreSQL
            return cls._for_postgres(store_, settings, configuration, database)
        with cls._services_lock:
            service = cls._services.get(settings.database)
            if service is None:
                os.makedirs(os.path.dirname(settings.database), exist_ok=True)
                # a server runs on it from now on: the admin's import is refused
                mark = running.hold(settings.database)
                existed = os.path.exists(settings.database)
                # its clean stop may wait a little for an admin command to checkpoint
                index = open_index(store_, settings, checkpoint_wait=5.0)
                service = cls(store_, settings, index, configuration)
                service._running_mark = mark
                if not cls._services:
                    # a clean stop (stock radicale too) checkpoints the database
                    atexit.register(cls.close_all)
                cls._services[settings.database] = service
                service.check_at_start(existed, configuration)
            return service

    @classmethod
    def _for_postgres(cls, store_: radicale_storage.BaseStorage, settings: Settings,
                      configuration: config.Configuration | None, database: Any
                      ) -> "SharingService":
        """The service of a storage on PostgreSQL: the index in the storage's database, on
        the storage's own :class:`Database` object (one transaction of a thread holds an
        item and the index's rows: a copy and its delivery record, a me card and its
        outbox entry), and copies written as rows (:class:`CopyRows`).

        The running mark is an advisory lock in the database
        (:mod:`.index.postgres.running`: it keeps an admin's import off a database
        servers use); left out, being the file storage's: the start-up check of the
        collections' files against the index (:mod:`.delivery.recovery`): here a book
        and its index rows change in one transaction."""
        key = "postgresql:%s" % database.dsn
        with cls._services_lock:
            service = cls._services.get(key)
            if service is None:
                # a server runs on it from now on (waits for an import running now)
                mark = pg_running.hold(database.dsn)
                service = cls(store_, settings, open_index(store_, settings), configuration)
                service._running_mark = mark
                if not cls._services:
                    atexit.register(cls.close_all)
                service._where = database.describe()
                cls._services[key] = service
            return service

    def close(self) -> None:
        """A clean stop: the fan-out ends its round, then the database is checkpointed and
        closed, so that its file alone is a complete backup."""
        self.notify_sender.stop()
        self.push_sender.stop()  # before the index closes under it
        if not self.worker.stop():
            logger.warning("Sharing: the fan-out did not end its round in time; it is "
                           "finished at the next start")
        self.index.close()
        logger.info("Sharing: database %s checkpointed and closed", self._where)
        if self._running_mark is not None:
            self._running_mark.close()

    @classmethod
    def close_all(cls) -> None:
        """Close every service of this process (at exit; once)."""
        with cls._services_lock:
            services = list(cls._services.values())
            cls._services.clear()
        for service in services:
            try:
                service.close()
            except Exception as e:  # the others still close
                logger.warning("Sharing: closing %s failed: %s", service.settings.database, e)

    def check_at_start(self, existed: bool,
                       configuration: config.Configuration | None = None) -> None:
        """Say loudly if the database was lost or belongs to other collections (see
        :mod:`radicale_plugin.delivery.recovery`); it only logs, and never stops the server."""
        try:
            recovery.check_at_start(self.storage, self.deliverer.files, self.index,
                                    self.settings.database, existed, self.push.keys.path,
                                    recovery.admin_command(configuration))
        except Exception as e:  # a failed check must not keep every user from their books
            logger.warning("Sharing: the start-up check of %s failed: %s",
                           self.settings.database, e, exc_info=True)

    def wake(self) -> None:
        """A write lock was released: wake the worker, and push the books this thread changed."""
        books = getattr(self._changed, "books", None)
        if books:
            self._changed.books = set()
            self.push_sender.mark(books)
        self.worker.wake()

    def _book_changed(self, *paths: str) -> None:
        """Remember books changed under the lock (pushed when it is released, see wake)."""
        books = getattr(self._changed, "books", None)
        if books is None:
            books = self._changed.books = set()
        books.update(paths)

    # -- hooks, called under the request's write lock ---------------------------
    def check_upload(self, collection: radicale_storage.BaseCollection, href: str,
                     item: radicale_item.Item) -> None:
        """Refuse, before it is stored, a me card that breaks the rules."""
        if self._is_owner_book(collection):
            self.owners.check_upload(collection, href, item.serialize(), item.uid)

    def check_book(self, path: str, items: list[radicale_item.Item]) -> None:
        """Refuse a whole-book write whose me card breaks the rules, before it is stored."""
        book = path.strip("/")
        owner = self.index.owners.get(store.user_of(book))
        if owner.book != book:
            return
        for item in items:
            if self.owners.is_me_card(owner, book, item.href or "", item.uid):
                self.owners.check_upload_text(item.serialize(), owner.user)

    def _is_owner_book(self, collection: radicale_storage.BaseCollection) -> bool:
        return self.index.owners.get(store.user_of(collection.path)).book == collection.path

    def on_item_written(self, collection: radicale_storage.BaseCollection, href: str,
                        item: radicale_item.Item) -> None:
        self._book_changed(collection.path)
        text = item.serialize()
        # One commit per write, which need not wait for the disk: Radicale made the file
        # durable, and if a power loss takes the commit back, the start-up check reads
        # again the books and me cards whose files changed.
        owner = self.index.owners.get(store.user_of(collection.path))
        with self.index.transaction(durable=False):
            before = self.index.cards.card(collection.path, href)
            self.card_keys.on_written(collection, href, text)
            if owner.book == collection.path:
                # before the links: a card that held a copy is never the me card by its UID
                self.owners.on_written(collection, href, text, item.uid)
            # another card where a linked one was (a new card at a deleted copy's href, a
            # changed UID): that link ends, before anything reads it as a copy
            self.links.on_written(collection.path, href, item.uid,
                                  before.uid if before is not None else None)
            if not (owner.book == collection.path and owner.href == href):
                # the me card is no contact of its owner's rules: its own change (if its
                # view changed) is queued by on_written; re-planning every target for an
                # edit of an unshared note made the owner's PUTs several times slower
                self._contacts_changed(collection.path, owner)
            if not self.ctx.writing_copy():
                # a client that saves without If-Match may have written an older copy of
                # an owner's card back: the owner is told, the fan-out puts it right
                self.deliverer.check_copy(collection.path, href, text)

    def _contacts_changed(self, path: str, owner: idx.Owner | None = None) -> None:
        """A contact of an owner changed: their ``all``/``group:`` rules may select others now.

        One queued plan is enough however many contacts a phone writes in a row.
        """
        if self.ctx.writing_copy():
            return  # a copy we wrote: the recipient's own rules see it at their next change
        user = store.user_of(path)
        if owner is None or owner.user != user:
            owner = self.index.owners.get(user)
        if owner.view is None or not any(r == "all" or r.startswith("group:")
                                         for r in owner.rules):
            return
        if not self.index.outbox.queued(user, full_only=True):
            self.index.outbox.requeue(user)

    def on_item_deleted(self, collection: radicale_storage.BaseCollection,
                        href: str | None) -> None:
        self._book_changed(collection.path)
        with self.index.transaction():
            self.card_keys.on_deleted(collection, href)
            self.links.on_deleted(collection.path if href is None else
                                  "%s/%s" % (collection.path, href))
            self.owners.on_deleted(collection.path, href)
            self._contacts_changed(collection.path)
            if href is None:  # a whole book (or home): its push subscriptions go with it
                self.push_sender.forget_book(collection.path)

    def on_collection_replaced(self, collection: radicale_storage.BaseCollection) -> None:
        self._book_changed(collection.path)
        with self.index.transaction():
            linked = self.links.uids_before(collection.path)
            self.card_keys.on_replaced(collection)
            self.links.on_replaced(collection.path, linked)  # each follows its card, or ends
            self.owners.on_replaced(collection)
            self._contacts_changed(collection.path)

    def on_item_moved(self, from_collection: radicale_storage.BaseCollection, from_href: str,
                      to_collection: radicale_storage.BaseCollection, to_href: str,
                      text: str) -> tuple[str, str | None] | None:
        """Returns (user, new ``CS:me-card`` value; None: remove it) if a me card moved."""
        self._book_changed(from_collection.path, to_collection.path)
        with self.index.transaction():
            self.card_keys.on_moved(from_collection, from_href, to_collection, to_href, text)
            self.links.on_moved(from_collection.path, from_href, to_collection.path, to_href)
            moved = self.owners.on_moved(from_collection.path, from_href, to_collection,
                                         to_href, text)
            self._contacts_changed(to_collection.path)
        return moved

    def on_me_card_property(self, principal: radicale_storage.BaseCollection,
                            value: str | None) -> str | None:
        return self.owners.on_me_card_property(principal, value)
