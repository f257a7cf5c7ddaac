# SPDX-License-Identifier: GPL-3.0-or-later
"""vobject behaviours that keep URI values (vCard 4.0 ``data:`` photos, URLs) whole.

**What is cut, and where.**  Radicale parses every card it receives (PUT of a
card or of a whole book, MOVE, and again whenever it reads a stored item) with
vobject, and stores vobject's re-serialisation, not the request body.  vobject
0.9.9 has no VCARD behaviour for 4.0: ``getBehavior("VCARD", "4.0")`` falls
back to the default, its vCard 3.0 behaviour.  There PHOTO gets vobject's
``Photo`` and LOGO, SOUND, KEY and TEL, which are not in its ``knownChildren``,
get the parent's ``defaultBehavior``; all of them are ``VCardTextBehavior``,
whose ``decode`` reads a value without ENCODING as a *text list* and keeps its
first item (``stringToTextValues(value)[0]``: everything after the first comma
is lost) and whose ``encode`` escapes ``;`` and ``,``.  So DAVx5's
``PHOTO:data:image/png;base64,iVBOR...`` is stored as
``PHOTO:data:image/png\\;base64`` before any hook of a storage plugin runs
(``Collection.upload`` is handed the parsed item, the body is gone), and the
fan-out then spreads the broken value.  It is cut a second time on the way
out: a card file the fan-out writes straight into a book folder is parsed by
Radicale at its first read (an item-cache miss), and GET serves vobject's
re-serialisation of it, not the file.

**Why here.**  The value is lost in the parser, so the parser is where it must
be read correctly: a fix in the storage plugin comes too late, and a WSGI layer
keeping the raw body would cover PUT of one card only, not MOVE, a whole book,
the re-read behind GET of a copy written directly, or REPORT filters.
Changing Radicale's or vobject's files, or replacing their functions at run
time, would vanish with an upgrade and silently change vobject for everything
in the process.  ``vobject.base.registerBehavior`` is vobject's public way to
add or override behaviours; this module uses only it.  It is imported by
:mod:`radicale_plugin.storage`, so it is in effect in every Radicale process
that loads the plugin, before the first request.

**What is registered.**

* :class:`VCard30` and :class:`VCard40`: vobject's ``VCard3_0`` with PHOTO,
  LOGO, SOUND, KEY, TEL and the URI properties (URL, SOURCE, IMPP, MEMBER,
  RELATED, FBURL, CALURI, CALADRURI, ORG-DIRECTORY, CONTACT-URI, Apple's
  X-SOCIALPROFILE and X-ADDRESSBOOKSERVER-MEMBER) mapped (``knownChildren``,
  by the id :data:`URI_ID`) to the behaviours below.  vobject has none of the
  URI properties either, so ``URL:https://example.org/a,b`` was stored as
  ``URL:https://example.org/a`` like the photos.  ``VCard30`` is registered as the
  default VCARD behaviour under the id ``"3.0"`` (it serves 3.0 cards, cards
  without VERSION and 2.1 cards, as ``VCard3_0`` did); ``VCard40`` under
  ``"4.0"``, which vobject had nothing for.  Both behave exactly like
  ``VCard3_0`` for every other property.
* The value behaviours, registered under :data:`URI_ID` only, so that no
  other vobject user asking for the default PHOTO behaviour gets ours.  A
  value is a URI, and is neither unescaped nor split nor escaped, when the
  line says ``VALUE=uri``, or when it has no VALUE and the property's values
  are URIs in that version: PHOTO, LOGO and SOUND without ENCODING in any
  version (they have no text form), KEY in 4.0, the URI properties above in
  any version (RELATED with ``VALUE=text`` is text, by the VALUE rule).  Values with ENCODING
  (``ENCODING=b``, Apple's bare ``BASE64``) and text values (TEL without
  ``VALUE=uri``, KEY in 3.0) are handled by vobject's own code, unchanged.
"""

from __future__ import annotations

from typing import Any

from vobject import base
from vobject.vcard import Photo, VCard3_0, VCardTextBehavior

#: The registry id our value behaviours are registered under (``getBehavior(name, URI_ID)``).
#: It must be explicit: the default id would be the behaviour's ``versionString`` (``""``
#: for value behaviours), and ``getBehavior`` treats an empty id as "the default".
URI_ID = "radicale-mecard-uri"

#: Properties whose values are URIs when no ENCODING says otherwise, by vCard version
#: (a VALUE parameter always decides: ``VALUE=uri`` is a URI, any other VALUE is not).
_URI_WITHOUT_VALUE: dict[str, frozenset[str]] = {
    "PHOTO": frozenset(("3.0", "4.0")),
    "LOGO": frozenset(("3.0", "4.0")),
    "SOUND": frozenset(("3.0", "4.0")),
    "KEY": frozenset(("4.0",)),
    "TEL": frozenset(),  # a phone number is text unless the line says VALUE=uri
}
#: Properties whose value is a URI in every version (vCard 3.0 with RFC 2739/4770, and 4.0).
URI_PROPERTIES = ("URL", "SOURCE", "IMPP", "MEMBER", "RELATED", "FBURL", "CALURI",
                  "CALADRURI", "ORG-DIRECTORY", "CONTACT-URI", "X-SOCIALPROFILE",
                  "X-ADDRESSBOOKSERVER-MEMBER")
_URI_WITHOUT_VALUE.update({name: frozenset(("3.0", "4.0")) for name in URI_PROPERTIES})


def _has_encoding(line: Any) -> bool:
    """ENCODING=b (or 2.1's BASE64, Apple's bare ``BASE64``): vobject's base64 code applies."""
    return "ENCODING" in line.params or "BASE64" in (p.upper() for p in line.singletonparams)


def is_uri_value(line: Any) -> bool:
    """Whether ``line`` (a vobject ContentLine) holds a URI value, to be kept as it is."""
    if _has_encoding(line):
        return False
    value_type = line.params.get("VALUE")
    if value_type:
        return str(value_type[0]).lower() == "uri"
    # the card's behaviour is set on the line before it is decoded (autoBehavior)
    version = getattr(getattr(line, "parentBehavior", None), "versionString", "3.0")
    return version in _URI_WITHOUT_VALUE.get(line.name.upper(), frozenset())


class _UriOrText:
    """decode/encode that leave URI values alone and hand everything else to vobject.

    Mixed into subclasses of vobject's own behaviours, before them, so that only
    decode and encode differ.
    """

    @classmethod
    def decode(cls, line: Any) -> None:
        if line.encoded and is_uri_value(line):
            line.encoded = False  # a URI is not escaped text: nothing to undo
            return
        super().decode(line)  # type: ignore[misc]

    @classmethod
    def encode(cls, line: Any) -> None:
        if not line.encoded and is_uri_value(line):
            line.encoded = True
            return
        super().encode(line)  # type: ignore[misc]


class UriPhoto(_UriOrText, Photo):
    """PHOTO: vobject's ``Photo`` (which does not fold, for Apple) with URI values kept."""

    name = "PHOTO"


class UriLogo(_UriOrText, VCardTextBehavior):
    name = "LOGO"
    description = "Logo"


class UriSound(_UriOrText, VCardTextBehavior):
    name = "SOUND"
    description = "Sound"


class UriKey(_UriOrText, VCardTextBehavior):
    name = "KEY"
    description = "Public key"


class UriTel(_UriOrText, VCardTextBehavior):
    """TEL: text as vobject reads it, except ``VALUE=uri`` (``tel:+1-202-555-0101;ext=5``)."""

    name = "TEL"
    description = "Telephone number"


def _uri_behavior(name: str) -> type[VCardTextBehavior]:
    """A value behaviour for a URI property: vobject's text behaviour, URIs kept whole."""
    return type("Uri" + name.title().replace("-", ""), (_UriOrText, VCardTextBehavior),
                {"name": name, "description": "%s (a URI)" % name})


_VALUE_BEHAVIORS: tuple[type[VCardTextBehavior], ...] = (
    UriPhoto, UriLogo, UriSound, UriKey, UriTel, *(_uri_behavior(n) for n in URI_PROPERTIES))

_KNOWN_CHILDREN = dict(VCard3_0.knownChildren)
_KNOWN_CHILDREN.update({b.name: (0, None, URI_ID) for b in _VALUE_BEHAVIORS})


class VCard30(VCard3_0):
    """vobject's vCard 3.0 behaviour, with URI values kept whole."""

    description = "vCard 3.0, defined in rfc2426 (URI values kept whole)"
    knownChildren = _KNOWN_CHILDREN
    mecard = True  # marks the classes of this module (registration happens once)


class VCard40(VCard30):
    """vCard 4.0 (RFC 6350): vobject reads it with its 3.0 rules; this at least keeps URIs."""

    description = "vCard 4.0, defined in rfc6350, read with vobject's 3.0 rules"
    versionString = "4.0"


def register() -> None:
    """Register the behaviours with vobject (once per process; later calls do nothing)."""
    if getattr(base.getBehavior("VCARD", "3.0"), "mecard", False):
        return
    for behavior in _VALUE_BEHAVIORS:
        base.registerBehavior(behavior, id=URI_ID)
    base.registerBehavior(VCard30, default=True)  # id "3.0", first in the list
    base.registerBehavior(VCard40)                # id "4.0"


register()
