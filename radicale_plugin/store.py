# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading and writing Radicale collections on behalf of the sharing code.

Every function here expects the caller to hold the storage lock (the
request's, or the fan-out worker's own); none takes it.
"""

from __future__ import annotations

import os
from typing import Iterator
from urllib.parse import unquote, urlsplit

import radicale.item as radicale_item
import vobject
from radicale import pathutils, storage

from radicale_plugin.errors import BadCard, BadRequest, Forbidden, NotFound


def user_of(path: str) -> str:
    """The user owning a sanitized collection path (``alice/contacts`` → ``alice``)."""
    return path.strip("/").split("/", 1)[0]


def user_exists(store: storage.BaseStorage, user: str) -> bool:
    """A user exists on this server once their principal collection exists."""
    if not user or not pathutils.is_safe_path_component(user):
        return False
    return next(iter(store.discover("/%s/" % user)), None) is not None


def address_books(store: storage.BaseStorage, user: str) -> list[storage.BaseCollection]:
    """The user's address books, sorted by path."""
    books = [c for c in store.discover("/%s/" % user, depth="1")
             if isinstance(c, storage.BaseCollection) and c.path.count("/") == 1
             and c.tag == "VADDRESSBOOK"]
    return sorted(books, key=lambda c: c.path)


def all_address_books(store: storage.BaseStorage) -> Iterator[storage.BaseCollection]:
    """Every address book of every user."""
    for principal in list(store.discover("/", depth="1")):
        if (isinstance(principal, storage.BaseCollection) and principal.path
                and "/" not in principal.path):
            yield from address_books(store, principal.path)


def folder_mtime(collection: storage.BaseCollection) -> int:
    """When the book's folder last changed (ns): Radicale renames every write into it.
    A storage that numbers its changes (PostgreSQL) gives the book's last change number."""
    number = getattr(collection, "change_number", None)
    if callable(number):
        return int(number())
    try:
        return os.stat(getattr(collection, "_filesystem_path")).st_mtime_ns
    except (AttributeError, OSError):
        return 0


def book(store: storage.BaseStorage, path: str) -> storage.BaseCollection | None:
    found = next(iter(store.discover("/%s/" % path.strip("/"))), None)
    if isinstance(found, storage.BaseCollection) and found.tag == "VADDRESSBOOK":
        return found
    return None


def cards(collection: storage.BaseCollection) -> Iterator[tuple[str, str]]:
    """(href, text) of every item of a collection."""
    for item in collection.get_all():
        if item.href:
            yield item.href, item.serialize()


def card_text(collection: storage.BaseCollection, href: str) -> str | None:
    for found_href, item in collection.get_multi([href]):
        if item is not None and found_href == href:
            return item.serialize()
    return None


def storage_of(collection: storage.BaseCollection) -> storage.BaseStorage:
    """The storage a collection of ours belongs to."""
    return collection._storage  # type: ignore[attr-defined]


def split_card_path(user: str, value: str) -> tuple[str, str]:
    """``/alice/contacts/me.vcf`` (or a full URL) → (``alice/contacts``, ``me.vcf``).

    Raises when the path does not name a card inside one of ``user``'s books.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > 1024:
        raise BadRequest("the path %r contains control characters or is too long" % value[:80])
    try:
        raw = unquote(urlsplit(value.strip()).path)
    except ValueError as e:
        raise BadRequest("%r is not a path such as /%s/BOOK/CARD.vcf" % (value[:80], user)) from e
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise BadRequest("the path %r contains control characters" % value[:80])
    path = pathutils.strip_path(pathutils.sanitize_path(raw))
    parts = path.split("/")
    if len(parts) != 3 or not all(parts):
        raise NotFound("%r is not the path of a card: use /%s/BOOK/CARD.vcf" % (value, user))
    if parts[0] != user:
        raise Forbidden("%r is not in one of your address books (/%s/...)" % (value, user))
    return "/".join(parts[:2]), parts[2]


def write_card(collection: storage.BaseCollection, href: str, text: str) -> str:
    """Store ``text`` at ``href`` after checking that Radicale can read it; return the ETag."""
    try:
        parsed = vobject.readOne(text)
        radicale_item.check_and_sanitize_items([parsed], 0, tag="VADDRESSBOOK")
        # one parse serves both the check and Radicale's item cache (we hold the lock)
        item = radicale_item.Item(collection_path=collection.path, vobject_item=parsed,
                                  text=text)
        item.prepare()
    except Exception as e:
        raise BadCard("the card does not parse (%s); nothing written" % e) from e
    uploaded, _ = collection.upload(href, item)
    return uploaded.etag
