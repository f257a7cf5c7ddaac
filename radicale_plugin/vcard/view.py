# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared view of a me card: the shared fields, in a version-neutral form.

An :class:`Entry` is one shared value (a number, an address, the photo)
with its parameters, kept so that it can be compared with the same value in
a copy written in the other vCard version and written into either version.
The view is what travels from an owner to recipients; nothing outside the
owner's shared fields is ever in it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Iterable

import phonenumbers

from radicale_plugin.errors import BadRequest
from radicale_plugin.vcard.matching import line_key
from radicale_plugin.vcard.codec import Card, Line, unescape

DEFAULT_SHARED_FIELDS: tuple[str, ...] = ("FN", "N", "TEL", "EMAIL")

#: Fields an owner may share.  Structural properties (UID, VERSION, KIND,
#: MEMBER, CATEGORIES...) describe the owner's own book, not the person.
SHAREABLE_FIELDS: frozenset[str] = frozenset((
    "FN", "N", "NICKNAME", "PHOTO", "BDAY", "ANNIVERSARY", "GENDER", "ADR",
    "TEL", "EMAIL", "IMPP", "LANG", "TZ", "GEO", "TITLE", "ROLE", "LOGO",
    "ORG", "NOTE", "URL", "KEY", "SOUND", "X-SOCIALPROFILE"))

#: Fields with at most one value on a card: the recipient may have replaced
#: it ("Mom"), in which case the recipient's value wins.
SINGLE_VALUED: frozenset[str] = frozenset((
    "FN", "N", "NICKNAME", "PHOTO", "BDAY", "ANNIVERSARY", "GENDER", "TZ",
    "GEO", "TITLE", "ROLE", "LOGO", "ORG", "NOTE", "SOUND"))

BINARY_FIELDS: frozenset[str] = frozenset(("PHOTO", "LOGO", "KEY", "SOUND"))

# Parameters that only make sense inside the owner's own card.
_DROPPED_PARAMS = frozenset(("PID", "ALTID", "ENCODING", "VALUE", "MEDIATYPE", "CHARSET"))

# What one vCard version has and the other has not, so that a copy gets only its own
# version's forms.  TYPE values RFC 6350 removed (appendix A.2) or never had for the
# property (its type-param ABNF), written by vCard 3.0 clients:
_TYPES_ONLY_IN_3: dict[str, frozenset[str]] = {
    "ADR": frozenset(("intl", "dom", "postal", "parcel")),
    "EMAIL": frozenset(("internet", "x400")),
    "TEL": frozenset(("msg", "bbs", "modem", "car", "isdn", "pcs")),
}
# ... and TYPE values RFC 2426 does not know:
_TYPES_ONLY_IN_4: dict[str, frozenset[str]] = {
    "TEL": frozenset(("text", "textphone")),
}
# Parameters RFC 6350 removed, and parameters it added (PREF becomes TYPE=pref in 3.0).
_PARAMS_ONLY_IN_3 = frozenset(("ENCODING", "CHARSET", "CONTEXT"))
_PARAMS_ONLY_IN_4 = frozenset(("PREF", "MEDIATYPE", "LABEL", "GEO", "TZ", "SORT-AS", "CALSCALE",
                               "ALTID", "PID", "INDEX", "LEVEL", "CC"))
#: Properties RFC 6350 added: a 3.0 copy does not get them.
ONLY_IN_4: frozenset[str] = frozenset(("KIND", "GENDER", "LANG", "ANNIVERSARY", "XML",
                                       "CLIENTPIDMAP", "MEMBER", "RELATED"))

_MEDIA = {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png",
          "GIF": "image/gif", "BMP": "image/bmp", "WEBP": "image/webp",
          "HEIC": "image/heic"}


def check_fields(fields: Iterable[str]) -> list[str]:
    """Upper-cased field names, or :class:`BadRequest` naming the unknown ones."""
    wanted = [f.strip().upper() for f in fields]
    unknown = [f for f in wanted if f not in SHAREABLE_FIELDS and not (
        f.startswith("X-") and not f.startswith("X-ADDRESSBOOKSERVER-"))]
    if unknown:
        raise BadRequest("unknown or unshareable field(s): %s; shareable are %s"
                         % (", ".join(unknown), ", ".join(sorted(SHAREABLE_FIELDS))))
    if not wanted:
        raise BadRequest("the list of shared fields is empty; share at least FN")
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class Entry:
    """One shared value in version-neutral form.

    ``value`` is the vCard-escaped text; for binary fields a ``data:`` URI or
    a URL; for TEL the number without ``tel:``.  ``types`` are lower-case
    TYPE values (``pref`` stands for PREF=1 too).
    """

    name: str
    value: str
    types: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # other parameters, as written

    def compare_key(self, region: str) -> str:
        """What makes two values "the same value" for merging."""
        key = line_key(self.name, self.value, region)
        if key:
            return key
        if self.name in BINARY_FIELDS:
            return re.sub(r"\s+", "", self.value)
        return self.value.strip()

    def to_json(self) -> list:
        return [self.name, self.value, list(self.types), [list(p) for p in self.params]]

    @classmethod
    def from_json(cls, data: list) -> "Entry":
        return cls(data[0], data[1], tuple(data[2]), tuple(tuple(p) for p in data[3]))


def entry_from_line(line: Line, version: str) -> Entry:
    """Read one content line of a card of ``version`` into an :class:`Entry`."""
    types = [t.lower() for t in line.type_values()]
    # vCard 2.1 writes bare parameters: TEL;CELL;PREF:...
    types += [k.lower() for k, v in line.params if v == "" and k]
    other = []
    for k, v in line.params:
        ku = k.upper()
        if ku == "PREF":
            types.append("pref")
        elif ku not in _DROPPED_PARAMS and ku != "TYPE" and v != "":
            other.append((ku, v))
    value = line.value
    if line.name == "TEL" and value.lower().startswith("tel:"):
        value = value[4:]
    elif line.name in BINARY_FIELDS:
        value = _binary_value(line, version)
        # the media type is part of the data: URI; BASE64 is Apple's bare ENCODING
        types = [t for t in types if t.upper() not in _MEDIA and t not in ("b", "base64")]
    return Entry(line.name, value, tuple(sorted(set(types))), tuple(other))


def _binary_value(line: Line, version: str) -> str:
    encoding = {e.upper() for e in line.param("ENCODING")}
    encoding.update(k.upper() for k, v in line.params if not v)  # Apple: PHOTO;BASE64:...
    if encoding & {"B", "BASE64"}:
        kinds = [t.upper() for t in line.param("TYPE")] + [k.upper() for k, v in line.params if not v]
        media = next((_MEDIA[t] for t in kinds if t in _MEDIA), "application/octet-stream")
        return "data:%s;base64,%s" % (media, re.sub(r"\s+", "", line.value))
    return line.value.strip()


def is_tel_uri(line: Line) -> bool:
    """A TEL line written as a ``tel:`` URI (``TEL;VALUE=uri:tel:+1-202-555-0101``)."""
    return line.name == "TEL" and (
        any(k.upper() == "VALUE" and v.lower() == "uri" for k, v in line.params)
        or line.value[:4].lower() == "tel:")


@functools.lru_cache(maxsize=4096)
def tel_uri(number: str, region: str) -> str | None:
    """``number`` as an RFC 3966 ``tel:`` URI (``tel:+1-202-555-0101``); None if it is not
    a number phonenumbers can place (a national number needs ``region``)."""
    text = unescape(number).strip()
    try:
        parsed = phonenumbers.parse(text, region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.RFC3966)


def render(entry: Entry, version: str, group: str = "", like: Line | None = None,
           region: str = "") -> Line:
    """Write ``entry`` as a content line for a card of ``version``.

    ``like`` is a line of the copy whose form the new line keeps: a number
    replacing (or joining) a ``tel:`` URI in a 4.0 copy is written as a
    ``tel:`` URI too (``region`` places national numbers).  Forms of the
    other version are never written (see :func:`fit_params`).
    """
    four = version.startswith("4")
    params: list[tuple[str, str]] = []
    types = list(entry.types)
    if four and "pref" in types:
        types.remove("pref")
        params.append(("PREF", "1"))
    value = entry.value
    if entry.name in BINARY_FIELDS and value.startswith("data:"):
        if not four:
            media, _, data = value[5:].partition(",")
            if media.split(";")[-1].lower() != "base64":  # percent-encoded bytes
                data = base64.b64encode(urllib.parse.unquote_to_bytes(data)).decode("ascii")
            subtype = media.split(";")[0].split("/")[-1].upper() or "JPEG"
            # one TYPE: the kind of key (PGP, X509) if the owner said it, else the format
            params = [("ENCODING", "b"), ("TYPE", ",".join(t.upper() for t in types)
                                          if types else subtype)]
            types = []
            value = data
    elif entry.name in BINARY_FIELDS and not four:
        params.append(("VALUE", "uri"))
    elif four and like is not None and is_tel_uri(like):
        uri = tel_uri(value, region)
        if uri is not None:
            params.insert(0, ("VALUE", "uri"))
            value = uri
    if types:
        params.insert(1 if params[:1] == [("VALUE", "uri")] else 0, ("TYPE", ",".join(
            t.upper() if not four else t for t in types)))
    params.extend(entry.params)
    return Line(name=entry.name, value=value, params=fit_params(entry.name, params, version),
                group=group)


def fit_params(name: str, params: list[tuple[str, str]], version: str
               ) -> list[tuple[str, str]]:
    """``params`` without what the other vCard version has and ``version`` has not.

    Into 4.0: no ENCODING/CHARSET, no 3.0-only TYPE values (``TYPE=internet``),
    ``TYPE=pref`` becomes ``PREF=1``.  Into 3.0: no MEDIATYPE, LABEL, ALTID,
    PID..., ``PREF=n`` becomes ``TYPE=PREF``, no 4.0-only TYPE values, no
    ``VALUE=uri`` on TEL (3.0 numbers are text).  The spelling of what is
    kept is left alone.
    """
    if not params:
        return params
    four = version.startswith("4")
    foreign_types = (_TYPES_ONLY_IN_3 if four else _TYPES_ONLY_IN_4).get(name, frozenset())
    foreign_params = _PARAMS_ONLY_IN_3 if four else _PARAMS_ONLY_IN_4
    out: list[tuple[str, str]] = []
    pref = False  # a preference to write in this version's own way
    for key, val in params:
        upper = key.upper()
        if not val:  # vCard 2.1's bare values (TEL;CELL;PREF:, Apple's PHOTO;BASE64:)
            if upper.lower() in foreign_types or (four and upper == "BASE64"):
                continue
            if four and upper == "PREF":
                pref = True
                continue
            out.append((key, val))
        elif upper == "TYPE":
            quoted = len(val) > 1 and val[0] == val[-1] == '"'
            values = (val[1:-1] if quoted else val).split(",")
            kept = [t for t in values if t.lower() not in foreign_types]
            if four and any(t.lower() == "pref" for t in kept):
                pref = True
                kept = [t for t in kept if t.lower() != "pref"]
            if kept:
                text = ",".join(kept)
                out.append((key, '"%s"' % text if quoted else text))
        elif upper == "PREF" and not four:
            pref = True
        elif upper in foreign_params:
            continue
        elif upper == "VALUE" and name == "TEL" and not four and val.lower() == "uri":
            continue
        else:
            out.append((key, val))
    if pref and four:
        if not any(k.upper() == "PREF" for k, _ in out):
            out.append(("PREF", "1"))
    elif pref:
        types = [i for i, (k, _) in enumerate(out) if k.upper() == "TYPE"]
        if not types:
            out.append(("TYPE", "PREF"))
        elif not any(t.strip('"').lower() == "pref" for i in types
                     for t in out[i][1].split(",")):
            key, val = out[types[0]]
            out[types[0]] = (key, val[:-1] + ',PREF"' if val.endswith('"') else val + ",PREF")
    return out


@dataclass(frozen=True)
class View:
    """The shared view of one me card.

    ``fields`` are the owner's shared fields (a field may be shared and
    have no value); ``withdrawn`` are fields the owner stopped sharing and
    asked to remove from copies.  Merging touches only these two kinds of
    field: values of a field the owner merely stopped sharing stay, like a
    business card already handed out.
    """

    entries: tuple[Entry, ...]
    fields: tuple[str, ...] = ()
    withdrawn: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.fields:
            # views stored by schema version 1 knew no field list
            object.__setattr__(self, "fields", tuple(dict.fromkeys(e.name for e in self.entries)))

    def of(self, name: str) -> list[Entry]:
        return [e for e in self.entries if e.name == name]

    def touched(self) -> tuple[str, ...]:
        """The fields a merge of this view may change in a copy."""
        return tuple(dict.fromkeys(self.fields + self.withdrawn))

    def keys(self, region: str) -> set[str]:
        """The matching keys (numbers and e-mails) of the view."""
        return {k for e in self.entries if (k := line_key(e.name, e.value, region))}

    def values(self, region: str) -> set[tuple[str, str]]:
        """(field, compare key) of every value: what proves a value in a copy is the owner's."""
        return set(_values(self.entries, region))

    def without(self, drop: Iterable[Entry]) -> "View":
        gone = set(drop)
        return View(tuple(e for e in self.entries if e not in gone), self.fields, self.withdrawn)

    def fingerprint(self) -> str:
        """Equal for views that would write the same values into a copy."""
        data = sorted(json.dumps(e.to_json()) for e in self.entries)
        data.append(json.dumps([sorted(self.fields), sorted(self.withdrawn)]))
        return hashlib.sha256("\n".join(data).encode()).hexdigest()

    def to_json(self) -> str:
        return _to_json(self)

    @classmethod
    def from_json(cls, text: str | None) -> "View | None":
        return _from_json(text) if text else None


# A fan-out handles the same few views thousands of times: they are immutable, so
# their JSON and compare keys are computed once.

@functools.lru_cache(maxsize=256)
def _values(entries: tuple[Entry, ...], region: str) -> frozenset[tuple[str, str]]:
    return frozenset((e.name, e.compare_key(region)) for e in entries)


@functools.lru_cache(maxsize=256)
def _to_json(view: View) -> str:
    return json.dumps({"entries": [e.to_json() for e in view.entries],
                       "fields": list(view.fields), "withdrawn": list(view.withdrawn)})


@functools.lru_cache(maxsize=256)
def _from_json(text: str) -> View:
    data = json.loads(text)
    if isinstance(data, list):  # schema version 1: the entries only
        return View(tuple(Entry.from_json(d) for d in data))
    return View(tuple(Entry.from_json(d) for d in data["entries"]),
                tuple(data.get("fields", ())), tuple(data.get("withdrawn", ())))


def shared_view(card: Card, shared_fields: Iterable[str],
                withdrawn: Iterable[str] = ()) -> View:
    """The part of the owner's ``card`` that is shared."""
    fields = tuple(dict.fromkeys(shared_fields))
    version = card.version
    return View(tuple(entry_from_line(line, version)
                      for line in card.lines if line.name in fields),
                fields, tuple(f for f in dict.fromkeys(withdrawn) if f not in fields))
