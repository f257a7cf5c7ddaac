# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's storage on PostgreSQL answers clients exactly as the file storage does.

Every test runs on both backends (``file``: stock ``multifilesystem``; ``postgresql``:
``radicale_plugin.storage.postgres.plain`` on a fresh database of the test cluster), through a
real, stock Radicale process (its own launcher, its own web UI: the plain storage,
without the sharing), with raw DAV requests and with real clients (vdirsyncer, the
caldav library).  Two processes on one database see each other's writes and tokens.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

import caldav
import pytest
import requests

from tests import zygote
from tests.conftest import USERS
from tests.server import DAV, Client, RadicaleServer

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
BACKENDS = ("file", "postgresql")
CS = "{http://calendarserver.org/ns/}"


class PlainServer(RadicaleServer):
    """Stock Radicale on a plain storage: the file one, or PostgreSQL at ``dsn``.

    RadicaleServer's config with the storage and web types swapped and the sharing's
    options left out (stock ``multifilesystem`` refuses options it does not know).
    """

    def __init__(self, root: Path, users: dict[str, str], dsn: Optional[str],
                 **options: str) -> None:
        super().__init__(root, users, mecard_smtp_host="", mecard_sms_command="", **options)
        config = root / "config"
        lines = [ln for ln in config.read_text().splitlines() if not ln.startswith("mecard_")]
        storage = ("type = multifilesystem" if dsn is None else
                   "type = radicale_plugin.storage.postgres.plain\npostgresql_dsn = %s" % dsn)
        text = "\n".join(lines) + "\n"
        assert "type = radicale_plugin.storage\n" in text
        text = text.replace("type = radicale_plugin.storage\n", storage + "\n")
        text = text.replace("type = radicale_plugin.web\n", "type = internal\n")
        config.write_text(text)
        self.launcher = "radicale"


@pytest.fixture(params=BACKENDS)
def dsn(request) -> Optional[str]:
    """None for the file backend, else a fresh PostgreSQL database."""
    if request.param == "file":
        return None
    return request.getfixturevalue("postgres").new_database("storage")


@pytest.fixture
def dav(dsn, tmp_path) -> Iterator[PlainServer]:
    srv = PlainServer(tmp_path, USERS, dsn).start()
    yield srv
    srv.stop()


def card(uid: str, name: str, extra: str = "") -> str:
    return ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nN:%s;;;;\r\n%sEND:VCARD\r\n"
            % (uid, name, name, extra))


def event(uid: str, day: str, summary: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            "UID:%s\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:%sT100000Z\r\nDTEND:%sT110000Z\r\n"
            "SUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n" % (uid, day, day, summary))


def etag_of(text: str) -> str:
    return '"%s"' % hashlib.sha256(text.encode()).hexdigest()


def person(server: RadicaleServer, user: str) -> Client:
    client = server.client(user)
    client.login()
    return client


def raw_sync(client: Client, token: str, book: str = "contacts") -> requests.Response:
    body = ("<?xml version='1.0'?><D:sync-collection xmlns:D='DAV:'>"
            "<D:sync-token>%s</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>" % token)
    return client.http.request("REPORT", client.url + client.book(book), data=body,
                               headers={"Content-Type": "application/xml"})


def statuses(response: requests.Response) -> dict[str, str]:
    """href (last part) -> the status line of each response of a multistatus."""
    out = {}
    for answer in ET.fromstring(response.content).iter(DAV + "response"):
        href = (answer.findtext(DAV + "href") or "").rstrip("/").rsplit("/", 1)[1]
        out[href] = answer.findtext(DAV + "status") or answer.findtext(
            ".//" + DAV + "status") or ""
    return out


def propfind(client: Client, path: str, depth: str, prop: str) -> ET.Element:
    r = client.http.request("PROPFIND", client.url + path, headers={"Depth": depth},
                            data="<D:propfind xmlns:D='DAV:' xmlns:CS='http://calendarserver."
                                 "org/ns/'><D:prop>%s</D:prop></D:propfind>" % prop)
    assert r.status_code == 207, r.text
    return ET.fromstring(r.content)


# -- items: PUT, GET, DELETE, MOVE, preconditions ------------------------------------------
def test_a_card_is_stored_read_replaced_and_deleted_with_its_etag(dav):
    alice = person(dav, "alice")
    text = card("c1", "Bob")
    r = alice.put("c1.vcf", text)
    assert r.status_code == 201 and r.headers["ETag"] == etag_of(text)
    got = alice.get("c1.vcf")
    assert got.text == text and got.headers["ETag"] == etag_of(text)
    assert alice.put("c1.vcf", card("c1", "Late"), **{"If-None-Match": "*"}).status_code == 412
    assert alice.put("c1.vcf", card("c1", "Stale"), **{"If-Match": '"nope"'}).status_code == 412
    newer = card("c1", "Bobby")
    r = alice.put("c1.vcf", newer, **{"If-Match": etag_of(text)})
    assert r.status_code in (200, 204) and r.headers["ETag"] == etag_of(newer)
    assert alice.card("c1.vcf") == newer
    url = alice.url + alice.book() + "c1.vcf"
    assert alice.http.delete(url, headers={"If-Match": etag_of(text)}).status_code == 412
    assert alice.http.delete(url, headers={"If-Match": etag_of(newer)}).status_code == 200
    assert alice.get("c1.vcf").status_code == 404
    assert alice.http.delete(url).status_code == 404
    # a UID lives once per book: the same UID at another href is a conflict
    assert alice.put("c2.vcf", card("u2", "Carol")).status_code == 201
    assert alice.put("other.vcf", card("u2", "Carol")).status_code == 409


def test_cards_move_within_and_between_books_and_sync_sees_both_ends(dav):
    alice = person(dav, "alice")
    alice.mkbook("work")
    alice.put("a.vcf", card("a", "Ann"))
    alice.put("b.vcf", card("b", "Ben"))
    token, _ = alice.sync()
    work_token, _ = alice.sync(book="work")

    def move(href: str, to: str, overwrite: str = "F") -> int:
        return alice.http.request("MOVE", alice.url + alice.book() + href, headers={
            "Destination": alice.url + to, "Overwrite": overwrite}).status_code

    assert move("a.vcf", alice.book() + "ann.vcf") == 201
    assert alice.get("a.vcf").status_code == 404 and "Ann" in alice.card("ann.vcf")
    assert alice.sync(token)[1] == ["a.vcf", "ann.vcf"]
    assert move("b.vcf", alice.book("work") + "ben.vcf") == 201
    assert alice.hrefs() == ["ann.vcf"] and alice.hrefs("work") == ["ben.vcf"]
    assert alice.sync(work_token, book="work")[1] == ["ben.vcf"]
    assert alice.card("ben.vcf", "work") == card("b", "Ben")
    # onto an existing card: refused without Overwrite; another UID is a conflict
    alice.put("c.vcf", card("c", "Cy"), book="work")
    assert move("ann.vcf", alice.book("work") + "c.vcf") == 412
    assert move("ann.vcf", alice.book("work") + "c.vcf", "T") == 409
    assert alice.hrefs() == ["ann.vcf"]


def test_the_ctag_moves_with_every_change_and_not_with_the_same_text(dav):
    alice = person(dav, "alice")
    first = alice.ctag()
    alice.put("a.vcf", card("a", "Ann"))
    after_put = alice.ctag()
    token, _ = alice.sync()
    assert after_put != first
    # the same text again: no change for clients (no download, no new token)
    assert alice.put("a.vcf", card("a", "Ann")).status_code in (201, 204)
    assert alice.ctag() == after_put and alice.sync(token) == (token, [])
    patch = ("<?xml version='1.0'?><D:propertyupdate xmlns:D='DAV:'><D:set><D:prop>"
             "<D:displayname>Friends</D:displayname></D:prop></D:set></D:propertyupdate>")
    assert alice.http.request("PROPPATCH", alice.url + alice.book(),
                              data=patch).status_code == 207
    after_patch = alice.ctag()
    assert after_patch != after_put
    alice.http.delete(alice.url + alice.book() + "a.vcf")
    assert alice.ctag() not in (after_patch, after_put, first)


# -- sync-collection (RFC 6578) ---------------------------------------------------------------
def test_sync_collection_lists_new_changed_and_deleted_cards_since_a_token(dav):
    alice = person(dav, "alice")
    for uid in ("a", "b", "c"):
        alice.put(uid + ".vcf", card(uid, uid.upper()))
    token, initial = alice.sync()
    assert initial == ["a.vcf", "b.vcf", "c.vcf"]
    assert alice.sync(token) == (token, [])
    alice.put("a.vcf", card("a", "Ann"))
    alice.http.delete(alice.url + alice.book() + "b.vcf")
    alice.put("d.vcf", card("d", "Dee"))
    later, changed = alice.sync(token)
    assert later != token and changed == ["a.vcf", "b.vcf", "d.vcf"]
    answer = statuses(raw_sync(alice, token))
    assert "404" in answer["b.vcf"] and "200" in answer["a.vcf"]
    # a token stays valid after later changes: both answers are as of their token
    alice.put("c.vcf", card("c", "Cid"))
    assert alice.sync(later)[1] == ["c.vcf"]
    assert alice.sync(token)[1] == ["a.vcf", "b.vcf", "c.vcf", "d.vcf"]


def test_an_unknown_token_is_refused_as_invalid(dav):
    alice = person(dav, "alice")
    alice.mkbook("work")
    alice.put("a.vcf", card("a", "Ann"))
    alice.put("w.vcf", card("w", "Wes"), book="work")
    work_token, _ = alice.sync(book="work")
    for token in ("http://radicale.org/ns/sync/" + "0" * 64, "garbage",
                  "http://radicale.org/ns/sync/x-1", work_token):
        r = raw_sync(alice, token)
        assert r.status_code == 403 and "valid-sync-token" in r.text, (token, r.text)
    # a book deleted and made again: the old book's tokens are no more
    assert alice.http.delete(alice.url + alice.book("work")).status_code == 200
    alice.mkbook("work")
    r = raw_sync(alice, work_token, "work")
    assert r.status_code == 403 and "valid-sync-token" in r.text
    assert alice.sync(book="work")[1] == []  # positive control: a fresh sync works


def test_sync_tokens_survive_a_restart_of_the_server(dav):
    alice = person(dav, "alice")
    alice.put("a.vcf", card("a", "Ann"))
    token, _ = alice.sync()
    dav.stop(sink=False)  # the same server again, its SMTP sink kept
    dav.start()
    alice.put("b.vcf", card("b", "Ben"))
    assert alice.sync(token)[1] == ["b.vcf"]


def test_a_token_older_than_the_remembered_deletions_is_refused(dsn, tmp_path):
    """Deletions are remembered ``max_sync_token_age`` seconds: a token from before a
    forgotten one can no longer be answered exactly; a fresh token works."""
    server = PlainServer(tmp_path, USERS, dsn, max_sync_token_age="1").start()
    try:
        alice = person(server, "alice")
        for uid in ("a", "b", "c"):
            alice.put(uid + ".vcf", card(uid, uid.upper()))
        old, _ = alice.sync()
        alice.http.delete(alice.url + alice.book() + "a.vcf")
        recent, _ = alice.sync()
        time.sleep(2.5)
        alice.http.delete(alice.url + alice.book() + "b.vcf")  # a's deletion is forgotten
        answers = [raw_sync(alice, old) for _ in range(2)]  # the file storage: at the 2nd
        assert answers[-1].status_code == 403 and "valid-sync-token" in answers[-1].text
        if dsn is not None:  # PostgreSQL: a token after the forgotten deletion still works
            assert alice.sync(recent)[1] == ["b.vcf"]
        fresh, _ = alice.sync()
        alice.put("d.vcf", card("d", "Dee"))
        assert alice.sync(fresh)[1] == ["d.vcf"]
    finally:
        server.stop()


# -- collections: PROPFIND, MKCOL, PROPPATCH, PUT of a whole book ---------------------------
def test_propfind_depth_1_lists_the_books_and_the_cards_with_their_etags(dav):
    alice = person(dav, "alice")
    alice.mkbook("work")
    texts = {"a.vcf": card("a", "Ann"), "b.vcf": card("b", "Ben")}
    for href, text in texts.items():
        alice.put(href, text)
    home = propfind(alice, "/alice/", "1", "<D:resourcetype/>")
    found = sorted(h.text for h in home.iter(DAV + "href") if h.text)
    assert found == ["/alice/", "/alice/contacts/", "/alice/work/"]
    book = propfind(alice, alice.book(), "1", "<D:getetag/>")
    etags = {r.findtext(DAV + "href").rsplit("/", 1)[1]: r.findtext(".//" + DAV + "getetag")
             for r in book.iter(DAV + "response")}
    assert {k: v for k, v in etags.items() if k} == {h: etag_of(t) for h, t in texts.items()}
    only = propfind(alice, alice.book(), "0", "<D:getetag/>")
    assert len(list(only.iter(DAV + "response"))) == 1


def test_mkcol_extended_mkcol_mkcalendar_and_proppatch(dav):
    alice = person(dav, "alice")
    url = alice.url + "/alice/"
    body = ("<?xml version='1.0'?><D:mkcol xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:"
            "carddav'><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/>"
            "</D:resourcetype><D:displayname>Family</D:displayname></D:prop></D:set>"
            "</D:mkcol>")
    assert alice.http.request("MKCOL", url + "family/", data=body).status_code == 201
    assert alice.http.request("MKCOL", url + "family/", data=body).status_code == 405
    assert alice.http.request("MKCALENDAR", url + "cal/").status_code == 201
    shown = propfind(alice, "/alice/family/", "0", "<D:displayname/><D:resourcetype/>")
    assert shown.findtext(".//" + DAV + "displayname") == "Family"
    assert shown.find(".//{urn:ietf:params:xml:ns:carddav}addressbook") is not None
    cal = propfind(alice, "/alice/cal/", "0", "<D:resourcetype/>")
    assert cal.find(".//{urn:ietf:params:xml:ns:caldav}calendar") is not None
    patch = ("<?xml version='1.0'?><D:propertyupdate xmlns:D='DAV:'><D:set><D:prop>"
             "<D:displayname>Kin</D:displayname></D:prop></D:set><D:remove><D:prop>"
             "<D:nothing/></D:prop></D:remove></D:propertyupdate>")
    assert alice.http.request("PROPPATCH", url + "family/", data=patch).status_code == 207
    assert propfind(alice, "/alice/family/", "0", "<D:displayname/>").findtext(
        ".//" + DAV + "displayname") == "Kin"
    # a card can go into the book made by extended MKCOL
    assert alice.put("k.vcf", card("k", "Kim"), book="family").status_code == 201
    # deleting a home's book takes its cards with it
    assert alice.http.delete(url + "family/").status_code == 200
    assert alice.get("k.vcf", "family").status_code == 404


def test_a_whole_book_is_put_at_once_and_replaced(dav):
    alice = person(dav, "alice")
    url = alice.url + "/alice/imported/"
    whole = card("x1", "Xena") + card("x2", "Xavier")
    r = alice.http.put(url, data=whole.encode(), headers={"Content-Type": "text/vcard"})
    assert r.status_code == 201, r.text
    assert alice.hrefs("imported") == ["x1.vcf", "x2.vcf"]
    assert alice.card("x2.vcf", "imported") == card("x2", "Xavier")
    token, _ = alice.sync(book="imported")
    got = alice.http.get(url)
    assert got.status_code == 200 and "Xena" in got.text and "Xavier" in got.text
    r = alice.http.put(url, data=card("x2", "Xavi").encode(),
                       headers={"Content-Type": "text/vcard"})
    assert r.status_code in (201, 204), r.text
    assert alice.hrefs("imported") == ["x2.vcf"]
    assert "Xavi\r\n" in alice.card("x2.vcf", "imported")
    # a replaced book starts a new history: its old tokens are refused, a fresh sync works
    assert raw_sync(alice, token, "imported").status_code == 403
    assert alice.sync(book="imported")[1] == ["x2.vcf"]


# -- real clients ------------------------------------------------------------------------------
def test_vdirsyncer_syncs_both_ways(dav, tmp_path):
    alice = person(dav, "alice")
    alice.put("a.vcf", card("a", "Ann"))
    alice.put("b.vcf", card("b", "Ben"))
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(f"""
[general]
status_path = "{tmp_path / 'status'}/"

[pair contacts]
a = "local"
b = "remote"
collections = null
conflict_resolution = "b wins"

[storage local]
type = "filesystem"
path = "{local}/"
fileext = ".vcf"

[storage remote]
type = "carddav"
url = "{dav.url}/alice/contacts/"
username = "alice"
password = "alice-pw"
""")

    def sync(*commands: str) -> dict[str, str]:
        for command in commands or ("sync",):
            done = subprocess.run([str(VDIRSYNCER), "-c", str(config), command],
                                  capture_output=True, text=True, timeout=120, input="")
            assert done.returncode == 0, done.stdout + done.stderr
        return {p.name: p.read_text() for p in local.glob("*.vcf")}

    files = sync("discover", "sync")
    assert sorted("FN:Ann" in t or "FN:Ben" in t for t in files.values()) == [True, True]
    # the server changes one card and deletes the other; the phone adds one
    alice.put("a.vcf", card("a", "Annie"))
    alice.http.delete(alice.url + alice.book() + "b.vcf")
    (local / "new.vcf").write_text(card("n", "Nina"))
    files = sync()
    texts = sorted(files.values())
    assert any("FN:Annie" in t for t in texts) and not any("FN:Ben" in t for t in texts)
    assert any("FN:Nina" in t for t in texts)
    on_server = [alice.card(h) for h in alice.hrefs()]
    assert sorted(t.split("FN:")[1].split("\r")[0].split("\n")[0] for t in on_server) == \
        ["Annie", "Nina"]
    # the phone edits Annie: the server gets it on the next sync
    mine = next(p for p in local.glob("*.vcf") if "FN:Annie" in p.read_text())
    mine.write_text(mine.read_text().replace("FN:Annie", "FN:Anne"))
    sync()
    assert "FN:Anne\r\n" in alice.card("a.vcf")


def test_the_caldav_library_keeps_a_calendar(dav):
    person(dav, "alice")
    client = caldav.DAVClient(url=dav.url + "/alice/", username="alice", password="alice-pw")
    calendar = client.principal().make_calendar(name="Work", cal_id="work")
    calendar.save_event(event("e1", "20270105", "Standup"))
    calendar.save_event(event("e2", "20270320", "Review"))
    found = calendar.search(start=datetime(2027, 1, 1), end=datetime(2027, 2, 1), event=True)
    assert ["Standup" in e.data for e in found] == [True]
    assert len(calendar.events()) == 2
    result = calendar.objects_by_sync_token(load_objects=False)
    token = result.sync_token
    review = calendar.event_by_uid("e2")
    review.data = review.data.replace("SUMMARY:Review", "SUMMARY:Retro")
    review.save()
    calendar.event_by_uid("e1").delete()
    changed = calendar.objects_by_sync_token(sync_token=token, load_objects=False)
    assert changed.sync_token != token
    assert sorted(str(o.url).rsplit("/", 1)[1] for o in changed) == ["e1.ics", "e2.ics"]
    assert [e.data.count("SUMMARY:Retro") for e in calendar.events()] == [1]


# -- several processes on one database ------------------------------------------------------
def test_two_processes_on_one_database_see_each_others_cards_and_tokens(postgres, tmp_path):
    dsn = postgres.new_database("storage")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = PlainServer(tmp_path / "a", USERS, dsn).start()
    b = PlainServer(tmp_path / "b", USERS, dsn).start()
    try:
        alice_a, alice_b = person(a, "alice"), person(b, "alice")
        alice_a.put("a.vcf", card("a", "Ann"))
        token, hrefs = alice_b.sync()
        assert hrefs == ["a.vcf"] and alice_b.card("a.vcf") == card("a", "Ann")
        assert alice_a.sync() == (token, ["a.vcf"])  # one token, whichever process answers
        assert alice_a.ctag() == alice_b.ctag()
        alice_b.put("b.vcf", card("b", "Ben"))
        later, changed = alice_a.sync(token)
        assert changed == ["b.vcf"] and later != token
        assert alice_b.sync(token) == (later, ["b.vcf"])
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_puts_with_one_if_match_make_exactly_one_winner(backend, request,
                                                                     tmp_path):
    """No lost update: of twelve writers holding the same ETag, one wins, on one file
    server or across two processes on one database."""
    dsn = request.getfixturevalue("postgres").new_database("storage") \
        if backend == "postgresql" else None
    servers = []
    for name in ("a", "b") if dsn else ("a",):
        (tmp_path / name).mkdir()
        servers.append(PlainServer(tmp_path / name, USERS, dsn).start())
    try:
        clients = [person(s, "alice") for s in servers]
        first = card("a", "Ann")
        clients[0].put("a.vcf", first)
        codes: list[int] = []
        barrier = threading.Barrier(12)

        def writer(n: int) -> None:
            client = Client(servers[n % len(servers)].url, "alice", USERS["alice"])
            barrier.wait()
            r = client.put("a.vcf", card("a", "Writer %d" % n), **{"If-Match": etag_of(first)})
            codes.append(r.status_code)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(codes) == sorted([204] + [412] * 11), codes
        assert "Writer" in clients[-1].card("a.vcf")
    finally:
        for s in servers:
            s.stop()


def test_a_missing_or_unreachable_database_is_one_clear_line(tmp_path):
    for name, dsn, said in (("empty", "", "postgresql_dsn is empty"),
                            ("down", "host=127.0.0.1 port=1 dbname=x user=x",
                             "cannot reach the PostgreSQL storage database")):
        (tmp_path / name).mkdir()
        server = PlainServer(tmp_path / name, USERS, dsn)
        with pytest.raises(RuntimeError) as failed:
            server.start()
        server.stop()
        assert said in str(failed.value)
        assert [ln for ln in str(failed.value).splitlines() if said in ln][0].count(
            "[storage] postgresql_dsn") == 1


def test_cards_written_through_the_item_api_reach_clients_as_one_transaction(postgres,
                                                                              tmp_path):
    """The API the fan-out's copy writer uses (``storage/postgres/items.py``), from another
    process: a write is seen by clients as a PUT would be; a rolled back one never."""
    from radicale_plugin.storage.postgres import items
    from radicale_plugin.storage.postgres.connection import database_for, forget

    dsn = postgres.new_database("storage")
    server = PlainServer(tmp_path, USERS, dsn).start()
    db = database_for(dsn)
    try:
        alice = person(server, "alice")
        alice.put("a.vcf", card("a", "Ann"))
        token, _ = alice.sync()
        assert items.books(db, "alice") == ["alice/contacts"]
        with db.transaction():
            etag = items.write(db, "alice/contacts", "copy.vcf", card("c", "Copy"), uid="c")
            assert items.read(db, "alice/contacts", "copy.vcf") == (card("c", "Copy"), etag)
        assert etag == etag_of(card("c", "Copy"))
        assert alice.get("copy.vcf").headers["ETag"] == etag
        later, changed = alice.sync(token)
        assert changed == ["copy.vcf"]
        # the same text again: nothing written, nothing for clients to fetch
        items.write(db, "alice/contacts", "copy.vcf", card("c", "Copy"))
        assert alice.sync(later) == (later, [])
        assert items.find_uid(db, "alice/contacts", "c") == "copy.vcf"
        # a transaction that fails takes its card with it
        with pytest.raises(RuntimeError), db.transaction():
            items.write(db, "alice/contacts", "gone.vcf", card("g", "Gone"))
            raise RuntimeError("the delivery record could not be written")
        assert alice.get("gone.vcf").status_code == 404 and alice.sync(later)[1] == []
        assert items.delete(db, "alice/contacts", "copy.vcf")
        assert alice.sync(later)[1] == ["copy.vcf"] and alice.get("copy.vcf").status_code == 404
        with pytest.raises(LookupError):
            items.write(db, "alice/nobook", "x.vcf", card("x", "X"))
        for href in ("../a.vcf", ".hidden.vcf", "a/b.vcf"):
            with pytest.raises(ValueError):
                items.write(db, "alice/contacts", href, card("x", "X"))
        assert alice.hrefs() == ["a.vcf"]
    finally:
        forget(dsn)
        server.stop()


def test_radicale_verifies_the_storage(dsn, tmp_path):
    # broken items are errors here, not skipped with a warning (Radicale's default)
    dav = PlainServer(tmp_path, USERS, dsn, skip_broken_item="False").start()
    try:
        alice = person(dav, "alice")
        alice.put("a.vcf", card("a", "Ann"))
        alice.http.request("MKCALENDAR", alice.url + "/alice/cal/")
        assert alice.http.put(alice.url + "/alice/cal/e.ics",
                              data=event("e", "20270101", "X"),
                              headers={"Content-Type": "text/calendar"}).status_code == 201
    finally:
        dav.stop()

    def verify() -> subprocess.CompletedProcess:
        return zygote.run([sys.executable, "-m", "radicale", "--config",
                           str(dav.root / "config"), "--verify-storage"])

    done = verify()
    assert done.returncode == 0 and "Verifying storage" in done.stderr, done.stderr
    # a card damaged behind Radicale's back fails the verification
    broken = "BEGIN:VCARD\r\nthis is not a card\r\n"
    if dsn is None:
        (dav.root / "collections" / "collection-root" / "alice" / "contacts" / "a.vcf"
         ).write_text(broken)
    else:
        import psycopg
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE dav_items SET text = %s WHERE href = 'a.vcf'", (broken,))
    done = verify()
    assert done.returncode == 1, done.stderr


def test_a_whole_book_that_fails_half_way_leaves_the_book_as_it_was(postgres):
    """Radicale answers a ValueError of ``create_collection`` with 400 inside the request's
    transaction, which then commits: the half-replaced book must not be what commits."""
    import radicale.item as radicale_item
    from radicale import config

    from radicale_plugin.storage.postgres.plain import Storage
    from radicale_plugin.storage.postgres.connection import forget

    dsn = postgres.new_database("storage")
    configuration = config.load([])
    configuration.update({"storage": {"type": "radicale_plugin.storage.postgres.plain",
                                      "postgresql_dsn": dsn}}, "test")
    store = Storage(configuration)
    try:
        props = {"tag": "VADDRESSBOOK"}
        good = radicale_item.Item(collection_path="alice/book", text=card("g", "Good"))
        with store.acquire_lock("w", "alice", path="/alice/book/"):
            store.create_collection("/alice/", props=None)
            store.create_collection("/alice/book/", [good], props)
        bad = radicale_item.Item(collection_path="alice/book", text=card("b", "Bad\x00"))
        with store.acquire_lock("w", "alice", path="/alice/book/"):
            with pytest.raises(ValueError):
                store.create_collection("/alice/book/", [good, bad], {**props, "x": "1"})
        with store.acquire_lock("r", "alice"):
            book = next(iter(store.discover("/alice/book/")))
            assert book.get_meta() == props
            assert [i.href for i in book.get_all()] == ["g.vcf"]
    finally:
        forget(dsn)


def test_a_batch_of_items_is_written_as_each_write_would_be(postgres, tmp_path):
    """``items.put_many`` (the fan-out's copies of a part, one statement): each changed
    card of each book is one numbered change that an incremental sync lists, a card
    written with the text it has is no change, an href given twice is written twice in
    order; ``items.lock`` takes the locks of many books at once."""
    from radicale_plugin.storage.postgres import items
    from radicale_plugin.storage.postgres.connection import database_for, forget

    dsn = postgres.new_database("storage")
    server = PlainServer(tmp_path, USERS, dsn).start()
    db = database_for(dsn)
    try:
        alice, bob = person(server, "alice"), person(server, "bob")
        alice.put("same.vcf", card("s", "Same"))
        bob.put("b.vcf", card("b", "Bob"))
        tokens = {"alice": alice.sync()[0], "bob": bob.sync()[0]}
        before = {u: items.book(db, u + "/contacts") for u in ("alice", "bob")}
        with db.transaction():
            items.lock(db, "bob/contacts", "alice/contacts", "carol/nobook")
            a, b = before["alice"].id, before["bob"].id  # type: ignore[union-attr]
            rows = [(a, items.facts("alice/contacts", "new.vcf", card("n", "New"),
                                    "VADDRESSBOOK", "n")),
                    (a, items.facts("alice/contacts", "same.vcf", card("s", "Same"),
                                    "VADDRESSBOOK", "s")),  # the text it has: no change
                    (b, items.facts("bob/contacts", "b.vcf", card("b", "Bobby"),
                                    "VADDRESSBOOK", "b")),
                    (b, items.facts("bob/contacts", "b.vcf", card("b", "Robert"),
                                    "VADDRESSBOOK", "b"))]  # the same href again: last wins
            numbers = items.put_many(db, rows)
        assert numbers == {a: before["alice"].sync + 1,  # type: ignore[union-attr]
                           b: before["bob"].sync + 2}  # type: ignore[union-attr]
        for user in ("alice", "bob"):
            assert items.book(db, user + "/contacts").sync == numbers[  # type: ignore[union-attr]
                before[user].id]  # type: ignore[union-attr]
        assert alice.sync(tokens["alice"])[1] == ["new.vcf"]
        assert bob.sync(tokens["bob"])[1] == ["b.vcf"]
        assert alice.get("new.vcf").headers["ETag"] == etag_of(card("n", "New"))
        assert bob.get("b.vcf").text.replace("\r\n", "\n").strip() == \
            card("b", "Robert").replace("\r\n", "\n").strip()
        assert items.find_uid(db, "alice/contacts", "n") == "new.vcf"
        # nothing to change at all: no statement's worth of changes
        with db.transaction():
            assert items.put_many(db, [rows[1]]) == {}
    finally:
        forget(dsn)
        server.stop()
