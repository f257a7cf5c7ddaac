# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's history of changes made to their cards, and the undo of one of them.

Every change the sharing code makes to a recipient's card is in the history,
value by value (:mod:`radicale_plugin.delivery.history`).  The recipient lists
it (all of it, or one owner's) and undoes one entry: the values before come
back, the values the entry wrote go, and everything the recipient changed since
stays (:mod:`radicale_plugin.delivery.revert`; their word wins where they changed
a value the entry wrote, and the answer says which values were not put back and
why).  The undo is a normal write through Radicale under its lock, like an
accepted offer: the ETag changes, sync-collection lists the card, the card-key
index and WebDAV-Push follow through the storage hooks.

The undo is recorded: the entry is marked undone (a second undo gives the same
answer and writes nothing), the write itself is a history entry of its own
(action ``undo``), and each owner value taken out is remembered so that later
deliveries leave it out until the owner changes it
(:mod:`radicale_plugin.delivery.undone`).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.delivery.history import diff
from radicale_plugin.delivery.revert import revert
from radicale_plugin.delivery.undone import value_key
from radicale_plugin.errors import Conflict, NotFound
from radicale_plugin.index import HistoryEntry, LinkStore, UndoMark, UndoneValue
from radicale_plugin.vcard.codec import parse_card

#: The action of the history entry an undo writes.
UNDO = "undo"
#: Entries an undo can take back: a created card is deleted by its recipient instead.
_UNDOABLE = ("update", "withdraw")
#: Most entries one listing returns.
MAX_LIMIT = 1000


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _change_json(field: str, before: str | None, after: str | None) -> dict[str, Any]:
    return {"field": field, "before": before, "after": after}


def not_theirs(links: LinkStore, entry: HistoryEntry) -> str | None:
    """Why ``entry``'s card no longer holds its owner's copy (None: it does, or no owner's).

    A history entry names its card by path.  If the recipient deleted that copy and the
    path now holds another owner's copy (or the owner's copy lives in another card now),
    an undo would put the first owner's old values into a card that is not theirs — e.g.
    their number into someone else's contact, where the card-key index would then tie it
    to that person.  A card no owner is linked to any more (the owner stopped sharing)
    may still be undone: that is the undo of a withdraw.
    """
    here = links.at(entry.book, entry.href)
    if here is not None and here.owner != entry.owner:
        return ("the card /%s/%s holds %s's copy now, not %s's: undoing %s's change there "
                "would put their old values into it"
                % (entry.book, entry.href, here.owner, entry.owner, entry.owner))
    theirs = links.get(entry.owner, entry.recipient)
    if here is None and theirs is not None:
        return ("%s's copy is in another card now (/%s/%s), not in /%s/%s where change %d "
                "was made: there is nothing of theirs to undo there"
                % (entry.owner, theirs.book, theirs.href, entry.book, entry.href, entry.id))
    return None


class Undo:
    """Lists a recipient's history and undoes one entry of it."""

    def __init__(self, ctx: Context, deliverer: Deliverer) -> None:
        self._ctx = ctx
        self._deliverer = deliverer

    # -- reading --------------------------------------------------------------------
    def history(self, recipient: str, owner: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
        """The newest changes made to the recipient's cards (one owner's, if given)."""
        index = self._ctx.index
        with index.snapshot():
            entries = index.history.of_recipient(recipient, limit, owner)
            marks = index.history.undo_marks(e.id for e in entries)
            cards = {(e.book, e.href) for e in entries}
            present = {card for card in cards if index.cards.card(*card) is not None}
            # an entry whose card holds another owner's copy now cannot be undone there
            astray = {e.id for e in entries if (e.book, e.href) in present
                      and e.action in _UNDOABLE and not_theirs(index.links, e) is not None}
        undoes = {m.undo_entry: m.entry for m in marks.values() if m.undo_entry}
        out = []
        for e in entries:
            mark = marks.get(e.id)
            row = {"id": e.id, "time": e.time, "owner": e.owner,
                   "card": "/%s/%s" % (e.book, e.href), "action": e.action,
                   "changes": [_change_json(c.field, c.before, c.after) for c in e.changes],
                   "undone": mark.time if mark is not None else None,
                   "undoable": mark is None and e.action in _UNDOABLE and bool(e.changes)
                   and (e.book, e.href) in present and e.id not in astray}
            if e.id in undoes:
                row["undoes"] = undoes[e.id]
            out.append(row)
        return out

    # -- undoing --------------------------------------------------------------------
    def undo(self, recipient: str, entry_id: int) -> dict[str, Any]:
        """Undo one entry of the recipient's history (see the module's docstring)."""
        index = self._ctx.index
        # under the storage lock: two undos of one entry, or an undo beside the fan-out's
        # write of the same card, take turns (the fan-out's write sees the card changed)
        with self._ctx.storage.acquire_lock("w", recipient):
            entry = index.history.get(entry_id)
            if entry is None or entry.recipient != recipient:
                # another user's entry looks exactly like one that does not exist
                raise NotFound("there is no change %d in your history" % entry_id)
            mark = index.history.undo_marks([entry_id]).get(entry_id)
            if mark is not None:
                return json.loads(mark.answer)  # the same answer; nothing is written again
            self._check(entry)
            self._still_theirs(entry)
            text = self._deliverer.card_text(entry.book, entry.href)
            if text is None:
                raise Conflict("the card /%s/%s this change was made to is gone (deleted or "
                               "moved): there is nothing to undo" % (entry.book, entry.href))
            return self._undo(entry, text)

    def _check(self, entry: HistoryEntry) -> None:
        if entry.action == UNDO:
            raise Conflict("change %d is itself an undo; it cannot be undone (edit the card "
                           "instead)" % entry.id)
        if entry.action not in _UNDOABLE:
            raise Conflict("change %d created the card /%s/%s: an undo would leave it without "
                           "a name; delete the contact instead if you do not want it"
                           % (entry.id, entry.book, entry.href))
        if not entry.changes:
            raise Conflict("change %d changed no value: there is nothing to undo" % entry.id)

    def _still_theirs(self, entry: HistoryEntry) -> None:
        why = not_theirs(self._ctx.index.links, entry)
        if why is not None:
            raise Conflict(why)

    def _undo(self, entry: HistoryEntry, text: str) -> dict[str, Any]:
        """Write the undo of ``entry`` into its card (the caller holds the lock), record it."""
        index, ctx = self._ctx.index, self._ctx
        owner_region = ctx.region_of(index.owners.get(entry.owner))
        regions = (owner_region, ctx.region_of(entry.recipient))
        before = parse_card(text)
        done = revert(before, entry.changes, regions)
        new_text = done.card.serialize()
        written = new_text != text
        if written:
            collection = store.book(ctx.storage, entry.book)
            if collection is None:
                raise Conflict("the address book /%s/ of this change is gone: there is "
                               "nothing to undo" % entry.book)
            ctx.writing.copy = True  # the hooks know the write is ours (no rollback check)
            try:
                store.write_card(collection, entry.href, new_text)
            finally:
                ctx.writing.copy = False
        now = _now_iso()
        answer = {
            "undone": entry.id, "card": "/%s/%s" % (entry.book, entry.href), "time": now,
            "written": written,
            "put_back": [_change_json(c.field, c.before, c.after) for c in done.put_back],
            "not_put_back": [dict(_change_json(c.field, c.before, c.after), why=why)
                             for c, why in done.left]}
        with index.transaction():
            undo_entry = 0
            if written:
                undo_entry = index.history.add(HistoryEntry(
                    entry.owner, entry.recipient, entry.book, entry.href, UNDO,
                    tuple(diff(before, done.card)), now))
            answer["entry"] = undo_entry or None
            index.history.mark_undone(UndoMark(entry.id, now, undo_entry, json.dumps(answer)))
            undone = [UndoneValue(entry.owner, entry.recipient, c.field,
                                  value_key(c.field, c.after, owner_region), c.before or "",
                                  entry.id) for c in done.put_back]
            index.history.add_undone(v for v in undone if v.value_key or v.kept)
        logger.info("Recipient %r undid change %d (%r's card, /%s/%s): %d value(s) put back, "
                    "%d left", entry.recipient, entry.id, entry.owner, entry.book, entry.href,
                    len(done.put_back), len(done.left))
        return answer
