# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a phone's exported call and message history.

Two formats:

* Android "SMS Backup & Restore" XML: ``<calls><call number= date= type=/>``
  (calls file) and ``<smses><sms address= date= type=/><mms address=.../>``
  (messages file); ``date`` is milliseconds since 1970.
* CSV with a header ``number,time,kind,direction``: ``time`` in ISO 8601
  (``2026-05-01T18:30:00``) or seconds since 1970, ``kind`` is ``call`` or
  ``sms``, ``direction`` is ``in``, ``out`` or ``missed``.

Withheld numbers are skipped and counted; malformed entries are counted with
their line numbers; a file that is neither format is an error that says so.
"""

from __future__ import annotations

import csv
import datetime
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from bridge.errors import BridgeError

CALL, SMS = "call", "sms"
KINDS = (CALL, SMS)
# Android's CallLog types: 1 incoming, 2 outgoing, 3 missed, 4 voicemail, 5 rejected, 6 blocked
_CALL_DIRECTIONS = {"1": "in", "2": "out", "3": "missed", "4": "in", "5": "missed",
                    "6": "missed", "7": "in"}
_WITHHELD = {"", "-1", "-2", "-3", "private", "unknown", "anonymous", "withheld",
             "null", "restricted"}
CSV_HEADER = ["number", "time", "kind", "direction"]


@dataclass(frozen=True)
class Event:
    """One call or message with one number."""

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
        raise BridgeError("%s is not readable XML (%s): export it again with SMS Backup "
                          "& Restore, or use the CSV format (see --help)" % (path, e)) from e
    if root.tag not in ("calls", "smses"):
        raise BridgeError("%s is XML but not an SMS Backup & Restore calls or messages "
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


def _csv_events(path: Path, text: str, log: Log) -> Iterator[Event]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:4] != CSV_HEADER:
        raise BridgeError("%s is not a call log: expected SMS Backup & Restore XML or CSV with "
                          "the header %s" % (path, ",".join(CSV_HEADER)))
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


def read_logs(paths: Iterable[Path | str]) -> Log:
    """Read every file into one :class:`Log`; the format is recognised from the content."""
    log = Log()
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise BridgeError("cannot read call log %s: %s" % (path, e.strerror)) from e
        except UnicodeDecodeError as e:
            raise BridgeError("%s is not a text file: expected SMS Backup & Restore XML or "
                              "CSV" % path) from e
        events = _xml_events(path, log) if text.lstrip().startswith("<") else \
            _csv_events(path, text, log)
        # shown only in a terminal (disable=None)
        log.events.extend(tqdm(events, desc=path.name, unit=" entries", disable=None,
                               leave=False))
    return log
