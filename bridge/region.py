# SPDX-License-Identifier: GPL-3.0-or-later
"""Which region national numbers are read in (``0160 …`` is German only in Germany).

A phone's call log and an address book are full of national forms, so
counting calls per person and matching them to contacts depends on one
region.  A wrong one fails silently: ``030 23125000`` read in the US is
not ``+49 30 23125000``, and the person is simply not selected.  So the
bridge takes the region from the best clue it has, in this order:

1. ``--region`` or ``region=`` in the config file (the user said so);
2. the country code of the international numbers on the owner's own me
   card (the most frequent one): the phone the log comes from is theirs;
3. the server's ``mecard_default_region`` (``GET /me`` ``"default_region"``,
   for servers that tell it);
4. this computer's locale (``LC_ALL``, ``LC_TELEPHONE``, ``LANG``);
5. ``US``, said to be a guess.

and says which it used, in one line on stderr.
"""

from __future__ import annotations

import collections
import locale
import os
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import phonenumbers

from bridge.errors import BridgeError

FALLBACK = "US"
_LOCALE = re.compile(r"^[A-Za-z]{2,3}[_-]([A-Za-z]{2})\b")


@dataclass(frozen=True)
class Region:
    """The region used, and where it came from (for the line that says so)."""

    code: str
    source: str

    def note(self) -> str:
        """The one line that tells the user which region national numbers are read in."""
        return ("mecard-bridge: national numbers are read as %s (%s); another region: "
                "--region CODE" % (self.code, self.source))


def check_region(text: str, where: str) -> str:
    """``text`` as an upper-case region code phonenumbers knows; :class:`BridgeError` else."""
    code = text.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise BridgeError("%s %r is not a region: give a two-letter country code such as DE, "
                          "GB or US" % (where, text))
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


def region_of_locale(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(region, locale name) from the environment's locale, or None (``C``, ``POSIX``)."""
    env = os.environ if environ is None else environ
    candidates = [env.get(name, "") for name in ("LC_ALL", "LC_TELEPHONE", "LANG")]
    if environ is None:
        try:
            candidates.append(locale.getlocale()[0] or "")
        except ValueError:  # an unknown locale name in the environment
            pass
    for name in candidates:
        match = _LOCALE.match(name)
        if match and match.group(1).upper() in phonenumbers.SUPPORTED_REGIONS:
            return match.group(1).upper(), name
    return None


def choose_region(explicit: tuple[str, str] | None, me_card_numbers: Iterable[str],
                  server_region: str | None,
                  environ: Mapping[str, str] | None = None) -> Region:
    """The region to read national numbers in, by the order in the module docstring.

    ``explicit``: (code, where it was given) from the command line or config.
    """
    if explicit:
        return Region(check_region(explicit[0], explicit[1]), explicit[1])
    from_card = region_of_numbers(me_card_numbers)
    if from_card:
        return Region(from_card[0], "the country code %s of your me card's numbers"
                      % from_card[1])
    if server_region and server_region.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        return Region(server_region.strip().upper(), "the server's default region")
    from_locale = region_of_locale(environ)
    if from_locale:
        return Region(from_locale[0], "this computer's locale %s" % from_locale[1])
    return Region(FALLBACK, "a guess: neither your me card, the server nor the locale "
                            "tells the region")
