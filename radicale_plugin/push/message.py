# SPDX-License-Identifier: GPL-3.0-or-later
"""One push message as it goes to a push service: its body encrypted for the
subscription (RFC 8291) and its headers (RFC 8030), for the push sender (:mod:`.sender`).
"""

from __future__ import annotations

from radicale_plugin.index import PushSubscription

#: How long a push service keeps a message for a phone that is offline (RFC 8030 TTL).
TTL = 24 * 3600


def headers(authorization: str, subscription: PushSubscription, topic: str) -> dict[str, str]:
    """The headers of a message to the subscription's push service."""
    return {
        "Authorization": authorization,
        "Content-Type": "application/xml; charset=\"utf-8\"",
        "Content-Encoding": subscription.content_encoding,
        "TTL": str(TTL),
        "Urgency": "normal",
        # a message not delivered yet is replaced by this one (RFC 8030 §5.4)
        "Topic": topic,
    }


def encrypted(body: bytes, subscription: PushSubscription) -> bytes:
    """``body`` encrypted for the subscription (RFC 8291, aes128gcm)."""
    # imported here: pywebpush pulls in aiohttp (a third of a second), which every server
    # start and admin command would pay, while only the push sender needs it
    from pywebpush import WebPusher

    pusher = WebPusher({"endpoint": subscription.push_resource,
                        "keys": {"p256dh": subscription.public_key,
                                 "auth": subscription.auth_secret}})
    return bytes(pusher.encode(body, subscription.content_encoding)["body"])
