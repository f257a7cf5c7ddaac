# SPDX-License-Identifier: GPL-3.0-or-later
"""The phones people have: an iPhone's Finder/iTunes backup and Android's adb call log.

Every file is built here (sqlite3, plistlib) with invented numbers: no real
person's data is in the repository.
"""
from __future__ import annotations

import datetime
import hashlib
import plistlib
import sqlite3
from pathlib import Path

import pytest

from bridge.readers import iphone
from bridge.readers.calllog import read_logs
from bridge.errors import BridgeError
from bridge.select import count_contacts
from tests.test_bridge_defaults_e2e import DE_LOG, DE_USERS, NOW, de, de_server  # noqa: F401
from tests.test_bridge_e2e import bridge, rows

UTC = datetime.timezone.utc
APPLE = datetime.datetime(2001, 1, 1, tzinfo=UTC)
WHEN = datetime.datetime(2026, 9, 1, 18, 0, tzinfo=UTC)


def apple_seconds(when: datetime.datetime) -> float:
    return (when - APPLE).total_seconds()


def sms_db(path: Path, messages: list[tuple], handles: list[str],
           chats: dict[int, list[int]] | None = None) -> Path:
    """An sms.db as iOS writes it (the columns the bridge reads, and a few it does not).

    ``messages``: (handle ROWID or 0, date as stored, is_from_me, item_type, chat ROWID);
    ``chats``: chat ROWID → handle ROWIDs.
    """
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL,
            country TEXT, service TEXT NOT NULL, uncanonicalized_id TEXT,
            person_centric_id TEXT);
        CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
            text TEXT, handle_id INTEGER DEFAULT 0, service TEXT, date INTEGER,
            is_from_me INTEGER DEFAULT 0, item_type INTEGER DEFAULT 0);
        CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL);
        CREATE TABLE chat_handle_join (chat_id INTEGER, handle_id INTEGER);
        CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER,
            message_date INTEGER DEFAULT 0);
    """)
    for n, handle in enumerate(handles, 1):
        db.execute("INSERT INTO handle (ROWID, id, service) VALUES (?, ?, 'SMS')", (n, handle))
    for chat, members in (chats or {}).items():
        db.execute("INSERT INTO chat (ROWID, guid) VALUES (?, ?)", (chat, "chat%d" % chat))
        for member in members:
            db.execute("INSERT INTO chat_handle_join VALUES (?, ?)", (chat, member))
    for n, (handle, date, from_me, item_type, chat) in enumerate(messages, 1):
        db.execute("INSERT INTO message (ROWID, guid, text, handle_id, service, date, is_from_me,"
                   " item_type) VALUES (?, ?, 'hi', ?, 'iMessage', ?, ?, ?)",
                   (n, "m%d" % n, handle, date, from_me, item_type))
        if chat:
            db.execute("INSERT INTO chat_message_join VALUES (?, ?, ?)", (chat, n, date))
    db.commit()
    db.close()
    return path


def call_db(path: Path, calls: list[tuple]) -> Path:
    """A CallHistory.storedata: (ZADDRESS as text or bytes, ZDATE, ZORIGINATED, ZANSWERED)."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE ZCALLRECORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER,
            ZANSWERED INTEGER, ZCALLTYPE INTEGER, ZORIGINATED INTEGER, ZREAD INTEGER,
            ZDATE TIMESTAMP, ZDURATION FLOAT, ZADDRESS VARCHAR, ZNAME VARCHAR,
            ZUNIQUE_ID VARCHAR);
        CREATE TABLE Z_PRIMARYKEY (Z_ENT INTEGER PRIMARY KEY, Z_NAME VARCHAR, Z_SUPER INTEGER,
            Z_MAX INTEGER);
    """)
    for n, (address, date, originated, answered) in enumerate(calls, 1):
        db.execute("INSERT INTO ZCALLRECORD (Z_PK, Z_ENT, ZANSWERED, ZCALLTYPE, ZORIGINATED, "
                   "ZDATE, ZDURATION, ZADDRESS) VALUES (?, 2, ?, 1, ?, ?, 30.0, ?)",
                   (n, answered, originated, date, address))
    db.commit()
    db.close()
    return path


def backup(folder: Path, sms: Path | None, calls: Path | None, manifest: bool = True,
           encrypted: bool = False, flat: bool = False,
           ids: tuple[str, str] = (iphone.SMS_DB[2], iphone.CALL_DB[2])) -> Path:
    """A Finder/iTunes backup folder holding ``sms`` and ``calls`` under their file IDs."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "Manifest.plist").open("wb") as f:
        plistlib.dump({"IsEncrypted": encrypted, "Version": "10.0",
                       "Lockdown": {"ProductVersion": "17.5"}}, f, fmt=plistlib.FMT_BINARY)
    if manifest:
        db = sqlite3.connect(folder / "Manifest.db")
        db.execute("CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT,"
                   " flags INTEGER, file BLOB)")
        for (domain, relative, _), file_id in zip((iphone.SMS_DB, iphone.CALL_DB), ids):
            db.execute("INSERT INTO Files VALUES (?, ?, ?, 1, NULL)",
                       (file_id, domain, relative))
        db.commit()
        db.close()
    for source, file_id in zip((sms, calls), ids):
        if source is None:
            continue
        target = folder / file_id if flat else folder / file_id[:2] / file_id
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
    return folder


@pytest.fixture
def phone(tmp_path) -> tuple[Path, Path]:
    """An iPhone's messages and calls with the German world's people (tests/fixtures)."""
    s = apple_seconds(WHEN)
    handles = ["+4917604069010", "+493023125011", "erin@example.org", "urn:biz:shop"]
    messages = [
        (1, int(s), 0, 0, 0),                       # Bob → me, seconds (before iOS 11)
        (1, int(s + 60) * 10 ** 9, 1, 0, 0),        # me → Bob, nanoseconds
        (1, int(s + 120) * 10 ** 9, 1, 2, 0),       # "Bob left the group": not a message
        (0, int(s + 180) * 10 ** 9, 1, 0, 1),       # me → the group Bob + Carol
        (3, int(s + 240) * 10 ** 9, 0, 0, 0),       # Erin's iMessage from her e-mail
        (4, int(s + 300) * 10 ** 9, 0, 0, 0),       # a business chat: no person
        (2, 0, 0, 0, 0),                            # no date
    ]
    sms = sms_db(tmp_path / "sms.db", messages, handles, chats={1: [1, 2]})
    calls = call_db(tmp_path / "CallHistory.storedata", [
        (b"030 23125012", s, 1, 0),                 # I called Dave (a blob, as Core Data)
        ("+49 30 23125012", s + 3600.5, 0, 1),      # Dave called, answered
        ("0049 30 23125012", s + 7200, 0, 0),       # Dave called, missed
        (b"", s + 9000, 0, 0),                      # withheld
        ("030 23125011", None, 1, 0),               # no date
    ])
    return sms, calls


def test_the_well_known_names_are_the_sha1_of_domain_and_path():
    for domain, relative, file_id in (iphone.SMS_DB, iphone.CALL_DB):
        assert hashlib.sha1(("%s-%s" % (domain, relative)).encode()).hexdigest() == file_id
    assert iphone.SMS_DB[2] == "3d0d7e5fb2ce288813306e4d4636395e047a3d28"
    assert iphone.CALL_DB[2] == "5a4935c78a5255723f707230a451d79c540d2741"


def test_sms_db_dates_in_seconds_and_nanoseconds_directions_and_groups(phone):
    sms, _ = phone
    log = read_logs([sms])
    got = [(e.number, e.time, e.direction, e.kind) for e in log.events]
    assert got == [
        ("+4917604069010", WHEN, "in", "sms"),
        ("+4917604069010", WHEN + datetime.timedelta(minutes=1), "out", "sms"),
        ("+4917604069010", WHEN + datetime.timedelta(minutes=3), "out", "sms"),
        ("+493023125011", WHEN + datetime.timedelta(minutes=3), "out", "sms"),
        ("erin@example.org", WHEN + datetime.timedelta(minutes=4), "in", "sms"),
    ]
    assert log.malformed == ["sms.db:message 7: bad date 0"]


def test_call_history_directions_blobs_and_withheld(phone):
    _, calls = phone
    log = read_logs([calls])
    assert [(e.number, e.direction, e.kind) for e in log.events] == [
        ("030 23125012", "out", "call"), ("+49 30 23125012", "in", "call"),
        ("0049 30 23125012", "missed", "call")]
    assert log.events[1].time == WHEN + datetime.timedelta(seconds=3600.5)
    assert log.withheld == 1
    assert log.malformed == ["CallHistory.storedata:call 5: bad date None"]
    counts = count_contacts(log, "DE", 6, ["call"], WHEN + datetime.timedelta(days=1)).counts
    assert counts == {"tel:+493023125012": 3}


@pytest.mark.parametrize("layout", ["manifest", "manifest, other names", "flat, no manifest"])
def test_a_backup_folder_is_found_by_its_manifest_or_the_well_known_names(phone, tmp_path,
                                                                         layout):
    sms, calls = phone
    if layout == "manifest":
        folder = backup(tmp_path / "b", sms, calls)
    elif layout == "manifest, other names":  # the manifest is what counts
        folder = backup(tmp_path / "b", sms, calls, ids=("ab" + "1" * 38, "cd" + "2" * 38))
    else:  # a backup of an iOS before 10: files flat, no Manifest.db
        folder = backup(tmp_path / "b", sms, calls, manifest=False, flat=True)
    log = read_logs([folder])
    assert len(log.events) == 8 and {e.kind for e in log.events} == {"sms", "call"}
    assert log.sources == [(folder.name, 8)]
    # Manifest.db itself names the backup too
    if layout != "flat, no manifest":
        assert len(read_logs([folder / "Manifest.db"]).events) == 8


def test_a_backup_with_only_messages_is_read(phone, tmp_path):
    sms, _ = phone
    folder = backup(tmp_path / "b", sms, None)
    assert {e.kind for e in read_logs([folder]).events} == {"sms"}


@pytest.mark.parametrize("case, words", [
    ("encrypted", "is encrypted, and the bridge reads only unencrypted ones: in Finder (or "
                  "iTunes) untick \"Encrypt local backup\""),
    ("encrypted files", "cannot be read: the backup is encrypted"),
    ("encrypted manifest", "Manifest.db cannot be read: the backup is encrypted"),
    ("no backup", "is a folder but not an iPhone backup"),
    ("empty backup", "holds neither messages (sms.db) nor calls"),
])
def test_an_unreadable_backup_is_one_line_of_advice(phone, tmp_path, case, words):
    sms, calls = phone
    folder = tmp_path / "b"
    if case == "encrypted":
        backup(folder, sms, calls, encrypted=True)
    elif case == "encrypted files":  # the plist lies, or is missing: the content tells
        backup(folder, sms, calls)
        (folder / "3d" / iphone.SMS_DB[2]).write_bytes(bytes(range(256)) * 8)
    elif case == "encrypted manifest":
        backup(folder, sms, calls)
        (folder / "Manifest.db").write_bytes(b"\x8f" * 4096)
    elif case == "no backup":
        folder.mkdir()
        (folder / "notes.txt").write_text("hello")
    else:
        backup(folder, None, None)
    with pytest.raises(BridgeError) as raised:
        read_logs([folder])
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_database_files_that_are_not_the_phones(tmp_path):
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(BridgeError, match="neither an iPhone's sms.db"):
        read_logs([other])
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(iphone.SQLITE_MAGIC + b"\xff" * 200)
    with pytest.raises(BridgeError, match="cannot be read"):
        read_logs([damaged])


def test_a_locked_database_says_to_wait_or_copy(phone):
    sms, _ = phone
    holder = sqlite3.connect(sms)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(BridgeError, match="is locked by another program"):
            read_logs([sms])
    finally:
        holder.rollback()
        holder.close()


ADB_CALLS = """\
Row: 0 _id=1, number=0176 04069010, presentation=1, date=1788285600000, duration=61, type=1, \
name=NULL, subscription_id=1
Row: 1 _id=2, number=+49 30 23125011, presentation=1, date=1788289200000, duration=0, type=3, \
name=Carol, the neighbour
Row: 2 _id=3, number=, presentation=2, date=1788292800000, duration=10, type=1, name=NULL
Row: 3 _id=4, number=030 23125012, presentation=1, date=yesterday, duration=10, type=2, name=NULL
Row: 4 _id=5, number=0049 171 3920034, presentation=1, date=1788296400000, duration=10, type=2, \
name=NULL
Row: 5 _id=6, number=030 23125013, presentation=1, date=1788296400000, duration=10, type=9, \
name=NULL
"""
ADB_SMS = """\
Row: 0 _id=7, thread_id=1, address=+4917604069010, date=1788300000000, type=2, body=see you, \
date=1, type=1
and more, address=+4930 23125099
Row: 1 _id=8, thread_id=1, address=+4917604069010, date=1788300100000, type=3, body=draft
Row: 2 _id=9, thread_id=1, address=+4917604069010, date=1788300200000, type=1, body=ok
"""


def test_adb_call_log_and_messages(tmp_path):
    calls = tmp_path / "calls.txt"
    calls.write_text(ADB_CALLS)
    log = read_logs([calls])
    at = datetime.datetime.fromtimestamp(1788285600, UTC)
    assert [(e.number, e.direction, e.kind) for e in log.events] == [
        ("0176 04069010", "in", "call"), ("+49 30 23125011", "missed", "call"),
        ("0049 171 3920034", "out", "call")]
    assert log.events[0].time == at
    assert log.withheld == 1
    assert log.malformed == ["calls.txt:4: bad date 'yesterday'", "calls.txt:6: unknown type '9'"]
    sms = tmp_path / "sms.txt"
    sms.write_text(ADB_SMS)
    log = read_logs([sms])
    # a body spanning lines, with "date=" and "type=" in it, changes no field; a draft is
    # not counted
    assert [(e.number, e.direction, e.time.timestamp()) for e in log.events] == [
        ("+4917604069010", "out", 1788300000), ("+4917604069010", "in", 1788300200)]


def test_adb_with_no_rows_is_an_empty_log(tmp_path):
    empty = tmp_path / "calls.txt"
    empty.write_text("No result found.\n")
    log = read_logs([empty])
    assert log.events == [] and log.sources == [("calls.txt", 0)]


def test_an_iphone_backup_selects_like_the_android_export(de, phone, tmp_path):  # noqa: F811
    sms, calls = phone
    folder = backup(tmp_path / "00008110-001A2B3C4D5E6F70", sms, calls)
    code, out = bridge("select", "frequent:2", "--log", str(folder), *NOW)
    assert code == 0, out
    # Bob: 3 messages; Carol: 1 message (below 2); Dave: 3 calls
    assert sorted(rows(out)) == ["Bob", "Dave"]
    assert "bob" in rows(out)["Bob"] and "dave" in rows(out)["Dave"]
    assert set(DE_USERS) >= {"bob", "dave"}


# -- a log without its messages or its calls (issue 13, section 4) ------------------------
def test_a_backup_without_messages_names_what_is_missing(phone, tmp_path):
    _, calls = phone
    absent = read_logs([backup(tmp_path / "absent", None, calls)])
    # "Messages in iCloud": the backup holds an sms.db with no messages in it
    empty = sms_db(tmp_path / "empty-sms.db", [], [])
    icloud = read_logs([backup(tmp_path / "icloud", empty, calls)])
    for log, folder in ((absent, "absent"), (icloud, "icloud")):
        assert log.lacking(["call", "sms"]) == ["sms"]
        assert log.missing == {"sms": "the iPhone backup %s holds no messages: with \"Messages "
                                      "in iCloud\" on (Settings, your name, iCloud) the phone "
                                      "keeps them in iCloud, not in its backups" % folder}
    sms, _ = phone
    only_messages = read_logs([backup(tmp_path / "texts", sms, None)])
    assert only_messages.missing == {
        "call": "the iPhone backup texts holds no call history (CallHistory.storedata)"}
    assert read_logs([backup(tmp_path / "both", sms, calls)]).missing == {}


def test_counting_without_the_messages_warns_what_the_counts_mean(de, phone, tmp_path,  # noqa: F811
                                                                  capsys):
    sms, calls = phone
    folder = backup(tmp_path / "icloud", sms_db(tmp_path / "empty.db", [], []), calls)
    code, out = bridge("select", "frequent:2", "--log", str(folder), *NOW)
    assert code == 0 and sorted(rows(out)) == ["Dave"]  # the caller only: Bob texts
    err = capsys.readouterr().err
    assert "warning: the iPhone backup icloud holds no messages: with \"Messages in iCloud\" " \
           "on" in err
    assert "frequent:N counted calls only, so people you only write to are not counted (add " \
           "a --log with the messages, or --kinds call to count calls on purpose)" in err
    # counting calls on purpose: no warning
    code, out = bridge("select", "frequent:2", "--log", str(folder), "--kinds", "call", *NOW)
    assert code == 0 and "holds no messages" not in capsys.readouterr().err
    # counting only the part that is missing: nothing can be counted, one line says why
    assert bridge("select", "frequent:2", "--log", str(folder), "--kinds", "sms", *NOW)[0] == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no messages" in err \
        and "--kinds sms counts nothing; add a --log with the messages" in err


def test_counting_without_the_calls_warns_too(de, phone, tmp_path, capsys):  # noqa: F811
    sms, _ = phone
    code, out = bridge("select", "frequent:2", "--log",
                       str(backup(tmp_path / "texts", sms, None)), *NOW)
    assert code == 0 and sorted(rows(out)) == ["Bob"]
    err = capsys.readouterr().err
    assert "warning: the iPhone backup texts holds no call history (CallHistory.storedata); " \
           "frequent:N counted messages only, so people you only call are not counted" in err


def test_an_android_calls_file_alone_says_the_messages_are_not_counted(de, capsys):  # noqa: F811
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, *NOW)
    assert code == 0 and len(rows(out)) == 4
    assert "warning: the log (de-calls.xml) holds no messages; frequent:N counted calls " \
           "only" in capsys.readouterr().err
