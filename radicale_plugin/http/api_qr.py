# SPDX-License-Identifier: GPL-3.0-or-later
"""``POST /invites/qr``: the QR code (SVG) of one of my invite links.

The invite token is shown once, in the answer to ``POST /invites``; a page that
wants the link as a QR code hands the token back here (in a POST body, so it
stays out of URLs and logs) and gets the SVG of the same link.  Only a token
of one of the signed-in owner's own invites that can still be used is
encoded, and only as this server's invite link: this is no general QR maker.
The SVG is made by ``segno`` (no script, no external reference).
"""

from __future__ import annotations

import io
import time
from typing import Any

import segno

from radicale_plugin.errors import BadRequest, NotFound
from radicale_plugin.recipient.invites import PAGE, token_hash
from radicale_plugin.service import SharingService

#: segno's options for the link's code (the tests make the same code to compare).
ERROR_LEVEL = "m"


def qr_svg(text: str) -> str:
    """``text`` as a QR code: an SVG with a viewBox (it scales), dark on white."""
    out = io.BytesIO()
    segno.make_qr(text, error=ERROR_LEVEL).save(
        out, kind="svg", scale=1, border=4, xmldecl=False, omitsize=True, dark="#000",
        light="#fff", title="QR code of your invite link")
    return out.getvalue().decode()


def invite_qr(service: SharingService, user: str, data: dict, base: str) -> dict[str, Any]:
    """``{"token": T}`` of an open invite of ``user`` -> ``{"url", "svg"}``."""
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > 200:
        raise BadRequest("give {\"token\": \"...\"}: the token POST /invites answered")
    found = service.index.invites.by_token_hash(token_hash(token))
    if found is None or found.owner != user or found.state(time.time()) != "active":
        raise NotFound("no open invite of yours has this token; create one (POST /invites)")
    # the link as POST /invites made it (the operator's address when set)
    url = (service.settings.public_url or base).rstrip("/") + PAGE + token
    return {"url": url, "svg": qr_svg(url)}
