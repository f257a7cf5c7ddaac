# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing an owner's view into a recipient's book: the write worked out, made, recorded.

Why one module over 400 lines: the :class:`Deliverer` is the one object through which the
worker, offers, invites and undo read, plan and write a copy, so that one set of rules says
what a copy may overwrite; the decisions themselves are pure and apart (:mod:`.decide`).

Where the copy goes and what it becomes is decided from gathered data by
:mod:`.decide` (pure; the fan-out's round gathers with :mod:`.gather`): an
owner writes only into the card linked to them, or a card the recipient's
consent allows.  Here that decision becomes a write (:meth:`Deliverer.planned`;
a new card is placed and rendered by :meth:`Deliverer.plan`).  Each
recipient gets the view of the change meant for them (``wanted_seq``): a
change sent to some recipients only does not reach the others.

Every write is recorded before it is made (an :class:`Intent`: the view,
the values it puts there, the history entry it will make), so that after a
crash the next merge still knows every value the server put into the copy,
and the history is neither lost nor doubled.  The fan-out writes files
itself (:mod:`copy_files`); an accepted offer is written through Radicale
by the request that accepts it.  Everything here reads files directly, so
it needs no lock; writing needs the caller's exclusive lock.

A delivery that fails for a passing reason (:func:`transient`: an I/O
error, a book folder that is not there for the moment, the database busy)
is tried again later by the fan-out, with growing waits; every other
failure is an answer that waiting would not change.
"""

from __future__ import annotations

import datetime
import hashlib
import sqlite3
import time
import uuid
from dataclasses import dataclass

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.consent import links
from radicale_plugin.delivery.card_index import index_card, index_parsed
from radicale_plugin.delivery import decide
from radicale_plugin.delivery import undone
from radicale_plugin.context import Context
from radicale_plugin.delivery.writer import CopyWriter, Identity, Write
from radicale_plugin.errors import Conflict, NotFound, SharingError
from radicale_plugin.delivery.history import diff
from radicale_plugin.index import (LINK_CREATED, Delivery, HistoryEntry, IndexedCard, Intent,
                                   Link, Owner)
from radicale_plugin.owner.audiences import recipient_view
from radicale_plugin.vcard.merge import Previous, copy_uid, merge, new_copy
from radicale_plugin.delivery.rollback import MAX_REPAIRS, stale_values
from radicale_plugin.vcard.codec import Card, parse_card
from radicale_plugin.vcard.view import View

def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class BookUnavailable(SharingError):
    """A recipient's address book the index knows cannot be read for now (its folder is
    missing or not a folder): the fan-out tries again later, and a request is told to."""

    status = 503


#: Errors that may well pass: I/O, a busy SQLite, and PostgreSQL's lost connections,
#: deadlocks, lock and serialisation failures (its ``OperationalError``).
_PASSING: tuple[type[BaseException], ...] = (BookUnavailable, OSError, sqlite3.OperationalError)
try:
    import psycopg
    _PASSING += (psycopg.OperationalError,)
except ImportError:  # an embedded server needs no PostgreSQL driver
    pass


def transient(error: BaseException) -> bool:
    """Whether a delivery that failed with ``error`` may well succeed if tried again later.

    I/O errors (a full or failing disk, a folder replaced or unreadable for a
    moment), an unreadable book, a busy database and a storage lock that could not
    be taken pass; a malformed card, a refusal or a bug do not.
    """
    if isinstance(error, _PASSING):
        return True
    # Radicale's wording when flock fails; the copy's own when a card keeps changing
    return isinstance(error, RuntimeError) and (
        str(error).startswith("Locking the storage failed")
        or "keeps changing while it is read" in str(error))


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Planned:
    """A write worked out and not made yet: the file, the record made before it, the link.

    A ``write`` already ``done`` has nothing to write: only the link is to be made.
    """

    delivery: Delivery
    write: Write
    intent: Intent
    values: set[tuple[str, str]]
    link: Link | None
    card: Card | None = None       # the new card, parsed (for the card-key index)
    region: str = ""               # the recipient's (their book's cards are indexed in it)


@dataclass
class WriteRecords:
    """What the index records of writes that were made (:meth:`Deliverer.write_records`)."""

    history: list[HistoryEntry]
    intents: list[tuple[str, str]]       # (owner, recipient) whose intent is done
    cards: list[IndexedCard]
    books: list[tuple[str, int]]         # (book, its folder's time now)


class Deliverer:
    """Finds the copy, works out its new text, and records what was written."""

    def __init__(self, ctx: Context, files: CopyWriter) -> None:
        self._ctx = ctx
        self.files = files

    # -- where ------------------------------------------------------------------
    def linked_or_gone(self, owner: str, recipient: str) -> tuple[Link, tuple[str, Identity]] | None:
        """Under the lock: the linked card as read, or None: the link ended (the recipient
        deleted the card; the caller holds the lock)."""
        index = self._ctx.index
        link = index.links.get(owner, recipient)
        if link is None:
            return None  # a hook ended it: the recipient deleted the card
        found = self._read(link.book, link.href)
        if found is not None and links.holds(link, parse_card(found[0]).first_value("UID")):
            return link, found
        # the linked card is gone, or another card sits at its href: the link ends, and
        # nothing is written into whatever is there now (the owner's next change is
        # decided by the recipient's policy)
        links.end(index, link, tell_owner=False)
        return None

    def read(self, book: str, href: str) -> tuple[str, Identity] | None:
        """A card as the writer's :meth:`~.writer.CopyWriter.read` gives it; a book the
        index knows that cannot be read for now (its folder is not there) raises
        :class:`BookUnavailable` (no card is taken for deleted then)."""
        return self._read(book, href)

    def _read(self, book: str, href: str) -> tuple[str, Identity] | None:
        found = self.files.read(book, href)
        if found is not None or book not in self._ctx.index.cards.books_of(
                book.split("/", 1)[0]):
            return found  # a book deleted through Radicale has left the index
        why = self.files.unavailable(book)
        if why is not None:
            raise BookUnavailable("the address book /%s/ cannot be read for now (%s); try "
                                  "again later" % (book, why))
        return None

    def card_text(self, book: str, href: str) -> str | None:
        """The text of a card, or None if it (or its book) does not exist."""
        return self.files.text(book, href)

    def new_card_place(self, owner: str, recipient: str) -> tuple[str, str]:
        """A new copy goes into the book holding the recipient's me card, else the first book."""
        index = self._ctx.index
        books = index.cards.books_of(recipient)
        if not books:
            raise NotFound("%s has no address book to hold a new contact" % recipient)
        mine = index.owners.get(recipient)
        book = mine.book if mine.book in books else books[0]
        href = copy_uid(owner, recipient) + ".vcf"
        if self.files.text(book, href) is not None:
            href = str(uuid.uuid4()) + ".vcf"  # a new card never merges into one that is there
        return book, href

    # -- what -------------------------------------------------------------------
    def previous(self, owner: Owner, delivery: Delivery) -> Previous:
        """What in the recipient's copy is provably the owner's (read afresh; the fan-out's
        round gathers it once per owner, see :mod:`.gather`)."""
        return decide.previous(self.owned(owner.user), delivery)

    def owned(self, owner: str) -> frozenset[tuple[str, str]]:
        """The owner's earlier values that prove a value is theirs."""
        index = self._ctx.index
        return decide.owned_values(index.owners.past_values(owner),
                                   {k.key for k in index.keys.of_user(owner) if k.verified})

    # -- a copy written by the recipient's client ---------------------------------------
    def check_copy(self, book: str, href: str, text: str) -> str | None:
        """The recipient's client wrote a card: if it is an owner's delivered copy that
        now holds an older value of the owner's in place of what was written (a rollback,
        see :mod:`radicale_plugin.delivery.rollback`), the delivery waits for its repair (or, after
        :data:`MAX_REPAIRS` of them for this change, is left ``behind``).

        Called by the storage hook, inside the request's write lock and transaction:
        a few indexed reads, and nothing at all for a card that holds no copy.  A copy
        whose write is still being recorded (an intent) is left to that write.  It never
        refuses the recipient's write: a failure here is logged, and the copy is left.
        """
        try:
            return self._check_copy(book, href, text)
        except Exception as e:
            logger.warning("Checking the card /%s/%s for a rollback failed: %s", book, href, e,
                           exc_info=True)
            return None

    def _check_copy(self, book: str, href: str, text: str) -> str | None:
        index = self._ctx.index
        link = index.links.at(book, href)
        if link is None:
            return None
        delivery = index.outbox.delivery(link.owner, link.recipient)
        if delivery is None or delivery.state != idx.DELIVERED or delivery.intent is not None \
                or delivery.delivered_view is None \
                or delivery.delivered_seq != delivery.wanted_seq:
            return None
        owner = index.owners.get(link.owner)
        # values the recipient undid are no rollback: the lines put back are theirs
        # and only the fields of the recipient's audience were written (owner.audiences)
        kept = self.without_undone(owner, delivery, recipient_view(
            delivery.delivered_view, owner, delivery.reasons))
        stale = stale_values(parse_card(text), kept.view, kept.previous,
                             self._ctx.region_of(owner), self._ctx.region_of(link.recipient))
        if not stale:
            return None  # as written, or the recipient's own edits: kept
        # the rewrite spacing after the client's write: its sync may not be over (a phone
        # saving in a burst), and a phone writing the old card back again and again is not
        # answered by a rewrite each time
        due = time.time() + self._ctx.settings.rewrite_spacing
        state = index.outbox.rolled_back(link.owner, link.recipient, delivery.wanted_seq,
                                         due, MAX_REPAIRS)
        if state is not None:
            logger.info("Copy of %r's card in %r's book was rolled back by a client (%s): %s",
                        link.owner, link.recipient, ", ".join(sorted({v.field for v in stale})),
                        "put right again" if state == idx.ROLLED_BACK else
                        "repaired %d times already, left until the owner's next change"
                        % MAX_REPAIRS)
        return state

    def render(self, owner: Owner, delivery: Delivery, view: View, book: str,
               text: str | None) -> str:
        """The copy's text after the change (a new card when ``text`` is None)."""
        return self._render(owner, delivery, view, book, text)[1].serialize()

    def _render(self, owner: Owner, delivery: Delivery, view: View, book: str,
                text: str | None) -> tuple[Card | None, Card]:
        """The copy before and after the change, parsed once."""
        if text is None:
            uid = copy_uid(owner.user, delivery.recipient)
            if self._ctx.index.cards.href_of_uid(book, uid) is not None:
                uid = str(uuid.uuid4())  # the recipient has a card with that UID already
            version = self._ctx.index.cards.book_version(book) or "3.0"
            return None, new_copy(view, uid, version)
        before = parse_card(text)
        # the owner's values (the view, what was recorded as theirs) are read in the
        # owner's region; the copy's lines may be the recipient's typing: in theirs too
        kept = self.without_undone(owner, delivery, view)  # less what the recipient undid
        return before, merge(before, kept.view, kept.previous, self._ctx.region_of(owner),
                             self._ctx.region_of(delivery.recipient))

    def without_undone(self, owner: Owner, delivery: Delivery, view: View
                       ) -> undone.Applied:
        """``view`` and what is provably the owner's, without the owner values the recipient
        undid (:mod:`.undone`; the fan-out's round gathers them, see :mod:`.gather`)."""
        values = self._ctx.index.history.undone_of([(owner.user, delivery.recipient)])
        return undone.apply(view, self.previous(owner, delivery),
                            values.get((owner.user, delivery.recipient), ()),
                            self._ctx.region_of(owner), self._ctx.region_of(delivery.recipient))

    def preview(self, owner: Owner, delivery: Delivery, view: View,
                card: tuple[str, str] | None) -> tuple[Card | None, Card]:
        """What writing ``view`` would do to ``card`` (None: a new contact)."""
        book, _ = card if card is not None else self.new_card_place(owner.user,
                                                                   delivery.recipient)
        text = self.card_text(*card) if card is not None else None
        after = self.render(owner, delivery, view, book, text)
        return (parse_card(text) if text is not None else None), parse_card(after)

    def plan(self, owner: Owner, delivery: Delivery, card: tuple[str, str] | None,
             link_kind: str | None, view: View, action: str = "update",
             found: tuple[str, Identity] | None = None) -> Planned | None:
        """Work out the write of ``view`` into ``card`` (None: a new card); None: no change.

        ``found`` is the card as already read.  A link to make is returned
        with it even when the card needs no change.
        """
        recipient = delivery.recipient
        if card is None:
            card = self.new_card_place(owner.user, recipient)
            link_kind = LINK_CREATED
        book, href = card
        if found is None:
            found = self._read(book, href)
        text, was = (found[0], found[1]) if found else (None, None)
        before, after = self._render(owner, delivery, view, book, text)
        return self.planned(owner, delivery, (book, href), link_kind, view, action, found,
                            before, after, self._ctx.region_of(recipient))

    def planned(self, owner: Owner, delivery: Delivery, card: tuple[str, str],
                link_kind: str | None, view: View, action: str,
                found: tuple[str, Identity] | None, before: Card | None, after: Card,
                region: str) -> Planned | None:
        """The write of ``after`` (``before`` merged with ``view``) over ``card`` as
        ``found``, and the link of ``link_kind`` to make; None: no change and no link.
        ``region``: the recipient's."""
        book, href = card
        text, was = (found[0], found[1]) if found else (None, None)
        new_text = after.serialize()
        link = Link(owner.user, delivery.recipient, book, href, link_kind, _now_iso(),
                    after.first_value("UID") or "") if link_kind else None
        if new_text == text:
            return Planned(delivery, Write(book, href, new_text, was, done=True),
                           _no_intent(view, book, href), set(), link,
                           region=region) if link else None
        intent = Intent(view, book, href, "create" if text is None else action,
                        tuple(diff(before, after)), text_hash(new_text))
        return Planned(delivery, Write(book, href, new_text, was), intent,
                       view.values(self._ctx.region_of(owner)), link, after, region)

    # -- records around a write -----------------------------------------------------
    def records_before(self, planned: Planned) -> bool:
        """Whether :meth:`before_write` records anything for ``planned`` (a write that
        commits with its records and makes no link records nothing before it)."""
        return planned.link is not None or (not planned.write.done and not self.files.atomic)

    def before_write(self, planned: Planned) -> None:
        """Record the link and the intent (the caller groups these in a transaction)."""
        index = self._ctx.index
        delivery = planned.delivery
        if planned.link is not None:
            index.links.put(planned.link)
        if not planned.write.done and not self.files.atomic:
            # a write committed with its records (atomic) needs no intent: it is there
            # with them, or neither is
            index.outbox.set_intent(delivery.owner, delivery.recipient, planned.intent,
                                    planned.values)

    def after_writes(self, done: list[Planned]) -> None:
        """Record writes that were made: history, intents, the card-key index (in the
        caller's transaction, in one go)."""
        self.record_writes(self.write_records(done))

    def write_records(self, done: list[Planned]) -> "WriteRecords":
        """What :meth:`record_writes` records, worked out first (the cards' keys, the
        books' times): the fan-out does it before its transaction, so that the index's
        writer is held only for the statements."""
        region = self._ctx.region_of  # the book's: each recipient's own
        return WriteRecords(
            [HistoryEntry(p.delivery.owner, p.delivery.recipient, p.intent.book, p.intent.href,
                          p.intent.action, p.intent.changes) for p in done],
            [] if self.files.atomic else [(p.delivery.owner, p.delivery.recipient)
                                          for p in done],
            [index_parsed(p.write.book, p.write.href, p.card,
                          p.region or region(p.delivery.recipient))
             if p.card is not None else index_card(p.write.book, p.write.href, p.write.text,
                                                   p.region or region(p.delivery.recipient))
             for p in done],
            # as the hooks do: the index knows these books as they are now, else every
            # start would read again each book the fan-out ever wrote into
            [(book, self.files.folder_mtime(self.files.folder(book)))
             for book in sorted({p.write.book for p in done})])

    def record_writes(self, records: "WriteRecords") -> None:
        index = self._ctx.index
        index.history.record_many(records.history)
        index.outbox.clear_intents(records.intents)
        index.cards.put_many(records.cards)
        index.cards.set_book_mtimes(records.books)

    def settle(self, owner: Owner, delivery: Delivery) -> Delivery:
        """Finish what a crash interrupted: record a write that happened, forget one that
        did not, and remove what it left in the book's folder."""
        intent = delivery.intent
        if intent is None:
            return delivery
        index = self._ctx.index
        text = self.card_text(intent.book, intent.href)
        self.files.clean(intent.book, intent.href)
        with index.transaction():
            if text is not None and text_hash(text) == intent.after_hash:
                self._record(owner.user, delivery.recipient, intent)
                index.cards.put(index_card(intent.book, intent.href, text,
                                           self._ctx.region_of(delivery.recipient)))
            elif intent.action == "create":
                # the new card never reached the disk: its link leads nowhere
                index.links.remove(owner.user, delivery.recipient)
            index.outbox.set_intent(owner.user, delivery.recipient, None)
        return index.outbox.delivery(owner.user, delivery.recipient) or delivery

    def _record(self, owner: str, recipient: str, intent: Intent) -> None:
        self._ctx.index.history.record(HistoryEntry(owner, recipient, intent.book,
                                                    intent.href, intent.action, intent.changes))

    # -- a single write through Radicale (accepting an offer) -----------------------
    def apply(self, owner: Owner, delivery: Delivery, card: tuple[str, str] | None,
              link_kind: str | None, view: View, action: str = "update") -> tuple[str, str]:
        """Write ``view`` into ``card`` now, through Radicale; the caller holds the lock."""
        if self.files.atomic:
            return self._apply_at_once(owner, delivery, card, link_kind, view, action)
        index = self._ctx.index
        planned = self.plan(owner, delivery, card, link_kind, view, action)
        if planned is None:
            assert card is not None
            return card
        with index.transaction():
            self.before_write(planned)
        write = planned.write
        if not write.done:
            collection = store.book(self._ctx.storage, write.book)
            if collection is None:
                raise NotFound("the address book /%s/ is gone" % write.book)
            self._ctx.writing.copy = True
            try:
                store.write_card(collection, write.href, write.text)
            finally:
                self._ctx.writing.copy = False
            with index.transaction():
                self._record(owner.user, delivery.recipient, planned.intent)
                index.outbox.set_intent(owner.user, delivery.recipient, None)
            logger.debug("Copy of %r's card written to /%s/%s", owner.user, write.book,
                         write.href)
        return write.book, write.href

    def _apply_at_once(self, owner: Owner, delivery: Delivery, card: tuple[str, str] | None,
                       link_kind: str | None, view: View, action: str) -> tuple[str, str]:
        """:meth:`apply` where a copy commits with its records (PostgreSQL): the card is
        read, written if it is still the one read (checked under its book's lock), and its
        link, history and card-key entry recorded, all in the caller's transaction (or one
        of its own).  The storage's write lock for the recipient holds their books already
        (an answer to an offer): then nobody can change the card between the two."""
        index = self._ctx.index
        with index.transaction():
            planned = self.plan(owner, delivery, card, link_kind, view, action)
            if planned is None:
                assert card is not None
                return card
            write = planned.write
            if not write.done:
                self.files.prepare([write])
                if not self.files.commit([write], float("inf")):
                    # changed since it was read (by a writer not holding the recipient's lock)
                    raise write.error or Conflict("the card changed while it was written; "
                                                  "try again")
            self.before_write(planned)
            if write.renamed:
                self.record_writes(self.write_records([planned]))
        if write.renamed:
            logger.debug("Copy of %r's card written to /%s/%s", owner.user, write.book,
                         write.href)
            self._ctx.books_changed({write.book})
        return write.book, write.href


def _no_intent(view: View, book: str, href: str) -> Intent:
    return Intent(view, book, href, "update", (), "")
