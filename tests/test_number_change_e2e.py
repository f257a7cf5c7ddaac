# SPDX-License-Identifier: GPL-3.0-or-later
"""Changing your number must never cut your people off (issue 13, section 1).

The way it happens, with the shipped configuration: policy ``ask``, discoverability
``contacts``, nobody pre-authorised (``public_server``), or the shipped example's
pre-authorised *group* (``family_group``; never ``*``).  Bob knows Alice only by her verified
number (or e-mail); his card for her is linked and delivered.  Alice puts a new number on her
me card and does not verify it: Bob's copy gets it, so his books no longer carry any verified
key of hers — and under ``contacts`` that used to drop him from her targets for good.  Now the
link keeps him (:mod:`radicale_plugin.consent.keeping`): every later change reaches him, Alice is told
that the new number is not verified, and anyone dropped from her targets is listed in
``skipped`` with the reason.  Bob's phone is vdirsyncer in the main case.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main as bridge_main
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")

OLD_NUMBER, NEW_NUMBER = "+1 202 555 0101", "+49 151 11112222"
OLD_EMAIL, NEW_EMAIL = "alice@example.org", "alice@new.example"
#: The three changes after the new key: a family name, a second number, a second e-mail.
#: (Not FN: the recipient's own name for a contact is his to keep.)
LATER = [("N", "Archer-Berg;Alice;;;"), ("TEL;TYPE=WORK", "+49 30 1234567"),
         ("EMAIL;TYPE=WORK", "alice@work.example")]
HOWS = ["accepted", "linked", "family"]
#: Alice's contact for Bob.  In international form: a German number on her me card makes
#: her region DE, and national US forms in her book would then no longer be Bob's number.
ALICES_BOB = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-contact-bob\r\nFN:Bob\r\n"
              "N:;Bob;;;\r\nTEL;TYPE=CELL:+1 202-555-0102\r\nCATEGORIES:Family\r\nEND:VCARD\r\n")


def vcard(uid: str, *lines: str) -> str:
    return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\n%sEND:VCARD\r\n" % (
        uid, "".join(line + "\r\n" for line in lines))


def me_card(keys: list[str], later: int = 0) -> str:
    """Alice's me card with these keys and the first ``later`` of the later changes."""
    fields = {"FN": "Alice Archer", "N": "Archer;Alice;;;"}
    extra = []
    for name, value in LATER[:later]:
        if name in fields:
            fields[name] = value
        else:
            extra.append("%s:%s" % (name, value))
    return vcard("alice-me", "FN:" + fields["FN"], "N:" + fields["N"], *keys, *extra)


def keys_of(what: str, new: bool) -> list[str]:
    """Alice's keys on her me card: her number, her e-mail, or both; old or new."""
    number = "TEL;TYPE=CELL:" + (NEW_NUMBER if new else OLD_NUMBER)
    email = "EMAIL:" + (NEW_EMAIL if new else OLD_EMAIL)
    return {"number": [number], "email": [email], "both": [number, email]}[what]


def bobs_card_for_alice(what: str, how: str) -> str:
    """Bob's own card for Alice, with her keys as he wrote them: only those of ``what``.

    ``linked``: it already says all Alice shares (her N), so it is linked by her verified
    keys with nothing to offer, and Bob's policy stays ``ask``.
    """
    lines = {"number": ["TEL;TYPE=CELL:(202) 555-0101"], "email": ["EMAIL:Alice@Example.org"],
             "both": ["TEL;TYPE=CELL:(202) 555-0101", "EMAIL:Alice@Example.org"]}[what]
    if how == "linked":
        lines = ["N:Archer;Alice;;;"] + lines
    return vcard("bobs-alice", "FN:Ally", "NICKNAME:Sis", *lines)


@pytest.fixture
def family_group(tmp_path):
    """The shipped example's pre-authorisation: a named group (alice, bob, carol), never
    ``*``; discoverability stays the default ``contacts``."""
    srv = RadicaleServer(tmp_path, USERS, mecard_preauthorize="group:family").with_groups(
        "family: alice bob carol\n")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def shipped(request, tmp_path):
    """The server a ``how`` runs on: ``family`` the pre-authorised group, else the shipped
    defaults."""
    if request.param == "family":
        return request.getfixturevalue("family_group")
    return request.getfixturevalue("public_server")


def rows(alice: Client) -> dict[str, dict]:
    return {r["user"]: r for r in alice.api_ok("GET", "/targets")["recipients"]}


def linked_and_delivered(server: RadicaleServer, what: str, how: str,
                         rules: tuple[str, ...] = ("all",)) -> tuple[Client, Client]:
    """Alice (verified keys) shares with her contacts; Bob's card for her is linked and
    holds everything she shares."""
    alice = server.client("alice")
    alice.login()
    assert alice.put("alice.vcf", me_card(keys_of(what, new=False))).status_code == 201
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    alice.verify_me_card()
    bob = person(server, "bob", "bob-me.vcf")
    assert bob.put("ally.vcf", bobs_card_for_alice(what, how)).status_code == 201
    assert alice.put("c-bob.vcf", ALICES_BOB).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": list(rules)})
    settled(alice)
    if how == "accepted":
        # the shipped policy: Bob is asked, and takes Alice's card "from now on"
        assert rows(alice)["bob"]["state"] == "offered"
        answer = bob.api_ok("POST", "/offers/alice/accept", {})
        assert answer["policy"] == "auto"
    assert rows(alice)["bob"]["state"] == "delivered"
    (link,) = bob.api_ok("GET", "/links")["links"]
    assert link["card"] == "/bob/contacts/ally.vcf"
    assert bob.api_ok("GET", "/policies")["policies"] == (
        {"alice": "auto"} if how == "accepted" else {})
    return alice, bob


def change(alice: Client, bob: Client, text: str, how: str) -> dict:
    """Alice PUTs her me card; under ``linked`` (policy ask) Bob is asked and takes it this
    time only.  Bob is a target all along, and it is delivered."""
    assert alice.put("alice.vcf", text).status_code == 204
    report = settled(alice)
    row = next(r for r in report["recipients"] if r["user"] == "bob")
    assert row["target"] and row["reasons"] == ["all (contact Bob)"], row
    assert report["skipped"] == []
    if how == "linked":
        assert row["state"] == "offered", row
        assert bob.api("POST", "/offers/alice/accept", {"once": True}).status_code == 200
        row = rows(alice)["bob"]
    assert row["state"] == "delivered" and row["target"], row
    return row


class Phone:
    """Bob's phone: vdirsyncer syncing his book with a folder, as a phone syncs."""

    def __init__(self, tmp_path: Path, server: RadicaleServer, user: str) -> None:
        self.local = tmp_path / ("%s-phone" % user)
        self.local.mkdir()
        self.discovered = False  # the first sync discovers the book
        self.config = tmp_path / ("%s-vdirsyncer.conf" % user)
        self.config.write_text(f"""
[general]
status_path = "{tmp_path / ('%s-status' % user)}/"

[pair phone]
a = "phone_local"
b = "phone_remote"
collections = null

[storage phone_local]
type = "filesystem"
path = "{self.local}/"
fileext = ".vcf"

[storage phone_remote]
type = "carddav"
url = "{server.url}/{user}/contacts/"
username = "{user}"
password = "{server.users[user]}"
""")

    def sync(self) -> None:
        # as a phone: it discovers the book once, then syncs it (a vdirsyncer start each)
        for command in ("sync",) if self.discovered else ("discover", "sync"):
            done = subprocess.run([str(VDIRSYNCER), "-c", str(self.config), command],
                                  capture_output=True, text=True, timeout=120, input="")
            assert done.returncode == 0, done.stdout + done.stderr
        self.discovered = True

    def card(self, uid: str) -> str:
        """The card with that UID as the phone holds it."""
        found = [p.read_text() for p in self.local.glob("*.vcf")
                 if "UID:%s" % uid in p.read_text()]
        assert len(found) == 1, found
        return found[0]


def bridge_status(server: RadicaleServer, monkeypatch) -> str:
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's
    out = io.StringIO()
    assert bridge_main(["status"], out=out) == 0
    return out.getvalue()


# -- the main case: a new number, unverified, reaches Bob's phone, and so does every later
# change ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shipped", HOWS, indirect=True)
def test_a_new_unverified_number_and_every_later_change_reach_the_recipients_phone(
        shipped, tmp_path, monkeypatch, request):
    how = request.node.callspec.params["shipped"]
    alice, bob = linked_and_delivered(shipped, "number", how)
    phone = Phone(tmp_path, shipped, "bob")
    phone.sync()
    assert "(202) 555-0101" in phone.card("bobs-alice")

    change(alice, bob, me_card(keys_of("number", new=True)), how)
    phone.sync()
    held = phone.card("bobs-alice")
    assert NEW_NUMBER in held and "0101" not in held and "NICKNAME:Sis" in held
    # Alice is told, in GET /me and the bridge's status, what an unverified number means
    notice = ("your number +4915111112222 is not verified: people who know you only by it "
              "cannot be found; verify it")
    me = alice.api_ok("GET", "/me")
    assert [u["key"] for u in me["unverified"]] == ["tel:+4915111112222"]
    assert any(n.startswith(notice) for n in me["notices"])
    status = bridge_status(shipped, monkeypatch)
    assert "notice: " + notice in status
    assert [ln.split()[:2] for ln in status.splitlines() if ln.startswith("bob ")] == [
        ["bob", "delivered"]]

    for n in (1, 2, 3):
        change(alice, bob, me_card(keys_of("number", new=True), later=n), how)
        phone.sync()
        held = phone.card("bobs-alice")
        name, value = LATER[n - 1]
        assert value in held, (name, held)
        assert NEW_NUMBER in held and "NICKNAME:Sis" in held

    # then she verifies it: nothing changes for Bob, and the notice is gone
    alice.verify("tel:+4915111112222")
    report = settled(alice)
    (row,) = report["recipients"]
    assert (row["user"], row["target"], row["state"]) == ("bob", True, "delivered")
    me = alice.api_ok("GET", "/me")
    assert "tel:+4915111112222" not in [u["key"] for u in me["unverified"]]
    assert not any("+4915111112222" in n for n in me["notices"])
    change(alice, bob, me_card(keys_of("number", new=True)), how)  # back to the first name
    phone.sync()
    held = phone.card("bobs-alice")
    assert "N:Archer;Alice;;;" in held and "Archer-Berg" not in held and NEW_NUMBER in held


# -- the e-mail, and both keys at once ------------------------------------------------------
@pytest.mark.parametrize("what", ["email", "both"])
@pytest.mark.parametrize("shipped", HOWS, indirect=True)
def test_a_new_email_or_both_keys_at_once_never_cut_the_recipient_off(shipped, what, request):
    how = request.node.callspec.params["shipped"]
    alice, bob = linked_and_delivered(shipped, what, how)
    change(alice, bob, me_card(keys_of(what, new=True)), how)
    copy = bob.card("ally.vcf")
    assert NEW_EMAIL in copy and OLD_EMAIL not in copy.lower() and "NICKNAME:Sis" in copy
    if what == "both":
        assert NEW_NUMBER in copy and "0101" not in copy
    unverified = {u["key"] for u in alice.api_ok("GET", "/me")["unverified"]}
    assert unverified == {"mailto:alice@new.example"} | (
        {"tel:+4915111112222"} if what == "both" else set())
    for n in (1, 2, 3):
        change(alice, bob, me_card(keys_of(what, new=True), later=n), how)
        assert LATER[n - 1][1] in bob.card("ally.vcf")
    for key in sorted(unverified):
        alice.verify(key)
    settled(alice)
    assert rows(alice)["bob"]["target"]
    assert not unverified & {u["key"] for u in alice.api_ok("GET", "/me")["unverified"]}


# -- the change arrives while the recipient's phone edits the card ----------------------------
@pytest.mark.parametrize("shipped", ["accepted", "family"], indirect=True)
def test_a_new_number_while_the_recipients_phone_edits_the_card_keeps_both(shipped, request):
    how = request.node.callspec.params["shipped"]
    alice, bob = linked_and_delivered(shipped, "number", how)
    seen = bob.get("ally.vcf")
    etag, text = seen.headers["ETag"], seen.text
    edited = text.replace("NICKNAME:Sis", "NICKNAME:Sis\r\nNOTE:new phone\\, new number?")
    assert edited != text

    # Alice's change and Bob's save cross: his phone saves with If-Match, as phones do, and
    # if the copy changed meanwhile it reads it again and saves its edit on top
    assert alice.put("alice.vcf", me_card(keys_of("number", new=True))).status_code == 204
    saved = bob.put("ally.vcf", edited, **{"If-Match": etag})
    if saved.status_code == 412:
        current = wait_until(lambda: NEW_NUMBER in bob.card("ally.vcf") and bob.get("ally.vcf"),
                             what="the fan-out's write")
        saved = bob.put("ally.vcf", current.text.replace(
            "NICKNAME:Sis", "NICKNAME:Sis\r\nNOTE:new phone\\, new number?"),
            **{"If-Match": current.headers["ETag"]})
    assert saved.status_code == 204, saved.status_code
    report = settled(alice)
    assert [(r["user"], r["target"], r["state"]) for r in report["recipients"]] == [
        ("bob", True, "delivered")]
    copy = bob.card("ally.vcf")
    assert NEW_NUMBER in copy and "0101" not in copy and "NOTE:new phone" in copy

    for n in (1, 2, 3):
        change(alice, bob, me_card(keys_of("number", new=True), later=n), how)
        copy = bob.card("ally.vcf")
        assert LATER[n - 1][1] in copy and "NOTE:new phone" in copy and "NICKNAME:Sis" in copy


# -- keeping cannot be abused, and a recipient who leaves is not kept -----------------------
@pytest.mark.parametrize("leaves", ["blocks", "deletes the copy"])
def test_a_recipient_who_blocks_the_owner_or_deletes_the_copy_is_not_kept(public_server,
                                                                         leaves):
    alice, bob = linked_and_delivered(public_server, "number", "accepted")
    # positive control: the new number reaches Bob, who is kept by his link
    change(alice, bob, me_card(keys_of("number", new=True)), "accepted")
    if leaves == "blocks":
        bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    else:
        assert bob.http.delete(bob.url + "/bob/contacts/ally.vcf").status_code in (200, 204)
    before = bob.hrefs()
    texts = {h: bob.card(h) for h in before}

    alice.put("alice.vcf", me_card(keys_of("number", new=True), later=1))
    report = settled(alice)
    (row,) = report["recipients"]
    assert (row["user"], row["target"], row["state"]) == ("bob", False, "stopped")
    (gone,) = report["skipped"]
    assert (gone["user"], gone["contact"], gone["rule"]) == ("bob", "Bob", "all")
    assert "user:bob" in gone["reason"] and row["reason"]  # (a deleted copy: the row says so)
    assert bob.hrefs() == before and {h: bob.card(h) for h in before} == texts


def test_a_copy_the_admin_made_keeps_nobody_who_did_not_say_yes(family_group):
    """A pre-authorised copy in Bob's book, without a word of his, is no sign he knows Alice:
    her contacts do not find him through it (his discoverability is the default)."""
    alice = person(family_group, "alice", "alice-me.vcf")
    bob = person(family_group, "bob", "bob-me.vcf")
    assert alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    (link,) = bob.api_ok("GET", "/links")["links"]
    assert link["made_by"] == "created"

    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    report = settled(alice)
    assert [(r["user"], r["target"]) for r in report["recipients"]] == [("bob", False)]
    (gone,) = report["skipped"]
    assert gone["user"] == "bob" and gone["rule"] == "user:bob"
    assert gone["reason"] == "you removed user:bob from your targets"

    # positive control: once Bob names Alice in a policy of his, the copy keeps him
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    report = settled(alice)
    assert [(r["user"], r["target"], r["state"]) for r in report["recipients"]] == [
        ("bob", True, "delivered")]
    assert report["skipped"] == []
    assert "+1 202 555 0199" in bob.card(bob.copy_of("alice"))


def test_keeping_never_tells_the_owner_what_a_hidden_user_hides(public_server):
    """Bob, kept by his link, chooses discoverability ``nobody``: Alice's contacts no longer
    find him, and what she is told is word for word what she is told when her contact for
    him is simply gone.  Naming him (``user:bob``) keeps him."""
    alice, bob = linked_and_delivered(public_server, "number", "accepted")
    change(alice, bob, me_card(keys_of("number", new=True)), "accepted")
    bob.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    alice.put("alice.vcf", me_card(keys_of("number", new=True), later=1))
    report = settled(alice)
    assert [(r["user"], r["target"], r["state"]) for r in report["recipients"]] == [
        ("bob", False, "stopped")]
    (hidden,) = report["skipped"]

    # the same words as when Alice's own contact for him goes away
    bob.api_ok("POST", "/privacy", {"discoverability": "contacts"})
    assert rows(alice)["bob"]["target"]
    assert alice.http.delete(alice.url + "/alice/contacts/c-bob.vcf").status_code in (200, 204)
    (deleted,) = alice.api_ok("GET", "/targets")["skipped"]
    assert hidden == deleted
    assert "nobody" not in hidden["reason"] and "hid" not in hidden["reason"]

    # positive control: named, he gets every change whatever his choice
    bob.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    alice.api_ok("POST", "/targets", {"targets": ["all", "user:bob"]})
    alice.put("alice.vcf", me_card(keys_of("number", new=True), later=2))
    report = settled(alice)
    assert [(r["user"], r["target"], r["state"]) for r in report["recipients"]] == [
        ("bob", True, "delivered")]
    assert report["skipped"] == [] and LATER[1][1] in bob.card("ally.vcf")


# -- section 4: a typo in a group name is refused, as the bridge refuses it ----------------
def test_targets_naming_no_group_are_refused_with_the_groups_there_are(public_server,
                                                                       monkeypatch, capsys):
    alice = person(public_server, "alice", "alice-me.vcf")
    assert alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf")).status_code == 201  # Family
    assert alice.put("g-work.vcf", vcard("g-work", "X-ADDRESSBOOKSERVER-KIND:group", "FN:Work",
                                         "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:x")
                     ).status_code == 201
    before = alice.api_ok("GET", "/me")
    for body in ({"targets": ["group:Freinds"]}, {"add": ["group:Freinds"]},
                 {"targets": ["all", "group:Freinds"]}):
        r = alice.api("POST", "/targets", body)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == ("no group or category 'Freinds' in your contacts (yours: "
                                     "family, Work); names are matched without case")
    assert alice.api_ok("GET", "/me") == before

    # the bridge refuses the same typo in the same words
    monkeypatch.setenv("MECARD_URL", public_server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(public_server.root))
    assert bridge_main(["select", "group:Freinds"], out=io.StringIO()) == 1
    said = capsys.readouterr().err
    # (the server's index keeps categories case-folded; the bridge reads the cards)
    assert "no group or category 'Freinds' in your contacts (yours: Family, Work); names " \
           "are matched without case" in said

    # positive control: any case of an existing name; a rule whose group is deleted later
    # stays, and other rules can still be added next to it
    assert alice.api_ok("POST", "/targets", {"targets": ["group:FAMILY"]})["targets"] == [
        "group:FAMILY"]
    assert alice.api_ok("POST", "/targets", {"add": ["group:work"]})["targets"] == [
        "group:FAMILY", "group:work"]
    assert alice.http.delete(alice.url + "/alice/contacts/g-work.vcf").status_code in (200, 204)
    assert alice.api_ok("POST", "/targets", {"add": ["all"]})["targets"] == [
        "group:FAMILY", "group:work", "all"]
