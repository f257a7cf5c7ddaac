# SPDX-License-Identifier: GPL-3.0-or-later
"""Numbers written the local way, wherever the user lives (issue 13, section 3).

On a server with the shipped configuration (``mecard_default_region = US``,
policy ``ask``, discoverability ``contacts``), each user's book is read in the
user's own region: their setting (``POST /region``) first, then the country
code of their me card's numbers, then the server's default.  A recipient in
Germany who stores alice as ``0151 11112222`` is found by alice's rules, and
alice's copy lands in that very card; French and British national forms
likewise.  Positive and negative controls: the same book read in the US
region finds nobody.
"""
from __future__ import annotations

import pytest

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, last_code, settled, wait_until
from tests.test_bridge_defaults_e2e import DE_LOG, login
from tests.test_bridge_e2e import bridge, rows

NOW = ["--now", "2026-11-01T00:00:00"]

#: country → (alice's number, as the recipient stores it, the recipient's own number)
COUNTRIES = {
    "DE": ("+49 151 11112222", "0151 11112222", "+49 170 5550001"),
    "FR": ("+33 6 12 34 56 78", "06 12 34 56 78", "+33 6 98 76 54 32"),
    "GB": ("+44 7700 900123", "07700 900123", "+44 7700 900456"),
}


ALICES_MAIL = "alice@example.org"


def card(uid: str, name: str, *values: str) -> str:
    """A vCard 3.0 with these numbers (and e-mails: values with an @)."""
    lines = "".join("EMAIL;TYPE=INTERNET:%s\r\n" % v if "@" in v else "TEL;TYPE=CELL:%s\r\n" % v
                    for v in values)
    return ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nN:%s;;;;\r\n%sEND:VCARD\r\n"
            % (uid, name, name, lines))


def with_me_card(server: RadicaleServer, user: str, *tels: str) -> Client:
    """A user who logged in, designated a me card with ``tels`` and verified them."""
    client = server.client(user)
    client.login()
    if tels:
        assert client.put("me.vcf", card("me-" + user, user.title(), *tels)).status_code == 201
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    return client


def alice_shares_with(server: RadicaleServer, tel: str, recipient: str, their_tel: str
                      ) -> Client:
    """Alice, with ``tel`` and an e-mail verified (the e-mail is what a recipient who has
    her number still lacks), has a contact for the recipient and shares with all."""
    alice = with_me_card(server, "alice", tel, ALICES_MAIL)
    assert alice.put("c-%s.vcf" % recipient, card("c-" + recipient, recipient.title(),
                                                  their_tel)).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    return alice


def recipients(alice: Client) -> dict[str, str]:
    return {r["user"]: r["state"] for r in settled(alice)["recipients"]}


@pytest.mark.parametrize("country", sorted(COUNTRIES))
def test_a_recipient_storing_alice_the_local_way_is_matched_and_the_copy_lands_there(
        public_server, country):
    alices, stored, bobs = COUNTRIES[country]
    bob = with_me_card(public_server, "bob", bobs)  # his region: the country code of his card
    assert bob.api_ok("GET", "/me")["default_region"] == "US"  # the shipped default
    assert bob.api_ok("GET", "/me")["region"] == {
        "code": country, "source": "me card", "detail": bobs.split()[0]}
    assert bob.put("ally.vcf", card("ally", "Ally", stored)).status_code == 201
    alice = alice_shares_with(public_server, alices, "bob", bobs)

    # the shipped policy: an offer, proposing bob's own card for alice
    assert recipients(alice) == {"bob": "offered"}
    offers = bob.api_ok("GET", "/offers")["offers"]
    assert [(o["owner"], o["card"]["path"]) for o in offers] == [("alice",
                                                                  "/bob/contacts/ally.vcf")]
    bob.api_ok("POST", "/offers/alice/accept", {})
    assert bob.copy_of("alice") == "ally.vcf"
    copy = bob.card("ally.vcf")
    # her e-mail joined; one number, not the same number twice in two spellings
    assert [ln for ln in copy.splitlines() if ln.startswith(("TEL", "EMAIL"))] == \
        ["TEL;TYPE=CELL:%s" % stored, "EMAIL;TYPE=INTERNET:%s" % ALICES_MAIL]
    assert "FN:Ally" in copy and len(bob.hrefs()) == 2  # his name for her; no new contact

    # alice's next change reaches the same card by itself (accepting made her "auto")
    alice.put("me.vcf", card("me-alice", "Alice", alices, "alice@example.net"))
    assert recipients(alice) == {"bob": "delivered"}
    assert "EMAIL;TYPE=INTERNET:alice@example.net" in bob.card("ally.vcf")


BOBS_MAIL = "bob@example.org"


def test_the_same_book_read_in_the_server_default_finds_nobody_until_the_user_sets_a_region(
        public_server):
    alices, stored, _ = COUNTRIES["DE"]
    # bob's me card has only his e-mail: nothing tells his region but the server, US
    bob = with_me_card(public_server, "bob", BOBS_MAIL)
    assert bob.api_ok("GET", "/me")["region"] == {"code": "US", "source": "server default",
                                                   "detail": ""}
    assert bob.put("ally.vcf", card("ally", "Ally", stored)).status_code == 201
    alice = alice_shares_with(public_server, alices, "bob", BOBS_MAIL)
    # read as a US number, his card for alice is nobody's: under discoverability
    # "contacts" he is not somebody who knows her, and she cannot find him
    assert recipients(alice) == {}

    me = bob.api_ok("POST", "/region", {"region": "de"})
    assert me["region"] == {"code": "DE", "source": "setting", "detail": ""}
    # his book was read again at once, and alice's plan made anew
    wait_until(lambda: recipients(alice) == {"bob": "offered"}, what="bob offered alice's card")
    offers = bob.api_ok("GET", "/offers")["offers"]
    assert [o["card"]["path"] for o in offers] == ["/bob/contacts/ally.vcf"]
    bob.api_ok("POST", "/offers/alice/accept", {})
    assert bob.copy_of("alice") == "ally.vcf"


def test_a_me_card_with_a_country_code_makes_the_books_read_again(public_server):
    alices, stored, bobs = COUNTRIES["FR"]
    bob = with_me_card(public_server, "bob", BOBS_MAIL)
    assert bob.put("ally.vcf", card("ally", "Ally", stored)).status_code == 201
    alice = alice_shares_with(public_server, alices, "bob", BOBS_MAIL)
    assert recipients(alice) == {}  # his book read as US shows no key of hers

    # he adds his French mobile to his me card (not even verified): his region is FR now
    assert bob.put("me.vcf", card("me-bob", "Bob", BOBS_MAIL, bobs)).status_code == 204
    assert bob.api_ok("GET", "/me")["region"] == {"code": "FR", "source": "me card",
                                                   "detail": "+33"}
    wait_until(lambda: recipients(alice) == {"bob": "offered"},
               what="bob offered alice's card once his book is read as French")
    offers = bob.api_ok("GET", "/offers")["offers"]
    assert offers[0]["card"]["path"] == "/bob/contacts/ally.vcf"


def test_the_users_setting_wins_over_the_me_card_and_null_gives_it_back(public_server):
    # bob is German with a French mobile on his me card; his book is written the German way
    alices, stored, _ = COUNTRIES["DE"]
    french = COUNTRIES["FR"][2]
    bob = with_me_card(public_server, "bob", french)
    assert bob.api_ok("GET", "/me")["region"]["code"] == "FR"
    assert bob.put("ally.vcf", card("ally", "Ally", stored)).status_code == 201
    alice = alice_shares_with(public_server, alices, "bob", french)
    assert recipients(alice) == {}  # read as French: not alice's number

    assert bob.api_ok("POST", "/region", {"region": "DE"})["region"]["source"] == "setting"
    wait_until(lambda: recipients(alice) == {"bob": "offered"}, what="bob offered alice's card")
    assert bob.api_ok("GET", "/offers")["offers"][0]["card"]["path"] == \
        "/bob/contacts/ally.vcf"

    me = bob.api_ok("POST", "/region", {"region": None})
    assert me["region"] == {"code": "FR", "source": "me card", "detail": "+33"}


def test_keys_are_verified_in_the_users_region(public_server):
    alices = COUNTRIES["GB"][0]
    alice = with_me_card(public_server, "alice", alices)  # GB from her card
    alice.api_ok("POST", "/keys/verify", {"key": "07700 900123"})
    keys = {k["key"]: k["state"] for k in alice.api_ok("GET", "/keys")["keys"]}
    assert keys == {"tel:+447700900123": "verified"}
    answer = alice.api_ok("POST", "/keys/verify", {"key": "07700 900123"})
    assert answer["key"] == "tel:+447700900123"  # her national form, read as British


@pytest.mark.parametrize("value, why", [
    ("Germany", "'Germany' is not a region: give a two-letter country code"),
    ("XX", "'XX' is not a region"),
    (49, "'int' is not a region"),
    ("", "'' is not a region"),
])
def test_a_region_that_is_not_one_is_refused_with_how_to_write_one(public_server, value, why):
    bob = with_me_card(public_server, "bob")
    r = bob.api("POST", "/region", {"region": value})
    assert r.status_code == 400 and why in r.json()["error"]
    assert "DE, FR, GB or US" in r.json()["error"]
    assert bob.api_ok("GET", "/me")["region"]["code"] == "US"  # nothing changed
    r = bob.api("POST", "/region", {})
    assert r.status_code == 400 and "give {\"region\": \"DE\"}" in r.json()["error"]


def test_the_bridge_selects_german_users_from_a_german_log_on_a_us_server(
        public_server, monkeypatch, capsys):
    """tests/fixtures/de-calls.xml against users who keep alice's number the German way."""
    alice = with_me_card(public_server, "alice", "+49 30 23125000")
    for user, tel in {"bob": "+49 176 04069010", "carol": "+49 30 23125011",
                      "dave": "+49 30 23125012", "erin": "+49 171 3920034"}.items():
        client = with_me_card(public_server, user, tel)
        # they know alice, written as a German phone writes her (their region: their card)
        client.put("alice.vcf", card("alice-" + user, "Alice", "030 23125000"))
    from tests.server import fixture
    for n, text in enumerate(fixture("de-contacts.vcf").split("END:VCARD\r\n")[:-1]):
        assert alice.put("de-%d.vcf" % n, text + "END:VCARD\r\n").status_code == 201
    login(monkeypatch, public_server)
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, *NOW)
    assert code == 0, out
    table = rows(out)
    assert sorted(table) == ["Bob", "Carol", "Dave", "Erin"]
    for user in ("bob", "carol", "dave", "erin"):
        assert user in table[user.title()].split()


def test_a_server_with_another_default_reads_users_without_a_clue_in_it(tmp_path):
    alices, stored, _ = COUNTRIES["DE"]
    server = RadicaleServer(tmp_path, USERS, mecard_default_region="DE").start()
    try:
        bob = with_me_card(server, "bob")
        assert bob.api_ok("GET", "/me")["region"] == {"code": "DE", "source": "server default",
                                                       "detail": ""}
        assert bob.put("ally.vcf", card("ally", "Ally", stored)).status_code == 201
        alice = with_me_card(server, "alice", alices, ALICES_MAIL)
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        assert recipients(alice) == {"bob": "offered"}
        assert bob.api_ok("GET", "/offers")["offers"][0]["card"]["path"] == \
            "/bob/contacts/ally.vcf"
    finally:
        server.stop()


def test_the_bridge_shows_sets_and_clears_the_users_region(public_server, monkeypatch, capsys):
    with_me_card(public_server, "alice", COUNTRIES["FR"][0])
    login(monkeypatch, public_server)
    code, out = bridge("region")
    assert code == 0 and out.startswith(
        "Your numbers without a country code are read as FR (the country code +33 of your me "
        "card's numbers).")
    code, out = bridge("region", "de")
    assert code == 0 and out.splitlines() == [
        "Your numbers without a country code are read as DE (your setting)."]
    capsys.readouterr()
    # the bridge reads her phone's log in her setting too
    assert bridge("select", "all")[0] == 0
    assert "read as DE (your region setting on the server)" in capsys.readouterr().err
    assert bridge("region", "Germany")[0] == 1
    assert "region 'Germany' is not a region: give a two-letter country code" \
        in capsys.readouterr().err
    code, out = bridge("region", "--clear", "--json")
    assert code == 0 and '"code": "FR"' in out and '"source": "me card"' in out


def test_a_code_is_confirmed_for_the_number_as_the_user_writes_it(public_server):
    """Starting and confirming read a national number in the same region: the user's
    (issue 13, section 3; the confirmation once read it in the server's default, US)."""
    alice = with_me_card(public_server, "alice", COUNTRIES["GB"][0])  # GB from her card
    assert alice.put("me.vcf", card("me-alice", "Alice", COUNTRIES["GB"][0], "07700 900456")
                     ).status_code == 204
    assert alice.api_ok("POST", "/keys/verify", {"key": "07700 900456"})["key"] == \
        "tel:+447700900456"
    code = last_code(public_server.sms_to("+447700900456"))
    r = alice.api("POST", "/keys/confirm", {"key": "07700 900456", "code": code})
    assert r.status_code == 200 and r.json()["key"] == "tel:+447700900456", r.text
    keys = {k["key"]: k["state"] for k in alice.api_ok("GET", "/keys")["keys"]}
    assert keys == {"tel:+447700900123": "verified", "tel:+447700900456": "verified"}
    # negative control: a wrong code, written the same way, is a wrong code for that key
    alice.api_ok("POST", "/keys/verify", {"key": "07700 900456"})
    r = alice.api("POST", "/keys/confirm", {"key": "07700 900456", "code": "000000"})
    assert r.status_code == 400 and r.json()["error"].startswith("wrong code"), r.text


def test_an_invite_shows_the_owners_national_numbers_read_in_her_region(public_server):
    """What an invite would give says which of the owner's numbers are verified: her
    national forms are read in her region, not the server's default."""
    alice = with_me_card(public_server, "alice", "+49 30 23125000", "0151 11112222")  # DE
    assert alice.api_ok("GET", "/me")["region"]["code"] == "DE"
    invite = alice.api_ok("POST", "/invites", {})
    bob = with_me_card(public_server, "bob")
    shown = bob.api_ok("GET", "/invite/" + invite["token"])
    assert sorted((k["key"], k["verified"]) for k in shown["owner_keys"]) == [
        ("tel:+4915111112222", True), ("tel:+493023125000", True)], shown["owner_keys"]
