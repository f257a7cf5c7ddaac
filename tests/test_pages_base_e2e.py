# SPDX-License-Identifier: GPL-3.0-or-later
"""The pages' common ground, in a real browser: sign-in, headers, the look, inert card data."""

from __future__ import annotations

import re

import requests

from tests.browser import browser  # noqa: F401  (the fixture)
from tests.test_fanout_e2e import person

PAGES = "/.web/mecard"


def test_a_page_asks_for_radicales_login_and_nothing_else(public_server):
    answer = requests.get(public_server.url + PAGES + "/", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
    wrong = requests.get(public_server.url + PAGES + "/", auth=("alice", "nope"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(public_server.url + PAGES + "/", auth=("alice", "alice-pw"),
                         timeout=10)
    assert right.status_code == 200 and "text/html" in right.headers["Content-Type"]
    assert "alice" in right.text


def test_pages_forbid_inline_script_framing_and_referrers(public_server):
    answer = requests.get(public_server.url + PAGES + "/", auth=("alice", "alice-pw"),
                          timeout=10)
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    # no inline script, no event-handler attributes: the policy would refuse them anyway
    assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text)
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", answer.text)


def test_static_files_are_served_and_nothing_beside_them(public_server):
    base = public_server.url + PAGES + "/static/"
    js = requests.get(base + "mecard.js", timeout=10)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    for wrong in ("../__init__.py", "..%2f__init__.py", "render.py", "nothere.js",
                  "MECARD.JS"):
        assert requests.get(base + wrong, timeout=10).status_code == 404, wrong
    assert requests.get(public_server.url + PAGES + "/no-such-page",
                        auth=("alice", "alice-pw"), timeout=10).status_code == 404


def test_sign_in_comes_back_to_our_own_pages_only(public_server):
    ask = requests.get(public_server.url + PAGES + "/login?next=/updates", timeout=10,
                       allow_redirects=False)
    assert ask.status_code == 401
    for target, lands in (("/updates", PAGES + "/updates"), ("//evil.example/x", PAGES + "/"),
                          ("https://evil.example/", PAGES + "/"), ("/../../x", PAGES + "/")):
        back = requests.get(public_server.url + PAGES + "/login", params={"next": target},
                            auth=("bob", "bob-pw"), timeout=10, allow_redirects=False)
        assert back.status_code == 303 and back.headers["Location"] == lands, target


def test_home_shows_the_signed_in_user_in_radicales_look(public_server, browser):
    person(public_server, "alice", "alice-me.vcf", verified=False)
    browser.sign_in("alice", "alice-pw")
    browser.open(public_server.url + PAGES + "/")
    browser.wait_for("nav.mecard-nav")
    assert "Signed in as alice" in browser.text()
    assert "/alice/contacts/alice.vcf" in browser.text()
    # Radicale's own style sheet is used, and nothing the page loads is refused
    sheets = [link.get_attribute("href") for link in browser.all("link[rel=stylesheet]")]
    assert any(href.endswith("/.web/css/main.css") for href in sheets)
    assert browser.console_errors() == []
    browser.screenshot("home")
