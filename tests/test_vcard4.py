# SPDX-License-Identifier: GPL-3.0-or-later
"""vCard 4.0 as DAVx5 writes it, and copies as phones save them back (issue 8, part 2).

Pure tests of the merge and the codec, of the vobject behaviours that keep
``data:`` URIs whole (:mod:`radicale_plugin.vcard.behaviors`), and a strict
RFC 6350 / RFC 2426 content-line checker (:func:`strict_problems`) that every
card produced here must pass, besides vobject.
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib

import pytest
import radicale.item as radicale_item
from hypothesis import given, settings
from hypothesis import strategies as st
import vobject
from vobject import base as vobject_base
from vobject.vcard import Photo, VCard3_0

from radicale_plugin.vcard import behaviors as vb
from radicale_plugin.vcard.matching import phone_key
from radicale_plugin.vcard.merge import Previous, merge, new_copy
from radicale_plugin.vcard.codec import Card, parse_card
from radicale_plugin.vcard.view import Entry, View, fit_params, render, shared_view, tel_uri

REGION = "US"
FIELDS = ["FN", "N", "TEL", "EMAIL", "ADR", "PHOTO"]


def png(seed: int, size: int = 24) -> bytes:
    """A small valid PNG whose bytes depend on ``seed`` (its base64 folds over lines)."""
    rows = b"".join(b"\x00" + bytes((x * 7 + y * 13 + seed * 31) % 256 for x in range(size * 3))
                    for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


PNG1, PNG2 = png(1), png(2)
B64_1, B64_2 = base64.b64encode(PNG1).decode(), base64.b64encode(PNG2).decode()


# -- a strict second parser: RFC 6350 (4.0) and RFC 2426 (3.0) content lines ---------------

_SAFE = r'[^\x00-\x08\x0a-\x1f\x7f";:]'       # SAFE-CHAR: WSP, VCHAR but DQUOTE ; :, non-ASCII
_QSAFE = r'[^\x00-\x08\x0a-\x1f\x7f"]'        # QSAFE-CHAR
_PVALUE = r'(?:"%s*"|%s*)' % (_QSAFE, _SAFE)
_CONTENT_LINE = re.compile(
    r'^(?:(?P<group>[A-Za-z0-9-]+)\.)?(?P<name>[A-Za-z0-9-]+)'
    r'(?P<params>(?:;[A-Za-z0-9-]+=%s(?:,%s)*)*)'
    r':(?P<value>[^\x00-\x08\x0a-\x1f\x7f]*)$' % (_PVALUE, _PVALUE))
_PARAM = re.compile(r';([A-Za-z0-9-]+)=((?:"%s*"|%s*)(?:,(?:"%s*"|%s*))*)'
                    % (_QSAFE, _SAFE, _QSAFE, _SAFE))

_PROPS = {
    "4.0": {"BEGIN", "END", "SOURCE", "KIND", "XML", "FN", "N", "NICKNAME", "PHOTO", "BDAY",
            "ANNIVERSARY", "GENDER", "ADR", "TEL", "EMAIL", "IMPP", "LANG", "TZ", "GEO",
            "TITLE", "ROLE", "LOGO", "ORG", "MEMBER", "RELATED", "CATEGORIES", "NOTE",
            "PRODID", "REV", "SOUND", "UID", "CLIENTPIDMAP", "URL", "VERSION", "KEY", "FBURL",
            "CALADRURI", "CALURI", "BIRTHPLACE", "DEATHPLACE", "DEATHDATE", "EXPERTISE",
            "HOBBY", "INTEREST", "ORG-DIRECTORY"},
    "3.0": {"BEGIN", "END", "FN", "N", "NICKNAME", "PHOTO", "BDAY", "ADR", "LABEL", "TEL",
            "EMAIL", "MAILER", "TZ", "GEO", "TITLE", "ROLE", "LOGO", "AGENT", "ORG",
            "CATEGORIES", "NOTE", "PRODID", "REV", "SORT-STRING", "SOUND", "UID", "URL",
            "VERSION", "CLASS", "KEY", "NAME", "PROFILE", "SOURCE", "IMPP", "FBURL", "CALURI",
            "CALADRURI", "CAPURI"},
}
_PARAMS = {
    "4.0": {"LANGUAGE", "VALUE", "PREF", "ALTID", "PID", "TYPE", "MEDIATYPE", "CALSCALE",
            "SORT-AS", "GEO", "TZ", "LABEL", "INDEX", "LEVEL", "CC"},
    "3.0": {"TYPE", "ENCODING", "VALUE", "CHARSET", "LANGUAGE", "CONTEXT"},
}
_TYPES_REMOVED_IN_4 = {"EMAIL": {"internet", "x400", "pref"}, "TEL": {"pref", "msg", "bbs",
                       "modem", "car", "isdn", "pcs"}, "ADR": {"intl", "dom", "postal",
                       "parcel", "pref"}}
_AT_MOST_ONE = {"4.0": {"N", "BDAY", "ANNIVERSARY", "GENDER", "PRODID", "REV", "UID", "KIND"},
                "3.0": {"N", "UID", "PRODID", "REV", "BDAY", "SORT-STRING", "CLASS"}}
_TEXT = {"FN", "N", "NICKNAME", "ADR", "EMAIL", "TITLE", "ROLE", "ORG", "CATEGORIES", "NOTE",
         "LABEL"}
_DATA_URI = re.compile(r"^data:(?P<media>[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
                       r"(?:;[A-Za-z0-9-]+=[^;,]+)*)?(?P<b64>;base64)?,(?P<data>.*)$")
_TEL_URI = re.compile(r"^tel:(?:\+[0-9().-]*[0-9][0-9().-]*"
                      r"|[0-9A-Fa-f*#().-]*[0-9A-Fa-f*#][0-9A-Fa-f*#().-]*(?=.*;phone-context=))"
                      r"(?:;[A-Za-z0-9-]+(?:=[^;]+)?)*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def _b64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def _components(value: str) -> int:
    return len(re.split(r"(?<!\\);", value))


def strict_problems(text: str, max_octets: int | None = None) -> list[str]:
    """What RFC 6350 (VERSION:4.0) or RFC 2426 (3.0) forbids in ``text``: [] if nothing.

    Checks the content-line grammar (names, quoted and unquoted parameter
    values, no control characters), CRLF line breaks and folding, BEGIN/END,
    VERSION (first in 4.0), the required properties and those allowed once,
    each version's own property and parameter names (X- names are free),
    ENCODING only ``b`` (3.0) and base64 that decodes, ``data:`` and ``tel:``
    URIs, TYPE values the version has, text escapes and the number of
    components of N and ADR.  ``max_octets`` also checks the length of each
    physical line (75 is a SHOULD of both RFCs; vobject does not fold PHOTO).
    """
    problems: list[str] = []
    if not text.endswith("\r\n") or re.search(r"(?<!\r)\n|\r(?!\n)", text):
        problems.append("line breaks must be CRLF")
    physical = text[:-2].split("\r\n") if text.endswith("\r\n") else text.split("\r\n")
    if max_octets:
        problems += ["line longer than %d octets: %r" % (max_octets, p[:40])
                     for p in physical if len(p.encode()) > max_octets]
    logical: list[str] = []
    for p in physical:
        if p[:1] in (" ", "\t") and logical:
            logical[-1] += p[1:]
        else:
            logical.append(p)
    if not logical or logical[0].upper() != "BEGIN:VCARD" or logical[-1].upper() != "END:VCARD":
        return problems + ["a vCard starts with BEGIN:VCARD and ends with END:VCARD"]
    body = logical[1:-1]
    versions = [ln.split(":", 1)[1] for ln in body if ln.upper().startswith("VERSION:")]
    if len(versions) != 1 or versions[0] not in ("3.0", "4.0"):
        return problems + ["exactly one VERSION (3.0 or 4.0) needed, found %r" % versions]
    version = versions[0]
    four = version == "4.0"
    if four and not body[0].upper().startswith("VERSION:"):
        problems.append("4.0: VERSION must come right after BEGIN:VCARD")
    counts: dict[str, int] = {}
    for line in body:
        m = _CONTENT_LINE.match(line)
        if not m:
            problems.append("not a content line: %r" % line[:60])
            continue
        name, value = m["name"].upper(), m["value"]
        counts[name] = counts.get(name, 0) + 1
        if name in ("BEGIN", "END"):
            problems.append("nested %s" % name)
        if not name.startswith("X-") and name not in _PROPS[version]:
            problems.append("%s: no property %s" % (version, name))
        params: dict[str, list[str]] = {}
        for key, val in _PARAM.findall(m["params"]):
            values = re.findall(r'"[^"]*"|[^,]+', val) or [""]
            params.setdefault(key.upper(), []).extend(v.strip('"') for v in values)
        for key in params:
            if not key.startswith("X-") and key not in _PARAMS[version]:
                problems.append("%s: no parameter %s (on %s)" % (version, key, name))
        types = {t.lower() for t in params.get("TYPE", [])}
        value_type = [v.lower() for v in params.get("VALUE", [])]
        encoding = [v.lower() for v in params.get("ENCODING", [])]
        if four:
            bad = types & _TYPES_REMOVED_IN_4.get(name, set())
            if bad:
                problems.append("4.0: TYPE=%s on %s" % (",".join(sorted(bad)), name))
            for pref in params.get("PREF", []):
                if not pref.isdigit() or not 1 <= int(pref) <= 100:
                    problems.append("4.0: PREF must be 1..100, not %r" % pref)
            if name in ("PHOTO", "LOGO", "SOUND") or (name == "KEY" and value_type != ["text"]):
                if not _URI.match(value):
                    problems.append("4.0: %s must be a URI: %r" % (name, value[:40]))
        else:
            if encoding and encoding != ["b"]:
                problems.append("3.0: ENCODING must be b, not %r" % encoding)
            if encoding and not _b64(value):
                problems.append("3.0: %s is not base64" % name)
            if name in ("PHOTO", "LOGO", "SOUND") and not encoding and value_type != ["uri"]:
                problems.append("3.0: %s without ENCODING=b must say VALUE=uri" % name)
            if name == "TEL" and value_type == ["uri"]:
                problems.append("3.0: a TEL is a phone-number value, not VALUE=uri")
        if value.lower().startswith("data:"):
            d = _DATA_URI.match(value)
            if not d or (d["b64"] and not _b64(d["data"])):
                problems.append("bad data: URI in %s: %r" % (name, value[:50]))
        if name == "TEL" and (value_type == ["uri"] or value.lower().startswith("tel:")):
            if not _TEL_URI.match(value):
                problems.append("bad tel: URI %r" % value)
        if name in _TEXT and re.search(r"\\(?![\\;,nN])", value):
            problems.append("%s: bad escape in %r" % (name, value[:40]))
        parts = {"N": 5, "ADR": 7}.get(name)
        if parts and not (_components(value) == parts if four
                          else 1 <= _components(value) <= parts):
            problems.append("%s needs %s%d components: %r" % (name, "" if four else "1 to ",
                                                             parts, value))
    if counts.get("FN", 0) < 1:
        problems.append("FN is required")
    if not four and counts.get("N", 0) != 1:
        problems.append("3.0: N is required")
    problems += ["%s: at most one %s" % (version, n) for n in sorted(_AT_MOST_ONE[version])
                 if counts.get(n, 0) > 1]
    return problems


def assert_valid(text: str, max_octets: int | None = None) -> vobject_base.Component:
    """``text`` passes the strict checker and vobject (with validation); vobject's card."""
    assert strict_problems(text, max_octets) == [], text
    return vobject.readOne(text, validate=True)


@pytest.mark.parametrize("text, problem", [
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nPHOTO:data:image/png\\;base64\r\nEND:VCARD\r\n",
     "bad data: URI"),  # what stock Radicale stores
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nPHOTO:image.png\r\nEND:VCARD\r\n",
     "must be a URI"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nN:x;;;;\r\nPHOTO;ENCODING=b;TYPE=PNG:\\:\r\n"
     "END:VCARD\r\n", "not base64"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEMAIL;TYPE=internet:a@b\r\nEND:VCARD\r\n",
     "TYPE=internet"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nPHOTO;ENCODING=b:AAAA\r\nEND:VCARD\r\n",
     "no parameter ENCODING"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nN:x;;;;\r\nTEL;VALUE=uri:tel:+1-2\r\nEND:VCARD\r\n",
     "not VALUE=uri"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nN:x;;;;\r\nGENDER:F\r\nEND:VCARD\r\n",
     "no property GENDER"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nTEL;PREF=0:1\r\nEND:VCARD\r\n", "PREF must be"),
    ("BEGIN:VCARD\r\nFN:x\r\nVERSION:4.0\r\nEND:VCARD\r\n", "right after BEGIN"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nTEL;VALUE=uri:tel:202 555\r\nEND:VCARD\r\n",
     "bad tel: URI"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nN:a;b\r\nEND:VCARD\r\n", "N needs 5"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN;TYPE=\"a:x\r\nEND:VCARD\r\n", "not a content line"),
    ("BEGIN:VCARD\nVERSION:4.0\nFN:x\nEND:VCARD\n", "CRLF"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n", "N is required"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\\:b\r\nN:x;;;;\r\nEND:VCARD\r\n", "bad escape"),
])
def test_the_strict_checker_finds_what_the_rfcs_forbid(text, problem):
    assert any(problem in p for p in strict_problems(text)), strict_problems(text)


def test_the_strict_checker_accepts_the_rfc_6350_example_forms():
    text = ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Simon Perreault\r\n"
            "N:Perreault;Simon;;;ing. jr,M.Sc.\r\n"
            "BDAY:--0203\r\nGENDER:M\r\nLANG;PREF=1:fr\r\nORG;TYPE=work:Viagenie\r\n"
            "ADR;TYPE=work:;Suite D2-630;2875 Laurier;Quebec;QC;G1V 2M2;Canada\r\n"
            "TEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418-656-9254;ext=102\r\n"
            "EMAIL;TYPE=work:simon.perreault@viagenie.ca\r\n"
            "GEO;TYPE=work:geo:46.772673,-71.282945\r\n"
            "PHOTO:data:image/png;base64,%s\r\nEND:VCARD\r\n" % B64_1)
    assert strict_problems(text) == []


# -- the vobject behaviours: where stock Radicale cuts the value ---------------------------

ME4 = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alice-me\r\nFN:Alice Archer\r\nN:Archer;Alice;;;\r\n"
       "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0101\r\nTEL;TYPE=work:+1 202 555 0188\r\n"
       "EMAIL;TYPE=home:alice@example.org\r\n"
       "ADR;TYPE=home:;;1 Main St;Springfield;;12345;USA\r\n"
       "PHOTO:data:image/png;base64,%s\r\nEND:VCARD\r\n")


def radicale_put(text: str) -> str:
    """What Radicale stores for a PUT of ``text``: vobject's parse, checks, re-serialisation."""
    items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(items, max_vevent_rrule_occurrence=1000,
                                         tag="VADDRESSBOOK")
    return radicale_item.Item(collection_path="alice/contacts", vobject_item=items[0]).serialize()


def photo_bytes(text: str) -> bytes:
    """The decoded PHOTO of a card, whatever the version's form."""
    card = parse_card(text)
    photo, = card.get("PHOTO")
    if {e.lower() for e in photo.param("ENCODING")} == {"b"}:
        return base64.b64decode(photo.value, validate=True)
    match = _DATA_URI.match(photo.value)
    assert match and match["b64"], photo.value[:60]
    return base64.b64decode(match["data"], validate=True)


def test_a_vcard4_data_uri_photo_survives_radicales_parse_and_serialisation():
    stored = radicale_put(ME4 % B64_1)
    assert photo_bytes(stored) == PNG1
    assert "\\;base64" not in stored
    assert "TEL;TYPE=cell;VALUE=uri:tel:+1-202-555-0101" in stored
    assert_valid(stored)


@pytest.mark.parametrize("line", [
    "LOGO:data:image/png;base64,%s" % B64_1,
    "SOUND:data:audio/ogg;base64,%s" % B64_1,
    "KEY:data:application/pgp-keys;base64,%s" % B64_1,
    "KEY;VALUE=uri:https://example.org/keys/a,b.asc",
    "TEL;VALUE=uri:tel:+1-202-555-0101;ext=5",
])
def test_other_uri_values_survive_too(line):
    text = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nFN:X\r\n%s\r\nEND:VCARD\r\n" % line
    stored = radicale_put(text)
    assert line in stored.replace("\r\n ", "")
    assert_valid(stored)


def test_vcard3_uri_photos_with_a_comma_are_kept_and_3_0_binary_photos_unchanged():
    text = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nN:X;;;;\r\n"
            "PHOTO;VALUE=uri:https://example.org/p,1.png\r\n"
            "LOGO;ENCODING=b;TYPE=PNG:%s\r\nEND:VCARD\r\n" % B64_1)
    card = vobject.readOne(text)
    assert card.photo.value == "https://example.org/p,1.png"
    assert card.logo.value == PNG1  # decoded by vobject's own code, as before
    stored = radicale_put(text)
    assert "PHOTO;VALUE=uri:https://example.org/p,1.png" in stored
    assert ("LOGO;ENCODING=b;TYPE=PNG:" + B64_1) in stored.replace("\r\n ", "")


def test_apple_bare_base64_photo_is_decoded_by_vobject_as_before():
    text = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nN:X;;;;\r\n"
            "PHOTO;BASE64;TYPE=PNG:%s\r\nEND:VCARD\r\n" % B64_1)
    card = vobject.readOne(text)
    assert card.photo.value == PNG1
    assert card.photo.params["ENCODING"] == ["B"]


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_text_properties_are_read_and_written_as_before(version):
    text = ("BEGIN:VCARD\r\nVERSION:%s\r\nUID:x\r\nFN:A\\, B\r\nN:B;A;;;\r\n"
            "NOTE:one\\, two\\; three\\nfour\r\nTEL;TYPE=CELL:+1 202 555 0101\r\n"
            "KEY;VALUE=text:abc\\,def\r\nEND:VCARD\r\n" % version)
    card = vobject.readOne(text)
    assert card.note.value == "one, two; three\nfour"
    assert card.fn.value == "A, B"
    assert card.tel.value == "+1 202 555 0101"
    assert card.key.value == "abc,def"
    stored = radicale_put(text)
    for line in ("NOTE:one\\, two\\; three\\nfour", "FN:A\\, B", "KEY;VALUE=text:abc\\,def"):
        assert line in stored


def test_a_vcard3_key_without_value_is_text_as_vobject_reads_it():
    card = vobject.readOne("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nN:A;;;;\r\nKEY:a\\,b\r\n"
                           "END:VCARD\r\n")
    assert card.key.value == "a,b"


def test_the_behaviour_lookup_finds_ours_by_version_and_id():
    # VCARD: ours for 3.0 (and the default: no VERSION, 2.1) and for 4.0
    assert vobject_base.getBehavior("VCARD", "3.0") is vb.VCard30
    assert vobject_base.getBehavior("VCARD") is vb.VCard30
    assert vobject_base.getBehavior("VCARD", "4.0") is vb.VCard40
    assert vobject_base.getBehavior("VCARD", "2.1") is vb.VCard30
    assert vobject.vCard().behavior is vb.VCard30
    # value behaviours: found by our id; the default PHOTO behaviour is still vobject's
    for name, behavior in (("PHOTO", vb.UriPhoto), ("LOGO", vb.UriLogo),
                           ("SOUND", vb.UriSound), ("KEY", vb.UriKey), ("TEL", vb.UriTel)):
        assert vobject_base.getBehavior(name, vb.URI_ID) is behavior
        assert vb.VCard30.knownChildren[name] == (0, None, vb.URI_ID)
    assert vobject_base.getBehavior("PHOTO") is Photo
    # every other child is as vobject knows it
    for name, spec in VCard3_0.knownChildren.items():
        if name != "PHOTO":
            assert vb.VCard30.knownChildren[name] == spec
    # and the lines of a parsed card get them
    card = vobject.readOne(ME4 % B64_1)
    assert card.behavior is vb.VCard40
    assert card.photo.behavior is vb.UriPhoto
    assert all(t.behavior is vb.UriTel for t in card.tel_list)
    assert card.fn.behavior is vobject.vcard.FN
    assert card.n.behavior is vobject.vcard.NameBehavior
    assert card.email.behavior is VCard3_0.defaultBehavior  # not a known child: as before


def test_registering_again_adds_nothing():
    registry = getattr(vobject_base, "__behaviorRegistry")
    before = {k: list(v) for k, v in registry.items()}
    vb.register()
    assert {k: list(v) for k, v in registry.items()} == before


def test_an_uri_photo_line_is_not_folded_as_vobjects_photo_is_not():
    stored = radicale_put(ME4 % B64_1)
    assert ("PHOTO:data:image/png;base64," + B64_1 + "\r\n") in stored


# -- the merge, across versions --------------------------------------------------------------

ME3 = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-me\r\nFN:Alice Archer\r\nN:Archer;Alice;;;\r\n"
       "TEL;TYPE=CELL:+1 202 555 0101\r\nTEL;TYPE=WORK:+1 202 555 0188\r\n"
       "EMAIL;TYPE=INTERNET:alice@example.org\r\n"
       "ADR;TYPE=HOME:;;1 Main St;Springfield;;12345;USA\r\n"
       "PHOTO;ENCODING=b;TYPE=PNG:%s\r\nEND:VCARD\r\n")

#: Copies as the recipients hold them before the first delivery, with their own groups.
COPY3 = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bobs-card-for-alice\r\nFN:Ally\r\nN:;Ally;;;\r\n"
         "TEL;TYPE=CELL:(202) 555-0101\r\nTEL;TYPE=WORK:+1 202 555 0777\r\n"
         "EMAIL:alice@example.org\r\nCATEGORIES:Friends,Climbing\r\nEND:VCARD\r\n")
COPY4 = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:carols-card-for-alice\r\nFN:Alice A.\r\n"
         "N:Archer;Alice;;;\r\nTEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0101\r\n"
         "TEL;TYPE=home:+1 202 555 0777\r\nEMAIL;TYPE=home:alice@example.org\r\n"
         "CATEGORIES:Climbing\r\nEND:VCARD\r\n")


def owner_card(version: str, photo: str = B64_1, mobile: str = "0101") -> str:
    text = (ME4 if version == "4.0" else ME3) % photo
    return text.replace("555-0101", "555-" + mobile).replace("555 0101", "555 " + mobile)


def deliver(copy_text: str, old_text: str | None, new_text: str,
            fields: list[str] = FIELDS) -> str:
    """Merge the owner's new card into the copy, as if the view of ``old_text`` was written."""
    new = shared_view(parse_card(new_text), fields)
    old = shared_view(parse_card(old_text), fields) if old_text else None
    previous = Previous(old.entries, frozenset(old.values(REGION))) if old else Previous()
    return merge(parse_card(copy_text), new, previous, REGION).serialize()


def tels(text: str) -> list[tuple[str, str, str]]:
    """(group, params as written, value) of each TEL line."""
    return [(ln.group, ";".join("%s=%s" % p for p in ln.params), ln.value)
            for ln in parse_card(text).get("TEL")]


@pytest.mark.parametrize("owner", ["3.0", "4.0"])
@pytest.mark.parametrize("copy", [COPY3, COPY4], ids=["copy3.0", "copy4.0"])
def test_every_version_pair_delivers_photo_numbers_email_address_and_keeps_groups(owner, copy):
    first = deliver(copy, None, owner_card(owner))
    second = deliver(first, owner_card(owner), owner_card(owner, B64_2, "0199"))
    four = copy is COPY4
    for out, image in ((first, PNG1), (second, PNG2)):
        card = assert_valid(out, max_octets=75)
        assert photo_bytes(out) == image
        assert parse_card(out).version == ("4.0" if four else "3.0")
        assert card.uid.value == parse_card(copy).first_value("UID")  # group MEMBERs still point
        assert parse_card(out).first_value("CATEGORIES") == parse_card(copy).first_value(
            "CATEGORIES")
        assert "+1 202 555 0777" in out                   # the recipient's own number
        assert "ADR" in out and "1 Main St" in out
        if four:
            assert "ENCODING" not in out and "internet" not in out.lower()
            assert re.search(r"(?m)^PHOTO:data:image/png;base64,", out)
        else:
            assert "data:" not in out and "VALUE=uri" not in out and "PREF=" not in out
    if four:  # the number the copy held as a tel: URI stays one
        assert ("", "VALUE=uri;TYPE=cell", "tel:+1-202-555-0199") in tels(second)
    else:  # the owner's text (a tel: URI's number is written as text)
        number = "+1-202-555-0199" if owner == "4.0" else "+1 202 555 0199"
        assert ("", "TYPE=CELL", number) in tels(second)
    assert "0101" not in second
    # and again: nothing changes
    assert deliver(second, owner_card(owner, B64_2, "0199"),
                   owner_card(owner, B64_2, "0199")) == second


def test_new_copies_of_either_version_are_valid():
    for owner in ("3.0", "4.0"):
        view = shared_view(parse_card(owner_card(owner)), FIELDS + ["GENDER"])
        for version in ("3.0", "4.0"):
            text = new_copy(view, "uid-1", version).serialize()
            assert_valid(text, max_octets=75)
            assert photo_bytes(text) == PNG1


def test_a_3_0_copy_gets_no_4_0_only_property_or_parameter():
    me = owner_card("4.0").replace(
        "END:VCARD", "GENDER:F\r\nANNIVERSARY:20090808\r\n"
        "EMAIL;PREF=1;TYPE=work:a.archer@work.example\r\nEND:VCARD").replace(
        "ADR;TYPE=home:", "ADR;TYPE=home;LABEL=\"1 Main St\\nSpringfield\":")
    fields = FIELDS + ["GENDER", "ANNIVERSARY"]
    out = deliver(COPY3, None, me, fields)
    assert_valid(out, max_octets=75)
    for foreign in ("GENDER", "ANNIVERSARY", "PREF=", "LABEL=", "VALUE=uri", "data:"):
        assert foreign not in out
    assert "EMAIL;TYPE=PREF,WORK:a.archer@work.example" in out
    # and merging again, with the owner's values known, changes nothing
    assert deliver(out, me, me, fields) == out


def test_a_4_0_copy_gets_no_3_0_only_parameter():
    me = owner_card("3.0").replace("EMAIL;TYPE=INTERNET:", "EMAIL;TYPE=INTERNET,PREF:").replace(
        "ADR;TYPE=HOME:", "ADR;TYPE=HOME,POSTAL:")
    out = deliver(COPY4, None, me)
    assert_valid(out, max_octets=75)
    for foreign in ("ENCODING", "internet", "INTERNET", "POSTAL", "postal", "TYPE=pref"):
        assert foreign not in out
    assert "EMAIL;TYPE=home:alice@example.org" in out  # the same address, the copy's line


def test_a_key_keeps_its_kind_in_a_3_0_copy():
    entry = Entry("KEY", "data:application/pgp-keys;base64," + B64_1, ("pgp",))
    assert render(entry, "3.0").params == [("ENCODING", "b"), ("TYPE", "PGP")]
    assert render(Entry("PHOTO", "data:image/jpeg;base64,AAAA"), "3.0").params == [
        ("ENCODING", "b"), ("TYPE", "JPEG")]


def test_a_percent_encoded_data_uri_becomes_base64_in_a_3_0_copy():
    line = render(Entry("LOGO", "data:image/svg+xml,%3Csvg%2F%3E"), "3.0")
    assert line.params == [("ENCODING", "b"), ("TYPE", "SVG+XML")]
    assert base64.b64decode(line.value) == b"<svg/>"


def test_fit_params_keeps_spelling_and_converts_preference():
    assert fit_params("EMAIL", [("TYPE", "INTERNET,HOME,pref")], "4.0") == [
        ("TYPE", "HOME"), ("PREF", "1")]
    assert fit_params("TEL", [("VALUE", "uri"), ("TYPE", "cell"), ("PREF", "1")], "3.0") == [
        ("TYPE", "cell,PREF")]
    assert fit_params("TEL", [("TYPE", '"voice,text"')], "3.0") == [("TYPE", '"voice"')]
    assert fit_params("PHOTO", [("ENCODING", "b"), ("TYPE", "PNG")], "4.0") == [("TYPE", "PNG")]
    assert fit_params("TEL", [], "4.0") == []


def test_a_quoted_type_list_is_read_as_its_values():
    line = parse_card('BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n'
                      'TEL;VALUE=uri;TYPE="voice,cell":tel:+1-202-555-0101\r\nEND:VCARD\r\n'
                      ).get("TEL")[0]
    assert line.type_values() == ["voice", "cell"]
    entry = shared_view(Card([line]), ["TEL"]).entries[0]
    assert entry.types == ("cell", "voice") and entry.value == "+1-202-555-0101"


def test_render_writes_a_tel_uri_only_into_4_0_and_only_like_a_uri_line():
    entry = Entry("TEL", "+1 202 555 0199", ("cell", "pref"))
    like = parse_card(COPY4).get("TEL")[0]
    assert render(entry, "4.0", like=like, region=REGION).serialize() == \
        "TEL;VALUE=uri;TYPE=cell;PREF=1:tel:+1-202-555-0199"
    assert render(entry, "4.0").serialize() == "TEL;TYPE=cell;PREF=1:+1 202 555 0199"
    assert render(entry, "3.0", like=like, region=REGION).serialize() == \
        "TEL;TYPE=CELL,PREF:+1 202 555 0199"
    # a number that cannot be placed stays text rather than become a bad URI
    odd = Entry("TEL", "ask at the front desk", ("work",))
    assert render(odd, "4.0", like=like, region=REGION).serialize() == \
        "TEL;TYPE=work:ask at the front desk"


# -- copies as phones save them back -----------------------------------------------------------

def ios_copy(delivered: str) -> str:
    """The copy as iOS Contacts saves it: 3.0, its own PRODID, grouped numbers and e-mail with
    Apple labels, repeated ``type=`` parameters, numbers in national format, lines moved."""
    photo = parse_card(delivered).get("PHOTO")[0].value
    return ("BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.5//EN\r\n"
            "N:;Ally;;;\r\nFN:Ally\r\n"
            "item1.TEL;type=CELL;type=VOICE;type=pref:(202) 555-0101\r\n"
            "item1.X-ABLabel:_$!<Mobile>!$_\r\n"
            "item2.TEL;type=WORK;type=VOICE:(202) 555-0777\r\n"
            "item3.TEL;type=WORK;type=VOICE:(202) 555-0188\r\n"
            "item3.X-ABLabel:Alice's office\r\n"
            "item4.EMAIL;type=INTERNET;type=HOME:alice@example.org\r\n"
            "item4.X-ABLabel:_$!<Home>!$_\r\n"
            "item5.ADR;type=HOME:;;1 Main St;Springfield;;12345;USA\r\n"
            "item5.X-ABADR:us\r\n"
            "PHOTO;ENCODING=b;TYPE=PNG:%s\r\n"
            "CATEGORIES:Friends,Climbing\r\nUID:bobs-card-for-alice\r\n"
            "X-ABShowAs:PERSON\r\nEND:VCARD\r\n" % photo)


def davx5_copy(delivered: str) -> str:
    """The copy as DAVx5 saves it in a 4.0 book: ez-vcard's PRODID, TYPE upper-cased, PREF
    added, numbers as tel: URIs, REV."""
    photo = parse_card(delivered).get("PHOTO")[0].value
    return ("BEGIN:VCARD\r\nVERSION:4.0\r\nPRODID:ez-vcard 0.12.1\r\nUID:carols-card-for-alice\r\n"
            "FN:Alice A.\r\nN:Archer;Alice;;;\r\n"
            "TEL;TYPE=CELL;PREF=1;VALUE=uri:tel:+1-202-555-0101\r\n"
            "TEL;TYPE=HOME;VALUE=uri:tel:+1-202-555-0777\r\n"
            "TEL;TYPE=WORK;VALUE=uri:tel:+1-202-555-0188\r\n"
            "EMAIL;TYPE=HOME:alice@example.org\r\n"
            "ADR;TYPE=HOME:;;1 Main St;Springfield;;12345;USA\r\n"
            "CATEGORIES:Climbing\r\nPHOTO:%s\r\nREV:20261125T120000Z\r\nEND:VCARD\r\n" % photo)


@pytest.mark.parametrize("owner", ["3.0", "4.0"])
@pytest.mark.parametrize("through_radicale", [False, True], ids=["as-sent", "as-stored"])
def test_an_ios_resaved_copy_gets_the_new_number_in_place_with_its_label(owner, through_radicale):
    delivered = deliver(COPY3, None, owner_card(owner))
    resaved = ios_copy(delivered)
    if through_radicale:  # what the server holds: vobject's re-serialisation of the PUT
        resaved = radicale_put(resaved)
        assert "item1.X-ABLABEL:_$!<Mobile>!$_" in resaved
    out = deliver(resaved, owner_card(owner), owner_card(owner, B64_2, "0199"))
    card = parse_card(out)
    mobile = [ln for ln in card.get("TEL") if "0199" in ln.value]
    assert len(mobile) == 1 and mobile[0].group.lower() == "item1"
    assert mobile[0].value == ("+1-202-555-0199" if owner == "4.0" else "+1 202 555 0199")
    assert {t.upper() for t in mobile[0].type_values()} == {"CELL", "VOICE", "PREF"}
    labels = {ln.group.lower(): ln.value for ln in card.lines if ln.name == "X-ABLABEL"}
    assert labels == {"item1": "_$!<Mobile>!$_", "item3": "Alice's office",
                      "item4": "_$!<Home>!$_"}
    assert "0101" not in out
    # the recipient's own number and the untouched values stay as the phone wrote them
    assert [ln.value for ln in card.get("TEL") if ln.group.lower() != "item1"] == [
        "(202) 555-0777", "(202) 555-0188"]
    assert photo_bytes(out) == PNG2
    assert_valid(out)
    # every other line is as the phone (or Radicale) wrote it, byte for byte
    unchanged = [ln for ln in parse_card(resaved).lines
                 if ln.name != "PHOTO" and not (ln.name == "TEL" and "0101" in ln.value)]
    assert all(ln.serialize() in out for ln in unchanged)


def test_a_number_the_owner_drops_takes_its_ios_label_with_it():
    delivered = deliver(COPY3, None, owner_card("3.0"))
    resaved = ios_copy(delivered)
    fewer = owner_card("3.0").replace("TEL;TYPE=WORK:+1 202 555 0188\r\n", "")
    out = deliver(resaved, owner_card("3.0"), fewer)
    assert "0188" not in out and "Alice's office" not in out and "item3." not in out
    assert "item1.X-ABLabel:_$!<Mobile>!$_" in out  # the others keep theirs
    assert "item5.X-ABADR:us" in out
    assert_valid(out)


@pytest.mark.parametrize("owner", ["3.0", "4.0"])
def test_a_davx5_resaved_copy_keeps_its_parameters_and_uri_form(owner):
    delivered = deliver(COPY4, None, owner_card(owner))
    resaved = radicale_put(davx5_copy(delivered))
    out = deliver(resaved, owner_card(owner), owner_card(owner, B64_2, "0199"))
    tel = [ln for ln in parse_card(out).get("TEL") if "0199" in ln.value]
    assert len(tel) == 1
    assert tel[0].value == "tel:+1-202-555-0199"
    assert dict((k.upper(), v) for k, v in tel[0].params) == {
        "TYPE": "CELL", "PREF": "1", "VALUE": "uri"}
    assert "0101" not in out
    assert photo_bytes(out) == PNG2
    assert_valid(out)
    assert "CATEGORIES:Climbing" in out


def test_an_owner_who_changes_the_kind_of_a_number_is_followed():
    delivered = deliver(COPY4, None, owner_card("4.0"))
    new = owner_card("4.0", mobile="0199").replace("TYPE=cell:tel:+1-202-555-0199",
                                                   "TYPE=work:tel:+1-202-555-0199")
    new = new.replace("TEL;TYPE=work:+1 202 555 0188\r\n", "")
    out = deliver(delivered, owner_card("4.0"), new)
    assert ("", "VALUE=uri;TYPE=work", "tel:+1-202-555-0199") in tels(out)
    assert "0188" not in out and "0101" not in out
    assert_valid(out, max_octets=75)


def test_a_4_0_copy_that_uses_tel_uris_gets_an_added_number_as_one():
    out = deliver(COPY4, None, owner_card("3.0"))
    assert ("", "VALUE=uri;TYPE=work", "tel:+1-202-555-0188") in tels(out)
    assert ("", "TYPE=home", "+1 202 555 0777") in tels(out)  # the recipient's, untouched


def test_the_same_number_in_another_form_is_left_alone():
    # the copy holds the owner's number as a tel: URI, the owner as text: the same value
    out = deliver(COPY4, owner_card("3.0"), owner_card("3.0"))
    assert "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0101\r\n" in out


def test_owner_type_change_of_the_same_number_reaches_a_4_0_copy_in_its_form():
    new = owner_card("4.0").replace("TEL;VALUE=uri;TYPE=cell:", "TEL;VALUE=uri;TYPE=home:")
    # a line as we would have written it follows the owner, in the copy's form
    out = deliver(COPY4, owner_card("4.0"), new)
    assert "TEL;VALUE=uri;TYPE=home:tel:+1-202-555-0101\r\n" in out
    # a line the recipient's phone re-typed stays as it is
    davx5 = COPY4.replace("TYPE=cell:tel:", "TYPE=CELL,VOICE:tel:")
    out = deliver(davx5, owner_card("4.0"), new)
    assert "TEL;VALUE=uri;TYPE=CELL,VOICE:tel:+1-202-555-0101\r\n" in out


def test_views_and_merges_of_vcard4_cards_are_pure_data():
    view = shared_view(parse_card(owner_card("4.0")), FIELDS)
    assert View.from_json(view.to_json()) == view
    photo, = view.of("PHOTO")
    assert photo.value == "data:image/png;base64," + B64_1


# -- any owner change, any form of copy ----------------------------------------------------------

POOL = ["+1 202 555 01%02d" % i for i in range(10, 16)]
OWN_NUMBER = "+1 202 555 0777"
KINDS = [("cell",), ("work",), ("home",), ("cell", "pref"), ("voice", "work")]


@st.composite
def scenarios(draw):
    version = draw(st.sampled_from(["3.0", "4.0"]))
    old = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=3))
    new = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=3))
    forms = ["text", "ios"] + (["uri"] if version == "4.0" else [])
    lines = []
    for i, number in enumerate(old):
        form = draw(st.sampled_from(forms))
        kind = draw(st.sampled_from(KINDS))
        if version == "4.0":  # preference as 4.0 writes it
            params = "TYPE=%s" % ",".join(k for k in kind if k != "pref") + (
                ";PREF=1" if "pref" in kind else "")
        else:
            params = "type=%s" % ";type=".join(k.upper() for k in kind)
        if form == "uri":
            lines.append("TEL;VALUE=uri;%s:%s" % (params, tel_uri(number, REGION)))
        elif form == "ios":  # grouped, labelled, in national format
            national = number.replace("+1 ", "(").replace(" 555 ", ") 555-")
            lines.append("item%d.TEL;%s:%s" % (i + 1, params, national))
            lines.append("item%d.X-ABLabel:label %d" % (i + 1, i + 1))
        else:
            lines.append("TEL;%s:%s" % (params, number))
    where = draw(st.integers(0, len(lines)))
    lines.insert(where, "TEL;TYPE=%s:%s" % ("WORK" if version == "3.0" else "work", OWN_NUMBER))
    old_kinds = [draw(st.sampled_from(KINDS)) for _ in old]
    new_kinds = [draw(st.sampled_from(KINDS)) for _ in new]
    return version, lines, list(zip(old, old_kinds)), list(zip(new, new_kinds))


def numbers_view(numbers: list[tuple[str, tuple[str, ...]]]) -> View:
    entries = [Entry("FN", "Alice Archer"), Entry("N", "Archer;Alice;;;")]
    entries += [Entry("TEL", n, tuple(sorted(kind))) for n, kind in numbers]
    return View(tuple(entries), ("FN", "N", "TEL"))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_any_number_change_into_any_form_of_copy_is_exact_valid_and_idempotent(scenario):
    version, tel_lines, old, new = scenario
    copy = parse_card("\r\n".join(["BEGIN:VCARD", "VERSION:" + version, "UID:c", "FN:Ally",
                                   "N:;Ally;;;"] + tel_lines + ["END:VCARD"]) + "\r\n")
    assert strict_problems(copy.serialize()) == []
    old_view, new_view = numbers_view(old), numbers_view(new)
    known = frozenset(old_view.values(REGION))
    out = merge(copy, new_view, Previous(old_view.entries, known), REGION)
    text = out.serialize()
    keys = [phone_key(ln.value, REGION) or "" for ln in out.get("TEL")]
    wanted = {phone_key(n, REGION) or "" for n in [OWN_NUMBER] + [n for n, _ in new]}
    assert sorted(keys) == sorted(wanted)  # each number once: nothing piles up
    assert strict_problems(text, 75) == [], text
    vobject.readOne(text, validate=True)
    # every Apple label still labels a number of its group
    for label in (ln for ln in out.lines if ln.name == "X-ABLABEL"):
        assert any(ln.group == label.group and ln.name == "TEL" for ln in out.lines), text
    # a replaced number took the place of an old one: no more lines than before, plus additions
    assert len(out.get("TEL")) <= len(copy.get("TEL")) + max(0, len(new) - len(old))
    # the same change again, with what is known before or after it, changes nothing
    again = merge(out, new_view, Previous(old_view.entries, known), REGION)
    assert again.serialize() == text
    after = merge(out, new_view, Previous(new_view.entries, known | new_view.values(REGION)),
                  REGION)
    assert after.serialize() == text
