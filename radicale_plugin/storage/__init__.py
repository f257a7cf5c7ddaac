# SPDX-License-Identifier: GPL-3.0-or-later
"""The storage plugin: Radicale's multifilesystem storage, watching every card.

``[storage] type = radicale_plugin.storage``.  Every write path is covered:
PUT of a card (``upload``), PUT of a whole book (``create_collection``), MOVE
(``move``), DELETE (``delete``) and PROPPATCH of Apple's me-card property on
the address-book home (``set_meta``).  The hooks keep the card-key index,
links and me cards current and only record changes; the fan-out worker is
woken, and WebDAV-Push told which books changed, when the request releases
the write lock.

The part of the house: an entry point (Radicale loads it by name); it may import
every part below it.  A storage on PostgreSQL stands beside it in
:mod:`radicale_plugin.storage.postgres` (``[storage] type = radicale_plugin.storage.postgres``).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional

import radicale.item as radicale_item
from radicale import config, types
from radicale.storage import multifilesystem

from radicale_plugin.vcard import behaviors as vobject_behaviors  # noqa: F401  (keeps vCard 4.0 data: URIs whole)
from radicale_plugin.owner.me_cards import ME_CARD_PROPERTY
from radicale_plugin.http.refusals import carried  # a refusal's reason reaches the client's answer
from radicale_plugin.fanout import memory
from radicale_plugin.service import SharingService
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings


class Collection(multifilesystem.Collection):
    """A collection whose writes keep the sharing index up to date."""

    _storage: "Storage"

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


class Storage(multifilesystem.Storage):
    """Radicale's file storage with me cards, sharing and the fan-out."""

    _collection_class = Collection

    def __init__(self, configuration: config.Configuration) -> None:
        memory.limit_arenas()  # before the sharing's threads make malloc arenas of their own
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        # Radicale builds several Storage objects per process: they share one service
        self.sharing = SharingService.for_storage(
            self, Settings.from_configuration(configuration), configuration)
        self.sharing.worker.start()
        self.sharing.push_sender.start()
        self.sharing.notify_sender.start()

    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args, **kwargs) -> Iterator[None]:
        try:
            with super().acquire_lock(mode, user, *args, **kwargs):
                yield
        finally:
            if mode == "w":
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
        if not isinstance(home, multifilesystem.Collection):
            return
        meta = dict(home.get_meta())
        if meta.get(ME_CARD_PROPERTY) == value:
            return
        if value is None:
            meta.pop(ME_CARD_PROPERTY, None)
        else:
            meta[ME_CARD_PROPERTY] = value
        multifilesystem.Collection.set_meta(home, meta)
