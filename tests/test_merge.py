# SPDX-License-Identifier: GPL-3.0-or-later
"""The merge keeps what the recipient typed and replaces exactly the owner's old values."""
from radicale_plugin.vcard.merge import Previous, merge, new_copy
from radicale_plugin.vcard.codec import parse_card
from radicale_plugin.vcard.view import shared_view
from tests.server import fixture

FIELDS = ["FN", "N", "TEL", "EMAIL"]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5"
       "ErkJggg==")


def views(old_text: str, new_text: str, fields=FIELDS):
    return (shared_view(parse_card(old_text), fields), shared_view(parse_card(new_text), fields))


def merged(copy_text: str, old_text: str, new_text: str, fields=FIELDS) -> str:
    """Merge as if the server had written the view of ``old_text`` into this copy before."""
    old, new = views(old_text, new_text, fields)
    return merge(parse_card(copy_text), new, Previous(old.entries), "US").serialize()


def test_recipient_keeps_own_nickname_note_and_extra_number_after_update():
    out = merged(fixture("bob-contact-alice.vcf"), fixture("alice-me.vcf"),
                 fixture("alice-me-new-number.vcf"))
    assert "NICKNAME:Sis\r\n" in out
    assert "NOTE:met at the climbing gym\r\n" in out
    assert "TEL;TYPE=WORK:+1 202 555 0777\r\n" in out
    assert "CATEGORIES:Friends\r\n" in out
    assert "0101" not in out  # the old number, written in national form by the recipient
    assert "TEL;TYPE=CELL:+1 202 555 0199\r\n" in out


def test_recipient_keeps_a_renamed_contact():
    out = merged(fixture("bob-contact-alice.vcf"), fixture("alice-me.vcf"),
                 fixture("alice-me-new-number.vcf").replace("Alice Archer", "Alice Smith"))
    assert "FN:Ally\r\n" in out and "Alice Smith" not in out


def test_name_the_recipient_did_not_change_follows_the_owner():
    copy = fixture("alice-me.vcf")
    out = merged(copy, fixture("alice-me.vcf"),
                 fixture("alice-me.vcf").replace("FN:Alice Archer", "FN:Alice Smith"))
    assert "FN:Alice Smith\r\n" in out


def test_untouched_lines_stay_byte_for_byte_and_in_place():
    copy = fixture("bob-contact-alice.vcf")
    out = merged(copy, fixture("alice-me.vcf"), fixture("alice-me-new-number.vcf"))
    kept = [ln for ln in copy.split("\r\n") if "0101" not in ln]
    assert [ln for ln in out.split("\r\n") if "0199" not in ln] == kept


def test_merge_is_idempotent():
    old, new = views(fixture("alice-me.vcf"), fixture("alice-me-new-number.vcf"))
    once = merge(parse_card(fixture("bob-contact-alice.vcf")), new, Previous(old.entries), "US")
    twice = merge(once, new, Previous(old.entries), "US")
    assert twice.serialize() == once.serialize()


def test_unchanged_view_leaves_the_copy_identical():
    copy = fixture("bob-contact-alice.vcf")
    assert merged(copy, fixture("alice-me.vcf"), fixture("alice-me.vcf")) == copy


def test_unshared_fields_never_reach_a_new_copy():
    view = shared_view(parse_card(fixture("alice-me.vcf")), FIELDS)
    text = new_copy(view, "uid-1").serialize()
    assert "private note" not in text and "Main St" not in text
    assert "UID:uid-1\r\n" in text and "TEL;TYPE=CELL:+1 202 555 0101\r\n" in text


def test_vcard4_photo_is_written_the_way_vcard3_expects():
    owner_old = fixture("bob-me.vcf")
    owner_new = owner_old.replace("END:VCARD", "PHOTO:data:image/png;base64,%s\r\nEND:VCARD" % PNG)
    copy = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Bobby\r\nTEL:202 555 0102\r\nEND:VCARD\r\n"
    out = merged(copy, owner_old, owner_new, FIELDS + ["PHOTO"])
    card = parse_card(out)
    photo = card.get("PHOTO")[0]
    assert photo.param("ENCODING") == ["b"] and photo.param("TYPE") == ["PNG"]
    assert photo.value == PNG
    assert card.version == "3.0"


def test_vcard3_photo_becomes_a_data_uri_in_a_vcard4_copy():
    owner = fixture("alice-me.vcf").replace(
        "END:VCARD", "PHOTO;ENCODING=b;TYPE=PNG:%s\r\nEND:VCARD" % PNG)
    copy = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:A\r\nTEL;VALUE=uri:tel:+1-202-555-0101\r\n"
            "END:VCARD\r\n")
    out = merged(copy, fixture("alice-me.vcf"), owner, FIELDS + ["PHOTO"])
    assert "PHOTO:data:image/png;base64,%s" % PNG in out.replace("\r\n ", "")
    assert "TEL;VALUE=uri:tel:+1-202-555-0101\r\n" in out  # same number, untouched


def test_a_photo_the_recipient_set_is_kept_when_photo_is_not_shared():
    copy = fixture("bob-contact-alice.vcf").replace(
        "END:VCARD", "PHOTO;ENCODING=b;TYPE=PNG:%s\r\nEND:VCARD" % PNG)
    out = merged(copy, fixture("alice-me.vcf"), fixture("alice-me-new-number.vcf"))
    assert PNG in out


def test_owner_type_change_of_the_same_number_reaches_an_untouched_copy():
    owner_old = fixture("alice-me.vcf")
    owner_new = owner_old.replace("TEL;TYPE=CELL:", "TEL;TYPE=HOME:")
    out = merged(owner_old, owner_old, owner_new)
    assert "TEL;TYPE=HOME:+1 202 555 0101\r\n" in out


def _card(*lines: str) -> str:
    return "\r\n".join(("BEGIN:VCARD", "VERSION:3.0", "UID:x", "FN:Alice", "N:;Alice;;;")
                       + lines + ("END:VCARD", ""))


def test_a_number_the_recipient_typed_the_local_way_is_the_owners_in_their_region():
    """Alice (in Germany) replaces her US number; Bob (in the US) typed it the US way.
    Read in her region his line would be a German number of nobody's: it is hers."""
    old = shared_view(parse_card(_card("TEL;TYPE=CELL:+1 202 555 0101")), ["FN", "TEL"])
    new = shared_view(parse_card(_card("TEL;TYPE=CELL:+49 151 11112222")), ["FN", "TEL"])
    bobs = parse_card(_card("TEL;TYPE=CELL:(202) 555-0101", "NOTE:his own"))
    merged = merge(bobs, new, Previous(old.entries, frozenset(old.values("DE"))), "DE",
                   "US").serialize()
    assert "+49 151 11112222" in merged and "555-0101" not in merged
    assert "NOTE:his own" in merged


def test_a_number_the_owner_wrote_the_local_way_is_hers_in_a_copy_read_elsewhere():
    """The owner's national form, written by the server into a copy of a recipient in
    another country, is still recognised as hers when she changes it."""
    old = shared_view(parse_card(_card("TEL;TYPE=CELL:0151 11112222")), ["FN", "TEL"])
    new = shared_view(parse_card(_card("TEL;TYPE=CELL:0151 99998888")), ["FN", "TEL"])
    copy = parse_card(_card("TEL;TYPE=CELL:0151 11112222", "TEL;TYPE=HOME:(202) 555-0199"))
    merged = merge(copy, new, Previous(old.entries), "DE", "US").serialize()
    assert "0151 99998888" in merged and "11112222" not in merged
    assert "(202) 555-0199" in merged  # the recipient's own number stays
