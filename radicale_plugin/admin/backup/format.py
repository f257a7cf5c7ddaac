# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup document's format: its shape, its version, and the error of a document
this code cannot import (:mod:`.export` writes it, :mod:`.importing` reads it).

The document is the backup of everything the collections cannot give back
(docs/operating.md, "Backups and restore"), and the way from one backend to another: it
is read and written through the index contract only, so a PostgreSQL backend
imports what SQLite exported.  Its shape (``FORMAT``, ``VERSION``)::

    {"format": "radicale-mecard-sharing-state", "version": 2,
     "schema": 5, "region": "US", "exported": "2026-11-26T09:00:00+00:00",
     "owners":     [{"user", "me_card": {"book", "href", "uid"} | null,
                     "shared_fields", "withdrawn_fields", "rules", "discoverability",
                     "region" (the user's own; absent or null: none),
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
                     "changes": [{"field", "before", "after"}]}],
     "push":       {"topics": [{"book", "topic"}],
                    "subscriptions": [{"id", "user", "book", "push_resource", "public_key",
                                       "auth_secret", "content_encoding", "expires",
                                       "created"}]},
     "invites":    [{"id", "owner", "token_hash", "created", "expires", "max_uses", "uses",
                     "revoked", "label", "used_by": [{"recipient", "time"}]}]}

A view is ``{"entries": [[name, value, [types], [[param, value]]]], "fields",
"withdrawn"}``; times are ISO 8601 strings, except ``due``, ``delivered_at``,
``expires`` and ``created`` of subscriptions, and the times of invites and their
uses (seconds since 1970).  Lists are
sorted (deliveries in queue order), so two exports of the same state differ in
``exported`` only.  Left out, as short-lived or rebuilt: verification codes and
the counters of codes sent and offers made today, the rate-limit state of
schema 5 (wrong answers to codes per key, keys new on a me card per day: a
restore starts them afresh, as it does the code counters), the time each job
was queued, the me cards' file stamps (read again at start) and the card-key
index.  An invite keeps only its token's hash, as the database does: the links
handed out stay valid after a restore.

Versions: 1 (schema 4) had no invites and no ``region`` of owners; 2 (schema
5) adds them.  This code reads both.  A reader ignores keys it does not know; a
new version number means a change an older reader must not guess at.
"""

from __future__ import annotations

from radicale_plugin import index as idx

FORMAT = "radicale-mecard-sharing-state"
VERSION = 2

DELIVERY_STATES = (idx.PENDING, idx.DELIVERED, idx.OFFERED, idx.BLOCKED, idx.FAILED,
                   idx.STOPPED, idx.WITHDRAWING, idx.WITHDRAWN, idx.ROLLED_BACK, idx.BEHIND)
OFFER_STATES = (idx.OFFER_PENDING, idx.OFFER_POSTPONED, idx.OFFER_REFUSED)
ACTIONS = ("create", "update", "withdraw")
#: History entries read or written per call.
PAGE = 1000


class BackupError(ValueError):
    """An export that cannot be imported here; ``str()`` says where and why, in one line."""
