# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from typing import Iterator

import pytest

from tests.server import RadicaleServer

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
         "erin": "erin-pw"}


@pytest.fixture
def server(tmp_path) -> Iterator[RadicaleServer]:
    srv = RadicaleServer(tmp_path, USERS).start()
    try:
        yield srv
    finally:
        srv.stop()
