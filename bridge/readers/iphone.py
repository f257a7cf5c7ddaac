# SPDX-License-Identifier: GPL-3.0-or-later
"""An iPhone's messages and calls, from an unencrypted Finder/iTunes backup.

A backup folder (``~/Library/Application Support/MobileSync/Backup/<id>/``
on a Mac, ``%APPDATA%\\Apple Computer\\MobileSync\\Backup\\<id>\\`` or
``%USERPROFILE%\\Apple\\MobileSync\\Backup\\<id>\\`` on Windows) stores
each file of the phone under the SHA-1 of ``DOMAIN-relative/path``, in a
sub-folder named after the hash's first two hex digits (iOS 10 and later)
or flat (earlier).  ``Manifest.db`` maps the phone's paths to those
names; without it the well-known names below are used:

* ``HomeDomain-Library/SMS/sms.db`` → ``3d0d7e5fb2ce288813306e4d4636395e047a3d28``:
  tables ``message`` (``date``: seconds since 2001-01-01 UTC, or
  nanoseconds since iOS 11; ``is_from_me``; ``handle_id``) and ``handle``
  (``id``: the number or e-mail); a message I sent to a group has no
  handle and reaches the group's members (``chat_message_join``,
  ``chat_handle_join``).
* ``HomeDomain-Library/CallHistoryDB/CallHistory.storedata`` →
  ``5a4935c78a5255723f707230a451d79c540d2741``: Core Data table
  ``ZCALLRECORD`` (``ZADDRESS``, text or a UTF-8 blob; ``ZDATE``, seconds
  since 2001; ``ZORIGINATED`` 1 for my calls; ``ZANSWERED``).

The same two files copied out of a backup (or a Mac's ``chat.db``, which
has the schema of ``sms.db``) are read when given directly.  An encrypted
backup (``Manifest.plist`` ``IsEncrypted``) cannot be read: the user gets
one line saying how to make an unencrypted one.
"""

from __future__ import annotations

import datetime
import plistlib
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

from bridge.errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"
#: the phone's path of each file → its name in a backup: SHA-1 of "DOMAIN-path"
#: (checked in tests/test_bridge_iphone.py)
SMS_DB = ("HomeDomain", "Library/SMS/sms.db", "3d0d7e5fb2ce288813306e4d4636395e047a3d28")
CALL_DB = ("HomeDomain", "Library/CallHistoryDB/CallHistory.storedata",
           "5a4935c78a5255723f707230a451d79c540d2741")
APPLE_EPOCH = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
#: a ``message.date`` above this is in nanoseconds (in seconds it would be after year 5000)
_NANOSECONDS = 10 ** 11
ENCRYPTED_ADVICE = ("in Finder (or iTunes) untick \"Encrypt local backup\", back up again, "
                    "and give that backup's folder to --log")

#: (number, time, kind, direction) or a problem; kind is "call" or "sms"
Row = tuple[str, datetime.datetime, str, str]


def apple_time(value: Any) -> datetime.datetime:
    """A date of the phone's databases: seconds, or nanoseconds, since 2001-01-01 UTC."""
    number = float(value)
    if number <= 0:
        raise ValueError("no date")
    if abs(number) > _NANOSECONDS:
        number /= 1e9
    return APPLE_EPOCH + datetime.timedelta(seconds=number)


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts like an SQLite database."""
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _connect(path: Path) -> sqlite3.Connection:
    # read-only, so reading never writes into the user's backup folder
    try:
        db = sqlite3.connect("%s?mode=ro" % path.resolve().as_uri(), uri=True)
        db.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as e:
        raise _unreadable(path, e) from e
    return db


def _unreadable(path: Path, error: sqlite3.Error) -> UserError:
    text = str(error)
    if "locked" in text or "busy" in text:
        return UserError("%s is locked by another program (Finder still backing up, or "
                         "Messages open): wait until it is done, or copy the file and give "
                         "the copy" % path)
    if "not a database" in text or "encrypted" in text:
        return UserError("%s cannot be read: the backup is encrypted or the file damaged; %s"
                         % (path, ENCRYPTED_ADVICE))
    return UserError("%s cannot be read as an SQLite database (%s)" % (path, text))


def _tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n.lower(): {c[1].lower() for c in db.execute('PRAGMA table_info("%s")' % n)}
            for n in names}


def kind_of_database(path: Path) -> str:
    """``"sms"`` (sms.db / chat.db), ``"call"`` (CallHistory.storedata), or a UserError."""
    db = _connect(path)
    try:
        tables = _tables(db)
    except sqlite3.DatabaseError as e:
        raise _unreadable(path, e) from e
    finally:
        db.close()
    if "message" in tables and "handle" in tables:
        return "sms"
    if "zcallrecord" in tables:
        return "call"
    raise UserError("%s is an SQLite database but neither an iPhone's sms.db (tables "
                    "message and handle) nor its CallHistory.storedata (table ZCALLRECORD)"
                    % path)


def _text(value: Any) -> str:
    """A number as the phone stored it: text, or UTF-8 bytes (Core Data blobs)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def message_rows(path: Path, problem: Callable[[str], None],
                 withheld: Callable[[], None]) -> Iterator[Row]:
    """Messages of an ``sms.db``: one row per person a message went to or came from."""
    db = _connect(path)
    try:
        tables = _tables(db)
        columns = tables["message"]
        # item_type 0 is a message; others are "X left the group", renames and the like
        only_messages = "WHERE m.item_type = 0" if "item_type" in columns else ""
        groups: dict[int, list[str]] = {}
        if "chat_message_join" in tables and "chat_handle_join" in tables:
            for message, number in db.execute(
                    "SELECT cmj.message_id, h.id FROM chat_message_join cmj "
                    "JOIN chat_handle_join chj ON chj.chat_id = cmj.chat_id "
                    "JOIN handle h ON h.ROWID = chj.handle_id"):
                groups.setdefault(message, []).append(_text(number))
        query = ("SELECT m.ROWID, m.date, m.is_from_me, h.id FROM message m "
                 "LEFT JOIN handle h ON h.ROWID = m.handle_id %s ORDER BY m.ROWID" % only_messages)
        for rowid, date, from_me, number in db.execute(query):
            where = "%s:message %s" % (path.name, rowid)
            try:
                when = apple_time(date)
            except (TypeError, ValueError, OverflowError):
                problem("%s: bad date %r" % (where, date))
                continue
            direction = "out" if from_me else "in"
            numbers = [_text(number)] if number else groups.get(rowid, [])
            if not numbers:
                withheld()  # no sender or recipient the phone knows
                continue
            for one in numbers:
                if one.lower().startswith("urn:"):  # business chats: no person
                    continue
                yield one, when, "sms", direction
    except sqlite3.DatabaseError as e:
        raise _unreadable(path, e) from e
    finally:
        db.close()


def call_rows(path: Path, problem: Callable[[str], None],
              withheld: Callable[[], None]) -> Iterator[Row]:
    """Calls of a ``CallHistory.storedata``."""
    db = _connect(path)
    try:
        for pk, address, date, originated, answered in db.execute(
                "SELECT Z_PK, ZADDRESS, ZDATE, ZORIGINATED, ZANSWERED FROM ZCALLRECORD "
                "ORDER BY Z_PK"):
            where = "%s:call %s" % (path.name, pk)
            number = _text(address).strip()
            if not number:
                withheld()
                continue
            try:
                when = apple_time(date)
            except (TypeError, ValueError, OverflowError):
                problem("%s: bad date %r" % (where, date))
                continue
            direction = "out" if originated else ("in" if answered else "missed")
            yield number, when, "call", direction
    except sqlite3.DatabaseError as e:
        raise _unreadable(path, e) from e
    finally:
        db.close()


def _stored(folder: Path, file_id: str) -> Path | None:
    for candidate in (folder / file_id[:2] / file_id, folder / file_id):
        if candidate.is_file():
            return candidate
    return None


def backup_files(folder: Path) -> dict[str, Path]:
    """``{"sms": path, "call": path}`` of the files an iPhone backup folder holds.

    A UserError when the backup is encrypted or the folder is no backup.
    """
    manifest_plist = folder / "Manifest.plist"
    if manifest_plist.is_file():
        try:
            with manifest_plist.open("rb") as f:
                info = plistlib.load(f)
        except (plistlib.InvalidFileException, ValueError, OSError) as e:
            raise UserError("%s cannot be read (%s): is the backup complete?"
                            % (manifest_plist, e)) from e
        if isinstance(info, dict) and info.get("IsEncrypted"):
            raise UserError("the iPhone backup %s is encrypted, and the bridge reads only "
                            "unencrypted ones: %s" % (folder, ENCRYPTED_ADVICE))
    ids = {"sms": SMS_DB[2], "call": CALL_DB[2]}
    manifest_db = folder / "Manifest.db"
    if manifest_db.is_file():
        if not is_sqlite(manifest_db):
            raise UserError("%s cannot be read: the backup is encrypted; %s"
                            % (manifest_db, ENCRYPTED_ADVICE))
        db = _connect(manifest_db)
        try:
            for kind, (domain, relative, _) in (("sms", SMS_DB), ("call", CALL_DB)):
                row = db.execute("SELECT fileID FROM Files WHERE domain = ? AND "
                                 "relativePath = ?", (domain, relative)).fetchone()
                if row:
                    ids[kind] = row[0]
        except sqlite3.DatabaseError as e:
            raise _unreadable(manifest_db, e) from e
        finally:
            db.close()
    found = {kind: path for kind, path in ((k, _stored(folder, i)) for k, i in ids.items())
             if path is not None}
    if not found:
        if not (manifest_db.is_file() or manifest_plist.is_file()):
            raise UserError("%s is a folder but not an iPhone backup (no Manifest.db): give "
                            "the backup's folder, or files" % folder)
        raise UserError("the iPhone backup %s holds neither messages (sms.db) nor calls "
                        "(CallHistory.storedata): was it made with Finder or iTunes, and "
                        "is it complete?" % folder)
    for kind, path in found.items():
        if not is_sqlite(path):
            raise UserError("%s (%s) cannot be read: the backup is encrypted; %s"
                            % (path, "sms.db" if kind == "sms" else "CallHistory.storedata",
                               ENCRYPTED_ADVICE))
    return found
