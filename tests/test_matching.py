# SPDX-License-Identifier: GPL-3.0-or-later
from radicale_plugin.vcard.matching import email_key, phone_key


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


def test_a_contact_resolves_to_its_link_then_the_holder_of_my_copy_then_verified_keys():
    from radicale_plugin.vcard.matching import resolve_contact
    holders = {"tel:+1": "bob", "tel:+2": "erin"}
    everybody = lambda user: True  # noqa: E731
    # the contact card holds carol's copy: it is carol, whatever its numbers say
    assert resolve_contact("carol", {"tel:+1"}, holders, everybody) == {"carol"}
    # two verified holders: ambiguous, unless exactly one of them already has my card
    assert resolve_contact(None, {"tel:+1", "tel:+2"}, holders, everybody) == {"bob", "erin"}
    assert resolve_contact(None, {"tel:+1", "tel:+2"}, holders, everybody,
                           has_copy={"erin"}.__contains__) == {"erin"}
    # a holder I may not discover is nobody to me, and never falls back to a claim
    assert resolve_contact(None, {"tel:+1"}, holders, lambda u: False,
                           {"tel:+1": {"mallory"}}, lambda u: True) == set()
    # unverified: only a claimant who already holds my copy counts
    claims = {"tel:+9": {"mallory", "dave"}}
    assert resolve_contact(None, {"tel:+9"}, holders, everybody, claims) == set()
    assert resolve_contact(None, {"tel:+9"}, holders, everybody, claims,
                           {"dave"}.__contains__) == {"dave"}


def test_who_holds_a_copy_is_asked_only_to_choose_between_several_users():
    # the fan-out's planning answers has_copy from the index, one contact at a time: for a
    # contact that is plainly one user (100,000 of them in a big book) it must not be asked
    from radicale_plugin.vcard.matching import resolve_contact
    holders = {"tel:+1": "bob", "tel:+2": "erin"}
    asked: list[str] = []

    def has_copy(user: str) -> bool:
        asked.append(user)
        return user == "erin"

    everybody = lambda user: True  # noqa: E731
    assert resolve_contact(None, {"tel:+1"}, holders, everybody, None, has_copy) == {"bob"}
    assert asked == []
    # positive control: between two users it is asked, and the holder of the copy wins
    assert resolve_contact(None, {"tel:+1", "tel:+2"}, holders, everybody, None,
                           has_copy) == {"erin"}
    assert sorted(asked) == ["bob", "erin"]
