# SPDX-License-Identifier: GPL-3.0-or-later
"""Import of the ``notify`` part of a backup document (:mod:`.format`): each user's choice,
the e-mails (batches) with their events, the events waiting, and the key of unsubscribe
links, read and checked with errors that say where; and at most once across a restore.

An e-mail ``ready`` or ``sending`` in the export may have gone out from the server
that made it after the moment of the export (a ready one is sent at once, or at its
retry), and the restored server cannot know: it is stored ``unknown``, as the sender
stores one found ``sending`` after a crash, and never sent.  One e-mail lost is told
again by the pages; one sent twice teaches people to ignore the server's mail.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, TypeVar

from radicale_plugin.index.records import (BATCH_UNKNOWN, NOTIFY_CHOICES, NotifyBatch,
                                           NotifyEvent, NotifySetting)
from radicale_plugin.admin.backup.format import (BATCH_STATES, EVENT_KINDS, IN_FLIGHT,
                                                 IN_FLIGHT_ERROR, BackupError)
from radicale_plugin.admin.backup.record import Record

T = TypeVar("T")

#: Shortest key of unsubscribe links an import takes, in bytes (the server makes 32).
KEY_BYTES = 32


class Notifications:
    """The ``notify`` part read and checked, each record with its place in the document."""

    def __init__(self) -> None:
        self.settings: list[tuple[str, NotifySetting]] = []
        self.batches: list[tuple[str, NotifyBatch]] = []
        self.events: list[tuple[str, NotifyEvent]] = []
        self.key: bytes | None = None
        #: e-mails ready or being sent in the export, stored unknown (never sent)
        self.in_flight = 0


def read_notify(top: Record, required: bool) -> Notifications:
    """The document's ``notify`` object (absent from exports before version 3, and then
    allowed to be missing only if not ``required``)."""
    found = Notifications()
    part = top.record("notify")
    if part is None:
        if required:
            raise BackupError("export: 'notify' is missing")
        return found
    part.where = "notify"
    found.key = _key(part)
    _read(part, "settings", _setting, found.settings)
    _read(part, "batches", _batch, found.batches)
    _read(part, "events", _event, found.events)
    _unique([(w, s.user) for w, s in found.settings], "a setting for")
    _unique([(w, b.id) for w, b in found.batches], "a batch with the id")
    _unique([(w, e.id) for w, e in found.events], "an event with the id")
    recipients = {b.id: b.recipient for _, b in found.batches}
    for where, event in found.events:
        if event.batch is not None and recipients.get(event.batch) != event.recipient:
            raise BackupError("%s.batch: %s" % (
                where, "no batch %d in notify.batches" % event.batch
                if event.batch not in recipients else "batch %d is %s's, the event %s's"
                % (event.batch, recipients[event.batch], event.recipient)))
    for i, (where, batch) in enumerate(found.batches):
        if batch.state in IN_FLIGHT:
            found.batches[i] = (where, replace(batch, state=BATCH_UNKNOWN,
                                               error=IN_FLIGHT_ERROR))
            found.in_flight += 1
    return found


def _read(part: Record, name: str, read: Callable[[Record], T],
          into: list[tuple[str, T]]) -> None:
    for i, item in enumerate(part._get(name, (list,), "a list", False)):
        where = "%s.%s[%d]" % (part.where, name, i)
        into.append((where, read(Record(item, where))))


def _unique(keys: list[tuple[str, object]], what: str) -> None:
    seen: set[object] = set()
    for where, key in keys:
        if key in seen:
            raise BackupError("%s: %s %s is given twice" % (where, what, key))
        seen.add(key)


def _key(part: Record) -> bytes | None:
    text = part.maybe_text("unsubscribe_key")
    if text is None:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise BackupError("%s.unsubscribe_key: expected the key in hex, %d bytes at least"
                          % (part.where, KEY_BYTES))
    return key


def _id(r: Record, name: str) -> int:
    value = r.whole(name)
    if value < 1:
        raise BackupError("%s.%s: expected a whole number above 0, found %d"
                          % (r.where, name, value))
    return value


def _setting(r: Record) -> NotifySetting:
    return NotifySetting(r.text("user"), r.choice("email", NOTIFY_CHOICES, optional=True),
                         r.maybe_text("address"), r.maybe_text("base"))


def _batch(r: Record) -> NotifyBatch:
    attempts = r.whole("attempts")
    if attempts < 0:
        raise BackupError("%s.attempts: expected a whole number, 0 or above" % r.where)
    return NotifyBatch(_id(r, "id"), r.text("recipient"), r.text("address"),
                       r.choice("state", BATCH_STATES) or "", r.real("created"), r.real("due"),
                       r.text("message"), r.text("message_id"), attempts, r.maybe_real("sent"),
                       r.text("error"))


def _event(r: Record) -> NotifyEvent:
    batch = r.maybe_whole("batch")
    return NotifyEvent(r.text("recipient"), r.text("owner"), r.choice("kind", EVENT_KINDS) or "",
                       r.whole("seq"), r.real("time"), r.real("due"), r.maybe_text("base"),
                       _id(r, "id"), batch)
