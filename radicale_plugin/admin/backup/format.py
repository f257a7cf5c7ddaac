# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup document's format: its shape, its version, and the error of a document
this code cannot import (:mod:`.export` writes it, :mod:`.importing` reads it).

The document is the backup of everything the collections cannot give back
(docs/operating.md, "Backups and restore"), and the way from one backend to another: it
is read and written through the index contract only, so a PostgreSQL backend
imports what SQLite exported.  Its shape (``FORMAT``, ``VERSION``)::

    {"format": "radicale-mecard-sharing-state", "version": 3,
     "schema": 6, "region": "US", "exported": "2026-11-26T09:00:00+00:00",
     "owners":     [{"user", "me_card": {"book", "href", "uid"} | null,
                     "shared_fields", "withdrawn_fields", "rules", "discoverability",
                     "region" (the user's own; absent or null: none),
                     "audiences" ({rule: {"fields": [...] | null, "withdrawn": [...]}};
                     absent: none),
                     "notices", "seq", "card_view", "view",
                     "views": [{"seq", "view"}], "past_values": [[field, key]]}],
     "keys":       [{"user", "key", "on_card", "verified", "lost"}],
     "links":      [{"owner", "recipient", "book", "href", "made_by", "made"}],
     "policies":   [{"recipient", "owner", "policy"}],
     "offers":     [{"owner", "recipient", "seq", "state", "book", "href", "created",
                     "first_offered", "until", "refused_seq"}],
     "jobs":       [{"id", "owner", "seq", "only", "withdraw"}],
     "deliveries": [{"owner", "recipient", "state", "wanted_seq", "delivered_seq",
                     "reasons", "error", "updated", "due", "delivered_at", "attempts",
                     "written_values": [[field, key]], "intent": null | {"view", "book",
                     "href", "action", "changes", "after_hash"}}],
     "history":    [{"id", "time", "owner", "recipient", "book", "href", "action",
                     "changes": [{"field", "before", "after"}],
                     "undone": null | {"time", "undo_entry", "answer": {...}}}],
     "push":       {"topics": [{"book", "topic"}],
                    "subscriptions": [{"id", "user", "book", "push_resource", "public_key",
                                       "auth_secret", "content_encoding", "expires",
                                       "created"}]},
     "invites":    [{"id", "owner", "token_hash", "created", "expires", "max_uses", "uses",
                     "revoked", "label", "used_by": [{"recipient", "time"}]}],
     "undone_values": [{"owner", "recipient", "field", "value_key", "kept", "entry"}],
     "notify":     {"unsubscribe_key": hex | null,
                    "settings": [{"user", "email", "address", "base"}],
                    "batches": [{"id", "recipient", "address", "state", "created", "due",
                                 "message", "message_id", "attempts", "sent", "error"}],
                    "events": [{"id", "recipient", "owner", "kind", "seq", "time", "due",
                                "base", "batch"}]}}

A view is ``{"entries": [[name, value, [types], [[param, value]]]], "fields",
"withdrawn"}``; times are ISO 8601 strings, except ``due``, ``delivered_at``,
``expires`` and ``created`` of subscriptions, the times of invites and their
uses, and those of ``notify`` (seconds since 1970).  Lists are
sorted (deliveries in queue order), so two exports of the same state differ in
``exported`` only.  Left out, as short-lived or rebuilt: verification codes and
the counters of codes sent and offers made today, the rate-limit state of
schema 5 (wrong answers to codes per key, keys new on a me card per day: a
restore starts them afresh, as it does the code counters), the time each job
was queued, the me cards' file stamps (read again at start) and the card-key
index.  An invite keeps only its token's hash, as the database does: the links
handed out stay valid after a restore.

Undo (schema 6): a history entry the recipient undid carries its mark (``undone``:
when, the entry recording the undo, 0 if nothing was written, and the answer given,
which a second undo gives again); ``undone_values`` are the owner values recipients
undid (oldest first), left out of deliveries until the owner changes them.

Notifications (schema 6): each user's choice, every e-mail (batch) with the events it
tells of, the events still waiting, and ``unsubscribe_key``, the key that signs the
unsubscribe links in e-mails (so that links mailed before a backup still work after
the restore; whoever holds an export can make such links for any user).  An import
keeps at most once across a restore: an e-mail ``ready`` or ``sending`` in the
export may have gone out from the server that made it, after the export, so it is
stored ``unknown`` and never sent (:data:`IN_FLIGHT`); events waiting are kept and
told as usual (the offers they tell of are waiting again in the restored state).

Versions: 1 (schema 4) had no invites and no ``region`` of owners; 2 (schema
5) adds them; 3 (schema 6) adds ``audiences`` of owners, ``undone`` of history
entries, ``undone_values`` and ``notify`` (an older reader would drop them, and
deliver undone values and fields an audience leaves out).  This code reads all three:
an older export imports with none of them.  A reader ignores keys it does not know; a
new version number means a change an older reader must not guess at.
"""

from __future__ import annotations

from radicale_plugin import index as idx
from radicale_plugin.index import records as rec

FORMAT = "radicale-mecard-sharing-state"
VERSION = 3

DELIVERY_STATES = (idx.PENDING, idx.DELIVERED, idx.OFFERED, idx.BLOCKED, idx.FAILED,
                   idx.STOPPED, idx.WITHDRAWING, idx.WITHDRAWN, idx.ROLLED_BACK, idx.BEHIND)
OFFER_STATES = (idx.OFFER_PENDING, idx.OFFER_POSTPONED, idx.OFFER_REFUSED)
ACTIONS = ("create", "update", "withdraw")
#: Actions of history entries: those of intents, and a recipient's undo.
HISTORY_ACTIONS = ACTIONS + ("undo",)
BATCH_STATES = (rec.BATCH_READY, rec.BATCH_SENDING, rec.BATCH_SENT, rec.BATCH_FAILED,
                rec.BATCH_UNKNOWN, rec.BATCH_CANCELLED)
#: Batch states an import stores as unknown, and the error it gives them.
IN_FLIGHT = (rec.BATCH_READY, rec.BATCH_SENDING)
IN_FLIGHT_ERROR = ("waiting to be sent or being sent when the export was made: the server "
                   "that made it may have sent it since, so it is not sent again")
EVENT_KINDS = (rec.EVENT_OFFER, rec.EVENT_OFFER_DUE, rec.EVENT_CHANGED)
#: History entries read or written per call.
PAGE = 1000


class BackupError(ValueError):
    """An export that cannot be imported here; ``str()`` says where and why, in one line."""
