# SPDX-License-Identifier: GPL-3.0-or-later
"""Accounts: one user's sharing data, exported or deleted.

Deleting a user's sharing state (the admin's ``delete-user``) releases their
verified keys, drops the offers and policies from and to them, ends the
deliveries of their card and to their books, the links both ways, their
history and push subscriptions, takes ``user:NAME`` out of other owners'
targets (with a notice to each), and clears their home's ``CS:me-card`` so
that a later ``rebuild`` does not bring their me card back.  A new account
of the same name starts from nothing: no policy, target, link or key of the
old one applies to it.  On files their collections are Radicale's to delete (their
folder); on PostgreSQL (``collections``) they are deleted with the sharing state, in
one transaction that holds the user's books as their writers do.

The copies of their card in others' books stay as they are, or, with
``withdraw``, lose the values the server wrote there: those deliveries are
marked *withdrawing* (as a withdrawal by the owner would) and the server's
fan-out worker makes them at its next poll.  Until it has, the deleted
user keeps what the worker needs (the shared fields, the values written
into each copy, the links of those copies) and nothing else; running
``delete-user`` again afterwards drops that too.  A recipient who blocked
the user gets no withdrawal: block means their card is never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radicale import storage as radicale_storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.admin import backup
from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.errors import NotFound
from radicale_plugin.index import Owner
from radicale_plugin.owner.me_cards import ME_CARD_PROPERTY

#: History entries of a user's books in their export at most (the newest).
HISTORY_LIMIT = 100000


@dataclass
class Deleted:
    """What :func:`delete_user` did."""

    withdrawing: list[str] = field(default_factory=list)  # recipients whose copies wait
    links: int = 0
    offers: int = 0
    deliveries: int = 0
    keys: int = 0
    history: int = 0
    collections: int = 0  # with ``collections``: the user's collections deleted
    items: int = 0        # and the items they held
    targeted_by: list[str] = field(default_factory=list)  # owners whose rules named them


def has_state(ctx: Context, user: str) -> bool:
    """Whether the index holds anything of ``user`` (as owner, recipient or key holder)."""
    index = ctx.index
    return bool(user in {o.user for o in index.owners.all()} or index.keys.of_user(user)
                or index.links.of_owner(user) or index.links.under(user)
                or index.consent.policies(user) or index.consent.offers_for(user)
                or index.consent.offers_from(user) or index.outbox.deliveries(user)
                or index.outbox.deliveries_to(user) or index.history.of_recipient(user, 1)
                or index.push.of_user(user, 0.0))


def delete_user(ctx: Context, user: str, withdraw: bool = False,
                collections: bool = False) -> Deleted:
    """Delete the user's sharing state (see the module's docstring); what was done.

    Takes the storage lock to clear the home's property, then works in one
    transaction of the index.  ``collections`` (a storage whose collections are in the
    index's database: PostgreSQL): the user's collections are deleted too, and the lock
    (the storage's transaction, holding the user's books) spans it all, so that the
    collections and the state go together or not at all.  Raises :class:`NotFound` for
    a user the server knows nothing of.
    """
    home = _home(ctx.storage, user)
    if home is None and not has_state(ctx, user):
        raise NotFound("no user %r: no address-book home and no sharing state" % user)
    if not collections:
        return _delete_state(ctx, user, withdraw, home)
    with ctx.storage.acquire_lock("w", user), ctx.index.transaction():
        done = _delete_state(ctx, user, withdraw, None)
        if home is not None:
            done.collections, done.items = _count(ctx.storage, home.path)
            home.delete()  # every collection under the home, and their items
        ctx.index.cards.remove_under(user)  # the card-key index of those books
    return done


def _count(storage: radicale_storage.BaseStorage, home: str) -> tuple[int, int]:
    """The collections at and under ``home`` and their items (what its delete takes)."""
    collections = items = 0
    pending = [home]
    while pending:
        path = pending.pop()
        for entry in storage.discover("/%s/" % path, depth="1"):
            if not isinstance(entry, radicale_storage.BaseCollection):
                items += 1
            elif entry.path.strip("/") == path:
                collections += 1
            else:
                pending.append(entry.path.strip("/"))
    return collections, items


def _delete_state(ctx: Context, user: str, withdraw: bool,
                  home: radicale_storage.BaseCollection | None) -> Deleted:
    index = ctx.index
    if home is not None:
        with ctx.storage.acquire_lock("w", user):
            meta = dict(home.get_meta())
            if meta.pop(ME_CARD_PROPERTY, None) is not None:
                home.set_meta(meta)  # a plain storage here: no hook designates anything
    done = Deleted()
    with index.transaction():
        owner = index.owners.get(user)
        copies = {link.recipient: link for link in index.links.of_owner(user)}
        keep: list[str] = []
        if withdraw:
            # as when the me card goes: every delivery stops, then the copies are withdrawn
            index.owners.record_view(user, None, None, ())
            stopped = [d.recipient for d in index.outbox.deliveries(user)
                       if d.state in (idx.STOPPED, idx.WITHDRAWING) and d.recipient in copies
                       and ctx.policy(d.recipient, user) != "block"]
            index.outbox.withdraw(user, stopped)
            keep = sorted(d.recipient for d in index.outbox.deliveries(user)
                          if d.state == idx.WITHDRAWING and d.recipient in copies)
        done.withdrawing = keep
        for recipient, link in copies.items():
            if recipient not in keep:
                index.links.remove(user, recipient)
                done.links += 1
        for link in index.links.under(user):
            if link.recipient == user:
                index.links.remove(link.owner, user)
                done.links += 1
        done.offers = len(index.consent.offers_from(user)) + len(index.consent.offers_for(user))
        done.deliveries = len(index.outbox.deliveries_to(user)) + len(
            [d for d in index.outbox.deliveries(user) if d.recipient not in keep])
        done.keys = len(index.keys.of_user(user))
        index.consent.forget_user(user)
        index.outbox.forget_user(user, keep_withdrawing=bool(keep))
        index.keys.forget_user(user)
        done.history = index.history.forget_recipient(user)
        index.push.forget_user(user)
        index.invites.forget_user(user)
        index.notify.forget_user(user)
        index.limits.forget_user(user)
        rule = "user:%s" % user
        for other in index.owners.all():
            if rule in other.rules and other.user != user:
                # a new account of that name is somebody else: it must not get their card
                index.owners.set_rules(other.user, [r for r in other.rules if r != rule])
                index.owners.add_notice(other.user, "%s no longer has an account here: "
                                        "removed from your targets" % user)
                done.targeted_by.append(other.user)
        if keep:
            # what the worker's withdrawal reads: the fields, the views and values it wrote
            index.owners.restore(Owner(user, shared_fields=owner.shared_fields,
                                       withdrawn_fields=owner.withdrawn_fields, seq=owner.seq),
                                 index.owners.views(user), index.owners.past_values(user))
        else:
            index.owners.forget_user(user)
    logger.info("Sharing state of %r deleted (%d withdrawal(s) queued)", user, len(keep))
    return done


def _home(storage: radicale_storage.BaseStorage, user: str
          ) -> radicale_storage.BaseCollection | None:
    if not store.user_exists(storage, user):
        return None
    found = next(iter(storage.discover("/%s/" % user)), None)
    return found if isinstance(found, radicale_storage.BaseCollection) else None


def export_user(ctx: Context, user: str) -> dict[str, Any]:
    """One user's sharing data, as they could see it through the API, as JSON.

    As an owner: the me card, what it shares and to whom, keys, and the
    state of each recipient (never the recipient's card); as a recipient:
    policies, offers, links and history of their own books; and their push
    subscriptions (without the keys that encrypt them).
    """
    index = ctx.index
    if _home(ctx.storage, user) is None and not has_state(ctx, user):
        raise NotFound("no user %r: no address-book home and no sharing state" % user)
    owner = index.owners.get(user)
    return {
        "format": "radicale-mecard-user", "version": 1, "user": user,
        "exported": backup.timestamp(),
        "owner": {
            "me_card": "/%s/%s" % (owner.book, owner.href) if owner.book and owner.href
            else None,
            "shared_fields": owner.shared_fields, "withdrawn_fields": owner.withdrawn_fields,
            "targets": owner.rules, "seq": owner.seq, "view": backup.view_json(owner.view),
            "discoverability": ctx.discoverability(owner), "notices": owner.notices},
        "keys": [{"key": k.key, "state": k.state, "on_me_card": k.on_card,
                  "verified": k.verified, "lost": k.lost} for k in index.keys.of_user(user)],
        "recipients": [{"user": d.recipient, "state": d.state, "reasons": d.reasons,
                        "error": d.error, "updated": d.updated, "wanted_seq": d.wanted_seq,
                        "delivered_seq": d.delivered_seq}
                       for d in index.outbox.deliveries(user)],
        "offers_made": [{"recipient": o.recipient, "seq": o.seq, "state": o.state,
                         "until": o.until, "created": o.created}
                        for o in index.consent.offers_from(user)],
        "policies": index.consent.policies(user),
        "offers": [{"owner": o.owner, "seq": o.seq, "state": o.state, "until": o.until,
                    "card": "/%s/%s" % (o.book, o.href) if o.book and o.href else None,
                    "created": o.created, "first_offered": o.first_offered}
                   for o in index.consent.offers_for(user)],
        "links": [{"owner": k.owner, "card": "/%s/%s" % (k.book, k.href),
                   "made_by": k.made_by, "made": k.made}
                  for k in sorted(index.links.under(user), key=lambda k: k.owner)
                  if k.recipient == user],
        "history": [backup.history_json(e)
                    for e in index.history.of_recipient(user, HISTORY_LIMIT)],
        "push_subscriptions": [{"id": s.id, "book": s.book, "push_resource": s.push_resource,
                                "expires": s.expires, "created": s.created}
                               for s in index.push.of_user(user, 0.0)],
    }
