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

from radicale import config
from radicale.storage import multifilesystem

from radicale_plugin.vcard import behaviors as vobject_behaviors  # noqa: F401  (keeps vCard 4.0 data: URIs whole)
from radicale_plugin.storage.hooks import SharingCollection, SharingStorage
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA


class Collection(SharingCollection, multifilesystem.Collection):
    """A collection whose writes keep the sharing index up to date (the hooks:
    :mod:`radicale_plugin.storage.hooks`)."""

    _storage: "Storage"


class Storage(SharingStorage, multifilesystem.Storage):
    """Radicale's file storage with me cards, sharing and the fan-out."""

    _collection_class = Collection

    def __init__(self, configuration: config.Configuration) -> None:
        super().__init__(configuration.copy(PLUGIN_CONFIG_SCHEMA))
        self.start_sharing(configuration)
