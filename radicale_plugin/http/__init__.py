# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP face: the WSGI layer (:mod:`.wsgi` routes; its parts: :mod:`.request_checks`
for malformed requests, :mod:`.apple` for Apple's My Card, :mod:`.push_dav_routes` for
WebDAV-Push, :mod:`.wrapped` for calls of Radicale, :mod:`.answers` and :mod:`.urls`),
the server launcher (:mod:`.serve`), Radicale's web plugin (:mod:`.web`), the JSON API
(:mod:`.api`) and the refusals carried into Radicale's answers (:mod:`.refusals`).

The top of the house: may import every part; calls the service, never the index's
backend directly.
"""
