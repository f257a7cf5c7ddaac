# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing hooks of a Radicale storage, written once for every backend.

:class:`SharingCollection` and :class:`SharingStorage` go first in the bases of a
storage plugin's ``Collection`` and ``Storage`` (the file one in
:mod:`radicale_plugin.storage`, the PostgreSQL one in
:mod:`radicale_plugin.storage.postgres`) and watch every write path: PUT of a
card (``upload``), PUT of a whole book (``create_collection``), MOVE (``move``),
DELETE (``delete``) and PROPPATCH of Apple's me-card property on the address-book home
(``set_meta``).  The hooks keep the card-key index, links and me cards current and only
record changes; the fan-out worker is woken, and WebDAV-Push told which books changed,
when the request's write lock is released.

A backend says two things through the small methods at the end of each class: whether
the calling thread is already inside a write of its own (a nested lock must not wake
the worker before the outer one ends), and what more a write lock taken by the
plugin itself (not by a request) must hold.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional

import radicale.item as radicale_item
from radicale import config, storage, types

from radicale_plugin.fanout import memory
from radicale_plugin.http.refusals import carried  # a refusal's reason reaches the client's answer
from radicale_plugin.owner.me_cards import ME_CARD_PROPERTY
from radicale_plugin.service import SharingService
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings


class SharingCollection(storage.BaseCollection):
    """A collection whose writes keep the sharing index up to date."""

    _storage: "SharingStorage"

    @carried
    def upload(self, href: str, item: radicale_item.Item
               ) -> tuple[radicale_item.Item, Optional[radicale_item.Item]]:
        self._storage.sharing.check_upload(self, href, item)
        uploaded, old = super().upload(href, item)
        self._storage.sharing.on_item_written(self, href, uploaded)
        return uploaded, old

    @carried
    def delete(self, href: Optional[str] = None) -> None:
        super().delete(href)
        self._storage.sharing.on_item_deleted(self, href)

    @carried
    def set_meta(self, props: Mapping[str, str]) -> None:
        if self.path and "/" not in self.path:  # the address-book home
            new, old = props.get(ME_CARD_PROPERTY), self.get_meta(ME_CARD_PROPERTY)
            if new != old:
                stored = self._storage.sharing.on_me_card_property(self, new)
                props = {k: v for k, v in props.items() if k != ME_CARD_PROPERTY}
                if stored is not None:
                    props[ME_CARD_PROPERTY] = stored
        super().set_meta(props)

    def set_meta_unwatched(self, props: Mapping[str, str]) -> None:
        """The backend's own ``set_meta``, without the designation hook."""
        super().set_meta(props)


class SharingStorage(storage.BaseStorage):
    """A storage with me cards, sharing and the fan-out (see the module's text)."""

    sharing: SharingService

    def start_sharing(self, configuration: config.Configuration) -> None:
        """Find (or make) the process's service for this storage and start its threads.

        Radicale builds several Storage objects per process: they share one service."""
        memory.limit_arenas()  # before the sharing's threads make malloc arenas of their own
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        self.sharing = SharingService.for_storage(
            self, Settings.from_configuration(configuration), configuration)
        self.sharing.worker.start()
        self.sharing.push_sender.start()
        self.sharing.notify_sender.start()

    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args, **kwargs) -> Iterator[None]:
        nested = self.writing_already()
        try:
            with super().acquire_lock(mode, user, *args, **kwargs):
                if mode == "w" and "path" not in kwargs and user:
                    self.hold_for_plugin(user)
                yield
        finally:
            if mode == "w" and not nested:
                # also after a failed request: what it did write must reach the worker
                # and the push subscribers
                self.sharing.wake()

    @carried
    def create_collection(self, href: str,
                          items: Optional[Iterable[radicale_item.Item]] = None,
                          props: Optional[Mapping[str, str]] = None):
        if items is not None:
            items = list(items)
            self.sharing.check_book(href, items)
        result = super().create_collection(href, items, props)
        self.sharing.on_collection_replaced(result[0])
        return result

    @carried
    def move(self, item: radicale_item.Item, to_collection, to_href: str) -> None:
        assert item.collection is not None and item.href is not None
        from_collection, from_href = item.collection, item.href
        # also refuses a copy moved onto a me card (given the copy's UID): re-publication
        self.sharing.check_upload(to_collection, to_href, item)
        super().move(item, to_collection, to_href)
        moved = self.sharing.on_item_moved(from_collection, from_href, to_collection, to_href,
                                           item.serialize())
        if moved is not None:
            self._set_me_card_property(*moved)

    def _set_me_card_property(self, user: str, value: Optional[str]) -> None:
        """A me card moved: Apple's ``CS:me-card`` on the home follows it (written as it is:
        the index already knows, so the designation hook must not run again)."""
        home = next(iter(self.discover("/%s/" % user)), None)
        if not isinstance(home, SharingCollection):
            return
        meta = dict(home.get_meta())
        if meta.get(ME_CARD_PROPERTY) == value:
            return
        if value is None:
            meta.pop(ME_CARD_PROPERTY, None)
        else:
            meta[ME_CARD_PROPERTY] = value
        home.set_meta_unwatched(meta)

    # -- what a backend says ------------------------------------------------------------
    def writing_already(self) -> bool:
        """Is the calling thread inside a write lock of its own already?  (The file
        backend's lock cannot nest at all: never.)"""
        return False

    def hold_for_plugin(self, user: str) -> None:
        """A write lock the plugin takes for ``user`` (an answer to an offer, a setting):
        hold what its writes into the user's books need (the file backend's global lock
        holds everything already)."""
