# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a phone's exported call and message history.

The format is recognised from the content, not the file name:

* Android "SMS Backup & Restore" XML: ``<calls><call number= date= type=/>``
  (calls file) and ``<smses><sms address= date= type=/><mms address=.../>``
  (messages file); ``date`` is milliseconds since 1970.
* Android's own providers as ``adb shell content query --uri
  content://call_log/calls`` (or ``content://sms``) prints them:
  ``Row: 0 _id=1, number=..., date=<ms>, type=1, duration=...``.
* An iPhone's unencrypted Finder/iTunes backup folder, or its ``sms.db`` and
  ``CallHistory.storedata`` given as files (see :mod:`bridge.readers.iphone`).
* CSV with a header ``number,time,kind,direction``: ``time`` in ISO 8601
  (``2026-05-01T18:30:00``) or seconds since 1970, ``kind`` is ``call`` or
  ``sms``, ``direction`` is ``in``, ``out`` or ``missed``.

``sms`` stands for every kind of message (SMS, MMS, iMessage, RCS).  A
message to a group counts once for each member it went to (an MMS to
``a~b``, an iPhone group chat's members); a message *received* in a group
counts for its sender only.  A log that holds no calls, or no messages, is
read, and the part it lacks is named (:attr:`Log.missing`; an iPhone with
"Messages in iCloud" keeps its messages out of its backups), since the counts
then stand for the other kind only.
Withheld numbers are skipped and counted; malformed entries are counted with
their line numbers; a file that is none of these is an error that says so.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from bridge.readers import iphone
from bridge.errors import UserError

CALL, SMS = "call", "sms"
KINDS = (CALL, SMS)
# Android's CallLog types: 1 incoming, 2 outgoing, 3 missed, 4 voicemail, 5 rejected, 6 blocked,
# 7 answered on another device
_CALL_DIRECTIONS = {"1": "in", "2": "out", "3": "missed", "4": "in", "5": "missed",
                    "6": "missed", "7": "in"}
# Android's Telephony.Sms types: 1 inbox, 2 sent, 3 draft, 4 outbox, 5 failed, 6 queued; a
# draft or a failed message reached nobody, so it is not counted
_SMS_DIRECTIONS = {"1": "in", "2": "out", "4": "out", "6": "out"}
_SMS_NOT_SENT = {"3", "5"}
# CallLog.Calls.PRESENTATION_*: 2 restricted, 3 unknown, 4 payphone: no number to count
_HIDDEN_PRESENTATION = {"2", "3", "4"}
_WITHHELD = {"", "-1", "-2", "-3", "private", "unknown", "anonymous", "withheld",
             "null", "restricted"}
CSV_HEADER = ["number", "time", "kind", "direction"]
FORMATS = ("SMS Backup & Restore XML, adb content query output, an iPhone backup folder "
           "(or its sms.db / CallHistory.storedata), or CSV with the header %s"
           % ",".join(CSV_HEADER))
_ADB_ROW = re.compile(r"^Row: (\d+) ")
_ADB_FIELD = re.compile(r"(?:^|, )([A-Za-z_][A-Za-z0-9_]*)=")


@dataclass(frozen=True)
class Event:
    """One call or message with one number (or, for iMessage/FaceTime, an e-mail)."""

    number: str
    time: datetime.datetime
    kind: str
    direction: str


@dataclass
class Log:
    """Events read from one or more files, with what was left out."""

    events: list[Event] = field(default_factory=list)
    withheld: int = 0
    malformed: list[str] = field(default_factory=list)  # "file:line: problem"
    #: what each file or folder given held: (name, entries read)
    sources: list[tuple[str, int]] = field(default_factory=list)
    #: kind ("call"/"sms") → why a file given lacks it (an iPhone backup without messages)
    missing: dict[str, str] = field(default_factory=dict)

    def lacking(self, kinds: Iterable[str]) -> list[str]:
        """Of ``kinds``, those no file given holds a single entry of."""
        held = {e.kind for e in self.events}
        return [k for k in kinds if k not in held]

    def names(self) -> str:
        """The files read, for messages: ``calls.xml, sms.xml``."""
        return ", ".join(name for name, _ in self.sources) or "(none)"


def _is_withheld(number: str) -> bool:
    return number.strip().lower() in _WITHHELD


def _from_millis(value: str) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(value) / 1000, datetime.timezone.utc)


def _parse_time(value: str) -> datetime.datetime:
    text = value.strip()
    if text.isdigit():
        return datetime.datetime.fromtimestamp(int(text), datetime.timezone.utc)
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _xml_events(path: Path, log: Log) -> Iterator[Event]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UserError("%s is not readable XML (%s): export it again with SMS Backup "
                        "& Restore, or use another format (%s)" % (path, e, FORMATS)) from e
    if root.tag not in ("calls", "smses"):
        raise UserError("%s is XML but not an SMS Backup & Restore calls or messages "
                        "file (root element <%s>)" % (path, root.tag))
    for n, element in enumerate(root, 1):
        where = "%s:entry %d" % (path.name, n)
        if element.tag == "call":
            number, kind = element.get("number", ""), CALL
            direction = _CALL_DIRECTIONS.get(element.get("type", ""), "")
        elif element.tag == "sms":
            number, kind = element.get("address", ""), SMS
            direction = {"1": "in", "2": "out"}.get(element.get("type", ""), "out")
        elif element.tag == "mms":
            number, kind = element.get("address", ""), SMS
            direction = {"1": "in", "2": "out"}.get(element.get("msg_box", ""), "out")
        else:
            continue
        if _is_withheld(number):
            log.withheld += 1
            continue
        try:
            when = _from_millis(element.get("date", ""))
        except (ValueError, OverflowError):
            log.malformed.append("%s: bad date %r" % (where, element.get("date")))
            continue
        if not direction:
            log.malformed.append("%s: unknown call type %r" % (where, element.get("type")))
            continue
        # an MMS to several people lists them separated by '~'
        for one in number.split("~"):
            yield Event(one.strip(), when, kind, direction)


def _adb_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, fields) of each ``Row:`` of ``adb shell content query`` output."""
    start, body = 0, ""
    for n, line in enumerate(text.splitlines(), 1):
        row = _ADB_ROW.match(line)
        if row:
            if body:
                yield start, _adb_fields(body)
            start, body = n, line[row.end():]
        elif body:
            body += "\n" + line  # a value (a message's body) spanning lines
    if body:
        yield start, _adb_fields(body)


def _adb_fields(body: str) -> dict[str, str]:
    """``a=1, b=x, y`` → {a: 1, b: "x, y"}; the first of two equal names wins, so text in a
    message's body (which comes after number, date and type) cannot replace them."""
    marks = list(_ADB_FIELD.finditer(body))
    fields: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        fields.setdefault(mark.group(1).lower(), body[mark.end():end])
    return fields


def _adb_events(path: Path, text: str, log: Log) -> Iterator[Event]:
    for n, row in _adb_rows(text):
        where = "%s:%d" % (path.name, n)
        if "number" in row:
            number, kind = row["number"], CALL
            kind_code = row.get("type", "").strip()
            direction = _CALL_DIRECTIONS.get(kind_code, "")
            hidden = row.get("presentation", "").strip() in _HIDDEN_PRESENTATION
        elif "address" in row:
            number, kind = row["address"], SMS
            kind_code = row.get("type", "").strip()
            if kind_code in _SMS_NOT_SENT:
                continue
            direction = _SMS_DIRECTIONS.get(kind_code, "")
            hidden = False
        else:
            log.malformed.append("%s: neither number= nor address= (query content://call_log/"
                                 "calls or content://sms)" % where)
            continue
        if hidden or _is_withheld(number):
            log.withheld += 1
            continue
        try:
            when = _from_millis(row.get("date", "").strip())
        except (ValueError, OverflowError):
            log.malformed.append("%s: bad date %r" % (where, row.get("date")))
            continue
        if not direction:
            log.malformed.append("%s: unknown type %r" % (where, row.get("type")))
            continue
        yield Event(number.strip(), when, kind, direction)


def _csv_events(path: Path, text: str, log: Log) -> Iterator[Event]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:4] != CSV_HEADER:
        raise UserError("%s is not a call log: expected %s" % (path, FORMATS))
    for row in reader:
        where = "%s:%d" % (path.name, reader.line_num)
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 4:
            log.malformed.append("%s: expected 4 columns, found %d" % (where, len(row)))
            continue
        number, time, kind, direction = (c.strip() for c in row[:4])
        if _is_withheld(number):
            log.withheld += 1
            continue
        kind, direction = kind.lower(), direction.lower()
        if kind not in KINDS:
            log.malformed.append("%s: kind %r is not call or sms" % (where, kind))
            continue
        if direction not in ("in", "out", "missed"):
            log.malformed.append("%s: direction %r is not in, out or missed" % (where, direction))
            continue
        try:
            when = _parse_time(time)
        except (ValueError, OverflowError):
            log.malformed.append("%s: bad time %r" % (where, time))
            continue
        yield Event(number, when, kind, direction)


def _database_events(path: Path, kind: str, log: Log) -> Iterator[Event]:
    """Events of an iPhone's sms.db (kind "sms") or CallHistory.storedata (kind "call")."""
    def withheld() -> None:
        log.withheld += 1

    rows = (iphone.message_rows if kind == SMS else iphone.call_rows)(
        path, log.malformed.append, withheld)
    for number, when, what, direction in rows:
        if _is_withheld(number):
            log.withheld += 1
            continue
        yield Event(number.strip(), when, what, direction)


#: why an iPhone backup lacks a part, for the warning about the counts
_BACKUP_LACKS = {
    SMS: "the iPhone backup %s holds no messages: with \"Messages in iCloud\" on (Settings, "
         "your name, iCloud) the phone keeps them in iCloud, not in its backups",
    CALL: "the iPhone backup %s holds no call history (CallHistory.storedata)",
}


def _backup_events(folder: Path, log: Log) -> Iterator[Event]:
    found = iphone.backup_files(folder)
    for kind in KINDS:
        if kind not in found:
            log.missing.setdefault(kind, _BACKUP_LACKS[kind] % folder.name)
    for kind, path in sorted(found.items()):
        count = 0
        for event in _database_events(path, kind, log):
            count += 1
            yield event
        if not count:  # the file is there, but empty: iCloud keeps the messages
            log.missing.setdefault(kind, _BACKUP_LACKS[kind] % folder.name)


def _file_events(path: Path, log: Log) -> Iterator[Event]:
    """The events of one file or folder given to --log, by what its content is."""
    if path.is_dir():
        return _backup_events(path, log)
    if path.name in ("Manifest.db", "Manifest.plist", "Info.plist", "Status.plist"):
        return _backup_events(path.parent, log)  # a file of a backup: the backup is meant
    if iphone.is_sqlite(path):
        return _database_events(path, iphone.kind_of_database(path), log)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UserError("cannot read call log %s: %s" % (path, e.strerror)) from e
    except UnicodeDecodeError as e:
        raise UserError("%s is not a call log: expected %s" % (path, FORMATS)) from e
    start = text.lstrip()
    if start.startswith("<"):
        return _xml_events(path, log)
    if _ADB_ROW.match(start) or start.startswith("No result found"):
        return _adb_events(path, text, log)
    return _csv_events(path, text, log)


def read_logs(paths: Iterable[Path | str]) -> Log:
    """Read every file (or iPhone backup folder) into one :class:`Log`."""
    log = Log()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError("cannot read call log %s: no such file or folder" % path)
        before = len(log.events)
        # shown only in a terminal (disable=None)
        log.events.extend(tqdm(_file_events(path, log), desc=path.name, unit=" entries",
                               disable=None, leave=False))
        log.sources.append((path.name, len(log.events) - before))
    return log
