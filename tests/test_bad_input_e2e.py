# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input gets a 4xx that says what is wrong, and nothing stored changes."""
from __future__ import annotations

from typing import Iterator

import pytest
import requests

from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, settled
from tests.test_fanout_e2e import make_trio, trio  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def unchanged_trio(tmp_path_factory) -> Iterator[tuple[Client, Client, Client]]:
    """``trio`` (its loosened server too), shared by calls that are refused: each of them
    checks that nothing changed, so the next one meets the same trio."""
    srv = RadicaleServer(tmp_path_factory.mktemp("trio"), USERS, **FAMILY).start()
    try:
        yield make_trio(srv)
    finally:
        srv.stop()


@pytest.mark.parametrize("method, call, data, status, words", [
    ("POST", "/shared-fields", {"fields": ["TEL", "SHOESIZE"]}, 400, "SHOESIZE"),
    ("POST", "/shared-fields", {"fields": "TEL"}, 400, "must be a list"),
    ("POST", "/targets", {"targets": ["everyone"]}, 400, "unknown target rule"),
    # a user:NAME rule or policy for a name that is no user is no longer refused: it is
    # answered as for a user who may not be seen (issue 17 §3; test_user_names_e2e)
    ("POST", "/targets", {"targets": ["user: "]}, 400, "unknown target rule"),
    ("POST", "/targets", {"wrong": 1}, 400, "give"),
    ("POST", "/me-card", {"path": "/bob/contacts/bob.vcf"}, 403, "not in one of your"),
    ("POST", "/me-card", {"path": "/alice/contacts/nope.vcf"}, 404, "no card nope.vcf"),
    ("POST", "/me-card", {"path": "/alice/nobook/x.vcf"}, 404, "no address book"),
    ("POST", "/me-card", {}, 400, "give the card"),
    ("POST", "/policies", {"owner": "bob", "policy": "sometimes"}, 400, "unknown policy"),
    ("POST", "/policies", {"owner": "alice", "policy": "block"}, 400, "towards yourself"),
    ("GET", "/nothing-here", None, 404, "no API call"),
])
def test_bad_api_calls_are_refused_and_change_nothing(unchanged_trio, method, call, data,
                                                      status, words):
    alice, _, _ = unchanged_trio
    before = alice.api_ok("GET", "/me")
    r = alice.api(method, call, data)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert alice.api_ok("GET", "/me") == before


def test_malformed_json_is_refused(trio):
    alice, _, _ = trio
    r = alice.http.post(alice.url + "/.web/mecard/api/v1/targets", data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]


def test_wrong_password_and_no_login_get_401(server):
    url = server.url + "/.web/mecard/api/v1/me"
    assert requests.get(url, auth=("alice", "wrong")).status_code == 401
    assert requests.get(url).status_code == 401


def test_malformed_me_card_put_is_refused_and_nothing_goes_out(trio):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    seq = alice.api_ok("GET", "/me")["seq"]
    r = alice.put("alice.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN Alice\r\nTEL:+1 202 555 0199\r\n")
    assert 400 <= r.status_code < 500
    assert "0101" in alice.card("alice.vcf")
    assert alice.api_ok("GET", "/me")["seq"] == seq
    assert "0101" in bob.card("ally.vcf")


def test_the_built_in_web_interface_still_works(server):
    r = requests.get(server.url + "/.web/")
    assert r.status_code == 200 and "Radicale" in r.text
