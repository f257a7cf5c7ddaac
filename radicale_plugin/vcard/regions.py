# SPDX-License-Identifier: GPL-3.0-or-later
"""Which region a user's national numbers are read in (``0151 …`` is German only in Germany).

A number written without a country code means something only in a region:
``0151 11112222`` is ``+49 151 11112222`` for a user in Germany and nobody's
number in the US.  So every number of a user's books and me card is read in
*that user's* region, chosen in this order (:func:`choose`):

1. the user's own setting (API ``POST /region``, ``mecard-bridge region``):
   the user's word wins over a guess, so that a wrong guess can always be
   corrected (a German living in France with a ``+49`` mobile on the me card
   whose book holds French national numbers);
2. the country code of the international numbers on the user's me card, the
   most frequent one (``+49`` → DE): the phone the book comes from is theirs;
3. the server's ``mecard_default_region``.

Pure: no Radicale, no I/O.  The bridge guesses the owner's region with the
same :func:`region_of_numbers`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import phonenumbers

#: Where a region came from, as ``GET /me`` names it.
SETTING = "setting"
ME_CARD = "me card"
DEFAULT = "server default"


@dataclass(frozen=True)
class Region:
    """A region code and where it came from (``detail``: e.g. the me card's ``+49``)."""

    code: str
    source: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "source": self.source, "detail": self.detail}


def check_region(text: object) -> str:
    """``text`` as an upper-case region code phonenumbers knows; ValueError saying how
    to write one else."""
    code = text.strip().upper() if isinstance(text, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("%r is not a region: give a two-letter country code (ISO 3166) "
                         "such as DE, FR, GB or US" % (text if isinstance(text, str) else
                                                       type(text).__name__))
    return code


def region_of_numbers(numbers: Iterable[str]) -> tuple[str, str] | None:
    """(region, "+CC") most frequent among the numbers written with a country code.

    National forms are left out: reading them needs the very region sought.
    Of equally frequent regions, the one of the earliest number wins.
    """
    found: collections.Counter[str] = collections.Counter()
    first: dict[str, int] = {}
    codes: dict[str, int] = {}
    for n, raw in enumerate(numbers):
        text = raw.strip()
        if text.lower().startswith("tel:"):
            text = text[4:].split(";", 1)[0]
        if not text.startswith("+"):
            continue
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            continue
        country_code = number.country_code or 0
        # a number of a country sharing its code (+1: US, CA, …) names its own region when
        # it is valid; else the code's main region is the best guess
        region = (phonenumbers.region_code_for_number(number)
                  or phonenumbers.region_code_for_country_code(country_code))
        if not region or region == phonenumbers.UNKNOWN_REGION:
            continue
        found[region] += 1
        first.setdefault(region, n)
        codes[region] = country_code
    if not found:
        return None
    best = max(found, key=lambda r: (found[r], -first[r]))
    return best, "+%d" % codes[best]


@lru_cache(maxsize=4096)
def _of_numbers(numbers: tuple[str, ...]) -> tuple[str, str] | None:
    return region_of_numbers(numbers)


def choose(setting: str | None, me_card_numbers: Iterable[str], default: str) -> Region:
    """The user's region by the order in the module docstring."""
    if setting:
        return Region(setting, SETTING)
    guessed = _of_numbers(tuple(me_card_numbers))
    if guessed:
        return Region(guessed[0], ME_CARD, guessed[1])
    return Region(default, DEFAULT)
