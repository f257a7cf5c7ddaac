# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing index and the fan-out outbox, behind one small interface.

Everything the fan-out needs to survive a restart lives here: who has which
me card, each owner's shared fields and target rules, each recipient's
policies, the keys (numbers, e-mails) that resolve contacts to users, the
outbox of owner changes still to plan, and one *delivery* per (owner,
recipient) that remembers where the copy is and what was last written to it.

The embedded implementation is :mod:`radicale_plugin.sqlite_index`; a
PostgreSQL one (claiming work with ``SKIP LOCKED``) implements the same class.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable

from radicale_plugin.view import DEFAULT_SHARED_FIELDS, View

POLICIES = ("auto", "block")

#: Delivery states, as the API reports them.
PENDING = "pending"          # waiting for the fan-out worker
DELIVERED = "delivered"      # the copy holds the owner's current view
BLOCKED = "blocked"          # the recipient's policy forbids writing
FAILED = "failed"            # the copy could not be written; see error
NO_BOOK = "no-address-book"  # the recipient has no address book to hold a copy
COPY_DELETED = "copy-deleted"  # the recipient deleted the copy; not re-created
STOPPED = "stopped"          # the owner removed the me card or the target


@dataclass
class Owner:
    """An owner's me card and sharing settings."""

    user: str
    book: str | None = None   # collection path, e.g. "alice/contacts"
    href: str | None = None
    uid: str | None = None
    shared_fields: list[str] = field(default_factory=lambda: list(DEFAULT_SHARED_FIELDS))
    rules: list[str] = field(default_factory=list)
    view: View | None = None
    prev_view: View | None = None
    seq: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Delivery:
    """The state of one owner's card in one recipient's address book."""

    owner: str
    recipient: str
    state: str
    wanted_seq: int
    delivered_seq: int = 0
    book: str | None = None
    href: str | None = None
    delivered_view: View | None = None
    reasons: list[str] = field(default_factory=list)
    error: str = ""
    updated: str = ""


class SharingIndex(abc.ABC):
    """Storage of sharing state; every method is one atomic transaction."""

    # -- owners --------------------------------------------------------
    @abc.abstractmethod
    def owner(self, user: str) -> Owner:
        """The owner record (defaults when the user never configured sharing)."""

    @abc.abstractmethod
    def owners_with_me_card(self) -> list[Owner]:
        """Every owner that has a me card."""

    @abc.abstractmethod
    def set_me_card(self, user: str, book: str | None, href: str | None,
                    uid: str | None) -> None:
        """Set or (with ``None``) clear where the user's me card is."""

    @abc.abstractmethod
    def set_shared_fields(self, user: str, fields: list[str]) -> None:
        """Replace the owner's shared fields."""

    @abc.abstractmethod
    def set_rules(self, user: str, rules: list[str]) -> None:
        """Replace the owner's target rules."""

    @abc.abstractmethod
    def record_view(self, user: str, view: View | None, keys: set[str]) -> bool:
        """Store a new shared view and queue it; False (and nothing written) if unchanged.

        ``view`` None means the me card is gone: pending work of the owner
        stops and the owner's keys no longer resolve contacts.
        """

    @abc.abstractmethod
    def requeue(self, user: str) -> None:
        """Queue the owner's current view again (targets changed)."""

    @abc.abstractmethod
    def users_by_keys(self, keys: Iterable[str]) -> dict[str, set[str]]:
        """For each key, the users whose current me card carries it."""

    @abc.abstractmethod
    def owner_keys(self, user: str) -> set[str]:
        """Every key the owner's view ever had (to find copies with old values)."""

    # -- policies ------------------------------------------------------
    @abc.abstractmethod
    def policies(self, recipient: str) -> dict[str, str]:
        """The recipient's policy per owner (``*``: the recipient's own default)."""

    @abc.abstractmethod
    def set_policy(self, recipient: str, owner: str, policy: str | None) -> None:
        """Set (or with None remove) a policy; unblocking re-queues the delivery."""

    # -- outbox --------------------------------------------------------
    @abc.abstractmethod
    def restrict(self, user: str, seq: int, recipients: list[str]) -> None:
        """Send the owner's change ``seq`` only to ``recipients`` ("update some")."""

    @abc.abstractmethod
    def pending_jobs(self, limit: int) -> list[tuple[int, str, int, list[str] | None]]:
        """Owner changes still to plan: (job id, owner, seq, only these recipients or None)."""

    @abc.abstractmethod
    def plan(self, job_id: int, owner: str, seq: int,
             targets: dict[str, list[str]], skipped: list[dict[str, str]],
             restricted: bool = False) -> None:
        """Turn a job into pending deliveries, one per target, and drop the job.

        With ``restricted`` the targets are a chosen few: other deliveries are left as they are.
        """

    @abc.abstractmethod
    def pending_deliveries(self, limit: int) -> list[Delivery]:
        """Deliveries waiting for the worker, oldest first."""

    @abc.abstractmethod
    def finish(self, delivery: Delivery) -> None:
        """Store the outcome of one delivery (state, copy location, view written)."""

    @abc.abstractmethod
    def deliveries(self, owner: str) -> list[Delivery]:
        """Every delivery of an owner's card, for the API."""

    @abc.abstractmethod
    def queued(self, owner: str) -> int:
        """How many changes of the owner wait to be planned."""

    @abc.abstractmethod
    def has_work(self) -> bool:
        """Whether jobs or pending deliveries exist."""

    def close(self) -> None:
        """Release resources."""
