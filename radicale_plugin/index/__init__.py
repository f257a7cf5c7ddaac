# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing index and the fan-out outbox: the contract every backend implements.

Everything the sharing code must remember lives behind :class:`SharingIndex`,
split into one store per concern:

``owners``    me cards, shared fields, target rules, views, privacy, notices;
``keys``      the numbers and e-mails people claim and verify, and the codes;
``cards``     the card-key index: which card in which book carries which key;
``links``     which card in a recipient's book holds which owner's copy;
``consent``   the recipients' policies and the offers waiting for them;
``outbox``    owner changes still to plan, and one delivery per (owner, recipient);
``history``   every change the sharing code made to a recipient's card;
``push``      WebDAV-Push: each book's topic, and the subscriptions to books;
``invites``   the invites owners hand out, and who accepted them;
``notify``    how recipients hear of offers, and the e-mails telling them.
``leases``    which process runs a duty that must run once across processes;
``limits``    the rate limits' token buckets, shared by every process.

Every method is atomic.  :meth:`SharingIndex.transaction` groups several
calls into one transaction (it nests); never take Radicale's storage lock
inside it.  The embedded backend is :mod:`radicale_plugin.index.sqlite`; a
PostgreSQL one implements the same classes and passes the same contract
tests (``tests/test_index_contract.py``).

The parts of the house: this package is the lowest but the vCard core.  The contract
(this module), its records and the backends under it import only
:mod:`radicale_plugin.vcard` and :mod:`radicale_plugin.errors`.  The contract stays
one module on purpose: it is the one interface every backend implements, read (and
reviewed) as a whole; each store is its own class in it.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Callable, Iterable, Iterator

from radicale_plugin.index.records import (  # noqa: F401  (the contract's vocabulary)
    BLOCKED, DELIVERED, DISCOVERABILITY, FAILED, LINK_ACCEPTED, LINK_CREATED, LINK_MIGRATED,
    LINK_VERIFIED, OFFER_PENDING, OFFER_POSTPONED, OFFER_REFUSED, OFFERED, PENDING, POLICIES,
    STOPPED, WITHDRAWING, WITHDRAWN, Change, Code, Delivery, HistoryEntry, IndexedCard, Intent,
    Job, Key, Link, Offer, Owner, PushSubscription, QueueCounts)
from radicale_plugin.index.records import LINK_INVITED, Invite, InviteUse  # noqa: F401
from radicale_plugin.index.records import BEHIND, ROLLED_BACK  # noqa: F401
from radicale_plugin.index.records import PushQueued  # noqa: F401
from radicale_plugin.index.records import (  # noqa: F401  (notifications)
    NotifyBatch, NotifyEvent, NotifySetting)
from radicale_plugin.index.records import UndoMark, UndoneValue  # noqa: F401
from radicale_plugin.vcard.view import View


class OwnerStore(abc.ABC):
    """Owners: me cards, shared fields, target rules and the views sent out."""

    @abc.abstractmethod
    def get(self, user: str) -> Owner:
        """The owner record (defaults when the user never configured sharing)."""

    @abc.abstractmethod
    def with_me_card(self) -> list[Owner]:
        """Every owner that has a me card."""

    @abc.abstractmethod
    def get_many(self, users: Iterable[str]) -> dict[str, Owner]:
        """:meth:`get` for each of ``users`` at once (a fan-out round's gather)."""

    @abc.abstractmethod
    def discoverability_of(self, users: Iterable[str]) -> dict[str, str]:
        """The discoverability each of ``users`` chose (users who chose none are left out)."""

    @abc.abstractmethod
    def set_card_stat(self, user: str, stat: str) -> None:
        """Remember the me card file's size and time as last read (checked at start)."""

    @abc.abstractmethod
    def set_me_card(self, user: str, book: str | None, href: str | None,
                    uid: str | None) -> None:
        """Set or (with ``None``) clear where the user's me card is."""

    @abc.abstractmethod
    def set_shared_fields(self, user: str, fields: list[str], withdrawn: list[str]) -> None:
        """Replace the shared fields and the fields whose values are being withdrawn."""

    @abc.abstractmethod
    def set_rules(self, user: str, rules: list[str]) -> None:
        """Replace the owner's target rules."""

    @abc.abstractmethod
    def set_audiences(self, user: str, audiences: dict) -> None:
        """Replace the owner's field sets per target rule (``{}``: none; the JSON form of
        :mod:`radicale_plugin.owner.audiences`)."""

    @abc.abstractmethod
    def set_discoverability(self, user: str, value: str) -> None:
        """Who may learn that the user's keys belong to a user here."""

    @abc.abstractmethod
    def set_region(self, user: str, region: str | None) -> None:
        """Set or (with ``None``) clear the region the user's national numbers are read in."""

    @abc.abstractmethod
    def record_view(self, user: str, card_view: View | None, view: View | None,
                    values: Iterable[tuple[str, str]], force: bool = False) -> bool:
        """Store the me card's views; queue the change if ``view`` changed (or ``force``:
        what each audience gets changed, not the view; never when ``view`` is None).

        ``values`` are the (field, compare key) pairs of ``view``: they are
        remembered for good, as values that are provably the owner's.
        A change of either view is a new change (``seq`` + 1): the owner
        cannot tell from it whether a key was dropped as somebody else's.
        Returns False (and queues nothing) when neither changed.  ``view``
        None means the me card is gone: every delivery stops (copies stay) and
        pending offers are dropped.
        """

    @abc.abstractmethod
    def view_at(self, user: str, seq: int) -> View | None:
        """The view of the owner's change ``seq`` (kept while a delivery or offer needs it)."""

    @abc.abstractmethod
    def past_values(self, user: str) -> set[tuple[str, str]]:
        """Every (field, compare key) the owner's view ever had."""

    @abc.abstractmethod
    def add_notice(self, user: str, text: str) -> None:
        """Tell the owner something at their next look (e.g. a key moved away); newest kept."""

    # -- backups and accounts (the admin's export, import and delete-user) -------
    @abc.abstractmethod
    def all(self) -> list[Owner]:
        """Every owner record, with a me card or not, by user."""

    @abc.abstractmethod
    def views(self, user: str) -> dict[int, View]:
        """The views the owner's changes had, by ``seq``, as far as they are kept."""

    @abc.abstractmethod
    def restore(self, owner: Owner, views: dict[int, View],
                values: Iterable[tuple[str, str]]) -> None:
        """Store an owner exactly as given (an import): nothing is queued or counted.

        ``views`` join the views kept per change, ``values`` the (field,
        compare key) pairs the owner's view ever had.
        """

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the owner record, its views and past values (an account deleted)."""


class KeyStore(abc.ABC):
    """Claimed and verified keys, and verification codes."""

    @abc.abstractmethod
    def of_user(self, user: str) -> list[Key]:
        """The user's keys: on the me card, or verified earlier."""

    @abc.abstractmethod
    def set_claims(self, user: str, keys: Iterable[str]) -> None:
        """The keys now on the user's me card (the others stay only if verified)."""

    @abc.abstractmethod
    def holders(self, keys: Iterable[str]) -> dict[str, str]:
        """For each key verified for somebody, that user."""

    @abc.abstractmethod
    def claimed(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` that are on somebody's me card (verified or not)."""

    @abc.abstractmethod
    def claimants(self, keys: Iterable[str]) -> dict[str, set[str]]:
        """For each of ``keys`` on somebody's me card, the users whose card carries it."""

    @abc.abstractmethod
    def verified(self, user: str) -> set[str]:
        """Keys verified for the user (on the card now or earlier) and not moved away."""

    @abc.abstractmethod
    def verify(self, user: str, key: str) -> str | None:
        """Mark ``key`` verified for ``user``; return the previous holder it moved from."""

    @abc.abstractmethod
    def unverify(self, user: str, key: str) -> None:
        """End the user's verification of ``key`` (an admin's decision)."""

    @abc.abstractmethod
    def put_code(self, code: Code) -> None:
        """Store a new code for (user, key), replacing an older one."""

    @abc.abstractmethod
    def code(self, user: str, key: str) -> Code | None:
        """The code waiting for (user, key)."""

    @abc.abstractmethod
    def count_attempt(self, user: str, key: str) -> None:
        """One more wrong attempt at the code of (user, key)."""

    @abc.abstractmethod
    def drop_code(self, user: str, key: str) -> None:
        """Forget the code of (user, key)."""

    @abc.abstractmethod
    def record_send(self, user: str, key: str, when: float) -> None:
        """Remember that a code was sent (for throttling)."""

    @abc.abstractmethod
    def sends_since(self, since: float, user: str | None = None,
                    key: str | None = None) -> int:
        """How many codes were sent since ``since``, by ``user`` and/or to ``key``."""

    @abc.abstractmethod
    def record_guess(self, user: str, key: str, when: float) -> None:
        """Remember one wrong answer to a code for ``key`` given by ``user``."""

    @abc.abstractmethod
    def guess_times(self, key: str, since: float) -> list[float]:
        """When wrong answers for ``key`` were given since ``since``, by any user, oldest
        first (the bound on guesses is per key, not per code or account)."""

    @abc.abstractmethod
    def record_claims(self, user: str, keys: Iterable[str], when: float) -> None:
        """Remember that ``keys`` newly appeared on the user's me card at ``when``."""

    @abc.abstractmethod
    def claimed_since(self, user: str, since: float) -> set[str]:
        """The keys that newly appeared on the user's me card since ``since``."""

    # -- backups and accounts -------------------------------------------------
    @abc.abstractmethod
    def all(self) -> list[Key]:
        """Every key of every user, by user and key."""

    @abc.abstractmethod
    def restore(self, key: Key) -> None:
        """Store a key exactly as given (an import).

        Raises ``ValueError`` if another user already holds it verified.
        """

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the user's keys (their verified keys are free again), codes and sends."""


class CardIndex(abc.ABC):
    """The card-key index: normal-form keys → cards, for every card in every book."""

    @abc.abstractmethod
    def put(self, card: IndexedCard) -> None:
        """Add or replace one card."""

    @abc.abstractmethod
    def put_many(self, cards: Iterable[IndexedCard]) -> None:
        """Add or replace cards (of any books)."""

    @abc.abstractmethod
    def remove(self, book: str, href: str) -> None:
        """Forget one card."""

    @abc.abstractmethod
    def remove_under(self, path: str) -> None:
        """Forget every card of a book, or of every book of a user (``path`` = user)."""

    @abc.abstractmethod
    def replace_book(self, book: str, cards: Iterable[IndexedCard], mtime: int) -> None:
        """The book's cards, all at once (after a whole-book write or a rescan)."""

    @abc.abstractmethod
    def add_to_book(self, book: str, cards: Iterable[IndexedCard], mtime: int) -> None:
        """Add (or replace) ``cards`` and record the book's ``mtime`` (a stale mark too),
        the book's other cards kept: a big book read again in parts, the first part by
        :meth:`replace_book` with the mtime ``-1`` (read again, even after a crash)."""

    @abc.abstractmethod
    def card(self, book: str, href: str) -> IndexedCard | None:
        """One indexed card."""

    @abc.abstractmethod
    def cards_with_keys(self, user: str, keys: Iterable[str]) -> list[IndexedCard]:
        """Cards in ``user``'s books carrying at least one of ``keys``."""

    @abc.abstractmethod
    def cards_of(self, user: str) -> list[IndexedCard]:
        """Every card of every book of ``user`` (what target rules are evaluated over)."""

    @abc.abstractmethod
    def card_pages(self, user: str, size: int = 2000) -> Iterator[list[IndexedCard]]:
        """The cards of :meth:`cards_of` in pages of at most ``size``, in (book, href)
        order, each page read when the one before is taken: an owner's book of 100,000
        cards is planned over without being in memory whole."""

    @abc.abstractmethod
    def groups_of(self, user: str) -> list[IndexedCard]:
        """The group cards of ``user``'s books (their members), for rules evaluated over
        :meth:`card_pages`."""

    @abc.abstractmethod
    def users_knowing(self, keys: Iterable[str], users: Iterable[str],
                      not_created_for: str) -> set[str]:
        """Those of ``users`` with a card carrying one of ``keys`` in their books.

        Copies the server created for ``not_created_for`` do not count: they
        are no sign that the user knows them.  Nor do cards linked to another
        owner: such a card stands for that owner, and the values the owner put
        on it are plain text that matches nobody.
        """

    @abc.abstractmethod
    def books_of(self, user: str) -> list[str]:
        """The user's address books the index knows, by path."""

    @abc.abstractmethod
    def books_of_many(self, users: Iterable[str]) -> dict[str, list[str]]:
        """:meth:`books_of` for each of ``users`` at once (every one of them a key)."""

    @abc.abstractmethod
    def cards_with_keys_of(self, users: Iterable[str],
                           keys: Iterable[str]) -> dict[str, list[IndexedCard]]:
        """:meth:`cards_with_keys` for each of ``users`` at once (every one of them a key),
        by book and href."""

    @abc.abstractmethod
    def book_version(self, book: str) -> str | None:
        """The vCard version most cards of the book use (None: an empty book)."""

    @abc.abstractmethod
    def href_of_uid(self, book: str, uid: str) -> str | None:
        """The card of ``book`` with that UID, if any (UIDs are unique per book)."""

    @abc.abstractmethod
    def book_mtimes(self) -> dict[str, int]:
        """The folder modification time each book had when last indexed."""

    @abc.abstractmethod
    def set_book_mtime(self, book: str, mtime: int) -> None:
        """Remember the folder modification time the book has now (a book marked to be
        read again, see :meth:`mark_stale`, stays marked)."""

    def set_book_mtimes(self, mtimes: Iterable[tuple[str, int]]) -> None:
        """:meth:`set_book_mtime` of each ``(book, mtime)`` (a store does it at once)."""
        for book, mtime in mtimes:
            self.set_book_mtime(book, mtime)

    @abc.abstractmethod
    def mark_stale(self, user: str) -> list[str]:
        """Mark every indexed book of ``user`` to be read again (their region changed):
        the mark lasts until :meth:`replace_book`, also across a restart.  Returns them."""

    @abc.abstractmethod
    def stale_books(self, user: str) -> list[str]:
        """The user's books marked to be read again."""

    @abc.abstractmethod
    def is_built(self) -> bool:
        """Whether the index was built from the collections once."""

    @abc.abstractmethod
    def set_built(self) -> None:
        """Mark the index as built."""


class LinkStore(abc.ABC):
    """Links: the card in a recipient's book holding an owner's copy (one owner per card)."""

    @abc.abstractmethod
    def get(self, owner: str, recipient: str) -> Link | None:
        """The link of an owner's copy in a recipient's books."""

    @abc.abstractmethod
    def at(self, book: str, href: str) -> Link | None:
        """The link of a card, if it holds somebody's copy."""

    @abc.abstractmethod
    def get_many(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        """The links of these (owner, recipient) pairs (pairs without one are left out)."""

    @abc.abstractmethod
    def at_many(self, cards: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        """The links of these (book, href) cards (cards holding no copy are left out)."""

    @abc.abstractmethod
    def of_owner(self, owner: str) -> list[Link]:
        """Every link of an owner's copies."""

    @abc.abstractmethod
    def put(self, link: Link) -> None:
        """Make a link (replacing the pair's earlier one), keeping its ``uid``.

        Raises ``ValueError`` if the card already holds another owner's copy, or
        is the recipient's me card (a me card never holds a copy).
        """

    @abc.abstractmethod
    def remove(self, owner: str, recipient: str) -> None:
        """End a link."""

    @abc.abstractmethod
    def under(self, path: str) -> list[Link]:
        """The links of cards at ``path`` (a card ``book/href``, a book, or a user)."""

    @abc.abstractmethod
    def move(self, book: str, href: str, to_book: str, to_href: str) -> None:
        """A linked card was moved: the link follows it; a link of the card it replaced ends."""

    @abc.abstractmethod
    def astray(self) -> list[Link]:
        """Links whose card the card-key index does not hold at their href, or holds with a
        UID other than the link's (a link whose ``uid`` is not known: only the first)."""

    # -- backups --------------------------------------------------------------
    @abc.abstractmethod
    def all(self) -> list[Link]:
        """Every link, by owner and recipient."""


class ConsentStore(abc.ABC):
    """Recipients' policies and the offers waiting for them."""

    @abc.abstractmethod
    def policies(self, recipient: str) -> dict[str, str]:
        """The recipient's policy per owner (``*``: the recipient's own default)."""

    @abc.abstractmethod
    def policies_of(self, recipients: Iterable[str]) -> dict[str, dict[str, str]]:
        """:meth:`policies` for each of ``recipients`` at once (every one of them a key)."""

    @abc.abstractmethod
    def set_policy(self, recipient: str, owner: str, policy: str | None) -> None:
        """Set (or with None remove) a policy."""

    @abc.abstractmethod
    def offer(self, owner: str, recipient: str) -> Offer | None:
        """The offer of an owner to a recipient."""

    @abc.abstractmethod
    def offers_for(self, recipient: str) -> list[Offer]:
        """Every offer made to a recipient (pending, postponed, refused)."""

    @abc.abstractmethod
    def offers_from(self, owner: str) -> list[Offer]:
        """Every offer an owner made."""

    @abc.abstractmethod
    def put_offer(self, offer: Offer, counted: bool = True) -> None:
        """Make or replace the offer of (owner, recipient); ``first_offered`` is kept.

        A new offer (the recipient had none) is logged for :meth:`new_offers_since`
        unless ``counted`` is False (an offer of the owner's first share).
        """

    @abc.abstractmethod
    def offers_of(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Offer]:
        """The offers of these (owner, recipient) pairs, by pair (those with none left out):
        one read for a fan-out's part, not one an offer."""

    @abc.abstractmethod
    def put_offers(self, offers: Iterable[tuple[Offer, bool]]) -> None:
        """:meth:`put_offer` for each (offer, counted), in one go: as one after the other
        (of two for one pair, the last stays), in a few statements whatever their number."""

    @abc.abstractmethod
    def drop_offer(self, owner: str, recipient: str) -> None:
        """Forget an offer."""

    @abc.abstractmethod
    def drop_offers(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Forget the offers of these (owner, recipient) pairs."""

    @abc.abstractmethod
    def new_offers_since(self, owner: str, since: str) -> int:
        """Offers an owner made to recipients who had none, since ``since`` (ISO time).

        Counted from a log that forgetting an offer does not shorten.
        """

    @abc.abstractmethod
    def oldest_new_offer_since(self, owner: str, since: str) -> str | None:
        """When the oldest of the offers :meth:`new_offers_since` counts was made (ISO)."""

    @abc.abstractmethod
    def purge_offer_log(self, before: str) -> int:
        """Forget the log of new offers made before ``before`` (ISO time); how many.

        Cheap whatever the log's length (the fan-out calls it once per round).
        """

    @abc.abstractmethod
    def first_share(self, owner: str) -> tuple[int, str] | None:
        """The owner's first share: the change (``seq``) and time (ISO) of their first new
        offer ever, kept for good (until :meth:`forget_user`); None: none made yet."""

    @abc.abstractmethod
    def start_first_share(self, owner: str, seq: int, when: str) -> tuple[int, str]:
        """Record the owner's first share unless there is one; return the one recorded."""

    # -- backups and accounts -------------------------------------------------
    @abc.abstractmethod
    def all_policies(self) -> list[tuple[str, str, str]]:
        """Every policy as (recipient, owner, policy), by recipient and owner."""

    @abc.abstractmethod
    def all_offers(self) -> list[Offer]:
        """Every offer, by owner and recipient."""

    @abc.abstractmethod
    def restore_offer(self, offer: Offer) -> None:
        """Store an offer exactly as given, times included (an import).

        Unlike :meth:`put_offer` it is not counted against the owner's offers
        of the day.
        """

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the policies the user set and those naming them, and every offer
        from or to them (offers made to them still count for their owners' day)."""


class Outbox(abc.ABC):
    """Owner changes still to plan, and one delivery per (owner, recipient)."""

    @abc.abstractmethod
    def requeue(self, user: str, withdraw: bool = False) -> None:
        """Queue the owner's current view again (targets or keys changed).

        With ``withdraw``, recipients the next plan no longer targets are
        withdrawn instead of stopped.
        """

    @abc.abstractmethod
    def restrict(self, user: str, recipients: list[str]) -> None:
        """Send the owner's newest queued change only to ``recipients`` ("update some")."""

    @abc.abstractmethod
    def pending_jobs(self, limit: int) -> list[Job]:
        """Owner changes still to plan, oldest first.

        Changes of an owner older than their newest change for all targets are
        dropped: that one carries the newest view to everyone (a withdrawal
        asked by a dropped change carries over to it).
        """

    @abc.abstractmethod
    def plan(self, job: Job, targets: dict[str, list[str]], spacing: float = 0.0) -> None:
        """Turn a job into pending deliveries, one per target, and drop the job.

        For a job with ``only`` the targets are a chosen few: other
        deliveries are left as they are.  Otherwise deliveries of users no
        longer targeted stop (their copies stay; withdrawn with
        ``job.withdraw``) and their pending offers are dropped (a refusal is
        kept).  A copy that already holds the job's change is not made
        pending again; one written less than ``spacing`` seconds ago waits
        until then (an owner editing in a burst does not rewrite every copy
        each time).  Deliveries already waiting keep their place in the queue.
        Views no delivery, offer or job needs are forgotten.  Large plans may
        be committed in parts; planning the same job again is harmless.
        A planned delivery starts its ``attempts`` again from 0 (so do those
        :meth:`reopen_for` and :meth:`withdraw` make waiting).
        """

    @abc.abstractmethod
    def pending_deliveries(self, limit: int, now: float,
                           skip: Iterable[tuple[str, str]] = ()) -> list[Delivery]:
        """Deliveries waiting for the worker (pending, withdrawing or rolled-back) and due
        by ``now``, in queue order, leaving out the (owner, recipient) pairs in ``skip``
        (being written); the cost does not grow with the length of the queue."""

    @abc.abstractmethod
    def claim(self, holder: str, limit: int, now: float, lease: float,
              skip: Iterable[tuple[str, str]] = ()) -> list[Delivery]:
        """:meth:`pending_deliveries`, each leased to ``holder`` until ``now + lease``, in one
        step: deliveries another claim holds (its lease not lapsed by ``now``) are left out,
        so that two processes never claim the same delivery, and those of a process that
        died come back when its lease lapses.  :meth:`finish`, :meth:`finish_many` and
        :meth:`release` end a claim."""

    @abc.abstractmethod
    def claim_jobs(self, holder: str, limit: int, now: float, lease: float) -> list[Job]:
        """:meth:`pending_jobs`, each leased to ``holder`` until ``now + lease``: a job
        another process is planning (its lease not lapsed) is left out, and one planned
        meanwhile too, so that two processes never plan one change twice.  :meth:`plan`
        ends the lease; :meth:`release` (all) too."""

    @abc.abstractmethod
    def renew(self, holder: str, pairs: Iterable[tuple[str, str]], until: float) -> int:
        """Extend ``holder``'s claims of these (owner, recipient) pairs until ``until`` (a
        long round); how many it still held."""

    @abc.abstractmethod
    def release(self, holder: str, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        """End ``holder``'s claims of these pairs (None: all of them) without recording
        anything."""

    @abc.abstractmethod
    def claimants(self, now: float) -> set[str]:
        """The holders of claims that have not lapsed by ``now``."""

    @abc.abstractmethod
    def delivery(self, owner: str, recipient: str) -> Delivery | None:
        """One delivery."""

    @abc.abstractmethod
    def rolled_back(self, owner: str, recipient: str, seq: int, due: float,
                    max_repairs: int) -> str | None:
        """The recipient's copy no longer holds the change ``seq`` delivered into it.

        Only a delivery ``delivered`` with ``wanted_seq`` == ``delivered_seq`` ==
        ``seq`` changes: below ``max_repairs`` repairs it becomes ``rolled-back``
        (waiting, due at ``due``, ``repairs`` + 1); at the bound it is ``behind``
        (left as it is until the owner's next change).  Returns the new state,
        None if nothing changed.  A new plan of another change resets ``repairs``.
        """

    @abc.abstractmethod
    def clear_intents(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Clear the intents of these (owner, recipient) pairs: their writes are recorded."""

    @abc.abstractmethod
    def set_intent(self, owner: str, recipient: str, intent: Intent | None,
                   values: Iterable[tuple[str, str]] = ()) -> None:
        """Record the write about to be made into the copy, before making it.

        ``values`` (field, compare key) join the delivery's ``written_values``
        for good.  ``intent`` None clears it once the write is recorded.
        """

    @abc.abstractmethod
    def finish_many(self, deliveries: Iterable[Delivery], spacing: float = 0.0) -> None:
        """:meth:`finish` for many deliveries (a round's outcome), in one go.

        A delivery planned again (or stopped, withdrawn, reopened) while it was
        being written keeps that newer decision, but the write that was made is
        recorded: ``delivered_seq`` (never lowered) and ``delivered_at``, and a
        new plan waits until ``delivered_at + spacing`` (the rewrite spacing), as
        :meth:`plan` would have made it wait had it known of the write.
        """

    @abc.abstractmethod
    def finish(self, delivery: Delivery) -> None:
        """Store the outcome of one delivery (state, error, ``delivered_seq``, due,
        ``delivered_at``, ``attempts``).

        Nothing is stored if the delivery was planned again meanwhile (its
        ``wanted_seq`` changed), nor if the row is no longer as it was read
        (:attr:`Delivery.seen`: stopped, withdrawn, reopened or planned again while a
        round wrote it): the newer decision wins.
        """

    @abc.abstractmethod
    def ensure(self, owner: str, recipient: str, seq: int) -> Delivery:
        """The delivery of (owner, recipient), created pending if there is none."""

    @abc.abstractmethod
    def reopen_for(self, recipient: str, owner: str | None, states: Iterable[str]) -> None:
        """Make a recipient's deliveries in ``states`` (from one owner, or all) pending."""

    @abc.abstractmethod
    def withdraw(self, owner: str, recipients: Iterable[str] | None) -> list[str]:
        """Mark deliveries of former targets to be withdrawn (``None``: all); return them."""

    @abc.abstractmethod
    def interrupted(self, now: float | None = None) -> list[Delivery]:
        """Deliveries with an intent: a write a crash may have interrupted.  With ``now``,
        those a claim holds beyond ``now`` are left out (another process is writing them)."""

    @abc.abstractmethod
    def deliveries(self, owner: str) -> list[Delivery]:
        """Every delivery of an owner's card."""

    @abc.abstractmethod
    def queued(self, owner: str, full_only: bool = False) -> int:
        """How many changes of the owner wait to be planned (``full_only``: for all targets)."""

    @abc.abstractmethod
    def has_work(self, now: float) -> bool:
        """Whether jobs, or deliveries due by ``now`` and claimed by nobody, exist."""

    @abc.abstractmethod
    def next_due(self) -> float | None:
        """When the earliest waiting delivery is due, a claimed one when its claim lapses
        (None: nothing waits)."""

    # -- backups, accounts and monitoring ---------------------------------------
    @abc.abstractmethod
    def all_jobs(self) -> list[Job]:
        """Every owner change still to plan, oldest first, none dropped (unlike
        :meth:`pending_jobs`)."""

    @abc.abstractmethod
    def all_deliveries(self) -> list[Delivery]:
        """Every delivery, in queue order (then by owner and recipient)."""

    @abc.abstractmethod
    def restore_job(self, job: Job) -> None:
        """Queue a change exactly as given, ``id`` included (an import)."""

    @abc.abstractmethod
    def restore_deliveries(self, deliveries: Iterable[Delivery]) -> None:
        """Store deliveries exactly as given (an import), queued in the order given.

        ``delivered_view`` is not stored: it is the owner's view of
        ``delivered_seq`` (see :meth:`OwnerStore.restore`).
        """

    @abc.abstractmethod
    def deliveries_to(self, recipient: str) -> list[Delivery]:
        """Every delivery of any owner's card to ``recipient``, by owner."""

    @abc.abstractmethod
    def forget_user(self, user: str, keep_withdrawing: bool = False) -> None:
        """Forget the user's queued changes and every delivery from or to them.

        With ``keep_withdrawing`` the user's deliveries still being withdrawn
        stay, so that the worker can remove their values from those copies.
        """

    @abc.abstractmethod
    def counts(self, now: float) -> QueueCounts:
        """How much work waits: changes to plan, deliveries per state, those due by ``now``."""


class HistoryLog(abc.ABC):
    """Every change the sharing code made to a recipient's card."""

    @abc.abstractmethod
    def record(self, entry: HistoryEntry) -> None:
        """Append one entry."""

    @abc.abstractmethod
    def record_many(self, entries: Iterable[HistoryEntry]) -> None:
        """Append entries, in order."""

    @abc.abstractmethod
    def of_recipient(self, recipient: str, limit: int = 100,
                     owner: str | None = None) -> list[HistoryEntry]:
        """The newest changes made to a recipient's cards (by ``owner`` only, if given),
        newest first."""

    # -- undo (the recipient's; see radicale_plugin.recipient.undo) -------------------
    @abc.abstractmethod
    def get(self, entry_id: int) -> HistoryEntry | None:
        """One entry, by id."""

    @abc.abstractmethod
    def add(self, entry: HistoryEntry) -> int:
        """Append one entry; its id."""

    @abc.abstractmethod
    def mark_undone(self, mark: UndoMark) -> bool:
        """Mark an entry undone; False (and the first mark stays) if it was already."""

    @abc.abstractmethod
    def undo_marks(self, entry_ids: Iterable[int]) -> dict[int, UndoMark]:
        """The marks of those of ``entry_ids`` that were undone, by entry."""

    @abc.abstractmethod
    def add_undone(self, values: Iterable[UndoneValue]) -> None:
        """Remember owner values recipients undid (``id`` is given by the store)."""

    @abc.abstractmethod
    def undone_of(self, pairs: Iterable[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[UndoneValue]]:
        """The undone values of these (owner, recipient) pairs, oldest first (pairs
        without any are left out)."""

    @abc.abstractmethod
    def forget_undone(self, value_ids: Iterable[int]) -> None:
        """Forget undone values the owner has changed since (by ``id``)."""

    @abc.abstractmethod
    def purge(self, before: str) -> int:
        """Forget entries (and their undo marks) recorded before ``before`` (ISO time);
        how many entries.  Undone values stay: they are rules in effect, not history."""

    # -- backups and accounts -------------------------------------------------
    @abc.abstractmethod
    def all(self, after: int = 0, limit: int = 1000) -> list[HistoryEntry]:
        """Entries with an ``id`` above ``after``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    def restore_many(self, entries: Iterable[HistoryEntry]) -> None:
        """Append entries exactly as given, ``id`` and ``time`` included (an import)."""

    @abc.abstractmethod
    def all_undone(self, after: int = 0, limit: int = 1000) -> list[UndoneValue]:
        """Undone values with an ``id`` above ``after``, oldest first, at most ``limit``
        (a backup; an import stores them again with :meth:`add_undone`, in this order)."""

    @abc.abstractmethod
    def forget_recipient(self, recipient: str) -> int:
        """Forget every change made to the recipient's cards, their undo marks and the
        values they undid; how many entries."""


class PushStore(abc.ABC):
    """WebDAV-Push: each book's random topic, and the subscriptions to books."""

    @abc.abstractmethod
    def topic(self, book: str) -> str | None:
        """The book's topic, if it has one."""

    @abc.abstractmethod
    def ensure_topic(self, book: str, topic: str) -> str:
        """The book's topic; ``topic`` becomes it if the book has none yet (for good)."""

    @abc.abstractmethod
    def put(self, subscription: PushSubscription) -> PushSubscription:
        """Register a subscription, or renew the one of the same book and push resource.

        A renewal takes the new keys, encoding and expiry and keeps the stored
        ``id``, ``user`` and ``created``.  Returns what is stored.
        """

    @abc.abstractmethod
    def get(self, subscription_id: str) -> PushSubscription | None:
        """One subscription (expired or not)."""

    @abc.abstractmethod
    def of_user(self, user: str, now: float) -> list[PushSubscription]:
        """The user's subscriptions that have not expired by ``now``, by book and age."""

    @abc.abstractmethod
    def of_book(self, book: str, now: float) -> list[PushSubscription]:
        """The book's subscriptions that have not expired by ``now``."""

    @abc.abstractmethod
    def of_books(self, books: Iterable[str], now: float) -> dict[str, list[PushSubscription]]:
        """:meth:`of_book` of each of ``books`` (every one given a list, maybe empty), in
        one read for many: the books a fan-out round changed."""

    @abc.abstractmethod
    def count(self, now: float, user: str | None = None, book: str | None = None) -> int:
        """How many subscriptions of ``user`` and/or to ``book`` have not expired by ``now``."""

    @abc.abstractmethod
    def remove(self, subscription_id: str) -> bool:
        """Forget a subscription; whether there was one."""

    @abc.abstractmethod
    def purge_expired(self, now: float) -> int:
        """Forget the subscriptions expired by ``now``; how many."""

    @abc.abstractmethod
    def forget_book(self, book: str) -> list[tuple[PushSubscription, str | None]]:
        """A book (or with a user's name, all their books) was deleted: forget its
        subscriptions, their messages not sent yet, and its topic.  Returns the
        subscriptions gone, each with its book's topic."""

    # -- messages not sent yet (they survive a restart) ---------------------------
    @abc.abstractmethod
    def queue_put(self, messages: list[PushQueued]) -> None:
        """Store messages to send (one per subscription: a newer one replaces it)."""

    @abc.abstractmethod
    def queue_done(self, subscription_id: str) -> None:
        """The subscription's message was sent, or given up."""

    @abc.abstractmethod
    def queued(self) -> list[PushQueued]:
        """Every message not sent yet, the soonest due first."""

    @abc.abstractmethod
    def queue_hold(self, holder: str, subscriptions: Iterable[str]) -> None:
        """These messages are sent by ``holder``'s process (the one that queued them, or
        took them over): the other processes leave them alone while it lives."""

    @abc.abstractmethod
    def queue_holders(self) -> set[str]:
        """The processes holding messages not sent yet."""

    @abc.abstractmethod
    def adopt(self, holder: str, gone: Iterable[str], now: float) -> list[PushQueued]:
        """The messages of processes that are gone — named in ``gone``, or holding no lease
        (:class:`LeaseStore`) by ``now``, or none at all — become ``holder``'s, in one step
        (two processes never adopt one message); returns them, the soonest due first."""

    # -- backups and accounts -------------------------------------------------
    @abc.abstractmethod
    def topics(self) -> dict[str, str]:
        """Every book's topic, by book."""

    @abc.abstractmethod
    def all(self) -> list[PushSubscription]:
        """Every subscription, expired or not, by id."""

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the user's subscriptions, those to their books, and their books' topics."""


class InviteStore(abc.ABC):
    """Invites: links owners hand out (only their tokens' hashes), and who accepted them."""

    @abc.abstractmethod
    def add(self, invite: Invite) -> None:
        """Store a new invite; ``ValueError`` if its id or token hash is taken."""

    @abc.abstractmethod
    def get(self, invite_id: str) -> Invite | None:
        """One invite, by id."""

    @abc.abstractmethod
    def by_token_hash(self, token_hash: str) -> Invite | None:
        """The invite whose token hashes to ``token_hash`` (whatever its state)."""

    @abc.abstractmethod
    def of_owner(self, owner: str) -> list[Invite]:
        """The owner's invites, newest first (expired and revoked ones too)."""

    @abc.abstractmethod
    def uses(self, invite_id: str) -> list[InviteUse]:
        """Who accepted the invite, oldest first."""

    @abc.abstractmethod
    def use(self, invite_id: str, recipient: str, now: float) -> bool:
        """Record that ``recipient`` accepted the invite at ``now``, in one step.

        True if it was usable at ``now`` (not revoked, not expired, fewer
        uses than ``max_uses``): the use is counted.  True also, counted
        no second time, if the recipient used it before and it is neither
        revoked nor expired.  False otherwise, and nothing changes.
        """

    @abc.abstractmethod
    def unuse(self, invite_id: str, recipient: str) -> None:
        """Give back the recipient's use (their accepting failed after :meth:`use`)."""

    @abc.abstractmethod
    def revoke(self, invite_id: str, now: float) -> bool:
        """Revoke an invite at ``now``; False if it was revoked already (the time stays)."""

    @abc.abstractmethod
    def created_since(self, owner: str, since: float) -> int:
        """How many invites the owner created since ``since`` (revoked ones count)."""

    # -- backups and accounts -------------------------------------------------
    @abc.abstractmethod
    def all(self) -> list[Invite]:
        """Every invite, by owner, then creation time and id."""

    @abc.abstractmethod
    def all_uses(self) -> list[InviteUse]:
        """Every use of every invite, by invite, then time and recipient."""

    @abc.abstractmethod
    def restore(self, invite: Invite, uses: Iterable[InviteUse]) -> None:
        """Store an invite and its uses exactly as given (an import).

        Raises ``ValueError`` if its id or token hash is taken.
        """

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the user's invites with their uses, and the user's uses of others'
        invites (those invites keep their counts: a use is not given back)."""



class NotifyStore(abc.ABC):
    """Notifications: each user's choice, the events to tell, and the e-mails (batches)
    made of them, whose states make sending at most once (:mod:`radicale_plugin.notify`)."""

    @abc.abstractmethod
    def setting(self, user: str) -> NotifySetting:
        """The user's choice (``email`` None: never chosen)."""

    @abc.abstractmethod
    def set_choice(self, user: str, email: str, address: str | None) -> None:
        """Store what the user chose; ``email`` none also cancels what waits for them."""

    @abc.abstractmethod
    def set_base(self, user: str, base: str) -> None:
        """Remember the server's URL as the user's own requests reach it."""

    @abc.abstractmethod
    def add_event(self, event: NotifyEvent) -> None:
        """Store one event to tell (not in a batch yet)."""

    @abc.abstractmethod
    def waiting(self, limit: int = 10000) -> list[NotifyEvent]:
        """Events in no batch yet, by recipient, then time and id."""

    @abc.abstractmethod
    def last_batch(self, recipient: str) -> float | None:
        """When the recipient's newest batch was made (None: never)."""

    @abc.abstractmethod
    def make_batch(self, batch: NotifyBatch, events: list[int], drop: list[int]) -> int:
        """Store a new batch (its ``id`` is given here) holding ``events`` and forget the
        events ``drop``, in one step; returns the batch's id, or 0 (and nothing changes) if
        one of ``events`` is in a batch already or gone."""

    @abc.abstractmethod
    def drop_events(self, ids: list[int]) -> None:
        """Forget events (nothing to tell of them any more)."""

    @abc.abstractmethod
    def batch(self, batch_id: int) -> NotifyBatch | None:
        """One batch."""

    @abc.abstractmethod
    def batches(self, recipient: str | None = None, state: str | None = None
                ) -> list[NotifyBatch]:
        """Batches (of one recipient, in one state), oldest first."""

    @abc.abstractmethod
    def events_of(self, batch_id: int) -> list[NotifyEvent]:
        """The events a batch tells of."""

    @abc.abstractmethod
    def due_batches(self, now: float) -> list[NotifyBatch]:
        """Batches ready to be sent by ``now``, the soonest due first."""

    @abc.abstractmethod
    def next_due(self) -> float | None:
        """When the earliest ready batch is due (None: none is)."""

    @abc.abstractmethod
    def claim(self, batch_id: int) -> bool:
        """Mark a ready batch ``sending`` (one attempt more), durably, before the mail server
        hears of it; False if it was not ready (another thread claimed it, or cancelled)."""

    @abc.abstractmethod
    def finish(self, batch_id: int, state: str, due: float = 0.0, error: str = "",
               sent: float | None = None) -> None:
        """Store the outcome of an attempt: sent, ready again (retried at ``due``), failed,
        or unknown."""

    @abc.abstractmethod
    def interrupted(self, ids: Iterable[int] | None = None) -> list[NotifyBatch]:
        """Batches found ``sending`` (a crash while sending): made ``unknown``, returned.
        With ``ids``, only those of them (the others' senders are still sending)."""

    @abc.abstractmethod
    def secret(self) -> bytes:
        """The key that signs unsubscribe links: made once, kept for good."""

    @abc.abstractmethod
    def purge(self, before: float) -> int:
        """Forget finished batches made before ``before`` and their events (each
        recipient's newest batch stays: it spaces the next); how many batches."""

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the user's choice, events and batches (an account deleted)."""

    # -- backups --------------------------------------------------------------------
    @abc.abstractmethod
    def all_settings(self) -> list[NotifySetting]:
        """Every user's stored setting, by user."""

    @abc.abstractmethod
    def all_events(self) -> list[NotifyEvent]:
        """Every event, in a batch or waiting, by id."""

    @abc.abstractmethod
    def known_secret(self) -> bytes | None:
        """The key of unsubscribe links if one was made (None: none yet); never makes one."""

    @abc.abstractmethod
    def restore(self, settings: Iterable[NotifySetting], batches: Iterable[NotifyBatch],
                events: Iterable[NotifyEvent], secret: bytes | None) -> None:
        """Store settings, batches and events exactly as given, ids included (an import;
        an event's ``batch`` names one of ``batches`` or is None; a setting replaces one
        holding only a URL learnt, whose URL stays where the setting has none), and the key
        of unsubscribe links (None: keep what there is).  ValueError for ids given twice."""


class LeaseStore(abc.ABC):
    """Leases on duties: what must run once across every process sharing the index.

    A background duty (the notification sender, history expiry, the fan-out's check at
    start, ...) runs in the process holding its lease; the others stand by.  A holder
    renews its lease while it works; one that died stops renewing, and after the lease
    lapses the next process to ask takes the duty over.  Times are the wall clock
    (seconds since 1970) of the asking process: hosts keep their clocks in step (NTP).
    """

    @abc.abstractmethod
    def take(self, duty: str, holder: str, seconds: float, now: float) -> bool:
        """Hold ``duty`` for ``holder`` until ``now + seconds``, in one step: granted if
        nobody holds it, its lease lapsed by ``now``, or ``holder`` holds it already (a
        renewal); False, and nothing changes, while another holder's lease runs."""

    @abc.abstractmethod
    def release(self, duty: str, holder: str) -> None:
        """Give the duty up (only ``holder``'s own lease ends): the next to ask takes it."""

    @abc.abstractmethod
    def holder(self, duty: str, now: float) -> str | None:
        """Who holds the duty at ``now`` (None: nobody, or the lease lapsed)."""

    @abc.abstractmethod
    def purge(self, before: float) -> int:
        """Forget the leases that lapsed before ``before`` (of processes long gone); how
        many."""


class LimitStore(abc.ABC):
    """Token buckets shared by every process: how much a user may ask for in a while.

    A bucket holds up to ``capacity`` units and refills at ``rate`` units a second;
    one is kept per (bucket name, subject).  A bucket never seen is full.
    """

    @abc.abstractmethod
    def take(self, bucket: str, subject: str, amount: float, capacity: float, rate: float,
             now: float) -> float:
        """Take ``amount`` units of the subject's bucket at ``now``, atomically across
        processes: 0.0 if granted, else the seconds to wait (and nothing is taken)."""

    @abc.abstractmethod
    def forget_user(self, user: str) -> None:
        """Forget the user's buckets (an account deleted)."""

    @abc.abstractmethod
    def hold(self, bucket: str, subject: str) -> None:
        """Inside a :meth:`SharingIndex.transaction`: until it ends, another process's (or
        thread's) ``hold`` of the same bucket and subject waits — a count checked and then
        added to in the transaction (codes sent to a key) stays within its bound."""

    @staticmethod
    def refill(tokens: float, stamp: float, amount: float, capacity: float, rate: float,
               now: float) -> tuple[float, float, float]:
        """The bucket arithmetic every store shares: ``(tokens, stamp, wait)`` after asking
        for ``amount`` at ``now`` (``wait`` 0.0: granted and taken).  A clock behind the
        bucket's (another host's) refills nothing and never moves the stamp back."""
        tokens = min(capacity, tokens + max(0.0, now - stamp) * rate)
        stamp = max(stamp, now)
        if amount <= tokens:
            return tokens - amount, stamp, 0.0
        if rate <= 0:
            return tokens, stamp, 3600.0
        return tokens, stamp, max(1.0, (amount - tokens) / rate)


class Wakeups:
    """Waking idle workers of other processes when work is queued (PostgreSQL's
    LISTEN/NOTIFY).  This one, for a backend used by one process, does nothing: the
    process wakes its own threads."""

    def announce(self, topic: str) -> None:
        """Work on ``topic`` was queued (with the caller's transaction: at its commit)."""

    def listen(self, topic: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from a thread of the backend's) whenever ``topic`` is announced,
        by any process, until :meth:`close`."""

    def close(self) -> None:
        """Stop listening."""


class SharingIndex(abc.ABC):
    """All sharing state of one server, one store per concern."""

    #: The schema version this code writes.
    SCHEMA_VERSION = 7

    owners: OwnerStore
    keys: KeyStore
    cards: CardIndex
    links: LinkStore
    consent: ConsentStore
    outbox: Outbox
    history: HistoryLog
    push: PushStore
    invites: InviteStore
    notify: NotifyStore
    leases: LeaseStore
    limits: LimitStore

    @abc.abstractmethod
    def transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[None]:
        """Group calls into one transaction; nested uses join the outer one.

        Without ``durable`` the commit need not reach the disk before it returns
        (a power loss may undo it, a crash of the process may not): for what
        can be rebuilt or replayed, such as the card-key index.
        """

    @abc.abstractmethod
    def sync(self) -> None:
        """Make every commit so far durable, as a ``durable`` transaction's is, without
        holding up other writers while the disk is waited for (the fan-out commits a
        round's intents in short transactions, then syncs once before writing files)."""

    def close(self) -> None:
        """Release resources."""

    def wakeups(self) -> Wakeups:
        """How processes wake each other's idle workers (nothing to do where one process
        uses the index)."""
        return _NO_WAKEUPS

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether the index holds no sharing state at all (an import goes only there).

        The card-key index does not count: it is rebuilt from the collections; nor do a
        notification setting holding only the URL a user's request came by and the key of
        unsubscribe links, which a server running on an empty database makes.
        """

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Group reads so that they see one moment of the index (an export while the
        server runs); writers are not held up meanwhile where the backend allows it.
        Inside a :meth:`transaction` it joins it.  Only reads belong in it."""


_NO_WAKEUPS = Wakeups()
