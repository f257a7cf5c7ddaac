# SPDX-License-Identifier: GPL-3.0-or-later
"""A hostile user against the pages' new calls (issue 15): history and undo, notifications,
audiences, send now, the QR code, the owner's and recipient's pages, the unsubscribe link.

Each test is a family of attacks with its positive control (the legitimate action still
works).  One server with the shipped defaults (policy ``ask``, discoverability
``contacts``, nobody pre-authorised) is shared by the module; each test has users of its
own.  Only the notification clock is shorter (a 2 s settle and 3 s between e-mails
instead of 120 s and 60 minutes), so that the e-mail attacks take seconds: the same rules
on a smaller clock.
"""

from __future__ import annotations

import email.message
import re
import time
from html.parser import HTMLParser
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.browser import Browser, browser  # noqa: F401  (the fixture)
from tests.server import Client, RadicaleServer, settled, wait_until

PAGES = "/.web/mecard"
API = PAGES + "/api/v1"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivy", "judy",
         "kim", "lena", "mallory", "hidden", "otto", "pia", "quentin", "ruth", "sven", "tara",
         "uma", "vic", "walt", "xena", "yuri", "zoe", "zack", "amy", "ben", "cleo", "dina",
         "eli", "fay", "gus", "hal")
USERS = {name: name + "-pw" for name in NAMES}
FAST = {"mecard_notify_settle": "2", "mecard_notify_digest_minutes": "0.05"}
EVIL = "<img src=x onerror=alert(1)><script>alert(2)</script>{{7*7}}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[RadicaleServer]:
    """Shipped defaults; only the notification clock is shorter (see the module doc)."""
    server = RadicaleServer(tmp_path_factory.mktemp("attacks"), USERS, **FAST).start()
    try:
        yield server
    finally:
        server.stop()


def vcard(uid: str, fn: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + fn, *lines,
                        "END:VCARD", ""])


def mail(name: str) -> str:
    return "%s@example.org" % name


def person(server: RadicaleServer, name: str, *lines: str, fn: str | None = None) -> Client:
    """``name`` with a me card (their e-mail, verified, and ``lines``)."""
    client = server.client(name)
    client.login()
    card = vcard(name + "-me", fn or name.title() + " Tester", "EMAIL:" + mail(name), *lines)
    assert client.put("me.vcf", card).status_code == 201
    client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
    client.verify("mailto:" + mail(name))
    return client


def keeps(client: Client, owner: str, href: str | None = None, *lines: str) -> str:
    """``client`` keeps a card for ``owner`` (their verified e-mail): the owner may find them."""
    href = href or "c-%s.vcf" % owner
    r = client.put(href, vcard("%s-keeps-%s" % (client.user, owner), owner.title(),
                               "EMAIL:" + mail(owner), *lines))
    assert r.status_code in (201, 204), r.text
    return href


def history(client: Client, query: str = "") -> list[dict]:
    return client.api_ok("GET", "/history" + query)["history"]


def tel_change(client: Client, old: str, new: str) -> dict:
    (entry,) = [e for e in history(client) if any(
        c["field"] == "TEL" and old in (c["before"] or "") and new in (c["after"] or "")
        for c in e["changes"])]
    return entry


def auto_share(server: RadicaleServer, owner: str, recipient: str, old: str, new: str
               ) -> tuple[Client, Client, dict]:
    """``recipient`` accepts ``owner``'s card automatically; the owner's number changed from
    ``old`` to ``new``: the recipient's history holds that change."""
    o = person(server, owner, "TEL:" + old)
    r = person(server, recipient)
    keeps(r, owner)
    r.api_ok("POST", "/policies", {"owner": owner, "policy": "auto"})
    o.api_ok("POST", "/targets", {"targets": ["user:" + recipient]})
    wait_until(lambda: old in r.card("c-%s.vcf" % owner), 60, "the first copy")
    card = o.card("me.vcf").replace(old, new)
    assert o.put("me.vcf", card).status_code == 204
    wait_until(lambda: new in r.card("c-%s.vcf" % owner), 60, "the changed number")
    return o, r, tel_change(r, old, new)


class Tags(HTMLParser):
    """The elements and attributes a page's HTML makes (as a browser reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        if tag == "script" and not dict(attrs).get("src"):
            self.inline_scripts += 1


def inert(html: str) -> None:
    """No element or handler came from card data: no <img src=x>, no inline script."""
    tags = Tags()
    tags.feed(html)
    assert "<img src=x" not in html and "<script>alert" not in html
    assert tags.inline_scripts == 0
    assert [a for a in tags.attributes if a.startswith("on")] == []


def not_framable(response: requests.Response) -> None:
    assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", ""), \
        (response.url, dict(response.headers))
    assert response.headers.get("X-Frame-Options") == "DENY", (response.url,
                                                               dict(response.headers))


# -- other users' history ---------------------------------------------------------------

def test_another_users_history_entry_is_answered_like_one_that_does_not_exist(srv):
    alice, bob, entry = auto_share(srv, "alice", "bob", "+1 202 555 0111", "+1 202 555 0122")
    mallory = srv.client("mallory")
    mallory.login()
    tag = bob.get("c-alice.vcf").headers["ETag"]
    # reading: mallory's history has nothing of bob's, whatever the filter
    for query in ("", "?owner=alice", "?owner=bob", "?limit=1000"):
        assert history(mallory, query) == [], query
    # undoing bob's entry, and IDs that are nobody's: the same answer but for the number
    ghost = entry["id"] + 100000
    theirs = mallory.api("POST", "/history/%d/undo" % entry["id"], {})
    nobodys = mallory.api("POST", "/history/%d/undo" % ghost, {})
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["error"].replace(str(entry["id"]), "N") == \
        nobodys.json()["error"].replace(str(ghost), "N")
    for bad in ("0", "-1", "1e3", "%d.0" % entry["id"], "0x1", "99999999999999999999"):
        r = mallory.api("POST", "/history/%s/undo" % bad, {})
        assert r.status_code in (400, 404) and r.json()["error"], bad
    # the entry is still bob's and undoable; his card was not touched
    assert bob.get("c-alice.vcf").headers["ETag"] == tag
    (mine,) = [e for e in history(bob) if e["id"] == entry["id"]]
    assert mine["undone"] is None and mine["undoable"] is True
    # alice, the owner of the values, cannot undo in bob's book either
    assert alice.api("POST", "/history/%d/undo" % entry["id"], {}).status_code == 404
    assert bob.get("c-alice.vcf").headers["ETag"] == tag
    # positive control: bob undoes his own entry
    done = bob.api_ok("POST", "/history/%d/undo" % entry["id"], {})
    assert done["undone"] == entry["id"] and "+1 202 555 0111" in bob.card("c-alice.vcf")


def test_undo_never_plants_values_in_a_card_that_now_holds_another_owners_copy(srv):
    carol, dave, _ = auto_share(srv, "carol", "dave", "+1 202 555 0131", "+1 202 555 0132")
    # carol takes her number off her card: it goes from dave's copy too (an entry he may undo)
    card = carol.card("me.vcf").replace("TEL:+1 202 555 0132\r\n", "")
    assert carol.put("me.vcf", card).status_code == 204
    wait_until(lambda: "0132" not in dave.card("c-carol.vcf"), 60, "the number taken back")
    (entry,) = [e for e in history(dave) if any(
        c["field"] == "TEL" and "0132" in (c["before"] or "") and c["after"] is None
        for c in e["changes"])]
    assert entry["undoable"]
    # dave deletes carol's copy; the same file name now holds erin's copy
    assert dave.http.delete(srv.url + dave.book() + "c-carol.vcf").status_code == 200
    erin = person(srv, "erin", "TEL:+1 202 555 0141")
    keeps(dave, "erin", "c-carol.vcf")
    dave.api_ok("POST", "/policies", {"owner": "erin", "policy": "auto"})
    erin.api_ok("POST", "/targets", {"targets": ["user:dave"]})
    wait_until(lambda: "+1 202 555 0141" in dave.card("c-carol.vcf"), 60, "erin's copy")
    assert dave.copy_of("erin") == "c-carol.vcf"
    before = dave.card("c-carol.vcf")
    tag = dave.get("c-carol.vcf").headers["ETag"]
    (listed,) = [e for e in history(dave) if e["id"] == entry["id"]]
    assert listed["undoable"] is False  # the page offers no button for it
    # undoing carol's change would put carol's number into erin's copy
    r = dave.api("POST", "/history/%d/undo" % entry["id"], {})
    assert r.status_code == 409, r.text
    assert "erin" in r.json()["error"] and "copy" in r.json()["error"]
    assert dave.get("c-carol.vcf").headers["ETag"] == tag and dave.card("c-carol.vcf") == before
    assert "0132" not in dave.card("c-carol.vcf")
    # positive control: an undo of an entry of erin's own copy works
    card = erin.card("me.vcf").replace("555 0141", "555 0142")
    assert erin.put("me.vcf", card).status_code == 204
    wait_until(lambda: "555 0142" in dave.card("c-carol.vcf"), 60, "erin's new number")
    mine = tel_change(dave, "0141", "0142")
    assert dave.api_ok("POST", "/history/%d/undo" % mine["id"], {})["written"] is True
    assert "+1 202 555 0141" in dave.card("c-carol.vcf")


# -- probing other users through the owner's calls --------------------------------------

def test_preview_of_a_recipient_tells_nothing_of_unknown_hidden_or_unselected_users(srv):
    frank = person(srv, "frank", "TEL:+1 202 555 0151", "ADR;TYPE=HOME:;;9 Elm St;Town;;1;US")
    gina = person(srv, "gina")
    keeps(gina, "frank")  # gina lets frank find her
    hidden = person(srv, "hidden")
    hidden.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    keeps(hidden, "frank")  # keeps frank's card, but may be found by nobody
    hank = person(srv, "hank")
    keeps(hank, "frank")  # visible to frank, and no rule of his selects hank
    assert frank.put("c-hidden.vcf", vcard("f-h", "Hid", "EMAIL:" + mail("hidden"))
                     ).status_code == 201
    frank.api_ok("POST", "/targets", {"targets": ["user:gina", "all"]})
    settled(frank)
    probes = {name: frank.api("GET", "/preview?recipient=" + name)
              for name in ("hidden", "no-such-user", "hank", "mallory")}
    codes = {name: r.status_code for name, r in probes.items()}
    assert set(codes.values()) == {404}, codes
    texts = {r.json()["error"].replace(repr(name), "NAME") for name, r in probes.items()}
    assert len(texts) == 1, texts
    # the page asks the same call: one answer for all of them too
    pages = {name: frank.http.get(srv.url + PAGES + "/card?recipient=" + name)
             for name in probes}
    person_part = re.compile(r'<article class="preview" id="person".*?</article>', re.S)
    shown = {person_part.search(r.text).group(0).replace(name, "NAME")
             for name, r in pages.items()}
    assert len(shown) == 1 and all(r.status_code == 200 for r in pages.values())
    # positive control: gina, whom a rule selects
    mine = frank.api_ok("GET", "/preview?recipient=gina")
    assert mine["recipient"] == "gina" and "user:gina" in mine["rules"]
    assert "ADR" not in mine["fields"] and "9 Elm St" not in mine["card"]


def test_send_now_is_no_way_to_reach_hidden_people_or_to_rewrite_books(srv):
    ivy = person(srv, "ivy", "TEL:+1 202 555 0161")
    judy = person(srv, "judy")
    keeps(judy, "ivy")
    judy.api_ok("POST", "/policies", {"owner": "ivy", "policy": "auto"})
    kim = person(srv, "kim")  # keeps ivy's card, refuses her
    keeps(kim, "ivy")
    lena = person(srv, "lena")  # keeps ivy's card, blocks her
    keeps(lena, "ivy")
    lena.api_ok("POST", "/policies", {"owner": "ivy", "policy": "block"})
    otto = person(srv, "otto")  # keeps ivy's card, but may be found by nobody
    otto.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    keeps(otto, "ivy")
    ivy.api_ok("POST", "/targets", {"targets": ["user:judy", "user:kim", "user:lena"]})
    settled(ivy)
    wait_until(lambda: "0161" in judy.card("c-ivy.vcf"), 60, "ivy's copy at judy's")
    (offer,) = kim.api_ok("GET", "/offers")["offers"]
    kim.api_ok("POST", "/offers/ivy/refuse", {})
    token, _ = judy.sync()
    tags = {c.user: c.ctag() for c in (judy, kim, lena, otto)}
    time.sleep(2.5)  # the settle time: kim's notification of the offer is made by now
    told = len(srv.mail.to(mail("kim")))
    # ten presses of "send now", to all and by name, otto among them
    for _ in range(5):
        ivy.api_ok("POST", "/send", {"recipients": "all"})
        ivy.api_ok("POST", "/send", {"recipients": ["judy", "kim", "lena", "otto"]})
    report = settled(ivy)
    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert "otto" not in states, states
    assert states["judy"] == "delivered" and states["lena"] == "blocked"
    # nothing written again: no book changed, judy's phone has nothing to fetch
    assert {c.user: c.ctag() for c in (judy, kim, lena, otto)} == tags
    assert judy.sync(token)[1] == []
    assert kim.api_ok("GET", "/offers")["offers"] == []  # refused stays refused
    assert lena.hrefs() == ["c-ivy.vcf", "me.vcf"] and otto.hrefs() == ["c-ivy.vcf", "me.vcf"]
    assert "0161" not in lena.card("c-ivy.vcf") and "0161" not in otto.card("c-ivy.vcf")
    time.sleep(3)
    assert len(srv.mail.to(mail("kim"))) == told  # and no new e-mail for kim
    assert offer["owner"] == "ivy"
    # positive control: a real change still reaches judy
    assert ivy.put("me.vcf", ivy.card("me.vcf").replace("0161", "0162")).status_code == 204
    wait_until(lambda: "0162" in judy.card("c-ivy.vcf"), 60, "ivy's change")


# -- a foreign web site --------------------------------------------------------------------

def test_no_new_call_can_be_made_by_another_web_site(srv):
    mallory = person(srv, "mallory", "TEL:+1 202 555 0171")
    pia = person(srv, "pia")
    keeps(pia, "mallory")
    mallory.api_ok("POST", "/targets", {"targets": ["user:pia"]})
    token = mallory.api_ok("POST", "/invites", {})["token"]
    me = mallory.api_ok("GET", "/me")
    setting = mallory.api_ok("GET", "/notifications")
    calls = {"/notifications": {"email": "none", "address": None},
             "/audiences": {"rule": "user:pia", "fields": ["FN", "EMAIL", "TEL", "NOTE"]},
             "/send": {"recipients": "all"},
             "/invites/qr": {"token": token},
             "/history/1/undo": {}}
    own = srv.url.split("//", 1)[1]
    for call, data in calls.items():
        url = srv.url + API + call
        body = "&".join("%s=%s" % (k, v) for k, v in data.items())
        forged = [
            mallory.http.post(url, data=body,
                              headers={"Content-Type": "application/x-www-form-urlencoded"}),
            mallory.http.post(url, data=body, headers={"Content-Type": "text/plain"}),
            mallory.http.post(url, files={"x": (None, "1")}),
            mallory.http.post(url, json=data, headers={"Origin": "https://evil.example"}),
            mallory.http.post(url, json=data, headers={"Origin": "null"}),
            mallory.http.post(url, json=data, headers={"Origin": "http://%s.evil.example"
                                                       % own.split(":")[0]}),
            mallory.http.post(url, json=data, headers={"Sec-Fetch-Site": "cross-site"}),
        ]
        for r in forged:
            assert r.status_code in (403, 415), (call, r.status_code, r.text)
            assert r.json()["error"]
    assert mallory.api_ok("GET", "/me") == me
    assert mallory.api_ok("GET", "/notifications") == setting
    # positive control: the server's own pages send JSON with its own Origin
    answer = mallory.http.post(srv.url + API + "/notifications",
                               json={"email": "none", "address": None},
                               headers={"Origin": srv.url, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200 and answer.json()["email"] == "none"
    answer = mallory.http.post(srv.url + API + "/invites/qr", json={"token": token},
                               headers={"Origin": srv.url})
    assert answer.status_code == 200 and "<svg" in answer.json()["svg"]


# -- e-mail to addresses that are not one's own -------------------------------------------

def test_notifications_go_only_to_my_own_verified_address(srv):
    quentin = person(srv, "quentin")
    ruth = person(srv, "ruth")  # ruth@example.org is ruth's, verified
    before = quentin.api_ok("GET", "/notifications")
    bad = ["mailto:" + mail("ruth"), mail("ruth"), "mailto:victim@elsewhere.example",
           "mailto:%s\r\nBcc: victim@elsewhere.example" % mail("quentin"),
           "mailto:%s,victim@elsewhere.example" % mail("quentin"),
           7, ["mailto:" + mail("quentin")],
           "mailto:" + "q" * 400 + "@example.org"]
    for address in bad:
        r = quentin.api("POST", "/notifications", {"email": "offers", "address": address})
        assert r.status_code == 400 and r.json()["error"], address
        assert quentin.api_ok("GET", "/notifications") == before, address
    for data in ({"email": "all"}, {"email": None}, {"email": "offers", "bcc": mail("ruth")}):
        assert quentin.api("POST", "/notifications", data).status_code == 400, data
    # the key moves to ruth once she proves it: quentin's choice stops using it
    assert quentin.api_ok("POST", "/notifications", {
        "email": "offers", "address": "mailto:" + mail("quentin")})["address"] == \
        "mailto:" + mail("quentin")  # positive control: his own verified address
    card = ruth.card("me.vcf").replace(
        "EMAIL:" + mail("ruth"), "EMAIL:%s\r\nEMAIL:%s" % (mail("ruth"), mail("quentin")))
    assert ruth.put("me.vcf", card).status_code == 204
    ruth.verify("mailto:" + mail("quentin"))
    now = quentin.api_ok("GET", "/notifications")
    assert now["address"] is None and now["addresses"] == [], now


def test_an_owners_display_name_cannot_add_headers_links_or_recipients_to_an_email(srv):
    sven = person(srv, "sven", "TEL:+1 202 555 0181",
                  fn=r"Sven\nBcc: victim@elsewhere.example\nX-Evil: 1 http://evil.example/x "
                     "<b>www.evil.example</b> \u202eexe.txt")
    tara = person(srv, "tara")  # the default: offers by e-mail to her verified address
    keeps(tara, "sven")
    # sven's own requests name another host: links in tara's e-mail are not his to choose
    r = sven.http.post(srv.url + API + "/targets", json={"targets": ["user:tara"]},
                       headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                                "X-Forwarded-Proto": "https"})
    assert r.status_code == 200, r.text
    settled(sven)
    (offer,) = tara.api_ok("GET", "/offers")["offers"]

    def notices() -> list[email.message.Message]:
        return [m for m in list(srv.mail.messages) if m["List-Unsubscribe"] is not None
                and mail("tara") in (m["To"] or "")]
    (message,) = wait_until(notices, 30, "tara's notification")
    raw = message.as_string()
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "evil.example" not in raw and "victim" not in raw and "\u202e" not in raw
    assert all("victim" not in (m["To"] or "") for m in srv.mail.messages)
    assert message["Subject"].startswith("Sven Bcc:") and "(sven)" in message["Subject"]
    # every link is this server's own
    links = re.findall(r"https?://[^\s>]+", raw)
    assert links and all(link.startswith(srv.url + PAGES) for link in links), links
    assert offer["owner"] == "sven"
    # the unsubscribe link can do that one thing: no other body, no other setting
    link = message["List-Unsubscribe"].strip("<>")
    anonymous = requests.Session()
    setting = tara.api_ok("GET", "/notifications")
    policies = tara.api_ok("GET", "/policies")
    for body in ({"email": "offers-and-changes"}, {"address": "mailto:" + mail("sven")},
                 {"List-Unsubscribe": "One-Click-Not"}, {"policy": "auto", "owner": "sven"}):
        assert anonymous.post(link, json=body).status_code == 400, body
        assert anonymous.post(link, data=body, headers={"Origin": "https://evil.example"}
                              ).status_code == 400, body
    assert anonymous.post(link + "/x", data={"List-Unsubscribe": "One-Click"}
                          ).status_code in (403, 404)
    assert anonymous.post(srv.url + API + "/notifications", json={"email": "offers"},
                          headers={"Authorization": "Bearer " + link.rsplit("/", 1)[1]}
                          ).status_code == 401
    assert tara.api_ok("GET", "/notifications") == setting
    assert anonymous.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert tara.api_ok("GET", "/notifications")["email"] == "none"  # positive control
    assert tara.api_ok("GET", "/policies") == policies


# -- markup in card data on the recipient's pages ---------------------------------------

def test_an_owners_markup_is_inert_text_on_the_recipients_pages(srv, browser):
    vic = person(srv, "vic", "N:%s;;;;" % EVIL, "TEL:+1 202 555 0191", "NOTE:" + EVIL,
                 "ORG:" + EVIL, "URL:javascript:alert(4)",
                 "CATEGORIES:" + EVIL.replace(",", ""), fn=EVIL)
    vic.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL", "EMAIL", "NOTE", "ORG",
                                                     "URL"]})
    uma = person(srv, "uma")
    keeps(uma, "vic")
    vic.api_ok("POST", "/targets", {"targets": ["user:uma"]})
    settled(vic)
    assert uma.api_ok("GET", "/offers")["offers"]  # an offer waits: its pages show values
    pages = ("/", "/updates", "/updates/vic", "/updates/vic?card=new", "/history",
             "/history?owner=vic", "/settings")
    for page in pages:
        r = uma.http.get(srv.url + PAGES + page)
        assert r.status_code == 200, (page, r.status_code)
        inert(r.text)
        not_framable(r)
    uma.api_ok("POST", "/offers/vic/accept", {})
    wait_until(lambda: "alert(4)" in uma.card("c-vic.vcf"), 60, "vic's values")
    r = uma.http.get(srv.url + PAGES + "/history")
    inert(r.text)
    assert "alert(4)" in r.text and "&lt;img src=x" in r.text  # shown, as text
    browser.sign_in("uma", USERS["uma"])
    for page in ("/updates", "/history", "/history?owner=vic"):
        browser.open(srv.url + PAGES + page)
        browser.wait_for("nav.mecard-nav")
        assert browser.all("img[src=x]") == []
        assert [a for a in browser.all("a[href]")
                if a.get_attribute("href").lower().startswith("javascript")] == []
        assert browser.console_errors() == []
    assert "{{7*7}}" in browser.text()  # shown as written: no template ran over it
    assert not re.search(r"(?<![\d:])49(?![\d:])", browser.text())


# -- headers, redirects and files ---------------------------------------------------------

def test_every_page_answer_forbids_framing_and_pages_with_tokens_are_not_cached(srv):
    zoe = person(srv, "zoe")
    anonymous = requests.Session()
    answers = {page: zoe.http.get(srv.url + PAGES + page, allow_redirects=False)
               for page in ("/", "/updates", "/history", "/settings", "/card", "/recipients",
                            "/invites", "/history?owner=..", "/updates/%3Cb%3E", "/nothing",
                            "/card/x", "/login?next=/history", "/invite/not-a-token")}
    answers["unsubscribe, bad token"] = anonymous.get(srv.url + PAGES + "/unsubscribe/x.y")
    answers["unsubscribe, no token"] = anonymous.get(srv.url + PAGES + "/unsubscribe/")
    answers["unsubscribe, POST"] = anonymous.post(srv.url + PAGES + "/unsubscribe/x.y",
                                                  data={"List-Unsubscribe": "One-Click"})
    answers["invite landing, signed out"] = anonymous.get(srv.url + PAGES + "/invite/abc")
    for name, r in answers.items():
        assert r.status_code < 500, name
        not_framable(r)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", name
    for name in ("/invite/not-a-token", "unsubscribe, bad token", "invite landing, signed out"):
        assert "no-store" in answers[name].headers["Cache-Control"], name
        assert answers[name].headers.get("Referrer-Policy") == "no-referrer", name
    # a real invite's landing page and a real one-click link
    invite = zoe.api_ok("POST", "/invites", {})
    landing = anonymous.get(invite["url"])
    assert landing.status_code == 200 and "no-store" in landing.headers["Cache-Control"]
    not_framable(landing)


def test_login_goes_back_only_to_a_page_of_ours_and_static_files_stay_in_their_folder(srv):
    bob = srv.client("zack")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example",
                   "\\\\evil.example", "/%2F%2Fevil.example", "http:evil.example",
                   "/../../evil", "javascript:alert(1)", "/x\r\nSet-Cookie: a=b",
                   "%2F%2Fevil.example", "/%09/evil.example", "@evil.example"):
        r = bob.http.get(srv.url + PAGES + "/login", params={"next": target},
                         allow_redirects=False)
        assert r.status_code == 303, (target, r.status_code)
        location = r.headers["Location"]
        assert location.startswith(PAGES + "/"), (target, location)
        landed = urlsplit(urljoin(srv.url + PAGES + "/login", location))
        assert landed.netloc == urlsplit(srv.url).netloc, (target, location)
        assert landed.path.startswith(PAGES + "/") or landed.path == PAGES, (target, location)
        assert "Set-Cookie" not in r.headers
    good = bob.http.get(srv.url + PAGES + "/login", params={"next": "/history?owner=alice"},
                        allow_redirects=False)
    assert good.headers["Location"] == PAGES + "/history?owner=alice"  # positive control
    for name in ("../__init__.py", "..%2f__init__.py", "%2e%2e/render.py", "mecard.js%00.css",
                 "../templates/base.html", "..\\__init__.py", "MECARD.JS", "mecard.js/",
                 "static/mecard.js", ".%2e/pages/__init__.py", "render.py"):
        r = requests.get(srv.url + PAGES + "/static/" + name)
        assert r.status_code in (400, 404), (name, r.status_code)
        assert "SPDX" not in r.text or r.headers["Content-Type"].startswith(
            ("text/javascript", "text/css")), name
    js = requests.get(srv.url + PAGES + "/static/mecard.js")
    assert js.status_code == 200 and js.headers["X-Content-Type-Options"] == "nosniff"


# -- audiences ----------------------------------------------------------------------------

def test_a_field_set_reaches_only_its_audience(srv):
    # walt owns; xena is family (a group of his contacts); yuri is family too, but named by
    # a rule of his own (the most specific: the shared fields)
    walt = person(srv, "walt", "TEL:+1 202 555 0199", "ADR;TYPE=HOME:;;7 Secret Lane;Town;;1;US",
                  "NOTE:family only note", "BDAY:1980-01-02")
    xena = person(srv, "xena")
    yuri = person(srv, "yuri")
    for name in ("xena", "yuri"):
        assert walt.put("c-%s.vcf" % name, vcard("w-" + name, name.title(), "EMAIL:" + mail(name),
                                                 "CATEGORIES:Family")).status_code == 201
    for recipient in (xena, yuri):
        keeps(recipient, "walt")
        recipient.api_ok("POST", "/policies", {"owner": "walt", "policy": "auto"})
    family = ["FN", "N", "EMAIL", "TEL", "ADR", "NOTE", "BDAY"]
    walt.api_ok("POST", "/targets", {"targets": ["group:Family", "user:yuri"]})
    walt.api_ok("POST", "/audiences", {"rule": "group:Family", "fields": family})
    settled(walt)
    wait_until(lambda: "Secret Lane" in xena.card("c-walt.vcf"), 60, "family fields at xena's")
    wait_until(lambda: "0199" in yuri.card("c-walt.vcf"), 60, "walt's number at yuri's")
    leaks = ("Secret Lane", "family only", "1980")
    for leak in leaks:
        assert leak not in yuri.card("c-walt.vcf"), leak
    assert not any(leak in yuri.http.get(srv.url + PAGES + "/history").text for leak in leaks)
    # an invite's preview (for whoever holds the link) and its page: the shared fields only
    invite = walt.api_ok("POST", "/invites", {})
    for text in (requests.get(srv.url + API + "/invite/" + invite["token"]).text,
                 requests.get(invite["url"]).text,
                 yuri.http.get(invite["url"]).text):
        assert not any(leak in text for leak in leaks), text[:300]
    # sending now to yuri by name does not widen his set
    walt.api_ok("POST", "/send", {"recipients": ["yuri"]})
    settled(walt)
    assert not any(leak in yuri.card("c-walt.vcf") for leak in leaks)
    # positive control: the owner's previews say who gets what
    assert "Secret Lane" in walt.api_ok("GET", "/preview?rule=group:Family")["card"]
    assert "Secret Lane" not in walt.api_ok("GET", "/preview?recipient=yuri")["card"]
    # a recipient can neither set nor read the owner's field sets
    r = xena.api("POST", "/audiences", {"rule": "group:Family", "fields": ["FN"]})
    assert r.status_code == 400
    assert walt.api_ok("GET", "/me")["audiences"][0]["fields"] == family
    r = xena.api("GET", "/preview?rule=group:Family")
    assert r.status_code in (400, 409) and "Secret" not in r.text


def test_saving_a_field_set_again_is_no_new_version_to_re_ask_who_refused(srv):
    amy = person(srv, "amy", "TEL:+1 202 555 0201")
    ben = person(srv, "ben")  # asked (the default policy), refuses amy's card
    keeps(ben, "amy")
    amy.api_ok("POST", "/targets", {"targets": ["user:ben", "all"]})
    settled(amy)
    (offer,) = ben.api_ok("GET", "/offers")["offers"]
    ben.api_ok("POST", "/offers/amy/refuse", {})
    assert ben.api_ok("GET", "/offers")["offers"] == []
    seq = amy.api_ok("GET", "/me")["seq"]
    # amy saves the same field sets again and again (the page's "Save" button)
    for _ in range(3):
        amy.api_ok("POST", "/audiences", {"rule": "user:ben", "fields": None})
        amy.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL", "EMAIL"]})
    settled(amy)
    assert amy.api_ok("GET", "/me")["seq"] == seq
    assert ben.api_ok("GET", "/offers")["offers"] == []  # refused stays refused
    # a field set for another audience: what ben gets is the same, so he is not asked again
    amy.api_ok("POST", "/audiences", {"rule": "all", "fields": ["FN", "EMAIL"]})
    settled(amy)
    assert ben.api_ok("GET", "/offers")["offers"] == []
    # positive control: a change of what ben gets is a new version for him: he is asked
    assert amy.put("me.vcf", amy.card("me.vcf").replace("0201", "0202")).status_code == 204
    settled(amy)
    (again,) = wait_until(lambda: ben.api_ok("GET", "/offers")["offers"], 30, "a new offer")
    assert again["seq"] > offer["seq"] and "0202" in str(again["changes"])


def test_the_recipients_pages_tell_nothing_of_other_users_or_their_cards(srv):
    dina = person(srv, "dina", "TEL:+1 202 555 0211")
    eli = person(srv, "eli")
    keeps(eli, "dina")
    dina.api_ok("POST", "/targets", {"targets": ["user:eli"]})
    settled(dina)
    assert eli.api_ok("GET", "/offers")["offers"]
    fay = person(srv, "fay")  # another user, with a card of her own
    keeps(fay, "dina", "secret.vcf", "NOTE:fay's private note")
    fay.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    fays = fay.get("secret.vcf").headers["ETag"]
    # pages named after users: one who exists and hides, one who never was, one who exists
    names = ("fay", "no-such-user", "hal")
    for page in ("/updates/%s", "/history?owner=%s"):
        texts = {eli.http.get(srv.url + PAGES + page % name).text.replace(name, "NAME")
                 for name in names}
        assert len(texts) == 1, page
    for query in ("/history?owner=%s", "/offers?owner=%s"):
        answers = {eli.api("GET", query % name).text for name in names}
        assert len(answers) == 1, (query, answers)
    # another user's card as the card to accept into, in the API and on the page
    for card in ("/fay/contacts/secret.vcf", "/fay/contacts/", "/fay/contacts/../x.vcf",
                 "/eli/contacts/../../fay/contacts/secret.vcf", "/.mecard/x.vcf"):
        r = eli.api("GET", "/offers?owner=dina&card=" + requests.utils.quote(card, safe=""))
        assert r.status_code in (400, 403, 404) and "private note" not in r.text, (card, r.text)
        page = eli.http.get(srv.url + PAGES + "/updates/dina",
                            params={"card": card})
        assert page.status_code == 200 and "private note" not in page.text, card
        accept = eli.api("POST", "/offers/dina/accept", {"card": card})
        assert accept.status_code in (400, 403, 404), (card, accept.text)
    assert fay.get("secret.vcf").headers["ETag"] == fays
    invite = dina.api_ok("POST", "/invites", {})
    for card in ("/fay/contacts/secret.vcf", "/fay/contacts/../x.vcf"):
        r = eli.api("GET", "/invite/%s?card=%s" % (invite["token"],
                                                    requests.utils.quote(card, safe="")))
        assert r.status_code in (400, 403, 404) and "private note" not in r.text, card
    # positive control: eli's own card
    (mine,) = eli.api_ok("GET", "/offers?owner=dina&card=/eli/contacts/c-dina.vcf")["offers"]
    assert mine["card"]["path"] == "/eli/contacts/c-dina.vcf"


def test_the_qr_code_is_made_only_of_my_own_open_invites(srv):
    gus = person(srv, "gus", "TEL:+1 202 555 0221")
    hal = person(srv, "hal", "TEL:+1 202 555 0222")
    mine = gus.api_ok("POST", "/invites", {})
    revoked = gus.api_ok("POST", "/invites", {})
    gus.api_ok("POST", "/invites/%s/revoke" % revoked["id"], {})
    used_up = gus.api_ok("POST", "/invites", {"max_uses": 1})
    cleo = srv.client("cleo")
    cleo.login()
    cleo.api_ok("POST", "/invite/%s/accept" % used_up["token"], {})
    halls = hal.api_ok("POST", "/invites", {})
    answers = [gus.api("POST", "/invites/qr", {"token": token}) for token in (
        revoked["token"], used_up["token"], halls["token"], "A" * 43, mine["token"] + "x")]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    ok = gus.api_ok("POST", "/invites/qr", {"token": mine["token"]})  # positive control
    assert ok["url"] == mine["url"] and ok["url"].startswith(srv.url)


@pytest.fixture
def elsewhere() -> Iterator[str]:
    """Another web site (another origin on this machine): it serves one page that frames
    the URL in its query string, as a clickjacking page would."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            target = parse_qs(urlsplit(self.path).query).get("u", [""])[0]
            body = ("<!DOCTYPE html><title>elsewhere</title><iframe id=f src='%s'></iframe>"
                    % target.replace("'", "")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://localhost:%d/" % site.server_address[1]
    finally:
        site.shutdown()
        site.server_close()


def framed(browser: Browser, site: str, url: str) -> str:
    """What the other site's page shows of ``url`` in its frame."""
    browser.open(site + "?u=" + requests.utils.quote(url, safe=""))
    time.sleep(1.5)
    browser.driver.switch_to.frame(browser.css("#f"))
    try:
        return browser.driver.page_source
    finally:
        browser.driver.switch_to.default_content()


def test_a_foreign_page_cannot_show_the_pages_in_a_frame(srv, browser, elsewhere):
    hal = srv.client("hal")
    hal.login()
    browser.sign_in("hal", USERS["hal"])
    for page in ("/history", "/settings", "/nothing-here", "/unsubscribe/x.y"):
        shown = framed(browser, elsewhere, srv.url + PAGES + page)
        assert "mecard" not in shown and "link does not work" not in shown, page
        assert "no such page" not in shown.lower() and "could not be found" not in shown, page
    # positive control: a file that may be framed shows in the same frame
    assert "mecard" in framed(browser, elsewhere, srv.url + PAGES + "/static/mecard.css")
