# SPDX-License-Identifier: GPL-3.0-or-later
"""What every part of the sharing code works with: storage, settings, index, groups.

The parts (me cards, card-key index, selection, deliveries, offers,
verification, the worker) each take a :class:`Context` and the parts they
call, so that no module needs the service that wires them together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from radicale import storage
from radicale.log import logger

from radicale_plugin.consent import decisions as consent
from radicale_plugin.index import Owner, SharingIndex
from radicale_plugin.vcard.regions import Region, choose
from radicale_plugin.settings import Settings
from radicale_plugin.vcard.view import View


@dataclass
class Context:
    """The storage folder's shared state."""

    storage: storage.BaseStorage
    settings: Settings
    index: SharingIndex
    groups_of: Callable[[str], set[str]] = lambda user: set()
    wake: Callable[[], None] = lambda: None
    #: Tell WebDAV-Push that these books changed (never under the storage lock; never blocks).
    books_changed: Callable[[Iterable[str]], None] = lambda books: None
    #: A user's region changed: their books are to be indexed again (set by the service).
    region_changed: Callable[[str], None] = lambda user: None
    _group_errors: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set while this thread writes a copy (the hooks then know the write is ours).
    writing: threading.local = field(default_factory=threading.local)

    def writing_copy(self) -> bool:
        return bool(getattr(self.writing, "copy", False))

    def groups(self, user: str) -> set[str]:
        """The user's groups in Radicale's ``[group]`` backend (empty if it cannot tell)."""
        try:
            return set(self.groups_of(user))
        except Exception as e:  # a broken group file must not stop deliveries
            with self._lock:
                if str(e) not in self._group_errors:
                    self._group_errors.add(str(e))
                    logger.warning("Sharing: groups of %r unknown (%s); pre-authorisation by "
                                   "group does not apply", user, e)
            return set()

    def preauthorized(self, owner: str, recipient: str) -> bool:
        return self.settings.preauthorize.between(owner, recipient, self.groups)

    def standing(self, recipient: str, owner: str) -> tuple[str, bool]:
        """The recipient's effective policy towards ``owner``, and whether they chose the owner
        (a policy of theirs names the owner, or the admin pre-authorised the two)."""
        policies = self.index.consent.policies(recipient)
        preauthorized = self.preauthorized(owner, recipient)
        return (consent.effective_policy(policies, owner, preauthorized,
                                         self.settings.default_policy),
                consent.chosen(policies, owner, preauthorized))

    def policy(self, recipient: str, owner: str) -> str:
        """The recipient's effective policy towards ``owner``."""
        return self.standing(recipient, owner)[0]

    def discoverability(self, owner: Owner) -> str:
        return owner.discoverability or self.settings.default_discoverability

    def region(self, user: str | Owner, card_view: View | None | bool = True) -> Region:
        """The region ``user``'s national numbers are read in, and where it came from
        (see :mod:`radicale_plugin.vcard.regions`): their setting, their me card, the default.

        ``card_view``: the me card's shared view to guess from, when it is being
        recorded (None: no me card); True: the one the index holds.
        """
        owner = user if isinstance(user, Owner) else self.index.owners.get(user)
        view = owner.card_view if card_view is True else card_view
        numbers = [e.value for e in view.entries if e.name == "TEL"] \
            if isinstance(view, View) else []
        return choose(owner.region, numbers, self.settings.region)

    def region_of(self, user: str | Owner) -> str:
        """The region code ``user``'s books and me card are read in: every caller that
        normalises a number of a user's card asks this."""
        return self.region(user).code
