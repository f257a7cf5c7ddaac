# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push for address books: subscriptions (:mod:`.service`), the DAV forms
(:mod:`.dav`), the allow-list of push services (:mod:`.hosts`, pure), the outbound
HTTP (:mod:`.http`), VAPID keys (:mod:`.keys`) and the sender thread (:mod:`.sender`).

May import the base and the index; nothing of the sharing parts.
"""
