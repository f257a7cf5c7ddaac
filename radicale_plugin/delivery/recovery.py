# SPDX-License-Identifier: GPL-3.0-or-later
"""What the collections still say about the sharing state, and whether the index agrees.

The sharing index (``.mecard.sqlite``) is the only place that knows targets,
shared fields, keys and their verification, policies, offers, history and
most links.  The collections keep two traces of their own:

- each address-book home's ``CS:me-card`` property names its owner's me card
  (the server writes it whenever a me card is designated);
- a copy the server *created* carries a UID derived from the owner and the
  recipient (:func:`radicale_plugin.vcard.merge.copy_uid`, a UUID version 5), and is
  stored under that UID plus ``.vcf``.

From them :func:`check` finds an index that was lost, replaced or restored
from another time, and :func:`rebuild` brings back what they allow: the
card-key index, me cards of users the index knows nothing about, and links
of created copies.  Nothing else is invented: targets, policies and
verifications come back only from an export (:mod:`radicale_plugin.admin.backup`).

At start (:func:`check_at_start`) only the cheap part runs, one small file per
user: a missing database or unknown me cards are logged as an ERROR naming
the commands to run; the card-key index is rebuilt by the fan-out worker's
start-up check as before.  Nothing else is repaired without the admin.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable

from radicale import config
from radicale import storage as radicale_storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.delivery.card_index import CardKeys, index_card
from radicale_plugin.delivery.writer import CopyWriter
from radicale_plugin.errors import SharingError
from radicale_plugin.index import LINK_CREATED, WITHDRAWN, IndexedCard, Link, SharingIndex
from radicale_plugin.vcard.merge import copy_uid
from radicale_plugin.owner.me_cards import ME_CARD_PROPERTY, Owners

#: A version-5 UUID, as :func:`copy_uid` makes them.
_COPY_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
#: Users named in one log line at most.
_NAMED = 5

#: Takes Radicale's storage lock in a mode (``"r"``, ``"w"``) for one book or card; the
#: book's path is given where the lock guards a write (a storage on PostgreSQL then holds
#: that book's lock, as its writers do: see the admin's ``LockHolds``).
Lock = Callable[..., ContextManager[None]]


def no_lock(mode: str, book: str = "") -> ContextManager[None]:
    """For callers that hold the storage lock already, or need none (tests)."""
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Designation:
    """An address-book home's ``CS:me-card``: the card its user designated."""

    user: str
    value: str                 # as stored
    book: str | None = None    # None: the value names no card of the user's
    href: str | None = None

    @property
    def path(self) -> str:
        return "/%s/%s" % (self.book, self.href)


@dataclass(frozen=True)
class CreatedCopy:
    """A card the server created in ``recipient``'s book to hold ``owner``'s copy."""

    owner: str
    recipient: str
    book: str
    href: str


@dataclass
class Rebuilt:
    """What :func:`rebuild` did, and what it left to the admin."""

    books: int = 0
    me_cards: list[str] = field(default_factory=list)
    links: list[CreatedCopy] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


# -- what the collections say ------------------------------------------------------------

def users(storage: radicale_storage.BaseStorage) -> list[str]:
    """Every user with an address-book home (principal collection), sorted."""
    return sorted(c.path for c in storage.discover("/", depth="1")
                  if isinstance(c, radicale_storage.BaseCollection) and c.path
                  and "/" not in c.path)


def designations(storage: radicale_storage.BaseStorage) -> list[Designation]:
    """Every home whose ``CS:me-card`` is set, by user.

    Read without the storage lock: Radicale replaces ``.Radicale.props``
    atomically, and a designation made meanwhile is the index's anyway.
    """
    out = []
    for home in storage.discover("/", depth="1"):
        if not (isinstance(home, radicale_storage.BaseCollection) and home.path
                and "/" not in home.path):
            continue
        value = home.get_meta(ME_CARD_PROPERTY)
        if not isinstance(value, str) or not value.strip():
            continue
        try:
            book, href = store.split_card_path(home.path, value)
        except SharingError:
            out.append(Designation(home.path, value))
            continue
        out.append(Designation(home.path, value, book, href))
    return sorted(out, key=lambda d: d.user)


def created_copies(cards: Iterable[IndexedCard], users_: Iterable[str]) -> list[CreatedCopy]:
    """The cards that are copies the server created, found by their UID or href.  Pure.

    A created copy's UID is :func:`copy_uid` (owner, recipient), and it is
    stored as that UID plus ``.vcf``; when the recipient already had a card with
    that UID the copy got a random UID, and only the href tells.  A recipient's
    cards are compared with every possible owner only if one of them looks like
    such a copy (a version-5 UUID), so the cost stays with the users who hold copies.
    """
    everyone = sorted(set(users_))
    by_user: dict[str, list[IndexedCard]] = {}
    for card in cards:
        if _COPY_UID.fullmatch(card.uid) or _COPY_UID.fullmatch(_stem(card.href)):
            by_user.setdefault(card.user, []).append(card)
    found: dict[tuple[str, str], CreatedCopy] = {}
    for recipient, candidates in sorted(by_user.items()):
        owner_of = {copy_uid(o, recipient): o for o in everyone if o != recipient}
        # the href first: it is the created copy's even when its UID had to differ
        for by_href in (True, False):
            for card in sorted(candidates, key=lambda c: (c.book, c.href)):
                owner = owner_of.get(_stem(card.href) if by_href else card.uid)
                if owner is not None and (owner, recipient) not in found:
                    found[(owner, recipient)] = CreatedCopy(owner, recipient, card.book,
                                                            card.href)
    return sorted(found.values(), key=lambda c: (c.owner, c.recipient))


def _stem(href: str) -> str:
    return href[:-4] if href.endswith(".vcf") else href


def _lost_me_card(index: SharingIndex, d: Designation) -> bool:
    """Whether the index knows nothing of the me card this home names.

    A user whose record shows changes sent (``seq``) and no me card removed or
    deleted their me card on purpose: Apple's property may still name it.
    """
    owner = index.owners.get(d.user)
    return d.href is not None and owner.href is None and owner.seq == 0


def _exists(files: CopyWriter, book: str | None, href: str | None) -> bool:
    return bool(book and href) and files.read(book or "", href or "") is not None


def _copy_unlinked(index: SharingIndex, copy: CreatedCopy) -> bool:
    """A created copy the index has no word about (a withdrawn one ended its link on purpose)."""
    if index.links.get(copy.owner, copy.recipient) is not None \
            or index.links.at(copy.book, copy.href) is not None:
        return False
    delivery = index.outbox.delivery(copy.owner, copy.recipient)
    return delivery is None or delivery.state != WITHDRAWN


# -- check -----------------------------------------------------------------------------

def check(storage: radicale_storage.BaseStorage, files: CopyWriter, index: SharingIndex,
          region_of: Callable[[str], str], database: str, missing: bool = False,
          lock: Lock = no_lock) -> list[str]:
    """One line per way the index and the collections disagree (none: consistent).

    Reads every address book, each in its user's region (``region_of``, see
    :meth:`Context.region_of`).  ``missing``: there is no database file (``index``
    is then an empty stand-in).  Each book is read without ``lock`` and compared
    with the card-key index under it, one book at a time (writers wait only for
    that); me cards and links are compared without it, so run it again on a
    difference there: a write meanwhile shows as one.
    """
    problems = []
    homes = designations(storage)
    if missing:
        problems.append(
            "database: there is no sharing database at %s, but the collections hold "
            "%d address-book home(s) naming a me card: import the last export into a new "
            "database, or rebuild what the collections tell" % (database, len(
                [d for d in homes if d.href])))
    for d in homes:
        exists = _exists(files, d.book, d.href)
        owner = index.owners.get(d.user)
        if exists and _lost_me_card(index, d):
            problems.append("me card: %s's address-book home names %s (CS:me-card), but the "
                            "sharing database has no me card for %s: run rebuild"
                            % (d.user, d.path, d.user))
        elif exists and owner.href is not None and (owner.book, owner.href) != (d.book, d.href) \
                and _exists(files, owner.book, owner.href):
            problems.append("me card: %s's address-book home names %s (CS:me-card), but the "
                            "sharing database names /%s/%s: designate the me card again "
                            "(POST /me-card) to make them agree"
                            % (d.user, d.path, owner.book, owner.href))
    for owner in index.owners.with_me_card():
        if not _exists(files, owner.book, owner.href):
            problems.append("me card: the sharing database names /%s/%s as %s's me card, but "
                            "there is no such card (the server forgets it at its next start)"
                            % (owner.book, owner.href, owner.user))

    # every card as its file says, for the card-key index and the created copies
    on_disk: dict[str, dict[str, IndexedCard]] = {}
    indexed: dict[str, dict[str, IndexedCard]] = {}
    for book, folder in files.books():
        region = region_of(store.user_of(book))
        on_disk[book], indexed[book] = _book_and_index(files, index, book, folder, region,
                                                       lock, missing)
    if not missing:
        problems += _card_index_problems(index, on_disk, indexed)
    owners = {o.user for o in index.owners.with_me_card()} | {d.user for d in homes if d.href}
    everyone = users(storage)
    for copy in created_copies((c for cards in on_disk.values() for c in cards.values()),
                               everyone):
        if copy.owner in owners and _copy_unlinked(index, copy):
            problems.append("link: /%s/%s is the copy the server created of %s's card for %s, "
                            "but no link says so: run rebuild"
                            % (copy.book, copy.href, copy.owner, copy.recipient))
    return problems


def _book_and_index(files: CopyWriter, index: SharingIndex, book: str, folder: str,
                    region: str, lock: Lock, missing: bool
                    ) -> tuple[dict[str, IndexedCard], dict[str, IndexedCard]]:
    """A book's cards as its files say and as the card-key index says, at one moment.

    The files are read without the lock (Radicale replaces them atomically); under
    it, only the folder's time is compared and the index read: a few ms.  A book
    written meanwhile is read again, under the lock.
    """
    def read() -> dict[str, IndexedCard]:
        return {href: index_card(book, href, text, region)
                for href, text in files.book_cards(book)}
    mtime = files.folder_mtime(folder)
    cards = read()
    with lock("r"):
        if files.folder_mtime(folder) != mtime:
            cards = read()
        if missing:
            return cards, {}
        user = store.user_of(book)
        return cards, {c.href: c for c in index.cards.cards_of(user) if c.book == book}


def _card_index_problems(index: SharingIndex, on_disk: dict[str, dict[str, IndexedCard]],
                         indexed: dict[str, dict[str, IndexedCard]]) -> list[str]:
    if not index.cards.is_built():
        return ["card-key index: never built (the server builds it at its next start; or "
                "run rebuild-index)"]
    problems = []
    known = index.cards.book_mtimes()
    for book, cards in sorted(on_disk.items()):
        if book not in known:
            problems.append("card-key index: /%s/ is not indexed: run rebuild-index" % book)
            continue
        theirs = indexed.get(book, {})
        differ = sorted(h for h in set(cards) | set(theirs) if cards.get(h) != theirs.get(h))
        if differ:
            problems.append("card-key index: /%s/ differs from its files in %d card(s) "
                            "(e.g. %s): run rebuild-index" % (book, len(differ), differ[0]))
    for book in sorted(set(known) - set(on_disk)):
        if "/" in book:
            problems.append("card-key index: /%s/ is indexed but no longer exists: run "
                            "rebuild-index" % book)
    return problems


# -- rebuild ---------------------------------------------------------------------------

def rebuild(storage: radicale_storage.BaseStorage, files: CopyWriter, index: SharingIndex,
            card_keys: CardKeys, owners_: Owners, lock: Lock = no_lock) -> Rebuilt:
    """Rebuild what the collections tell, taking ``lock`` per book, link and me card.

    The card-key index is read anew from every book.  Me cards are designated
    (with every check of a designation) only for users the index knows nothing
    about, and links made only for created copies nothing else claims: whatever
    the index still holds wins.  Links come first, so that a copy can never be
    designated as somebody's me card.  Each is decided again under the lock, as
    the server may have changed it since it was found.
    """
    done = Rebuilt(books=card_keys.rebuild(files, hold=lambda book: lock("r", book)))
    homes = designations(storage)
    everyone = users(storage)
    cards = [c for user in everyone for c in index.cards.cards_of(user)]
    owners = {o.user for o in index.owners.with_me_card()} | {d.user for d in homes if d.href}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for copy in created_copies(cards, everyone):
        if copy.owner not in owners or not _copy_unlinked(index, copy):
            continue
        with lock("r", copy.book):  # writers wait (the server's readers go on): decided again
            if _exists(files, copy.book, copy.href) and _copy_unlinked(index, copy):
                index.links.put(Link(copy.owner, copy.recipient, copy.book, copy.href,
                                     LINK_CREATED, now))
                done.links.append(copy)
    for d in homes:
        if not (_exists(files, d.book, d.href) and _lost_me_card(index, d)):
            continue
        with lock("r", d.book or ""):  # writers wait (readers go on): decided again
            if not (_exists(files, d.book, d.href) and _lost_me_card(index, d)):
                continue
            home = next(iter(storage.discover("/%s/" % d.user)), None)
            try:
                if not isinstance(home, radicale_storage.BaseCollection):
                    raise SharingError("no address-book home")
                owners_.on_me_card_property(home, d.value)
            except SharingError as e:
                done.left.append("me card: %s's %s not designated: %s" % (d.user, d.path, e))
                continue
        done.me_cards.append(d.user)
    return done


# -- at start ---------------------------------------------------------------------------

def admin_command(configuration: config.Configuration | None) -> str:
    """The admin command for this server's config files, as the admin would type it."""
    paths = []
    for source, missing in (configuration.sources() if configuration is not None else []):
        if not missing and source.startswith("config file "):
            try:
                paths.append(str(ast.literal_eval(source[len("config file "):])))
            except (ValueError, SyntaxError):
                continue
    return "python -m radicale_plugin --config %s" % (os.pathsep.join(paths) or "FILE")


def check_at_start(storage: radicale_storage.BaseStorage, files: CopyWriter,
                   index: SharingIndex, database: str, existed: bool, vapid_key: str,
                   command: str) -> list[str]:
    """Log an ERROR when the database was lost or does not belong to these collections.

    Cheap: one property file per user and one look at each named card.  Only
    logs; the card-key index is rebuilt by the worker's start-up check, and
    everything else waits for the admin (``rebuild``, or ``import`` of a backup).
    Returns the lines logged.
    """
    homes = [d for d in designations(storage) if _exists(files, d.book, d.href)]
    lost = [d.user for d in homes if _lost_me_card(index, d)]
    lines = []
    if not existed and (homes or os.path.exists(vapid_key)):
        lines.append(
            "Sharing: the sharing database %s did not exist and was created empty, but these "
            "collections were shared before (%d address-book home(s) name a me card%s%s): "
            "every me card, target, key verification, policy, offer and link is missing. "
            "Stop the server and import the last export ('%s import BACKUP.json' into an empty "
            "database), or rebuild what the collections tell ('%s rebuild'); '%s check' lists "
            "the differences" % (database, len(homes), _named(d.user for d in homes),
                                 "; the server's VAPID key is there" if os.path.exists(
                                     vapid_key) else "", command, command, command))
    elif lost:
        lines.append(
            "Sharing: %d address-book home(s) name a me card the sharing database %s knows "
            "nothing of (%s): the database is not the one these collections were used with "
            "(lost, replaced or restored from an older backup). '%s check' lists the "
            "differences; '%s rebuild' brings back me cards and links of created copies, "
            "an import of the last export brings back everything"
            % (len(lost), database, ", ".join(lost[:_NAMED]) + (", ..." if len(lost) > _NAMED
                                                                 else ""), command, command))
    for line in lines:
        logger.error("%s", line)
    return lines


def _named(users_: Iterable[str]) -> str:
    names = list(users_)
    if not names:
        return ""
    return ": " + ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
