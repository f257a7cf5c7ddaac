# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from typing import Iterator

import pytest

from tests.server import RadicaleServer

#: Loosened defaults for tests of other things: everyone pre-authorised and discoverable.
#: Not what the shipped config does (config/radicale.conf pre-authorises the group "family"
#: and keeps discoverability "contacts"): main scenarios use ``public_server``.
FAMILY = {"mecard_preauthorize": "*", "mecard_default_discoverability": "everyone"}

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
         "erin": "erin-pw"}


@pytest.fixture
def server(tmp_path) -> Iterator[RadicaleServer]:
    """Everyone pre-authorised and discoverable (looser than the shipped config)."""
    srv = RadicaleServer(tmp_path, USERS, **FAMILY).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def public_server(tmp_path) -> Iterator[RadicaleServer]:
    """A server with the shipped defaults: recipients are asked, nobody is pre-authorised."""
    srv = RadicaleServer(tmp_path, USERS).start()
    try:
        yield srv
    finally:
        srv.stop()
