# SPDX-License-Identifier: GPL-3.0-or-later
"""Time the bridge's selection on a 100,000-entry call log and 5,000 contacts.

Prints, measured side by side in one run: reading the log, counting per
person (with the normalisation cache the bridge uses, and without it), and
evaluating ``frequent:N --except group:Work`` over the contacts.
"""

from __future__ import annotations

import datetime
import random
import sys
import tempfile
import time
from pathlib import Path

import phonenumbers

sys.path.insert(0, str(Path(__file__).parent.parent))
from bridge.readers.calllog import read_logs  # noqa: E402
from bridge.select import count_contacts, evaluate, parse_selector  # noqa: E402
from radicale_plugin.vcard.matching import phone_key  # noqa: E402
from radicale_plugin.owner.rules import Book  # noqa: E402
from radicale_plugin.vcard.codec import parse_cards  # noqa: E402

NOW = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def number(i: int) -> str:
    return "+1 202 55%d %04d" % (i // 10000 % 10, i % 10000)


def main() -> None:
    rng = random.Random(1)
    folder = Path(tempfile.mkdtemp())
    rows = ["number,time,kind,direction"]
    for _ in range(100_000):
        who = int(rng.paretovariate(1.2)) % 5000
        when = NOW - datetime.timedelta(minutes=rng.randrange(60 * 24 * 365))
        rows.append("%s,%s,%s,%s" % (number(who).replace("+1 ", ""), when.isoformat(),
                                     rng.choice(("call", "sms")), rng.choice(("in", "out"))))
    log_file = folder / "log.csv"
    log_file.write_text("\n".join(rows) + "\n")
    cards = "".join("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c%d\r\nFN:Person %d\r\nTEL:%s\r\n%s"
                    "END:VCARD\r\n" % (i, i, number(i), "CATEGORIES:Work\r\n" if i % 7 == 0 else "")
                    for i in range(5000))

    t0 = time.perf_counter()
    log = read_logs([log_file])
    t1 = time.perf_counter()
    freq = count_contacts(log, "US", 6, ("call", "sms"), NOW)
    t2 = time.perf_counter()
    book = Book(parse_cards(cards), "US")
    chosen = evaluate(parse_selector("frequent:5"), [("except", parse_selector("group:Work"))],
                      book, freq, "US")
    t3 = time.perf_counter()
    # the same counting without the cache: one phonenumbers.parse per log entry
    for event in log.events:
        phonenumbers.format_number(phonenumbers.parse(event.number, "US"),
                                   phonenumbers.PhoneNumberFormat.E164)
    t4 = time.perf_counter()
    print("log entries read:           %d in %.2f s" % (len(log.events), t1 - t0))
    print("counting per person:        %.2f s (cache hits %s)" % (t2 - t1, phone_key.cache_info().hits))
    print("counting without the cache: %.2f s  ratio %.1f" % (t4 - t3, (t4 - t3) / (t2 - t1)))
    print("contacts + selection:       %d contacts, %d selected in %.2f s"
          % (len(book.contacts), len(chosen), t3 - t2))
    print("total selection time:       %.2f s" % (t3 - t0))


if __name__ == "__main__":
    main()
