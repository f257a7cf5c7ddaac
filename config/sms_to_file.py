# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's SMS gateway: appends ``NUMBER<TAB>TEXT`` to a file instead of sending.

``mecard_sms_command = python3 config/sms_to_file.py data/sms-outbox.txt``: the
server adds the number and the text as two more arguments (never through a
shell).  A real server calls the admin's SMS gateway the same way.
"""
import sys

if len(sys.argv) != 4:
    sys.exit("usage: sms_to_file.py OUTBOX NUMBER TEXT")
outbox, number, text = sys.argv[1:4]
with open(outbox, "a", encoding="utf-8") as f:
    f.write("%s\t%s\n" % (number, text.replace("\n", " ")))
