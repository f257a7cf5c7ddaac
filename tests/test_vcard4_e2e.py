# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: vCard 4.0 as DAVx5 writes it, through a real Radicale with the plugin.

The owner PUTs a me card with a photo (a 4.0 ``data:`` URI, or 3.0
``ENCODING=b``), numbers as text and as ``tel:`` URIs, an e-mail and an
address; one recipient holds a 3.0 copy (groups by CATEGORIES), the other a
4.0 copy (a ``KIND:group`` card lists it as a MEMBER).  After the fan-out,
every card read back over CardDAV has the image byte for byte, passes vobject
and the strict checker of :mod:`tests.test_vcard4`, and keeps its groups; then
the recipients' phones save their copies back (iOS, DAVx5) and the next
update still replaces exactly the owner's old number, labels and form kept.
"""
from __future__ import annotations

import pytest

from radicale_plugin.vcard.codec import parse_card
from tests.server import Client, RadicaleServer, settled
from tests.test_fanout_e2e import person
from tests.test_vcard4 import (B64_1, B64_2, COPY3, COPY4, FIELDS, PNG1, PNG2, assert_valid,
                               davx5_copy, ios_copy, owner_card, photo_bytes, strict_problems)

#: Carol's own group, in her 4.0 book: it lists the card that will hold Alice's copy.
CAROLS_GROUP = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g-climbers\r\nKIND:group\r\nFN:Climbers\r\n"
                "MEMBER:urn:uuid:carols-card-for-alice\r\nEND:VCARD\r\n")

#: Alice's contacts for Bob and Carol, and her group "Family" in the encoding of her version.
ALICES_CONTACTS = {
    "4.0": {
        "c-bob.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alice-contact-bob\r\nFN:Bob\r\n"
                     "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0102\r\nEND:VCARD\r\n",
        "c-carol.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alice-contact-carol\r\nFN:Carol\r\n"
                       "EMAIL:carol@example.org\r\nEND:VCARD\r\n",
        "g-family.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g-family\r\nKIND:group\r\n"
                        "FN:Family\r\nMEMBER:urn:uuid:alice-contact-bob\r\n"
                        "MEMBER:urn:uuid:alice-contact-carol\r\nEND:VCARD\r\n",
    },
    "3.0": {
        "c-bob.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-contact-bob\r\nFN:Bob\r\n"
                     "N:;Bob;;;\r\nTEL;TYPE=CELL:202-555-0102\r\nCATEGORIES:Family\r\n"
                     "END:VCARD\r\n",
        "c-carol.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-contact-carol\r\nFN:Carol\r\n"
                       "N:;Carol;;;\r\nEMAIL:carol@example.org\r\nCATEGORIES:Family,Work\r\n"
                       "END:VCARD\r\n",
    },
}


def checked(client: Client, href: str) -> str:
    """GET a card and check it: the strict checker and vobject (Radicale does not fold PHOTO,
    so physical line lengths, a SHOULD, are not checked here)."""
    text = client.card(href)
    assert strict_problems(text) == [], text
    assert_valid(text)
    return text


def share(server: RadicaleServer, owner_version: str) -> tuple[Client, Client, Client]:
    """Alice (owner, me card of ``owner_version``) shares with her group Family: Bob (3.0 copy)
    and Carol (4.0 copy); returns after the first fan-out."""
    alice = server.client("alice")
    alice.login()
    assert alice.put("alice.vcf", owner_card(owner_version)).status_code == 201
    alice.api_ok("POST", "/me-card", {"path": alice.book() + "alice.vcf"})
    alice.verify_me_card()
    alice.api_ok("POST", "/shared-fields", {"fields": FIELDS})
    bob, carol = person(server, "bob", "bob-me.vcf"), person(server, "carol", "carol-me.vcf")
    assert bob.put("ally.vcf", COPY3).status_code == 201
    assert carol.put("alice.vcf", COPY4).status_code == 201
    assert carol.put("g-climbers.vcf", CAROLS_GROUP).status_code == 201
    for href, text in ALICES_CONTACTS[owner_version].items():
        assert alice.put(href, text).status_code == 201, href
    alice.api_ok("POST", "/targets", {"targets": ["group:Family"]})
    report = settled(alice)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        "bob": "delivered", "carol": "delivered"}
    return alice, bob, carol


def check_copies(alice: Client, bob: Client, carol: Client, image: bytes, mobile: str,
                 group_card: str) -> tuple[str, str]:
    """Both copies and the owner's card, as clients read them; returns the copies."""
    own = checked(alice, "alice.vcf")
    assert photo_bytes(own) == image, "the owner's own card lost its photo"
    bobs = checked(bob, "ally.vcf")
    card = parse_card(bobs)
    assert card.version == "3.0" and card.first_value("UID") == "bobs-card-for-alice"
    assert photo_bytes(bobs) == image
    photo, = card.get("PHOTO")
    assert [e.lower() for e in photo.param("ENCODING")] == ["b"]
    assert "data:" not in bobs and "VALUE=uri" not in bobs and "PREF=" not in bobs
    assert card.first_value("CATEGORIES") == "Friends,Climbing"
    assert mobile.replace("-", " ")[-4:] in bobs and "1 Main St" in bobs
    carols = checked(carol, "alice.vcf")
    card = parse_card(carols)
    assert card.version == "4.0" and card.first_value("UID") == "carols-card-for-alice"
    assert photo_bytes(carols) == image
    assert card.get("PHOTO")[0].value.startswith("data:image/png;base64,")
    assert "ENCODING" not in carols and "internet" not in carols.lower()
    uris = [ln.value for ln in card.get("TEL") if ln.value.startswith("tel:")]
    assert "tel:+1-202-555-" + mobile in uris   # the copy's tel: URI stays one
    assert card.first_value("CATEGORIES") == "Climbing"
    # Carol's group still lists her card for Alice, whose UID did not change
    assert checked(carol, "g-climbers.vcf") == group_card
    assert "MEMBER:urn:uuid:carols-card-for-alice" in group_card
    return bobs, carols


@pytest.mark.parametrize("owner_version", ["4.0", "3.0"])
def test_a_photo_reaches_3_0_and_4_0_copies_intact_and_updates_follow(server, owner_version):
    alice, bob, carol = share(server, owner_version)
    group_card = carol.card("g-climbers.vcf")
    bobs, carols = check_copies(alice, bob, carol, PNG1, "0101", group_card)
    assert "0188" in bobs and "0188" in carols  # the owner's work number joined both

    token_bob, _ = bob.sync()
    token_carol, _ = carol.sync()
    assert alice.put("alice.vcf", owner_card(owner_version, B64_2, "0199")).status_code == 204
    settled(alice)
    bobs, carols = check_copies(alice, bob, carol, PNG2, "0199", group_card)
    assert "0101" not in bobs and "0101" not in carols
    assert "+1 202 555 0777" in bobs and "+1 202 555 0777" in carols  # the recipients' own
    assert bob.sync(token_bob)[1] == ["ally.vcf"]
    assert carol.sync(token_carol)[1] == ["alice.vcf"]


@pytest.mark.parametrize("owner_version", ["4.0", "3.0"])
def test_copies_saved_back_by_ios_and_davx5_are_updated_in_place(server, owner_version):
    alice, bob, carol = share(server, owner_version)
    # the phones save the copies back in their own way
    assert bob.put("ally.vcf", ios_copy(bob.card("ally.vcf"))).status_code == 204
    assert carol.put("alice.vcf", davx5_copy(carol.card("alice.vcf"))).status_code == 204
    settled(alice)
    assert "item1.TEL" in bob.card("ally.vcf")

    alice.put("alice.vcf", owner_card(owner_version, B64_2, "0199"))
    settled(alice)

    bobs = checked(bob, "ally.vcf")
    card = parse_card(bobs)
    mobile = [ln for ln in card.get("TEL") if "0199" in ln.value]
    assert len(mobile) == 1 and mobile[0].group.lower() == "item1"
    assert {t.upper() for t in mobile[0].type_values()} == {"CELL", "VOICE", "PREF"}
    labels = {ln.group.lower(): ln.value for ln in card.lines if ln.name == "X-ABLABEL"}
    assert labels == {"item1": "_$!<Mobile>!$_", "item3": "Alice's office",
                      "item4": "_$!<Home>!$_"}
    assert "0101" not in bobs and "(202) 555-0777" in bobs and "(202) 555-0188" in bobs
    assert card.first_value("CATEGORIES") == "Friends,Climbing"
    assert photo_bytes(bobs) == PNG2

    carols = checked(carol, "alice.vcf")
    card = parse_card(carols)
    tel = [ln for ln in card.get("TEL") if "0199" in ln.value]
    assert len(tel) == 1 and tel[0].value == "tel:+1-202-555-0199"
    assert {(k.upper(), v) for k, v in tel[0].params} == {
        ("TYPE", "CELL"), ("PREF", "1"), ("VALUE", "uri")}
    assert "0101" not in carols and card.first_value("CATEGORIES") == "Climbing"
    assert photo_bytes(carols) == PNG2
    assert "MEMBER:urn:uuid:carols-card-for-alice" in carol.card("g-climbers.vcf")


def test_the_owners_4_0_card_reads_back_with_its_photo_before_any_sharing(server):
    alice = server.client("alice")
    alice.login()
    assert alice.put("mine.vcf", owner_card("4.0")).status_code == 201
    text = checked(alice, "mine.vcf")
    assert photo_bytes(text) == PNG1
    assert "\\;base64" not in text
    # and a 4.0 card moved within the book keeps it too (MOVE parses the card again)
    r = alice.http.request("MOVE", alice.url + alice.book() + "mine.vcf",
                           headers={"Destination": alice.url + alice.book() + "moved.vcf"})
    assert r.status_code in (201, 204), r.text
    assert photo_bytes(checked(alice, "moved.vcf")) == PNG1
    assert B64_1 in text


#: A recipient's own card with URI values that hold commas (and one escaped comma, kept as sent).
URIS = ("URL:https://example.org/a,b?x=1,2\r\n"
        "URL;TYPE=work:http://example.net/p\\,q\r\n"
        "IMPP;X-SERVICE-TYPE=xmpp:xmpp:dora@example.org,work\r\n"
        "SOURCE:https://example.org/cards/dora,1.vcf\r\n"
        "X-SOCIALPROFILE;TYPE=twitter:https://twitter.com/search?q=a,b\r\n"
        "RELATED;TYPE=friend:urn:uuid:a,b\r\n"
        "NOTE:a text\\, with a comma\r\n")


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_uri_values_of_a_recipients_own_card_are_not_cut_at_a_comma(public_server, version):
    """Shipped defaults.  Radicale re-serialises every card through vobject, which read URL and
    the other URI properties as text lists and kept what came before the first comma."""
    bob = public_server.client("bob")
    bob.login()
    card = ("BEGIN:VCARD\r\nVERSION:%s\r\nUID:dora\r\nFN:Dora\r\n%sEND:VCARD\r\n"
            % (version, URIS))
    assert bob.put("dora.vcf", card).status_code == 201
    wanted = [ln for ln in URIS.split("\r\n") if ln]

    def whole(text: str) -> None:
        lines = text.replace("\r\n ", "").split("\r\n")
        for line in wanted:
            name, _, value = line.partition(":")
            found = [ln for ln in lines if ln.split(":", 1)[0].upper() == name.upper()]
            assert any(ln.endswith(":" + value) for ln in found), (line, found)

    whole(bob.card("dora.vcf"))
    # MOVE and a whole book written at once are parsed by Radicale the same way
    r = bob.http.request("MOVE", bob.url + bob.book() + "dora.vcf",
                         headers={"Destination": bob.book() + "moved.vcf"})
    assert r.status_code == 201
    whole(bob.card("moved.vcf"))
    r = bob.http.put(bob.url + bob.book(), data=card.encode(),
                     headers={"Content-Type": "text/vcard"})
    assert r.status_code in (201, 204), r.text
    href, = bob.hrefs()
    whole(bob.card(href))
