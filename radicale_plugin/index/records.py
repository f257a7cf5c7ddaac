# SPDX-License-Identifier: GPL-3.0-or-later
"""The records the sharing index keeps, and the words for their states.  Pure.

:mod:`radicale_plugin.index` is the contract of the stores that keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, View

POLICIES = ("auto", "ask", "block")
DISCOVERABILITY = ("everyone", "contacts", "nobody")

#: Delivery states as stored (the API maps them to what owners see).
PENDING = "pending"            # waiting for the fan-out worker
DELIVERED = "delivered"        # the copy holds the view of ``delivered_seq``
OFFERED = "offered"            # an offer waits for the recipient (see the offer's state)
BLOCKED = "blocked"            # the recipient's policy forbids it
FAILED = "failed"              # could not be done; ``error`` says why
STOPPED = "stopped"            # no longer a target (or no me card); the copy is left
WITHDRAWING = "withdrawing"    # the owner's values are to be removed from the copy
WITHDRAWN = "withdrawn"        # they were; the link has ended
#: The recipient's phone wrote an older copy back over the delivered one (see
#: :mod:`radicale_plugin.delivery.rollback`): put right by the fan-out at ``due``.
ROLLED_BACK = "rolled-back"
#: The same, after ``repairs`` reached the bound: left as it is until the owner's next change.
BEHIND = "behind"

#: Offer states.
OFFER_PENDING = "pending"
OFFER_POSTPONED = "postponed"
OFFER_REFUSED = "refused"

#: How a link was made.
LINK_CREATED = "created"       # the server created the card
LINK_ACCEPTED = "accepted"     # the recipient accepted an offer naming the card
LINK_VERIFIED = "verified"     # every matching key on the card is verified for the owner
LINK_MIGRATED = "migrated"     # found by the matching of schema version 1
LINK_INVITED = "invited"       # the recipient accepted an invite into this card of theirs


@dataclass
class Owner:
    """A user's me card and sharing settings."""

    user: str
    book: str | None = None       # collection path, e.g. "alice/contacts"
    href: str | None = None
    uid: str | None = None
    shared_fields: list[str] = field(default_factory=lambda: list(DEFAULT_SHARED_FIELDS))
    withdrawn_fields: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    card_view: View | None = None  # the shared fields of the me card as written
    view: View | None = None       # what recipients get (no key verified for someone else)
    seq: int = 0
    discoverability: str | None = None  # None: the server's default
    notices: list[str] = field(default_factory=list)
    card_stat: str = ""  # the me card file's size and time when last read (start-up check)
    region: str | None = None  # the user's own region setting (None: none set)
    #: field sets per target rule, as stored: rule -> {"fields": [...] | None, "withdrawn":
    #: [...]} (see radicale_plugin.owner.audiences)
    audiences: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Key:
    """A number or e-mail a user claims (on their me card) or verified."""

    user: str
    key: str
    on_card: bool
    verified: str | None = None   # when it was verified for this user
    lost: str | None = None       # when another user verified it (it moved to them)

    @property
    def state(self) -> str:
        if self.lost:
            return "moved"
        return "verified" if self.verified else "unverified"


@dataclass(frozen=True)
class Code:
    """A verification code waiting to be confirmed (only its hash is kept)."""

    user: str
    key: str
    digest: str
    expires: float
    attempts: int


@dataclass(frozen=True)
class IndexedCard:
    """One card of one book, as the card-key index knows it.

    It holds what target rules need, so that they are evaluated without
    reading the book: the name, the categories, a group's members.
    """

    book: str
    href: str
    uid: str
    is_group: bool
    keys: frozenset[str]
    name: str = ""
    categories: frozenset[str] = frozenset()  # case-folded
    members: tuple[str, ...] = ()             # a group card's MEMBER values, as written
    version: str = ""                         # the card's vCard VERSION

    @property
    def user(self) -> str:
        return self.book.split("/", 1)[0]


@dataclass(frozen=True)
class Link:
    """The card in ``recipient``'s book that holds ``owner``'s copy."""

    owner: str
    recipient: str
    book: str
    href: str
    made_by: str
    made: str = ""
    #: The UID of the linked card when it was linked ("": not known): a link belongs to
    #: that card, not to its href.  Not part of a link's equality (the pair and the card).
    uid: str = field(default="", compare=False)


@dataclass
class Offer:
    """An owner's change waiting for the recipient's answer."""

    owner: str
    recipient: str
    seq: int
    state: str = OFFER_PENDING
    book: str | None = None        # the recipient's card it would change; None: a new contact
    href: str | None = None
    created: str = ""
    first_offered: str = ""
    until: str | None = None       # postponed until (ISO time)
    refused_seq: int = 0


@dataclass(frozen=True)
class Job:
    """An owner's change waiting to be planned."""

    id: int
    owner: str
    seq: int
    only: list[str] | None = None   # "update some": these recipients only
    withdraw: bool = False          # recipients no longer targeted are withdrawn


@dataclass(frozen=True)
class Intent:
    """A write about to be made into a copy, recorded before it is made.

    After a crash it tells whether the write happened (the card's text then
    hashes to ``after_hash``) and what the history must say about it.
    """

    view: View
    book: str
    href: str
    action: str                  # "create", "update" or "withdraw"
    changes: tuple["Change", ...]
    after_hash: str


@dataclass
class Delivery:
    """The state of one owner's card in one recipient's address book.

    ``wanted_seq`` is the owner's change the recipient is meant to get (a
    change sent to some recipients only does not reach the others);
    ``delivered_view`` is the view of ``delivered_seq``, as the index keeps it.
    """

    owner: str
    recipient: str
    state: str
    wanted_seq: int
    delivered_seq: int = 0
    delivered_view: View | None = None
    intent: Intent | None = None
    written_values: set[tuple[str, str]] = field(default_factory=set)  # ever written there
    reasons: list[str] = field(default_factory=list)
    error: str = ""
    updated: str = ""
    due: float = 0.0                  # not before this time (seconds since 1970)
    delivered_at: float = 0.0         # when the copy was last written (seconds since 1970)
    #: Transient failures in a row (an I/O error, a book unreadable for now): while it is
    #: above 0 a waiting delivery is *retrying* at ``due``; a success or a new plan resets it.
    attempts: int = 0
    #: Rollbacks of the copy put right for the change ``wanted_seq`` (a new change resets it).
    repairs: int = 0
    #: The row as the store gave it: (state, place in the queue); None: made by hand.
    #: :meth:`Outbox.finish` stores an outcome only while the row is still so: a decision
    #: made while a round was writing (a stop, a new plan, a reopening) is never overwritten.
    seen: tuple[str, int] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Change:
    """One value of a recipient's card, before and after (content lines; None: absent)."""

    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One change the sharing code made to a recipient's card."""

    owner: str
    recipient: str
    book: str
    href: str
    action: str                  # "create", "update", "withdraw" (or "undo": the recipient's)
    changes: tuple[Change, ...]
    time: str = ""
    id: int = 0


@dataclass(frozen=True)
class UndoMark:
    """A history entry the recipient undid: when, the entry recording the undo (0: nothing
    was written), and the answer given (JSON: what was put back, what not and why)."""

    entry: int
    time: str
    undo_entry: int = 0
    answer: str = "{}"


@dataclass(frozen=True)
class UndoneValue:
    """An owner's value a recipient undid: later deliveries leave it out of the copy until
    the owner changes it (see :mod:`radicale_plugin.delivery.undone`).

    ``value_key``: the owner's value (``field``, compare key) the undo took out ("": the
    change removed a value, and the undo put it back); ``kept``: the content line the undo
    put back ("": none), which is the recipient's from then on.
    """

    owner: str
    recipient: str
    field: str
    value_key: str
    kept: str
    entry: int = 0               # the history entry undone
    id: int = 0


@dataclass(frozen=True)
class PushSubscription:
    """A WebDAV-Push subscription: a push resource told about changes of one address book.

    Registered by the book's owner; ``public_key`` and ``auth_secret`` encrypt
    every message (RFC 8291).  A subscription past ``expires`` is never sent to
    and is purged.  One subscription per (book, push resource): registering
    the same push resource again renews it.
    """

    id: str
    user: str
    book: str                      # collection path, e.g. "alice/contacts"
    push_resource: str             # the push service's URL for it (RFC 8030 push resource)
    public_key: str                # the subscriber's P-256 ECDH key (base64url, "p256dh")
    auth_secret: str               # base64url, 16 bytes
    expires: float                 # seconds since 1970
    content_encoding: str = "aes128gcm"
    created: float = 0.0           # seconds since 1970


@dataclass(frozen=True)
class PushQueued:
    """A WebDAV-Push message not sent yet (kept across restarts): the subscription's book
    changed."""

    subscription: str
    book: str
    due: float                     # when it may go (seconds since 1970)
    attempt: int                   # the attempt it will be; the first is 1


@dataclass(frozen=True)
class Invite:
    """A link an owner hands out: whoever signs in and accepts it gets the owner's copy.

    Only a hash of its random token is kept.  ``expires`` and ``revoked`` are
    seconds since 1970 (None: never, not revoked); ``max_uses`` None: no limit.
    """

    id: str
    owner: str
    token_hash: str
    created: float
    expires: float | None = None
    max_uses: int | None = None
    uses: int = 0
    revoked: float | None = None
    label: str = ""

    def state(self, now: float) -> str:
        """``active``, ``revoked``, ``expired`` or ``used up`` at ``now``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used up"
        return "active"


@dataclass(frozen=True)
class InviteUse:
    """A recipient who accepted an invite, and when (seconds since 1970)."""

    invite: str
    recipient: str
    time: float


@dataclass
class QueueCounts:
    """How much work waits in the outbox, for the admin's ``status`` (monitoring)."""

    jobs: int                      # owner changes still to plan
    states: dict[str, int]         # deliveries per stored state
    due: int                       # pending or withdrawing deliveries due now
    oldest_job: str | None = None  # when the oldest change still to plan was queued (ISO)


# -- notifications (radicale_plugin.notify) ---------------------------------------------

#: What a recipient hears of by e-mail (``NotifySetting.email``).
NOTIFY_OFFERS = "offers"
NOTIFY_OFFERS_AND_CHANGES = "offers-and-changes"
NOTIFY_NONE = "none"
NOTIFY_CHOICES = (NOTIFY_OFFERS, NOTIFY_OFFERS_AND_CHANGES, NOTIFY_NONE)

#: Kinds of notification events.
EVENT_OFFER = "offer"          # a new offer (or a newer change replacing one)
EVENT_OFFER_DUE = "offer-due"  # a postponed offer whose time came
EVENT_CHANGED = "changed"      # a change applied to the recipient's card without asking

#: Batch states: made and waiting (again) to be sent; claimed for sending (durably, before
#: the mail server is spoken to); sent; given up; and "unknown": the mail server may or may
#: not have it (found "sending" after a crash, or the connection broke after the message's
#: end was sent): never sent again.  "cancelled": the recipient unsubscribed meanwhile.
BATCH_READY = "ready"
BATCH_SENDING = "sending"
BATCH_SENT = "sent"
BATCH_FAILED = "failed"
BATCH_UNKNOWN = "unknown"
BATCH_CANCELLED = "cancelled"


@dataclass
class NotifySetting:
    """How a user hears of offers: ``email`` None means never chosen (the server's default)."""

    user: str
    email: str | None = None
    address: str | None = None   # a mailto: key the user chose (None: the first verified)
    base: str | None = None      # the server's URL as the user's own requests reach it


@dataclass
class NotifyEvent:
    """Something to tell a recipient of (times in seconds since 1970)."""

    recipient: str
    owner: str
    kind: str
    seq: int
    time: float                  # when it happened
    due: float                   # when it may be told (a postponed offer: its time)
    base: str | None = None      # the recipient's server URL known when it happened
    id: int = 0
    batch: int | None = None


@dataclass
class NotifyBatch:
    """One e-mail to one recipient, made of events; ``message`` is the whole text sent (the
    same bytes at every attempt)."""

    id: int
    recipient: str
    address: str
    state: str
    created: float
    due: float
    message: str = ""
    message_id: str = ""
    attempts: int = 0
    sent: float | None = None
    error: str = ""
