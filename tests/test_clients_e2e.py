# SPDX-License-Identifier: GPL-3.0-or-later
"""Real clients: vdirsyncer syncing a recipient's book, the caldav library's DAV client."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import caldav
import pytest

from tests.server import fixture, settled
from tests.test_fanout_e2e import person, trio  # noqa: F401  (fixture)

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
#: real clients against both storages: files and PostgreSQL (conftest's ``backend``)
pytestmark = pytest.mark.both_backends


def test_vdirsyncer_sees_the_new_number_in_the_recipients_book(trio, server, tmp_path):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    local = tmp_path / "bob-local"
    local.mkdir()
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(f"""
[general]
status_path = "{tmp_path / 'status'}/"

[pair bob_contacts]
a = "bob_local"
b = "bob_remote"
collections = null

[storage bob_local]
type = "filesystem"
path = "{local}/"
fileext = ".vcf"

[storage bob_remote]
type = "carddav"
url = "{server.url}/bob/contacts/"
username = "bob"
password = "bob-pw"
""")

    discovered: list[bool] = []

    def sync() -> str:
        # as a phone: it discovers the books once, then syncs them (a vdirsyncer start each)
        for command in ("sync",) if discovered else ("discover", "sync"):
            done = subprocess.run([str(VDIRSYNCER), "-c", str(config), command],
                                  capture_output=True, text=True, timeout=120, input="")
            assert done.returncode == 0, done.stdout + done.stderr
        discovered.append(True)
        texts = [p.read_text() for p in local.glob("*.vcf")]
        return next(t for t in texts if "UID:bobs-card-for-alice" in t)

    assert "(202) 555-0101" in sync()  # Bob's own spelling of the old number
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    local_copy = sync()
    assert "+1 202 555 0199" in local_copy and "0101" not in local_copy
    assert "NICKNAME:Sis" in local_copy


def me_card_patch(path: str) -> str:
    return ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
            'xmlns:CS="http://calendarserver.org/ns/"><D:set><D:prop>'
            '<CS:me-card>%s</CS:me-card></D:prop></D:set></D:propertyupdate>' % path)


def test_apple_me_card_property_designates_the_me_card(server):
    alice = person(server, "alice")
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    dav = caldav.DAVClient(url=server.url, username="alice", password="alice-pw")
    body = me_card_patch("/alice/contacts/mine.vcf")
    assert dav.proppatch(server.url + "/alice/", body).status == 207
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"
    found = dav.propfind(server.url + "/alice/",
                         '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
                         '<D:prop><CS:me-card/></D:prop></D:propfind>', depth=0)
    assert "/alice/contacts/mine.vcf" in found.raw
    # the API sets the same property, so Apple clients see the API's choice
    alice.put("other.vcf", fixture("alice-me.vcf").replace("alice-me", "alice-2"))
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/other.vcf"})
    found = dav.propfind(server.url + "/alice/",
                         '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
                         '<D:prop><CS:me-card/></D:prop></D:propfind>', depth=0)
    assert "/alice/contacts/other.vcf" in found.raw


def test_me_card_property_outside_my_books_is_refused(server):
    alice = person(server, "alice", "alice-me.vcf")
    person(server, "bob", "bob-me.vcf")
    dav = caldav.DAVClient(url=server.url, username="alice", password="alice-pw")
    # the WSGI layer answers the property itself: 403 in the 207, never 200
    answer = dav.proppatch(server.url + "/alice/", me_card_patch("/bob/contacts/bob.vcf"))
    assert answer.status == 207 and "403 Forbidden" in answer.raw and "200 OK" not in answer.raw
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
