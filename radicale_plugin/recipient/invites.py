# SPDX-License-Identifier: GPL-3.0-or-later
"""Invites: a consent path that needs no SMS gateway and no SMTP server.

An owner creates an invite: a link with a random token (192 bits; only its
SHA-256 is stored).  A signed-in user who opens it sees the owner's card
exactly as it would arrive; accepting it places the owner's copy in their
book (a new contact, or a card of theirs they name), makes the owner
``auto`` for them and adds ``user:RECIPIENT`` to the owner's target rules,
so that every later change arrives by itself.  Accepting is the recipient's
explicit consent: it needs no verified key, and it links nothing but that
one card.

A token that is unknown, expired, revoked or used up gets one and the same
answer, so that whoever holds a token learns nothing about other invites;
only the owner sees the state of their invites, and who used them.  A user the
owner blocks is answered the same way: a link may travel further than it was
given, and does not override that "no" (the recipient's own block of the owner
gives way: accepting is their newer word).  Opening
and accepting are rate-limited per user; creating is limited per owner and
day.  The write goes through Radicale under the storage lock, as an
accepted offer's does (:meth:`radicale_plugin.delivery.copies.Deliverer.apply`).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import math
import re
import secrets
import time
import uuid
from typing import Any

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.errors import BadRequest, Conflict, NotFound, TooMany
from radicale_plugin.delivery.history import diff
from radicale_plugin.index import Delivery, Invite, Owner
from radicale_plugin.consent.ratelimit import RateLimiter
from radicale_plugin.owner.targets import MAX_RULES
from radicale_plugin.owner.audiences import recipient_view
from radicale_plugin.recipient.placing import check_chosen_card, owner_keys, place_accepted
from radicale_plugin.vcard.codec import unescape
from radicale_plugin.vcard.merge import new_copy
from radicale_plugin.vcard.view import View

#: The one answer for every token that cannot be used, whatever the reason.
INVALID = "this invite is not valid (expired, revoked or used up)"
#: Where the pages for people will show an invite (the owner hands out this URL).
PAGE = "/.web/mecard/invite/"
TOKEN_BYTES = 24                     # 192 bits of randomness
DEFAULT_LIFETIME = 7 * 86400.0
MIN_LIFETIME = 1.0
MAX_LIFETIME = 366 * 86400.0
MAX_USES = 1000
#: Invites one owner may have open at once (not expired, revoked or used up).
MAX_OPEN = 100
MAX_LABEL = 100
DAY = 86400.0
#: How long a delivery the fan-out would take up waits while a request writes its copy.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_INVITE_ID = re.compile(r"[0-9a-f]{1,64}")


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (a 192-bit random token needs no slow hash)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat(
        timespec="seconds")


def _lifetime(value: Any) -> float:
    if value is None:
        return DEFAULT_LIFETIME
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            MIN_LIFETIME <= value <= MAX_LIFETIME):
        raise BadRequest("'expires_in' must be a number of seconds from %d to %d (366 days), "
                         "e.g. 604800 for a week" % (MIN_LIFETIME, MAX_LIFETIME))
    return float(value)


def _uses(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_USES:
        raise BadRequest("'max_uses' must be a whole number from 1 to %d: how many people may "
                         "accept the invite" % MAX_USES)
    return value


def _label(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_LABEL or any(
            ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest("'label' must be text of at most %d characters on one line (a note "
                         "for you, e.g. \"for Bob\")" % MAX_LABEL)
    return value.strip()


class Invites:
    """Creating, listing and revoking invites (the owner); opening and accepting (anyone)."""

    def __init__(self, ctx: Context, deliverer: Deliverer) -> None:
        self._ctx = ctx
        self._deliverer = deliverer
        per_hour = ctx.settings.invite_opens_per_hour
        # shared by every process (the index's buckets): a second process is no second allowance
        self._opens = RateLimiter(per_hour, per_hour, ctx.index.limits, "invite-opens")

    # -- the owner's side ---------------------------------------------------------
    def create(self, owner: str, base_url: str, expires_in: Any = None, max_uses: Any = None,
               label: Any = None) -> dict[str, Any]:
        """A new invite; the answer holds its URL, which is shown this once only."""
        lifetime, uses, note = _lifetime(expires_in), _uses(max_uses), _label(label)
        index = self._ctx.index
        if index.owners.get(owner).view is None:
            raise Conflict("you share no card yet: designate your me card first (POST "
                           "/me-card), then invite people")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        # the limits are counted and the invite stored in one transaction: requests made at
        # once cannot all see room for one more
        with index.transaction():
            now = time.time()
            mine = index.invites.of_owner(owner)
            limit = self._ctx.settings.invites_per_day
            if index.invites.created_since(owner, now - DAY) >= limit:
                today = sorted(i.created for i in mine if i.created >= now - DAY)
                wait = today[-limit] + DAY - now if len(today) >= limit else DAY
                raise TooMany("you created %d invites within a day, the most allowed: try "
                              "again in %d minutes" % (limit, math.ceil(wait / 60)), wait)
            if sum(1 for i in mine if i.state(now) == "active") >= MAX_OPEN:
                raise Conflict("you have %d open invites, the most allowed: revoke some "
                               "(POST /invites/ID/revoke)" % MAX_OPEN)
            invite = Invite(secrets.token_hex(8), owner, token_hash(token), now,
                            now + lifetime, uses, 0, None, note)
            index.invites.add(invite)
        logger.info("Owner %r created invite %s (%d use(s), until %s)", owner, invite.id,
                    uses, _iso(invite.expires))
        # the operator's address when set: then no header of the request names the link's
        # server (without it, the Host the owner's own request named: only theirs)
        base = self._ctx.settings.public_url or base_url
        return {**self._owner_view(invite, now),
                "url": base.rstrip("/") + PAGE + token, "token": token}

    def of_owner(self, owner: str) -> dict[str, Any]:
        """The owner's invites, newest first: state, uses, and who used them."""
        now = time.time()
        return {"invites": [self._owner_view(i, now)
                            for i in self._ctx.index.invites.of_owner(owner)]}

    def revoke(self, owner: str, invite_id: str) -> dict[str, Any]:
        """End an invite now (copies already placed stay, as do their links)."""
        index = self._ctx.index
        found = index.invites.get(invite_id) if _INVITE_ID.fullmatch(invite_id) else None
        if found is None or found.owner != owner:
            raise NotFound("you have no invite %r; GET /invites lists yours" % invite_id[:80])
        if index.invites.revoke(found.id, time.time()):
            logger.info("Owner %r revoked invite %s", owner, found.id)
        return self._owner_view(index.invites.get(found.id) or found, time.time())

    def _owner_view(self, invite: Invite, now: float) -> dict[str, Any]:
        return {"id": invite.id, "label": invite.label, "created": _iso(invite.created),
                "expires": _iso(invite.expires), "max_uses": invite.max_uses,
                "uses": invite.uses, "revoked": _iso(invite.revoked),
                "state": invite.state(now),
                "used_by": [{"user": u.recipient, "time": _iso(u.time)}
                            for u in self._ctx.index.invites.uses(invite.id)]}

    # -- the recipient's side -------------------------------------------------------
    def _open(self, user: str, token: Any) -> Invite:
        """The invite behind ``token`` if ``user`` may use it; every other case is the one
        :data:`INVALID` answer (the owner alone is told about their own invite)."""
        wait = math.ceil(self._opens.take(user, 1, time.time()))
        if wait:
            raise TooMany("too many invite links opened; at most %d an hour: try again in %d "
                          "seconds" % (self._ctx.settings.invite_opens_per_hour, wait), wait)
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise NotFound(INVALID)
        digest = token_hash(token)
        found = self._ctx.index.invites.by_token_hash(digest)
        # found by the hash: the comparison is only a second look, in constant time anyway
        if found is None or not hmac.compare_digest(found.token_hash, digest):
            raise NotFound(INVALID)
        state = found.state(time.time())
        if found.owner == user:
            raise Conflict("this is your own invite (%s): send the link to the person who "
                           "should get your card" % state)
        if state != "active" and not (state == "used up" and self._used_by(found, user)):
            raise NotFound(INVALID)
        if self._ctx.index.consent.policies(found.owner).get(user) == "block":
            # the owner blocks this user: a link travels (several uses, forwarded), and does
            # not override the strongest "no" the owner said; answered as any unusable link
            raise NotFound(INVALID)
        return found

    def _taken_back(self, invite: Invite, user: str) -> bool:
        """Whether ``user`` accepted the invite before and the owner has since taken them out
        of their targets: accepting again would undo the owner's decision.  Asked under the
        storage lock: an accept still writing has counted its use and not added the rule."""
        return self._used_by(invite, user) and "user:%s" % user not in \
            self._ctx.index.owners.get(invite.owner).rules

    def _used_by(self, invite: Invite, user: str) -> bool:
        return any(u.recipient == user for u in self._ctx.index.invites.uses(invite.id))

    def _shared(self, invite: Invite, recipient: str) -> tuple[Owner, View]:
        """The owner, and the view the recipient gets: accepting makes them a target by
        name (``user:NAME``), the most specific rule (:mod:`.owner.audiences`)."""
        owner = self._ctx.index.owners.get(invite.owner)
        if owner.view is None:
            raise Conflict("%s shares no card at the moment; ask them again later"
                           % invite.owner)
        return owner, recipient_view(owner.view, owner, ["user:%s" % recipient],
                                     rules=owner.rules + ["user:%s" % recipient])

    def _target(self, recipient: str, owner: str, card: Any) -> tuple[str, str] | None:
        """The recipient's card the copy goes into (None: a new contact)."""
        index = self._ctx.index
        if card is None:
            link = index.links.get(owner, recipient)
            if link is not None and self._deliverer.card_text(link.book, link.href) is not None:
                return link.book, link.href  # holds the owner's copy already: stays there
            return None
        if card == "new":
            return None
        chosen = store.split_card_path(recipient, card)
        # a card of one of their address books: never a calendar's item, nor one of the
        # files Radicale keeps beside the cards (their names start with a dot)
        if chosen[0] not in index.cards.books_of(recipient) or chosen[1].startswith(".") \
                or self._deliverer.card_text(*chosen) is None:
            raise NotFound("you have no card %s" % card[:200])
        return check_chosen_card(index, recipient, owner, chosen)

    def _new_place(self, owner: str, recipient: str) -> tuple[str, str]:
        """Where a new contact goes: never onto a card that is there already (a copy left
        from before, or a card of the recipient's that happens to have that name)."""
        book, href = self._deliverer.new_card_place(owner, recipient)
        if self._deliverer.card_text(book, href) is not None:
            href = "%s.vcf" % uuid.uuid4()
        return book, href

    def preview(self, recipient: str, token: Any, card: Any = None) -> dict[str, Any]:
        """Exactly what accepting would put into the recipient's book; changes nothing.

        Nobody signed in (``recipient`` ""): the owner's card as it would arrive as a new
        contact, and nothing else.  Showing it to whoever holds the link is what an invite
        is for; every token that cannot be used gets the one :data:`INVALID` answer.
        """
        invite = self._open(recipient, token)
        index = self._ctx.index
        if not recipient:
            # as anyone who accepts it gets it: a target by name, with no field set of
            # their own unless the owner made one for them
            owner, view = self._shared(invite, recipient)
            after = new_copy(view, "invite", "3.0")
            return {"owner": owner.user,
                    "name": unescape(view.of("FN")[0].value) if view.of("FN") else owner.user,
                    "card": after.serialize(), "into": None,
                    "changes": [{"field": c.field, "before": c.before, "after": c.after}
                                for c in diff(None, after)],
                    "owner_keys": owner_keys(self._ctx, owner.user, view),
                    "expires": _iso(invite.expires), "accepted": False}
        with self._ctx.storage.acquire_lock("r", recipient):
            if self._taken_back(invite, recipient):
                raise NotFound(INVALID)
            owner, view = self._shared(invite, recipient)
            target = self._target(recipient, owner.user, card)
            delivery = index.outbox.delivery(owner.user, recipient) or Delivery(
                owner.user, recipient, idx.PENDING, owner.seq)
            before, after = self._deliverer.preview(owner, delivery, view, target)
        return {
            "owner": owner.user,
            "name": unescape(view.of("FN")[0].value) if view.of("FN") else owner.user,
            "card": after.serialize(),
            "into": None if target is None else {
                "path": "/%s/%s" % target,
                "name": unescape(before.first_value("FN") or "") if before else ""},
            "changes": [{"field": c.field, "before": c.before, "after": c.after}
                        for c in diff(before, after)],
            "owner_keys": owner_keys(self._ctx, owner.user, view),
            "expires": _iso(invite.expires),
            "accepted": self._used_by(invite, recipient),
        }

    def accept(self, recipient: str, token: Any, card: Any = None) -> dict[str, Any]:
        """Place the owner's copy, make the owner ``auto`` and the recipient a target.

        Accepting again is harmless: the copy stays where it is (or moves to the
        card named), and the use is not counted twice; it gives back nothing the owner
        took away since (a recipient removed from the owner's targets stays removed).
        """
        invite = self._open(recipient, token)
        index = self._ctx.index
        rule = "user:%s" % recipient
        with self._ctx.storage.acquire_lock("w", recipient):
            owner, view = self._shared(invite, recipient)
            target = self._target(recipient, owner.user, card)
            if rule not in owner.rules and len(owner.rules) >= MAX_RULES:
                raise Conflict("%s has too many target rules to add you; ask them to use "
                               "group:NAME or all" % owner.user)
            # every accept holds the storage lock: counting the use first cannot let two
            # recipients past the last use, nor one past a revocation; a write that then
            # fails gives the use back
            place = target or self._new_place(owner.user, recipient)
            again = self._used_by(invite, recipient)
            if again and self._taken_back(invite, recipient):
                raise NotFound(INVALID)
            if not index.invites.use(invite.id, recipient, time.time()):
                raise NotFound(INVALID)
            try:
                written = self._place_copy(owner, view, recipient, target, place, rule)
            except BaseException:
                if not again:
                    index.invites.unuse(invite.id, recipient)
                raise
        self._ctx.wake()
        logger.info("Recipient %r accepted invite %s of %r into /%s/%s", recipient, invite.id,
                    owner.user, *written)
        return {"owner": owner.user, "card": "/%s/%s" % written,
                "policy": self._ctx.policy(recipient, owner.user)}

    def _place_copy(self, owner: Owner, view: View, recipient: str,
                    target: tuple[str, str] | None, place: tuple[str, str],
                    rule: str) -> tuple[str, str]:
        """Write the copy, link it, and record the recipient's consent (the lock is held)."""
        index = self._ctx.index
        # the server made a new card: no sign that the recipient knows the owner (see
        # CardIndex.users_knowing); a card the recipient named is theirs
        kind = idx.LINK_CREATED if target is None else idx.LINK_INVITED
        with place_accepted(self._ctx, self._deliverer, owner, recipient, owner.seq, place,
                            kind, view) as written:
            index.consent.set_policy(recipient, owner.user, "auto")
            rules = index.owners.get(owner.user).rules
            if rule not in rules:
                index.owners.set_rules(owner.user, rules + [rule])
            # planned for every target now: the copy holds this change, so only the
            # owner's later changes are written, by the fan-out
            index.outbox.requeue(owner.user)
        return written
