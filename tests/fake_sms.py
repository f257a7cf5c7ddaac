# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in SMS gateway for tests: ``fake_sms.py OUTBOX NUMBER TEXT`` appends one line.

The server calls it as its ``mecard_sms_command`` without a shell, with the
number and the text as separate arguments; the line written is
``NUMBER<TAB>TEXT`` so that tests can read the code sent to a number.
"""
import sys

if len(sys.argv) != 4:
    sys.exit("expected OUTBOX NUMBER TEXT, got %d arguments" % (len(sys.argv) - 1))
outbox, number, text = sys.argv[1:4]
with open(outbox, "a", encoding="utf-8") as f:
    f.write("%s\t%s\n" % (number, text.replace("\n", " ")))
