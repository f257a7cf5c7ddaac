# SPDX-License-Identifier: GPL-3.0-or-later
from radicale_plugin.matching import email_key, phone_key


def test_national_and_international_forms_of_a_number_match():
    forms = ["+1 202 555 0101", "(202) 555-0101", "202.555.0101", "tel:+1-202-555-0101",
             "+12025550101"]
    assert {phone_key(f, "US") for f in forms} == {"tel:+12025550101"}


def test_default_region_decides_national_numbers():
    assert phone_key("0151 23456789", "DE") == "tel:+4915123456789"
    assert phone_key("+49 151 23456789", "US") == "tel:+4915123456789"


def test_numbers_phonenumbers_cannot_read_keep_their_digits():
    assert phone_key("12", "US") == "tel:12"
    assert phone_key("no number", "US") is None


def test_email_is_case_folded():
    assert email_key("Bob@Example.ORG") == email_key("mailto:bob@example.org")
    assert email_key("not an address") is None
