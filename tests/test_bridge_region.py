# SPDX-License-Identifier: GPL-3.0-or-later
"""Which region the bridge reads national numbers in: the order of the clues."""
from __future__ import annotations

import pytest

from bridge.errors import BridgeError
from bridge.region import FALLBACK, choose_region, region_of_locale, region_of_numbers

NO_LOCALE: dict[str, str] = {"LANG": "C.UTF-8"}


def test_the_user_s_word_comes_first():
    region = choose_region(("de", "--region"), ["+1 202 555 0101"], "US", NO_LOCALE)
    assert (region.code, region.source) == ("DE", "--region")
    with pytest.raises(BridgeError, match="'XX' is not a region"):
        choose_region(("XX", "--region"), [], None, NO_LOCALE)


def test_then_the_country_code_of_the_me_card():
    region = choose_region(None, ["030 23125000", "+49 30 23125000", "tel:+49-176-04069010"],
                           "US", {"LANG": "en_US.UTF-8"})
    assert region.code == "DE" and "+49" in region.source
    assert "national numbers are read as DE" in region.note()


def test_of_several_countries_the_most_frequent_then_the_first():
    assert region_of_numbers(["+44 20 7946 0018", "+49 30 23125000", "+49 30 23125001"]) \
        == ("DE", "+49")
    assert region_of_numbers(["+44 20 7946 0018", "+49 30 23125000"]) == ("GB", "+44")
    # +1 is shared: a valid Canadian number names CA, an invalid one the code's main region
    assert region_of_numbers(["+1 613 555 0101"])[0] in ("CA", "US")
    assert region_of_numbers(["+1 202 555 0101"]) == ("US", "+1")
    assert region_of_numbers(["030 23125000", "0049 30 23125000", "not a number"]) is None


def test_then_the_server_then_the_locale_then_a_guess():
    assert choose_region(None, ["030 23125000"], "AT", {"LANG": "de_DE.UTF-8"}).code == "AT"
    region = choose_region(None, [], None, {"LANG": "de_CH.UTF-8"})
    assert region.code == "CH" and "locale de_CH.UTF-8" in region.source
    assert choose_region(None, [], None, {"LC_ALL": "fr_FR", "LANG": "de_DE"}).code == "FR"
    assert choose_region(None, [], None, {"LC_TELEPHONE": "nl_NL.UTF-8",
                                          "LANG": "en_US"}).code == "NL"
    guess = choose_region(None, [], "not a region", NO_LOCALE)
    assert guess.code == FALLBACK and "a guess" in guess.source


@pytest.mark.parametrize("name", ["C", "POSIX", "C.UTF-8", "", "en"])
def test_locales_without_a_country(name):
    assert region_of_locale({"LANG": name}) is None


def test_the_server_reads_a_users_numbers_in_their_setting_then_their_me_card_then_its_own():
    from radicale_plugin.vcard.regions import DEFAULT, ME_CARD, SETTING, check_region, choose
    assert choose("DE", ["+33 6 98 76 54 32"], "US") == choose("DE", [], "US")
    assert (choose("DE", ["+33 6 98 76 54 32"], "US").source) == SETTING
    found = choose(None, ["06 98 76 54 32", "+33 6 98 76 54 32"], "US")
    assert (found.code, found.source, found.detail) == ("FR", ME_CARD, "+33")
    assert choose(None, ["06 98 76 54 32"], "US").to_json() == {
        "code": "US", "source": DEFAULT, "detail": ""}
    assert check_region(" gb ") == "GB"
    for bad in ("Germany", "XX", "", None, 49):
        with pytest.raises(ValueError, match="is not a region: give a two-letter country"):
            check_region(bad)


def test_the_users_setting_on_the_server_comes_after_the_command_line_only():
    region = choose_region(None, ["+1 202 555 0101"], "US", NO_LOCALE, setting="de")
    assert (region.code, region.source) == ("DE", "your region setting on the server")
    assert choose_region(("FR", "--region"), [], "US", NO_LOCALE, setting="DE").code == "FR"
