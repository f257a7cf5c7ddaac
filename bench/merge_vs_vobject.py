# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare the line-level merge with a vobject round trip of the same copy.

Prints the time per card of each, measured side by side in one run, and the
ratio (higher: the merge is that many times faster).  No assertion: the
machines are noisy; read the ratio.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import vobject

sys.path.insert(0, str(Path(__file__).parent.parent))
from radicale_plugin.vcard.merge import Previous, merge  # noqa: E402
from radicale_plugin.vcard.codec import parse_card  # noqa: E402
from radicale_plugin.vcard.view import shared_view  # noqa: E402

FIX = Path(__file__).parent.parent / "tests" / "fixtures"
COPY = (FIX / "bob-contact-alice.vcf").read_bytes().decode().replace(
    "END:VCARD", "NOTE:" + "x" * 600 + "\r\nEND:VCARD")
OLD = shared_view(parse_card((FIX / "alice-me.vcf").read_bytes().decode()), ["FN", "N", "TEL", "EMAIL"])
NEW = shared_view(parse_card((FIX / "alice-me-new-number.vcf").read_bytes().decode()),
                  ["FN", "N", "TEL", "EMAIL"])


def line_merge() -> str:
    return merge(parse_card(COPY), NEW, Previous(OLD.entries), "US").serialize()


def vobject_round_trip() -> str:
    return vobject.readOne(COPY).serialize()


def main() -> None:
    n = 2000
    line_merge(), vobject_round_trip()  # warm caches (phonenumbers metadata)
    ours = min(timeit.repeat(line_merge, number=n, repeat=5)) / n
    theirs = min(timeit.repeat(vobject_round_trip, number=n, repeat=5)) / n
    print("card size: %d bytes" % len(COPY.encode()))
    print("line-level merge:         %8.1f µs/card" % (ours * 1e6))
    print("vobject parse+serialize:  %8.1f µs/card (no merge at all)" % (theirs * 1e6))
    print("ratio vobject/merge:      %8.1f" % (theirs / ours))


if __name__ == "__main__":
    main()
