# SPDX-License-Identifier: GPL-3.0-or-later
"""The server's VAPID key pair (RFC 8292): made once, kept in a file, used to sign pushes.

Clients create their push subscriptions for this public key ("restricted
subscriptions"), so the key must outlive restarts: a new key silently breaks
every subscription.  It is made at the first start, written with mode 0600
beside the sharing database (or where ``mecard_push_vapid_key`` says), and
never replaced by the server.  Several processes starting at once agree on
one key: the file is created with a hard link, which fails if it exists.
"""

from __future__ import annotations

import base64
import os
import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from radicale.log import logger

#: Lifetime of a VAPID token: push services refuse ones valid longer than 24 hours.
TOKEN_LIFETIME = 12 * 3600


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class VapidKeys:
    """The key pair in ``path``, loaded (or made) on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._vapid: Vapid02 | None = None
        self._public = ""

    def _loaded(self) -> Vapid02:
        with self._lock:
            if self._vapid is None:
                key = self._read() or self._make()
                self._vapid = Vapid02(key)
                self._public = b64url(key.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
            return self._vapid

    def _read(self) -> ec.EllipticCurvePrivateKey | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) \
                or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("%s holds no P-256 key: VAPID needs one" % self.path)
        return key

    def _make(self) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        temporary = "%s.%d.tmp" % (self.path, os.getpid())
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, self.path)  # fails if another process made one first
            logger.info("WebDAV-Push: made the server's VAPID key pair in %s", self.path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        found = self._read()
        assert found is not None
        return found

    def load(self) -> None:
        """Load the key pair now (made if there is none): a broken file shows at start."""
        self._loaded()

    @property
    def public_key(self) -> str:
        """The public key, uncompressed and base64url-encoded (``vapid-public-key``)."""
        self._loaded()
        return self._public

    def authorization(self, audience: str, contact: str, now: float | None = None) -> str:
        """The ``Authorization`` header for a push to ``audience`` (``scheme://host[:port]``)."""
        claims = {"aud": audience, "sub": contact,
                  "exp": int((now if now is not None else time.time()) + TOKEN_LIFETIME)}
        return str(self._loaded().sign(claims)["Authorization"])
