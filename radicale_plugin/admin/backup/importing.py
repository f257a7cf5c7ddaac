# SPDX-License-Identifier: GPL-3.0-or-later
"""Import: a backup document (:mod:`.format`) read and checked record by record, with
errors that say where in the document and why (:func:`read_export`), then stored in an
empty index, all or nothing (:func:`restore`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

from radicale_plugin import index as idx
from radicale_plugin.index import (Delivery, HistoryEntry, Intent, Invite, InviteUse,
                                   Job, Key, Link, Offer, Owner, PushSubscription,
                                   SharingIndex, UndoMark, UndoneValue)
from radicale_plugin.index.records import DISCOVERABILITY, POLICIES
from radicale_plugin.owner import audiences as audience_sets
from radicale_plugin.vcard.regions import check_region
from radicale_plugin.vcard.view import View
from radicale_plugin.admin.backup.format import (ACTIONS, DELIVERY_STATES, FORMAT,
                                                 HISTORY_ACTIONS, OFFER_STATES, PAGE, VERSION,
                                                 BackupError)
from radicale_plugin.admin.backup.notifications import Notifications, read_notify
from radicale_plugin.admin.backup.record import Record as _Record, records as _records


def import_state(index: SharingIndex, document: Any, region: str) -> dict[str, int]:
    """Store an export in an empty index, all or nothing; how many of each were imported.

    Raises :class:`BackupError` (nothing stored) for a document that is not an
    export this code reads, an index that holds sharing state, or records that
    contradict each other.
    """
    return restore(index, read_export(document, region))


def restore(index: SharingIndex, state: "Export") -> dict[str, int]:
    """Store an export already read (:func:`read_export`) in an empty index, all or nothing."""
    if not index.is_empty():
        raise BackupError("the sharing database is not empty: an export is imported into an "
                          "empty one only (stop the server, move the database file away, "
                          "import, start the server)")
    with index.transaction():
        for where, (owner, views, values) in state.owners:
            with _at(where):
                index.owners.restore(owner, views, values)
        for where, key in state.keys:
            with _at(where):
                index.keys.restore(key)
        for where, link in state.links:
            with _at(where):
                if index.links.get(link.owner, link.recipient) is not None:
                    raise ValueError("a second link of %s's copy for %s"
                                     % (link.owner, link.recipient))
                index.links.put(link)
        for _, (recipient, owner_, policy) in state.policies:
            index.consent.set_policy(recipient, owner_, policy)
        for _, offer in state.offers:
            index.consent.restore_offer(offer)
        for where, job in state.jobs:
            with _at(where):
                index.outbox.restore_job(job)
        with _at("deliveries"):
            index.outbox.restore_deliveries(d for _, d in state.deliveries)
        with _at("history"):
            for start in range(0, len(state.history), PAGE):
                index.history.restore_many(e for _, e in state.history[start:start + PAGE])
        for _, mark in state.marks:
            index.history.mark_undone(mark)
        index.history.add_undone(v for _, v in state.undone)  # in order: oldest first
        for _, (book, topic) in state.topics:
            index.push.ensure_topic(book, topic)
        for _, subscription in state.subscriptions:
            index.push.put(subscription)
        for where, (invite, uses) in state.invites:
            with _at(where):
                index.invites.restore(invite, uses)
        notify = state.notify
        with _at("notify"):
            index.notify.restore((s for _, s in notify.settings),
                                 (b for _, b in notify.batches),
                                 (e for _, e in notify.events), notify.key)
    return {"owners": len(state.owners), "keys": len(state.keys), "links": len(state.links),
            "policies": len(state.policies), "offers": len(state.offers),
            "jobs": len(state.jobs), "deliveries": len(state.deliveries),
            "history": len(state.history), "push subscriptions": len(state.subscriptions),
            "invites": len(state.invites), "undone entries": len(state.marks),
            "undone values": len(state.undone),
            "notification settings": len(notify.settings),
            "notification e-mails": len(notify.batches),
            "in flight (stored unknown: not sent again)": notify.in_flight,
            "notification events": len(notify.events)}


@contextlib.contextmanager
def _at(where: str) -> Iterator[None]:
    """A store's refusal, said with the place in the document it comes from."""
    try:
        yield
    except BackupError:
        raise
    except ValueError as e:
        raise BackupError("%s: %s" % (where, e)) from e


class Export:
    """An export read and checked (:func:`read_export`), each record with its place in
    the document."""

    def __init__(self) -> None:
        self.owners: list[tuple[str, tuple[Owner, dict[int, View], set[tuple[str, str]]]]] = []
        self.keys: list[tuple[str, Key]] = []
        self.links: list[tuple[str, Link]] = []
        self.policies: list[tuple[str, tuple[str, str, str]]] = []
        self.offers: list[tuple[str, Offer]] = []
        self.jobs: list[tuple[str, Job]] = []
        self.deliveries: list[tuple[str, Delivery]] = []
        self.history: list[tuple[str, HistoryEntry]] = []
        self.marks: list[tuple[str, UndoMark]] = []
        self.undone: list[tuple[str, UndoneValue]] = []
        self.notify = Notifications()
        self.topics: list[tuple[str, tuple[str, str]]] = []
        self.subscriptions: list[tuple[str, PushSubscription]] = []
        self.invites: list[tuple[str, tuple[Invite, list[InviteUse]]]] = []


def read_export(document: Any, region: str) -> Export:
    """Check a parsed JSON document and read its records; :class:`BackupError` if it is
    no export this code can import on a server with ``region``."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError("not an export of radicale-mecard (no \"format\": \"%s\")" % FORMAT)
    top = _Record(document, "export")
    version = top.whole("version")
    if version > VERSION:
        raise BackupError("the export has format version %d, this radicale-mecard reads "
                          "version %d at most: import it with the newer radicale-mecard that "
                          "wrote it" % (version, VERSION))
    if version < 1:
        raise BackupError("export.version: %d is no format version" % version)
    theirs = top.text("region")
    if theirs != region:
        raise BackupError("the export was made with mecard_default_region = %s and this server "
                          "uses %s: numbers without a country code would be read otherwise; "
                          "set the same region to import it" % (theirs, region))
    state = Export()
    _records(top, "owners", _owner, state.owners)
    _records(top, "keys", lambda r: Key(r.text("user"), r.text("key"), r.flag("on_card"),
                                        r.maybe_text("verified"), r.maybe_text("lost")),
             state.keys)
    _records(top, "links", lambda r: Link(r.text("owner"), r.text("recipient"), r.text("book"),
                                          r.text("href"), r.choice("made_by", (
                                              idx.LINK_CREATED, idx.LINK_ACCEPTED,
                                              idx.LINK_VERIFIED, idx.LINK_MIGRATED,
                                              idx.LINK_INVITED)) or "",
                                          r.text("made")), state.links)
    _records(top, "policies", lambda r: (r.text("recipient"), r.text("owner"),
                                         r.choice("policy", POLICIES) or ""), state.policies)
    _records(top, "offers", _offer, state.offers)
    _records(top, "jobs", lambda r: Job(r.whole("id"), r.text("owner"), r.whole("seq"),
                                        r.texts("only", True), r.flag("withdraw")), state.jobs)
    _records(top, "deliveries", _delivery, state.deliveries)
    _records(top, "history", lambda r: _entry(r, state.marks), state.history)
    push = top.record("push")
    if push is not None:
        _records(push, "topics", lambda r: (r.text("book"), r.text("topic")), state.topics)
        _records(push, "subscriptions", lambda r: PushSubscription(
            r.text("id"), r.text("user"), r.text("book"), r.text("push_resource"),
            r.text("public_key"), r.text("auth_secret"), r.real("expires"),
            r.text("content_encoding"), r.real("created")), state.subscriptions)
    if "invites" in top.data:  # version 1 had none
        _records(top, "invites", _invite, state.invites)
    # what schema 6 adds (absent from exports before version 3: they import without it)
    if version >= 3 or "undone_values" in top.data:
        _records(top, "undone_values", lambda r: UndoneValue(
            r.text("owner"), r.text("recipient"), r.text("field"), r.text("value_key"),
            r.text("kept"), r.whole("entry")), state.undone)
    state.notify = read_notify(top, required=version >= 3)
    return state


def _entry(r: _Record, marks: list[tuple[str, UndoMark]]) -> HistoryEntry:
    """A history entry; its undo mark, if it was undone, goes into ``marks``."""
    entry = HistoryEntry(r.text("owner"), r.text("recipient"), r.text("book"), r.text("href"),
                         r.choice("action", HISTORY_ACTIONS) or "", r.changes("changes"),
                         r.text("time"), r.whole("id"))
    mark = r.record("undone")
    if mark is not None:
        if entry.id < 1:
            raise BackupError("%s.undone: an undone entry needs its id" % r.where)
        answer = mark._get("answer", (dict,), "an object (the answer given)", False)
        marks.append((r.where, UndoMark(entry.id, mark.text("time"), mark.whole("undo_entry"),
                                        json.dumps(answer))))
    return entry


def _invite(r: _Record) -> tuple[Invite, list[InviteUse]]:
    invite = Invite(r.text("id"), r.text("owner"), r.text("token_hash"), r.real("created"),
                    r.maybe_real("expires"), r.maybe_whole("max_uses"), r.whole("uses"),
                    r.maybe_real("revoked"), r.maybe_text("label") or "")
    uses = []
    for i, item in enumerate(r._get("used_by", (list,), "a list", False)):
        use = _Record(item, "%s.used_by[%d]" % (r.where, i))
        uses.append(InviteUse(invite.id, use.text("recipient"), use.real("time")))
    return invite, uses


def _owner(r: _Record) -> tuple[Owner, dict[int, View], set[tuple[str, str]]]:
    me = r.record("me_card")
    views: dict[int, View] = {}
    for i, item in enumerate(r._get("views", (list,), "a list", False)):
        entry = _Record(item, "%s.views[%d]" % (r.where, i))
        found = entry.view("view", optional=False)
        assert found is not None
        views[entry.whole("seq")] = found
    owner = Owner(r.text("user"), me.text("book") if me else None,
                  me.text("href") if me else None, me.maybe_text("uid") if me else None,
                  r.texts("shared_fields") or [], r.texts("withdrawn_fields") or [],
                  r.texts("rules") or [], r.view("card_view"), r.view("view"), r.whole("seq"),
                  r.choice("discoverability", DISCOVERABILITY, optional=True),
                  r.texts("notices") or [])
    region = r.maybe_text("region")  # absent from exports made before schema 5
    if region is not None:
        try:
            owner.region = check_region(region)
        except ValueError as e:
            raise BackupError("%s.region: %s" % (r.where, e)) from None
    # field sets per target rule (absent from exports made before schema 6)
    audiences = r._get("audiences", (dict,), "an object: rule -> {fields, withdrawn}", True)
    if audiences:
        owner.audiences = audience_sets.to_json(audience_sets.from_json(audiences))
    return owner, views, r.pairs("past_values")


def _offer(r: _Record) -> Offer:
    return Offer(r.text("owner"), r.text("recipient"), r.whole("seq"),
                 r.choice("state", OFFER_STATES) or "", r.maybe_text("book"),
                 r.maybe_text("href"), r.text("created"), r.text("first_offered"),
                 r.maybe_text("until"), r.whole("refused_seq"))


def _delivery(r: _Record) -> Delivery:
    intent = None
    found = r.record("intent")
    if found is not None:
        view = found.view("view", optional=False)
        assert view is not None
        intent = Intent(view, found.text("book"), found.text("href"),
                        found.choice("action", ACTIONS) or "", found.changes("changes"),
                        found.text("after_hash"))
    return Delivery(r.text("owner"), r.text("recipient"),
                    r.choice("state", DELIVERY_STATES) or "", r.whole("wanted_seq"),
                    r.whole("delivered_seq"), None, intent, r.pairs("written_values"),
                    r.texts("reasons") or [], r.text("error"), r.text("updated"), r.real("due"),
                    r.real("delivered_at"),
                    r.whole("attempts") if "attempts" in r.data else 0)
