# SPDX-License-Identifier: GPL-3.0-or-later
"""Call-log parsers on sample exports, national and international forms, withheld and bad lines."""
import datetime

import pytest

from bridge.readers.calllog import read_logs
from bridge.errors import BridgeError
from bridge.select import count_contacts
from tests.server import FIXTURES

NOW = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def test_sms_backup_and_restore_calls_file():
    log = read_logs([FIXTURES / "calls.xml"])
    assert len(log.events) == 6
    assert log.withheld == 2
    assert log.malformed == ["calls.xml:entry 9: bad date 'yesterday'"]
    assert {e.direction for e in log.events} == {"in", "out", "missed"}


def test_national_and_international_forms_count_as_one_person():
    log = read_logs([FIXTURES / "calls.xml"])
    counts = count_contacts(log, "US", 6, ["call"], NOW).counts
    assert counts["tel:+12025550102"] == 4  # the 2025 call is older than 6 months
    assert count_contacts(log, "US", 24, ["call"], NOW).counts["tel:+12025550102"] == 5


def test_messages_file_with_an_mms_to_two_people():
    log = read_logs([FIXTURES / "sms.xml"])
    counts = count_contacts(log, "US", 6, ["sms"], NOW).counts
    assert counts == {"tel:+12025550103": 4, "tel:+12025550104": 1}
    assert count_contacts(log, "US", 6, ["call"], NOW).counts == {}


def test_csv_log_skips_withheld_and_reports_malformed_lines():
    log = read_logs([FIXTURES / "calls.csv"])
    assert [e.kind for e in log.events] == ["call", "call", "sms"]
    assert log.withheld == 1
    assert [m.split(":")[1] for m in log.malformed] == ["6", "7", "8"]
    assert "bad time" in log.malformed[0] and "fax" in log.malformed[1]


@pytest.mark.parametrize("name, words", [
    ("not-a-log.csv", "expected SMS Backup & Restore XML or CSV"),
    ("alice-me.vcf", "not a call log"),
    ("missing.xml", "cannot read call log"),
])
def test_unknown_files_are_refused_with_advice(name, words):
    with pytest.raises(BridgeError, match=words if "&" not in words else "CSV with the header"):
        read_logs([FIXTURES / name])
