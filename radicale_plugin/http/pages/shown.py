# SPDX-License-Identifier: GPL-3.0-or-later
"""How the pages show card values and times to a person.

The API hands out each value as its whole vCard content line
(``TEL;TYPE=CELL:+1 202 555 0101``); a page shows "Phone (cell)" and the
number.  Everything here is plain text: the templates escape it, and no value
ever becomes a link or markup.
"""

from __future__ import annotations

from typing import Any

from radicale_plugin.vcard.codec import components, parse_line, unescape

#: What each field is called on the pages; others are shown by their vCard name.
LABELS = {"FN": "Name", "N": "Name parts", "TEL": "Phone", "EMAIL": "E-mail",
          "ADR": "Address", "ORG": "Organisation", "TITLE": "Title", "ROLE": "Role",
          "URL": "Web site", "NOTE": "Note", "BDAY": "Birthday", "NICKNAME": "Nickname",
          "PHOTO": "Photo", "IMPP": "Messaging", "CATEGORIES": "Groups",
          "ANNIVERSARY": "Anniversary", "GENDER": "Gender", "LANG": "Language"}
_STRUCTURED = ("N", "ADR", "ORG", "GENDER")
_QUIET_TYPES = {"internet", "voice", "pref", "x400"}


def line(text: str | None) -> dict[str, str] | None:
    """One content line as ``{"label", "kinds", "value"}`` (None stays None)."""
    if text is None:
        return None
    try:
        parsed = parse_line(text)
    except Exception:  # a line the parser refuses is still shown, as written
        return {"label": "", "kinds": "", "value": text}
    name = parsed.name.upper()
    kinds = [t.lower() for t in parsed.type_values() if t.lower() not in _QUIET_TYPES]
    if name == "PHOTO" or name == "LOGO" or name == "SOUND":
        value = "(a picture or sound)"
    elif name in _STRUCTURED:
        value = ", ".join(p.strip() for p in components(parsed.value) if p.strip())
    else:
        value = unescape(parsed.value)
    return {"label": LABELS.get(name, name), "kinds": ", ".join(kinds), "value": value}


def label(field: str) -> str:
    """What a field is called on the pages ("TEL" -> "Phone")."""
    return LABELS.get(field.upper(), field)


def value(field: str, text: str) -> str:
    """A field's value as a person reads it (an address's parts joined by commas)."""
    if field.upper() in _STRUCTURED:
        return ", ".join(p.strip() for p in components(text) if p.strip())
    return unescape(text)


def changes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API's ``changes`` (field, before, after lines), each side shown as :func:`line`."""
    return [{"field": LABELS.get(c["field"], c["field"]), "before": line(c["before"]),
             "after": line(c["after"])} for c in items]


def when(iso: str | None) -> str:
    """An ISO 8601 time as a person reads it (UTC stays marked as UTC)."""
    if not iso:
        return ""
    text = iso.replace("T", " ")
    for utc in ("+00:00", "Z"):
        if text.endswith(utc):
            return text[: -len(utc)] + " UTC"
    return text
