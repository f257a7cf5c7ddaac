# SPDX-License-Identifier: GPL-3.0-or-later
"""Invites attacked, on a real server with the shipped defaults (policy ``ask``,
discoverability ``contacts``, nobody pre-authorised) and no SMS gateway or SMTP.

"A server that writes into other people's address books must never let one user change,
plant or read what is not theirs."  Each test is one family of attacks, with a positive
control: the legitimate action still works."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_backup import ok, run_admin
from tests.test_bridge_consent_e2e import advice, login
from tests.test_bridge_e2e import bridge
from tests.test_fanout_e2e import person

INVALID = "this invite is not valid (expired, revoked or used up)"
NO_GATEWAYS = {"mecard_smtp_host": "", "mecard_sms_command": ""}
#: Enough people for a crowd accepting at once.
CROWD = ["u%d" % i for i in range(8)]
MANY = {**USERS, **{u: u + "-pw" for u in CROWD}}
API = "/.web/mecard/api/v1"
NEW_NUMBER = fixture("alice-me-new-number.vcf")
PLAIN = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a2\r\nFN:A. Archer\r\nNOTE:mine\r\n"
         "END:VCARD\r\n")
CAROLS = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bobs-carol\r\nFN:Carol Chen\r\n"
          "TEL:+1 202 555 0103\r\nEND:VCARD\r\n")


def start(tmp_path, **options: str) -> RadicaleServer:
    return RadicaleServer(tmp_path, MANY, **{**NO_GATEWAYS, **options}).start()


@pytest.fixture
def bare(tmp_path) -> Iterator[RadicaleServer]:
    """The shipped defaults and no gateways (more users than ``USERS``: the crowds)."""
    srv = start(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def roomy(tmp_path) -> Iterator[RadicaleServer]:
    """As ``bare``, but one user may open many invite links an hour: these tests try dozens
    of wrong paths and tokens as one user, and must not meet that limit instead."""
    srv = start(tmp_path, mecard_invite_opens_per_hour="100000")
    try:
        yield srv
    finally:
        srv.stop()


def people(server: RadicaleServer, *users: str, verified: bool = False) -> list[Client]:
    cards = {"alice": "alice-me.vcf", "bob": "bob-me.vcf", "carol": "carol-me.vcf"}
    return [person(server, u, cards.get(u), verified=verified) for u in users]


def invite(owner: Client, **data: Any) -> dict:
    return owner.api_ok("POST", "/invites", data)


def accepted(recipient: Client, token: str, card: Any = None) -> requests.Response:
    return recipient.api("POST", "/invite/%s/accept" % token, {} if card is None else
                         {"card": card})


def refused_alike(answer: requests.Response) -> None:
    assert (answer.status_code, answer.json()) == (404, {"error": INVALID}), answer.text


def targets(owner: Client) -> list[str]:
    return owner.api_ok("GET", "/me")["targets"]


def policies(user: Client) -> dict:
    return user.api_ok("GET", "/policies")["policies"]


def links(user: Client) -> list[tuple[str, str, str]]:
    return sorted((k["owner"], k["card"], k["made_by"])
                  for k in user.api_ok("GET", "/links")["links"])


def mine(owner: Client) -> dict:
    """The owner's one invite as GET /invites lists it."""
    found = owner.api_ok("GET", "/invites")["invites"]
    assert len(found) == 1, found
    return found[0]


def books(user: Client, *names: str) -> dict[str, str]:
    """Every card of the user's books, by path: what must not change."""
    out = {}
    for name in names or ("contacts",):
        for href in user.hrefs(name):
            out["/%s/%s/%s" % (user.user, name, href)] = user.card(href, name)
    return out


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in parallel, released together."""
    gate = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        gate.wait()
        return call()
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def no_500(server: RadicaleServer) -> None:
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "500 Internal" not in log, log[-3000:]


# -- the link handed out ---------------------------------------------------------------------

def post_invite(owner: Client, headers: dict[str, str]) -> dict:
    answer = owner.http.post(owner.url + API + "/invites", json={}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


STEERING = ({"Host": "evil.example.org"},
            {"X-Forwarded-Host": "evil.example.org"},
            {"X-Forwarded-Host": "evil.example.org", "X-Forwarded-Proto": "https"},
            {"X-Forwarded-Server": "evil.example.org", "Forwarded": "host=evil.example.org"},
            {"X-Script-Name": "//evil.example.org"},
            {"X-Script-Name": "/@evil.example.org"},
            {"X-Script-Name": "/\\evil.example.org"},
            {"Host": "evil.example.org:443", "X-Forwarded-Proto": "https"})


def test_with_a_public_url_no_request_header_steers_the_invite_link(tmp_path):
    """The operator pins the link's server: whatever the request says, the link names it."""
    public = "https://contacts.example.org/dav"
    srv = start(tmp_path, mecard_public_url=public)
    try:
        alice, = people(srv, "alice")
        for headers in STEERING:
            made = post_invite(alice, headers)
            assert made["url"] == public + "/.web/mecard/invite/" + made["token"], headers
        no_500(srv)
    finally:
        srv.stop()


def test_without_a_public_url_only_the_host_the_owner_reached_names_the_link(bare):
    alice, = people(bare, "alice")
    # forwarding headers a client can send are no name of this server: never used for a host
    for headers in ({"X-Forwarded-Host": "evil.example.org"},
                    {"Forwarded": "host=evil.example.org"},
                    {"X-Forwarded-Server": "evil.example.org"}):
        made = post_invite(alice, headers)
        assert made["url"] == "%s/.web/mecard/invite/%s" % (bare.url, made["token"]), headers
    for prefix in ("//evil.example.org", "/@evil.example.org", "/\\evil.example.org"):
        url = post_invite(alice, {"X-Script-Name": prefix})["url"]
        # a path prefix stays a path: the link's host is the server's
        assert requests.utils.urlparse(url).netloc == "127.0.0.1:%d" % bare.port, url
    # positive control: the Host the owner's own request names (a reverse proxy's) is used
    made = post_invite(alice, {"Host": "contacts.example.org", "X-Forwarded-Proto": "https"})
    assert made["url"] == "https://contacts.example.org/.web/mecard/invite/" + made["token"]


# -- another web site ------------------------------------------------------------------------

def test_a_page_on_another_site_cannot_accept_an_invite_for_the_signed_in_user(bare):
    alice, bob = people(bare, "alice", "bob")
    token = invite(alice)["token"]
    before = books(bob)
    url = bob.url + API + "/invite/%s/accept" % token
    for headers, body in (
            ({"Origin": "https://evil.example.org"}, b"{}"),
            ({"Origin": "null"}, b"{}"),
            ({"Origin": "http://127.0.0.1:1"}, b"{}"),                 # same host, other port
            ({"Origin": "http://127.0.0.1:%d.evil.org" % bare.port}, b"{}"),
            ({"Sec-Fetch-Site": "cross-site"}, b"{}"),
            ({"Sec-Fetch-Site": "same-site"}, b"{}")):
        answer = bob.http.post(url, data=body, headers={"Content-Type": "application/json",
                                                        **headers})
        assert answer.status_code == 403, (headers, answer.text)
        assert "other web sites" in answer.json()["error"]
    for media, body in (("text/plain", b"{}"), ("application/x-www-form-urlencoded", b"a=b"),
                        ("multipart/form-data; boundary=x", b"--x--")):
        answer = bob.http.post(url, data=body, headers={"Content-Type": media,
                                                        "Origin": bob.url})
        assert answer.status_code == 415, (media, answer.text)
    assert books(bob) == before and policies(bob) == {} and targets(alice) == []
    assert mine(alice)["uses"] == 0
    # positive control: the server's own page (same origin) accepts
    answer = bob.http.post(url, data=b"{}", headers={"Content-Type": "application/json",
                                                     "Origin": bob.url,
                                                     "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200, answer.text
    assert policies(bob) == {"alice": "auto"}


# -- where the copy goes ---------------------------------------------------------------------

def mkcalendar(user: Client, name: str) -> None:
    body = ("<?xml version='1.0'?><D:mkcol xmlns:D='DAV:' "
            "xmlns:C='urn:ietf:params:xml:ns:caldav'><D:set><D:prop><D:resourcetype>"
            "<D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>")
    r = user.http.request("MKCOL", user.url + "/%s/%s/" % (user.user, name), data=body)
    assert r.status_code == 201, r.text


EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
         "UID:ev1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T100000Z\r\n"
         "SUMMARY:dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_a_recipient_can_name_no_card_but_an_ordinary_contact_of_their_own(roomy):
    alice, bob, carol = people(roomy, "alice", "bob", "carol")
    assert carol.put("x.vcf", PLAIN.replace("UID:a2", "UID:c-x")).status_code == 201
    assert bob.put("a2.vcf", PLAIN).status_code == 201
    bob.mkbook("work")
    assert bob.put("w.vcf", PLAIN.replace("UID:a2", "UID:w1"), "work").status_code == 201
    mkcalendar(bob, "calendar")
    assert bob.http.put(bob.url + "/bob/calendar/ev1.ics", data=EVENT.encode(),
                        headers={"Content-Type": "text/calendar"}).status_code == 201
    token = invite(alice, max_uses=5)["token"]
    carols, bobs = books(carol), books(bob, "contacts", "work")
    event = bob.http.get(bob.url + "/bob/calendar/ev1.ics").text
    port = roomy.port

    others = ("/carol/contacts/x.vcf", "/carol/contacts/carol.vcf",
              "/bob/../carol/contacts/x.vcf", "/bob/contacts/../../carol/contacts/x.vcf",
              "/bob/%2e%2e/carol/contacts/x.vcf", "/bob%2F..%2Fcarol/contacts/x.vcf",
              "//carol/contacts/x.vcf", "http://127.0.0.1:%d/carol/contacts/x.vcf" % port,
              "https://evil.example.org/carol/contacts/x.vcf", "carol/contacts/x.vcf",
              "/Carol/contacts/x.vcf", "/bob/contacts/../../../../etc/passwd",
              "/%62%6f%62/../carol/contacts/x.vcf")
    not_a_card = ("/bob/contacts/.Radicale.props", "/bob/contacts/.Radicale.cache",
                  "/bob/contacts/.Radicale.cache/item", "/bob/.Radicale.props",
                  "/bob/calendar/ev1.ics", "/bob/calendar/.Radicale.props",
                  "/bob/contacts", "/bob/contacts/", "/bob", "/", "", "new/x",
                  "/bob/contacts/nope.vcf", "/bob/work/a2.vcf", "/bob/nobook/a2.vcf",
                  "/bob/contacts/a2.vcf/x", "/bob/contacts/%00.vcf", "/bob/contacts/a\x7f",
                  "/bob/contacts/" + "x" * 2000, "/bob/contacts/\u00e9\u0301.vcf",
                  "/bob/contacts/%ff%fe.vcf", "\\bob\\contacts\\a2.vcf", "http://[::1/x")
    for card in others + not_a_card:
        shown = bob.api("GET", "/invite/%s?card=%s" % (token, requests.utils.quote(card, safe="")))
        # (an empty card= in a query is no card named: the preview of a new contact)
        for answer in ([shown] if card else []) + [accepted(bob, token, card)]:
            assert 400 <= answer.status_code < 500, (card, answer.status_code, answer.text)
            assert answer.json()["error"], card
            if card in others:  # refused before anything of carol's is read
                assert answer.status_code in (403, 404), (card, answer.text)
                assert "mine" not in answer.text and "c-x" not in answer.text
    assert books(carol) == carols and books(bob, "contacts", "work") == bobs
    assert bob.http.get(bob.url + "/bob/calendar/ev1.ics").text == event
    assert links(bob) == [] and policies(bob) == {} and targets(alice) == []
    assert mine(alice)["uses"] == 0
    no_500(roomy)

    # positive control: a card in another address book of his own, named in any plain way
    done = accepted(bob, token, "/bob/work/./w.vcf").json()
    assert done["card"] == "/bob/work/w.vcf"
    assert "NOTE:mine" in bob.card("w.vcf", "work") and "555 0101" in bob.card("w.vcf", "work")
    assert links(bob) == [("alice", "/bob/work/w.vcf", "invited")]


def test_the_accepted_copy_is_never_a_me_card(bare):
    alice, bob = people(bare, "alice", "bob")
    assert bob.put("a2.vcf", PLAIN).status_code == 201
    token = invite(alice)["token"]
    # into his me card: refused, by any spelling of its path
    for card in ("/bob/contacts/bob.vcf", "/bob/contacts/./bob.vcf", "/bob//contacts/bob.vcf",
                 "/bob/contacts/%62ob.vcf", bare.url + "/bob/contacts/bob.vcf"):
        answer = accepted(bob, token, card)
        assert answer.status_code == 409 and "me card" in answer.json()["error"], card
    assert mine(alice)["uses"] == 0
    # positive control: an ordinary card of his
    done = accepted(bob, token, "/bob/contacts/a2.vcf").json()
    assert done["card"] == "/bob/contacts/a2.vcf"
    # the copy cannot be designated afterwards
    me_card = bob.api_ok("GET", "/me")["me_card"]
    answer = bob.api("POST", "/me-card", {"path": "/bob/contacts/a2.vcf"})
    assert answer.status_code == 409, answer.text
    assert bob.api_ok("GET", "/me")["me_card"] == me_card == "/bob/contacts/bob.vcf"
    # nor moved onto the me card with its link: the link ends, alice writes nothing there
    r = bob.http.request("MOVE", bob.url + "/bob/contacts/a2.vcf", headers={
        "Destination": bob.url + "/bob/contacts/bob.vcf", "Overwrite": "T"})
    assert r.status_code in (201, 204, 403, 409), r.text
    if r.status_code in (201, 204):
        assert [k for k in links(bob) if k[1] == "/bob/contacts/bob.vcf"] == []
        card = bob.card("bob.vcf")
        alice.put("alice.vcf", NEW_NUMBER)
        settled(alice)
        assert "0199" not in bob.card("bob.vcf") and bob.card("bob.vcf") == card


def test_two_owners_accepted_into_one_card_at_once_leave_it_to_one(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    assert bob.put("a2.vcf", PLAIN).status_code == 201
    tokens = [invite(alice)["token"], invite(carol)["token"]]
    answers = at_once([lambda t=t: accepted(bob, t, "/bob/contacts/a2.vcf") for t in tokens])
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    winner = answers[0].json()["owner"] if answers[0].status_code == 200 else \
        answers[1].json()["owner"]
    loser = {"alice", "carol"} - {winner}
    assert links(bob) == [(winner, "/bob/contacts/a2.vcf", "invited")]
    assert list(policies(bob)) == [winner]
    # positive control: the other owner's card goes into a new contact
    other = dict(zip(("alice", "carol"), tokens))[loser.pop()]
    assert accepted(bob, other, "new").status_code == 200
    assert len(links(bob)) == 2


# -- invites that should not work ------------------------------------------------------------

def test_an_invite_of_an_owner_without_a_me_card_gives_nothing(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    token = invite(alice, max_uses=3)["token"]
    assert accepted(carol, token).status_code == 200  # positive control, before
    alice.api_ok("POST", "/me-card", {"path": None})
    before = books(bob)
    for answer in (bob.api("GET", "/invite/" + token), accepted(bob, token)):
        assert answer.status_code == 409 and "shares no card" in answer.json()["error"]
    assert books(bob) == before and policies(bob) == {} and links(bob) == []
    assert targets(alice) == ["user:carol"] and mine(alice)["uses"] == 1
    # and the me card deleted over CardDAV: the same
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    assert alice.http.delete(alice.url + "/alice/contacts/alice.vcf").status_code in (200, 204)
    answer = accepted(bob, token)
    assert answer.status_code == 409 and "shares no card" in answer.json()["error"]
    assert books(bob) == before and mine(alice)["uses"] == 1


def test_an_owner_who_removed_a_recipient_is_not_re_joined_by_their_old_link(bare):
    """Accepting again is harmless: it gives nothing the owner has taken back since."""
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    single = invite(alice)["token"]
    shared = invite(alice, max_uses=5)["token"]
    assert accepted(bob, single).status_code == 200
    assert accepted(bob, shared).status_code == 200
    first = accepted(bob, single).json()        # a repeat, the same answer: harmless
    assert targets(alice) == ["user:bob"]
    # alice takes bob out of her targets, with her values
    alice.api_ok("POST", "/targets", {"targets": [], "withdraw": True})
    settled(alice)
    assert targets(alice) == []
    for token in (single, shared):
        refused_alike(accepted(bob, token))
        assert targets(alice) == []
    assert policies(bob) == {"alice": "auto"}
    # positive control: the multi-use link still works for somebody else, and a new one for bob
    assert accepted(carol, shared).status_code == 200
    fresh = accepted(bob, invite(alice)["token"])
    assert fresh.status_code == 200 and fresh.json()["owner"] == first["owner"]
    assert sorted(targets(alice)) == ["user:bob", "user:carol"]


def test_a_recipients_own_block_gives_way_to_accepting_an_invite(bare):
    """Chosen: accepting is the recipient's explicit, newer word; it replaces their block."""
    alice, bob = people(bare, "alice", "bob")
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    token = invite(alice)["token"]
    assert bob.api_ok("GET", "/invite/" + token)["owner"] == "alice"
    done = accepted(bob, token).json()
    assert done["policy"] == "auto" and policies(bob) == {"alice": "auto"}
    assert "555 0101" in bob.card(done["card"].rsplit("/", 1)[1])


def test_an_owner_who_blocks_a_user_gives_them_nothing_by_a_link_that_reached_them(bare):
    """Chosen: an owner's block of a user is the strongest "no" there is; a link can travel
    (several uses, forwarded), so it does not override it: the blocked user is answered as
    for any unusable link, and learns nothing of the block."""
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    alice.api_ok("POST", "/policies", {"owner": "bob", "policy": "block"})
    token = invite(alice, max_uses=2)["token"]
    before = books(bob)
    refused_alike(bob.api("GET", "/invite/" + token))
    refused_alike(accepted(bob, token))
    assert books(bob) == before and policies(bob) == {} and targets(alice) == []
    assert mine(alice)["uses"] == 0
    # positive control: somebody she does not block, and bob once she lifts the block
    assert accepted(carol, token).status_code == 200
    alice.api_ok("POST", "/policies", {"owner": "bob", "policy": None})
    assert accepted(bob, token).status_code == 200
    assert sorted(targets(alice)) == ["user:bob", "user:carol"]


def test_invites_go_with_their_owners_account(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    token = invite(alice, max_uses=3)["token"]
    assert accepted(carol, token).status_code == 200  # positive control, before
    ok(run_admin(bare, "delete-user", "alice"))
    before = books(bob)
    refused_alike(bob.api("GET", "/invite/" + token))
    refused_alike(accepted(bob, token))
    assert books(bob) == before and policies(bob) == {}
    # a new account of that name has no invites, and its card is not given by the old link
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    assert alice.api_ok("GET", "/invites")["invites"] == []
    refused_alike(accepted(bob, token))


# -- races -----------------------------------------------------------------------------------

def test_a_crowd_accepting_a_one_use_invite_at_once_gets_one_use(bare):
    alice, = people(bare, "alice")
    crowd = people(bare, *CROWD)
    for uses in (1, 3, 4):  # 8 in all: the last crowd takes every use
        token = invite(alice, max_uses=uses)["token"]
        answers = at_once([lambda c=c: accepted(c, token) for c in crowd])
        won = [c.user for c, a in zip(crowd, answers) if a.status_code == 200]
        for c, a in zip(crowd, answers):
            if a.status_code != 200:
                refused_alike(a)
        assert len(won) == uses, [a.status_code for a in answers]
        used = alice.api_ok("GET", "/invites")["invites"][0]
        assert used["uses"] == uses and sorted(u["user"] for u in used["used_by"]) == won
        for c in crowd:
            assert ("alice" in policies(c)) == (c.user in won)
            assert [k[0] for k in links(c)] == (["alice"] if c.user in won else [])
        crowd = [c for c in crowd if c.user not in won]  # the winners take no part again
    assert crowd == [] and sorted(targets(alice)) == sorted("user:%s" % u for u in CROWD)
    no_500(bare)


def test_one_recipient_accepting_many_times_at_once_gets_one_copy(bare):
    alice, bob = people(bare, "alice", "bob")
    token = invite(alice)["token"]
    hrefs = bob.hrefs()
    answers = at_once([lambda: accepted(bob, token)] * 6)
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["card"] for a in answers}) == 1
    assert len(bob.hrefs()) == len(hrefs) + 1
    assert mine(alice)["uses"] == 1 and targets(alice) == ["user:bob"]


def test_no_use_is_counted_after_the_owner_revoked(bare):
    alice, = people(bare, "alice")
    crowd = people(bare, *CROWD)
    made = invite(alice, max_uses=100)
    token = made["token"]
    revoked_at: list[float] = []

    def revoke() -> requests.Response:
        time.sleep(0.05)
        answer = alice.api("POST", "/invites/%s/revoke" % made["id"], {})
        revoked_at.append(time.monotonic())
        return answer

    def accept(c: Client) -> tuple[requests.Response, float]:
        answer = accepted(c, token)
        return answer, time.monotonic()
    results = at_once([revoke] + [lambda c=c: accept(c) for c in crowd])
    assert results[0].status_code == 200 and results[0].json()["state"] == "revoked"
    won = []
    for c, (answer, _) in zip(crowd, results[1:]):
        if answer.status_code == 200:
            won.append(c.user)
        else:
            refused_alike(answer)
    listed = mine(alice)
    assert listed["uses"] == len(won) and sorted(u["user"] for u in listed["used_by"]) == won
    for c in crowd:  # every answer is the truth: a refusal changed nothing
        assert ("alice" in policies(c)) == (c.user in won), c.user
        assert bool(links(c)) == (c.user in won), c.user
    assert sorted(targets(alice)) == ["user:%s" % u for u in won]
    # after the revocation answered, nobody gets in, not even a former recipient
    for c in crowd:
        refused_alike(accepted(c, token))
    assert mine(alice)["uses"] == len(won)


def test_owners_creating_at_once_cannot_pass_the_daily_limit(tmp_path):
    srv = start(tmp_path, mecard_invites_per_day="3")
    try:
        alice, = people(srv, "alice")
        answers = at_once([lambda: alice.api("POST", "/invites", {})] * 10)
        assert sorted(a.status_code for a in answers) == [200] * 3 + [429] * 7
        assert len(alice.api_ok("GET", "/invites")["invites"]) == 3
        # the limit is kept in the database: a restart gives no new invites
        srv.stop(sink=False)
        srv.start()
        assert alice.api("POST", "/invites", {}).status_code == 429
        assert len(alice.api_ok("GET", "/invites")["invites"]) == 3
        no_500(srv)
    finally:
        srv.stop()


# -- tokens ----------------------------------------------------------------------------------

def test_every_token_that_cannot_be_used_gets_the_very_same_answer(roomy):
    alice, bob, carol = people(roomy, "alice", "bob", "carol")
    real = invite(alice)["token"]
    revoked = invite(alice)
    alice.api_ok("POST", "/invites/%s/revoke" % revoked["id"], {})
    used = invite(alice)["token"]
    assert accepted(carol, used).status_code == 200
    expired = invite(alice, expires_in=1)["token"]
    time.sleep(1.1)

    def answer_of(token: str, method: str) -> tuple:
        if method == "GET":
            r = bob.http.get(bob.url + API + "/invite/" + token)
        else:
            r = bob.http.post(bob.url + API + "/invite/%s/accept" % token, json={})
        return r.status_code, r.content, r.headers.get("Content-Type"), tuple(sorted(
            k for k in r.headers if k.lower() not in ("date", "content-length")))

    guesses = [secrets.token_urlsafe(24), real[:-1] + ("A" if real[-1] != "A" else "B"),
               real.upper() if real.upper() != real else real.lower(), real[:16],
               real + "A", "A" * 16, "A" * 128, "A" * 129, "A" * 3000, "short", "-" * 32,
               requests.utils.quote("\u00e9" * 20), revoked["token"], used,
               expired, revoked["id"]]
    for method in ("GET", "POST"):
        seen = {answer_of(t, method) for t in guesses}
        assert len(seen) == 1, seen
        status, body, _, _ = seen.pop()
        assert (status, body) == (404, b'{\n "error": "%s"\n}' % INVALID.encode())
    assert policies(bob) == {} and mine_uses(alice) == {"used": 1}
    # positive control: the one real token
    assert bob.api_ok("GET", "/invite/" + real)["owner"] == "alice"


def mine_uses(owner: Client) -> dict[str, int]:
    return {"used": sum(i["uses"] for i in owner.api_ok("GET", "/invites")["invites"])}


# -- what auto gives the owner ----------------------------------------------------------------

def test_an_invite_lets_the_owner_write_into_the_copy_only(tmp_path):
    """With gateways, so that alice's keys are verified and bob's own card for her matches
    them: still only the card the invite linked is written."""
    srv = RadicaleServer(tmp_path, USERS).start()  # the shipped defaults, with gateways
    try:
        alice, bob = people(srv, "alice", "bob", verified=True)
        assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
        assert bob.put("carol.vcf", CAROLS).status_code == 201
        assert bob.put("a2.vcf", PLAIN).status_code == 201
        token = invite(alice)["token"]
        done = accepted(bob, token, "new").json()
        copy = done["card"].rsplit("/", 1)[1]
        others = {h: t for h, t in books(bob).items() if not h.endswith("/" + copy)}
        # alice now puts numbers of bob's other contacts on her card, and changes it often
        for n, extra in enumerate(("+1 202 555 0103", "+1 202 555 0777", "+1 202 555 0199")):
            text = fixture("alice-me.vcf").replace(
                "END:VCARD", "TEL;TYPE=WORK:%s\r\nNOTE:round %d\r\nEND:VCARD" % (extra, n))
            assert alice.put("alice.vcf", text).status_code in (201, 204)
            settled(alice)
            assert extra in bob.card(copy)
            assert {h: t for h, t in books(bob).items() if not h.endswith("/" + copy)
                    } == others
        assert links(bob) == [("alice", "/bob/contacts/" + copy, "created")]
        assert bob.api_ok("GET", "/offers")["offers"] == []
    finally:
        srv.stop()


def test_after_the_copy_is_deleted_auto_updates_the_recipients_own_card_for_the_owner(tmp_path):
    """The invite made bob ``auto`` for alice.  He deletes the copy it made (he already had
    a card for her): her next change goes where ``auto`` sends it, into his own card for
    her whose every number and e-mail is verified for her (the verified link), with his
    own lines kept — not back into a new copy, and into no other card of his.  Under
    ``ask`` it would be an offer.  This is what ``auto`` means (README, Trust and consent);
    a recipient who wants no such write sets ``ask`` or ``block``."""
    srv = RadicaleServer(tmp_path, USERS).start()  # the shipped defaults, with gateways
    try:
        alice, bob = people(srv, "alice", "bob", verified=True)
        assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
        assert bob.put("carol.vcf", CAROLS).status_code == 201
        copy = accepted(bob, invite(alice)["token"], "new").json()["card"]
        assert bob.http.delete(bob.url + copy).status_code in (200, 204)
        carol = bob.card("carol.vcf")
        alice.put("alice.vcf", NEW_NUMBER)
        settled(alice)
        ally = bob.card("ally.vcf")
        assert "555 0199" in ally.replace("-", " ") and "NICKNAME:Sis" in ally
        assert "NOTE:met at the climbing gym" in ally
        assert bob.card("carol.vcf") == carol
        assert copy.rsplit("/", 1)[1] not in bob.hrefs()
    finally:
        srv.stop()


def test_nothing_of_the_owner_reaches_other_cards_when_the_copy_is_deleted(bare):
    alice, bob = people(bare, "alice", "bob")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    assert bob.put("carol.vcf", CAROLS).status_code == 201
    copy = accepted(bob, invite(alice)["token"]).json()["card"].rsplit("/", 1)[1]
    assert bob.http.delete(bob.url + "/bob/contacts/" + copy).status_code in (200, 204)
    others = books(bob)
    alice.put("alice.vcf", NEW_NUMBER)
    report = settled(alice)
    after = books(bob)
    # bob's own cards are as they were, whatever happened to the deleted copy
    assert {h: t for h, t in after.items() if h in others} == others
    assert [r["user"] for r in report["recipients"]] == ["bob"]
    # what bob may still get is alice's card alone (auto stands until he changes it)
    for path in set(after) - set(others):
        assert "Alice Archer" in after[path] and "NOTE" not in after[path]


# -- the bridge -----------------------------------------------------------------------------

def test_a_link_naming_another_server_never_sends_the_bridge_there(bare, monkeypatch, capsys):
    """The bridge takes only the token from a link: the host it names gets no password."""
    alice, bob = people(bare, "alice", "bob")
    made = invite(alice)
    login(monkeypatch, bare, "bob")
    capsys.readouterr()
    code, _ = bridge("invite", "accept", "https://evil.example.org/.web/mecard/invite/"
                     + secrets.token_urlsafe(24))
    said = advice(capsys)
    assert code == 1 and "the link is for evil.example.org" in said
    assert "works only on the server that made it" in said and "give --url" not in said
    # positive control: a real token in a link poisoned with another host is accepted here,
    # on the server the bridge signs in to
    code, out = bridge("invite", "accept", made["url"].replace(
        "127.0.0.1:%d" % bare.port, "evil.example.org"))
    assert code == 0, out
    assert policies(bob) == {"alice": "auto"}


def test_the_bridge_shows_an_owners_text_without_terminal_tricks(bare, monkeypatch):
    alice, bob = people(bare, "alice", "bob")
    tricky = fixture("alice-me.vcf").replace("FN:Alice Archer",
                                             "FN:Alice \u202eRECHRA\u202c \x1b[2J Archer")
    assert alice.put("alice.vcf", tricky).status_code in (201, 204)
    made = invite(alice)
    login(monkeypatch, bare, "bob")
    code, out = bridge("invite", "show", made["url"])
    assert code == 0, out
    assert "\u202e" not in out and "\x1b" not in out
    assert "Alice \\u202eRECHRA\\u202c" in out  # made visible, not obeyed
    code, out = bridge("--json", "invite", "show", made["url"])
    assert code == 0 and "RECHRA" in out  # the data as it is, for programs


# -- bad input -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
#: Bodies no JSON encoder writes: JSON's extensions, a lone surrogate, deep nesting, no UTF-8.
RAW = [b'{"expires_in": NaN}', b'{"expires_in": Infinity}', b'{"max_uses": -Infinity}',
       b'{"label": "\\ud800"}', b'{"card": "\\udfff"}', b'[' * 100000, b'{"card": 1e999}',
       b'{"max_uses": 1' + b'0' * 5000 + b'}', b'\xff\xfe{}', b'{"card": "new"', b'null',
       b'{"expires_in": 1e-400}', b'{"label": "a\\u0000b"}', b'{"card": "\\u0000"}']
FIELDS = st.sampled_from(["card", "expires_in", "max_uses", "label", "x"])


def test_a_storm_of_bad_invite_requests_never_gets_a_500(roomy):
    alice, bob = people(roomy, "alice", "bob")
    token = invite(alice, max_uses=1000)["token"]
    made = invite(alice)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=st.dictionaries(FIELDS, JSON, max_size=4) | JSON,
           raw=st.binary(max_size=40) | st.sampled_from(RAW), which=st.integers(0, 5),
           path=st.text(max_size=30))
    def storm(body: Any, raw: bytes, which: int, path: str) -> None:
        quoted = requests.utils.quote(path, safe="")
        calls = [("POST", "/invites", alice), ("POST", "/invite/%s/accept" % token, bob),
                 ("POST", "/invites/%s/revoke" % (quoted or "x"), alice),
                 ("GET", "/invite/%s?card=%s" % (token, quoted), bob),
                 ("POST", "/invite/%s/accept" % (quoted or "x"), bob),
                 ("POST", "/invite/%s/accept" % token, bob)]
        method, call, who = calls[which]
        if which == 5:  # not JSON at all
            r = who.http.post(who.url + API + call, data=raw,
                              headers={"Content-Type": "application/json"})
        else:
            r = who.http.request(method, who.url + API + call,
                                 json=body if method == "POST" else None)
        assert r.status_code < 500, (call, body, raw, r.status_code, r.text)
        # a path Radicale itself refuses ("not compliant to 'minimal'") gets its plain 400
        radicales = (which in (2, 4) or not path.isprintable()) and r.text == "Bad Request" \
            and r.status_code == 400
        if r.status_code >= 400 and not radicales:
            assert r.headers["Content-Type"].startswith("application/json"), r.text
            assert r.json()["error"], r.text
    storm()
    no_500(roomy)
    # positive control: the invites still work after the storm
    assert alice.api_ok("GET", "/invites")["invites"]
    assert mine_state(alice, made["id"]) in ("active", "revoked")


def mine_state(owner: Client, invite_id: str) -> str:
    return {i["id"]: i["state"] for i in owner.api_ok("GET", "/invites")["invites"]}[invite_id]
