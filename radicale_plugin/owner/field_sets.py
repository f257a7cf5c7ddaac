# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's field sets per target rule: setting them, and previewing what each audience
receives.

The choice itself is pure (:mod:`.audiences`); here it is stored and shown.
A change of a rule's field set is a change of what its recipients receive: the
me card's view is read again (it holds every field some audience gets) and a
new change is queued even when that view is the same, so that every recipient
gets their audience's view.  A preview is made by the functions the fan-out
uses (:func:`.audiences.recipient_view` and the new copy's rendering), never
by a second implementation.
"""

from __future__ import annotations

from typing import Any

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.errors import BadRequest, Conflict, NotFound
from radicale_plugin.index import Owner
from radicale_plugin.owner import audiences
from radicale_plugin.owner.me_cards import Owners
from radicale_plugin.owner.targets import Targets
from radicale_plugin.vcard.codec import Card
from radicale_plugin.vcard.merge import copy_uid, new_copy
from radicale_plugin.vcard.view import View

#: A preview is a new contact in a book of this vCard version (the fan-out's default;
#: a recipient's book of another version gets the same values in its own version's form).
PREVIEW_VERSION = "3.0"
#: The same answer for a name that is no user, a user the owner may not see, and a user
#: no rule of the owner's selects: it tells nothing GET /targets does not.
NOT_A_TARGET = ("%r is none of your recipients: GET /targets lists who your rules select "
                "(and who they leave out, and why)")
_HEADER = ("VERSION", "PRODID", "UID")


def listing(owner: Owner) -> list[dict[str, Any]]:
    """The owner's audiences for ``GET /me``: each rule's own field set (a rule not
    listed, or listed with ``fields`` null, gets the shared fields)."""
    return [{"rule": rule, "fields": list(a.fields) if a.fields is not None else None,
             "withdrawn": list(a.withdrawn), "active": rule in owner.rules}
            for rule, a in sorted(audiences.owner_audiences(owner).items())]


class FieldSets:
    """Field sets per target rule, and previews of each audience's card."""

    def __init__(self, ctx: Context, owners: Owners, targets: Targets) -> None:
        self._ctx = ctx
        self._owners = owners
        self._targets = targets

    def set(self, user: str, rule: Any, fields: Any, withdraw: bool = False) -> str:
        """Give ``rule`` (one of the owner's target rules) its own field set, or (None)
        the shared fields again; fields it drops are withdrawn from its recipients'
        copies if asked.  The rule as the owner's rules spell it."""
        wanted = audiences.check_audience_fields(fields)
        with self._ctx.storage.acquire_lock("w", user):
            owner = self._ctx.index.owners.get(user)
            known = audiences.owner_audiences(owner)
            try:
                name = audiences.find_rule(rule, owner.rules)
            except BadRequest:
                # a rule taken out of the targets keeps its set: it may be cleared
                if wanted is not None or not isinstance(rule, str) or rule not in known:
                    raise
                name = rule
            after = audiences.set_audience(known, name, wanted, owner.shared_fields, withdraw)
            if after == known:
                # the same field sets saved again: no new version of the card.  A forced
                # one would re-ask everyone who refused the current one, for nothing new
                return name
            self._ctx.index.owners.set_audiences(user, audiences.to_json(after))
            owner = self._ctx.index.owners.get(user)
            if owner.book and owner.href:
                collection = store.book(self._ctx.storage, owner.book)
                text = store.card_text(collection, owner.href) if collection else None
                if text is not None:
                    # what its recipients get changed even if the whole view did not
                    self._owners.refresh(owner, text, force=True)
        self._ctx.wake()
        return name

    # -- previews -------------------------------------------------------------------
    def preview_rule(self, user: str, rule: Any) -> dict[str, Any]:
        """The card a recipient selected by ``rule`` (and by no more specific rule)
        receives, as a new contact."""
        owner = self._shared(user)
        name = audiences.find_rule(rule, owner.rules)
        choice = audiences.choose([name], owner)
        assert owner.view is not None
        view = audiences.recipient_view(owner.view, owner, [name])
        return {"rule": name, **self._card(owner, view, choice, copy_uid(user, name))}

    def preview_recipient(self, user: str, recipient: Any) -> dict[str, Any]:
        """Which field set ``recipient`` gets, and why; their card as it would arrive."""
        if not isinstance(recipient, str) or not recipient or len(recipient) > 256:
            raise BadRequest("give ?recipient=NAME, a user name")
        owner = self._shared(user)
        targets, _ = self._targets.select(user)  # only users the owner may see as targets
        reasons = targets.get(recipient)
        if reasons is None:
            raise NotFound(NOT_A_TARGET % recipient[:80])
        choice = audiences.choose(audiences.selected_by(reasons, owner.rules), owner)
        assert owner.view is not None
        view = audiences.recipient_view(owner.view, owner, reasons)
        return {"recipient": recipient, "selected_by": reasons,
                **self._card(owner, view, choice, copy_uid(user, recipient))}

    def _shared(self, user: str) -> Owner:
        owner = self._ctx.index.owners.get(user)
        if owner.view is None:
            raise Conflict("you share no card yet: designate your me card first (POST "
                           "/me-card), then preview what each audience receives")
        return owner

    @staticmethod
    def _card(owner: Owner, view: View, choice: audiences.Choice, uid: str) -> dict[str, Any]:
        card: Card = new_copy(view, uid, PREVIEW_VERSION)
        return {"fields": list(choice.fields), "rules": list(choice.rules),
                "reason": choice.reason, "withdrawn": list(choice.withdrawn),
                "card": card.serialize(),
                "lines": [{"field": line.name, "value": line.value}
                          for line in card.lines if line.name not in _HEADER]}
