# SPDX-License-Identifier: GPL-3.0-or-later
"""Export: the whole sharing state as the backup document (:mod:`.format`), read in one
snapshot through the index contract; and the JSON of each record, which the account
export (:mod:`radicale_plugin.admin.accounts`) uses too.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from radicale_plugin.index import (Change, Delivery, HistoryEntry, Invite, InviteUse, Key, Link,
                                   Offer, Owner, PushSubscription, SharingIndex, UndoMark,
                                   UndoneValue)
from radicale_plugin.vcard.view import View
from radicale_plugin.admin.backup.format import FORMAT, PAGE, VERSION


def export_state(index: SharingIndex, region: str) -> dict[str, Any]:
    """The whole sharing state, as the document described above.

    Read in one snapshot, so that it is one moment's state even while the
    server runs.
    """
    with index.snapshot():
        return _export(index, region)


def _export(index: SharingIndex, region: str) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    while True:
        page = index.history.all(after=history[-1]["id"] if history else 0, limit=PAGE)
        marks = index.history.undo_marks(e.id for e in page)
        history += [dict(history_json(e), undone=mark_json(marks.get(e.id))) for e in page]
        if len(page) < PAGE:
            break
    undone: list[UndoneValue] = []
    while True:
        found = index.history.all_undone(after=undone[-1].id if undone else 0, limit=PAGE)
        undone += found
        if len(found) < PAGE:
            break
    return {
        "format": FORMAT, "version": VERSION, "schema": index.SCHEMA_VERSION,
        "region": region, "exported": timestamp(),
        "owners": [owner_json(o, index.owners.views(o.user), index.owners.past_values(o.user))
                   for o in index.owners.all()],
        "keys": [key_json(k) for k in index.keys.all()],
        "links": [link_json(k) for k in index.links.all()],
        "policies": [{"recipient": r, "owner": o, "policy": p}
                     for r, o, p in index.consent.all_policies()],
        "offers": [offer_json(o) for o in index.consent.all_offers()],
        "jobs": [{"id": j.id, "owner": j.owner, "seq": j.seq, "only": j.only,
                  "withdraw": j.withdraw} for j in index.outbox.all_jobs()],
        "deliveries": [delivery_json(d) for d in index.outbox.all_deliveries()],
        "history": history,
        "push": {"topics": [{"book": b, "topic": t} for b, t in index.push.topics().items()],
                 "subscriptions": [subscription_json(s) for s in index.push.all()]},
        "invites": invites_json(index.invites.all(), index.invites.all_uses()),
        "undone_values": [{"owner": v.owner, "recipient": v.recipient, "field": v.field,
                           "value_key": v.value_key, "kept": v.kept, "entry": v.entry}
                          for v in undone],
        "notify": notify_json(index),
    }


def mark_json(mark: UndoMark | None) -> dict[str, Any] | None:
    """An entry's undo mark; the answer as the object the recipient was given."""
    return None if mark is None else {"time": mark.time, "undo_entry": mark.undo_entry,
                                      "answer": json.loads(mark.answer)}


def notify_json(index: SharingIndex) -> dict[str, Any]:
    """Notification settings, e-mails (batches) and events as stored, and the key that
    signs unsubscribe links (hex; null: none made yet)."""
    secret = index.notify.known_secret()
    return {
        "unsubscribe_key": secret.hex() if secret is not None else None,
        "settings": [{"user": s.user, "email": s.email, "address": s.address, "base": s.base}
                     for s in index.notify.all_settings()],
        "batches": [{"id": b.id, "recipient": b.recipient, "address": b.address,
                     "state": b.state, "created": b.created, "due": b.due,
                     "message": b.message, "message_id": b.message_id,
                     "attempts": b.attempts, "sent": b.sent, "error": b.error}
                    for b in sorted(index.notify.batches(), key=lambda b: b.id)],
        "events": [{"id": e.id, "recipient": e.recipient, "owner": e.owner, "kind": e.kind,
                    "seq": e.seq, "time": e.time, "due": e.due, "base": e.base,
                    "batch": e.batch} for e in index.notify.all_events()],
    }


def dumps(document: dict[str, Any]) -> str:
    """The document as written to a file: UTF-8 text, one value per line where it helps."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def timestamp() -> str:
    """Now, as exports write times (UTC, ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def view_json(view: View | None) -> dict[str, Any] | None:
    return json.loads(view.to_json()) if view is not None else None


def _pairs(values: set[tuple[str, str]]) -> list[list[str]]:
    return [[f, k] for f, k in sorted(values)]


def _changes(changes: tuple[Change, ...]) -> list[dict[str, str | None]]:
    return [{"field": c.field, "before": c.before, "after": c.after} for c in changes]


def owner_json(o: Owner, views: dict[int, View], values: set[tuple[str, str]]
               ) -> dict[str, Any]:
    return {"user": o.user,
            "me_card": ({"book": o.book, "href": o.href, "uid": o.uid}
                        if o.book and o.href else None),
            "shared_fields": o.shared_fields, "withdrawn_fields": o.withdrawn_fields,
            "rules": o.rules, "discoverability": o.discoverability, "notices": o.notices,
            "region": o.region, "audiences": o.audiences,
            "seq": o.seq, "card_view": view_json(o.card_view), "view": view_json(o.view),
            "views": [{"seq": seq, "view": view_json(v)} for seq, v in sorted(views.items())],
            "past_values": _pairs(values)}


def key_json(k: Key) -> dict[str, Any]:
    return {"user": k.user, "key": k.key, "on_card": k.on_card, "verified": k.verified,
            "lost": k.lost}


def link_json(k: Link) -> dict[str, Any]:
    return {"owner": k.owner, "recipient": k.recipient, "book": k.book, "href": k.href,
            "made_by": k.made_by, "made": k.made}


def offer_json(o: Offer) -> dict[str, Any]:
    return {"owner": o.owner, "recipient": o.recipient, "seq": o.seq, "state": o.state,
            "book": o.book, "href": o.href, "created": o.created,
            "first_offered": o.first_offered, "until": o.until, "refused_seq": o.refused_seq}


def delivery_json(d: Delivery) -> dict[str, Any]:
    intent = d.intent
    return {"owner": d.owner, "recipient": d.recipient, "state": d.state,
            "wanted_seq": d.wanted_seq, "delivered_seq": d.delivered_seq,
            "reasons": d.reasons, "error": d.error, "updated": d.updated, "due": d.due,
            "delivered_at": d.delivered_at, "attempts": d.attempts,
            "written_values": _pairs(d.written_values),
            "intent": None if intent is None else {
                "view": view_json(intent.view), "book": intent.book, "href": intent.href,
                "action": intent.action, "changes": _changes(intent.changes),
                "after_hash": intent.after_hash}}


def history_json(e: HistoryEntry) -> dict[str, Any]:
    return {"id": e.id, "time": e.time, "owner": e.owner, "recipient": e.recipient,
            "book": e.book, "href": e.href, "action": e.action, "changes": _changes(e.changes)}


def invites_json(invites: list[Invite], uses: list[InviteUse]) -> list[dict[str, Any]]:
    by_invite: dict[str, list[InviteUse]] = {}
    for use in uses:
        by_invite.setdefault(use.invite, []).append(use)
    return [{"id": i.id, "owner": i.owner, "token_hash": i.token_hash, "created": i.created,
             "expires": i.expires, "max_uses": i.max_uses, "uses": i.uses,
             "revoked": i.revoked, "label": i.label,
             "used_by": [{"recipient": u.recipient, "time": u.time}
                         for u in by_invite.get(i.id, [])]} for i in invites]


def subscription_json(s: PushSubscription) -> dict[str, Any]:
    return {"id": s.id, "user": s.user, "book": s.book, "push_resource": s.push_resource,
            "public_key": s.public_key, "auth_secret": s.auth_secret,
            "content_encoding": s.content_encoding, "expires": s.expires,
            "created": s.created}
