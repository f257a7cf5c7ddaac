# SPDX-License-Identifier: GPL-3.0-or-later
"""Which region national numbers are read in (``0160 …`` is German only in Germany).

A phone's call log and an address book are full of national forms, so
counting calls per person and matching them to contacts depends on one
region.  A wrong one fails silently: ``030 23125000`` read in the US is
not ``+49 30 23125000``, and the person is simply not selected.  So the
bridge takes the region from the best clue it has, in this order:

1. ``--region`` or ``region=`` in the config file (the user said so);
1b. the user's own region setting on the server (``mecard-bridge region DE``,
   ``GET /me`` ``"region"`` with source ``setting``): the server reads the
   user's books in it too;
2. the country code of the international numbers on the owner's own me
   card (the most frequent one): the phone the log comes from is theirs;
3. the server's ``mecard_default_region`` (``GET /me`` ``"default_region"``,
   for servers that tell it);
4. this computer's locale (``LC_ALL``, ``LC_TELEPHONE``, ``LANG``);
5. ``US``, said to be a guess.

and says which it used, in one line on stderr.
"""

from __future__ import annotations

import locale
import os
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import phonenumbers

from bridge.errors import UserError
# the server reads each user's national numbers by the same guess: one function for both
from radicale_plugin.vcard.regions import region_of_numbers

__all__ = ["Region", "check_region", "choose_region", "region_of_locale",
           "region_of_numbers", "FALLBACK"]

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
        raise UserError("%s %r is not a region: give a two-letter country code such as DE, "
                        "GB or US" % (where, text))
    return code


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
                  environ: Mapping[str, str] | None = None,
                  setting: str | None = None) -> Region:
    """The region to read national numbers in, by the order in the module docstring.

    ``explicit``: (code, where it was given) from the command line or config;
    ``setting``: the user's own region setting on the server, if any.
    """
    if explicit:
        return Region(check_region(explicit[0], explicit[1]), explicit[1])
    if setting and setting.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        return Region(setting.strip().upper(), "your region setting on the server")
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
