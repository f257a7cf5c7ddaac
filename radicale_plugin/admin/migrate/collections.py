# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's collections as a client sees them, through the storage API of any backend.

A collection is its path, its properties and its items, each item as the text
Radicale serves and its ETag (:class:`Found`).  The same walk reads the file
storage and the PostgreSQL one, so that the copy (:func:`copy_collection`) and the
check (:func:`differences`) compare what clients get from each: an ETag on
PostgreSQL must be the one the client already holds, or it downloads every card
again.  Only Radicale's public storage API is used; the file storage's listing
(``_list``) is asked, where there is one, for the files Radicale cannot read (it
skips them silently, and a migration must not lose them without a word).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import radicale.item as radicale_item
from radicale import pathutils
from radicale import storage as radicale_storage


@dataclasses.dataclass
class Found:
    """One collection: ``path`` without slashes around it ("" is the root)."""

    path: str
    props: dict[str, str]
    #: href -> (text as served, ETag)
    items: dict[str, tuple[str, str]]
    #: paths of the collections under it
    children: list[str]
    #: hrefs of files the storage lists but cannot read
    unreadable: list[str]

    @property
    def tag(self) -> str:
        return self.props.get("tag", "")

    def href(self) -> str:
        """The path as a client writes it ("/alice/contacts/")."""
        return pathutils.unstrip_path(self.path, True)


def read(store: radicale_storage.BaseStorage, path: str) -> Found | None:
    """The collection at ``path`` with its items and the paths of its children, or None
    when there is none."""
    found: Found | None = None
    collection: radicale_storage.BaseCollection | None = None
    for entry in store.discover(pathutils.unstrip_path(path, True), depth="1"):
        if isinstance(entry, radicale_storage.BaseCollection):
            if found is None:
                collection = entry
                found = Found(entry.path.strip("/"), dict(entry.get_meta()), {}, [], [])
            else:
                found.children.append(entry.path.strip("/"))
        elif found is not None and entry.href is not None:
            found.items[entry.href] = (entry.serialize(), entry.etag)
        else:
            return None  # an item, not a collection
    if found is None:
        return None
    listing = getattr(collection, "_list", None)
    if listing is not None:  # the file storage: what it lists and skipped
        found.unreadable = sorted(set(listing()) - set(found.items))
    found.children.sort()
    return found


def walk(store: radicale_storage.BaseStorage) -> Iterator[Found]:
    """Every collection under the root (the root itself left out), parents first, in
    path order."""
    root = read(store, "")
    pending = list(reversed(root.children)) if root is not None else []
    while pending:
        found = read(store, pending.pop())
        if found is None:
            continue  # gone meanwhile
        yield found
        pending.extend(reversed(found.children))


def copy_collection(found: Found, target: radicale_storage.BaseStorage) -> int:
    """Make ``found`` on ``target`` with its properties and its items under the same
    hrefs and with the same text (hence the same ETags); how many items it copied."""
    if found.props:
        collection = target.create_collection(found.href(), props=found.props)[0]
    else:
        collection = target.create_collection(found.href())[0]
    for href, (text, _) in sorted(found.items.items()):
        collection.upload(href, radicale_item.Item(collection_path=found.path, text=text))
    return len(found.items)


def differences(source: Found | None, target: Found | None, path: str,
                names: tuple[str, str] = ("files", "PostgreSQL")) -> Iterable[str]:
    """One line per difference between a collection on both sides."""
    ours, theirs = names
    where = pathutils.unstrip_path(path, True)
    if source is None or target is None:
        yield "collection %s: only in %s" % (where, ours if target is None else theirs)
        return
    for name in sorted(set(source.props) | set(target.props)):
        a, b = source.props.get(name), target.props.get(name)
        if a != b:
            yield "collection %s: property %s is %s in %s, %s in %s" % (
                where, name, _said(a), ours, _said(b), theirs)
    for href in sorted(set(source.items) | set(target.items)):
        a_item, b_item = source.items.get(href), target.items.get(href)
        if a_item is None or b_item is None:
            yield "item %s%s: only in %s" % (where, href, ours if b_item is None else theirs)
        elif a_item[0] != b_item[0]:
            yield "item %s%s: its text differs (ETag %s in %s, %s in %s)" % (
                where, href, a_item[1], ours, b_item[1], theirs)
        elif a_item[1] != b_item[1]:
            yield "item %s%s: the same text with ETag %s in %s, %s in %s" % (
                where, href, a_item[1], ours, b_item[1], theirs)


def _said(value: str | None) -> str:
    if value is None:
        return "absent"
    return repr(value if len(value) <= 60 else value[:57] + "...")
