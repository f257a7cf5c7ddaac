# SPDX-License-Identifier: GPL-3.0-or-later
"""Keys belong to people: verifying a number or e-mail with a code sent to it.

E-mail codes go through the SMTP server configured for the plugin; phone
codes through the admin's SMS command (given the number and the text as two
arguments, never through a shell); an admin may also verify a key by command.
Codes are random, six digits or more, expire, allow a few attempts, and are
bound to one user and one key; only their hash is stored.  Starting a
verification answers the same whether or not the key belongs to somebody,
and whether or not a code went out (sends are capped per account and per
key): there is nothing to probe, and no code is stored that was not sent.
Wrong answers are bounded per *key*, across every account: after
``mecard_wrong_codes_per_key`` within the window nobody can verify the key
until they age out, and its holder is told — ten accounts guessing in
parallel get no further than one.  A key verified by a new holder (a
recycled number) moves to them, and the previous holder is told.
"""

from __future__ import annotations

import datetime
import email.message
import hashlib
import hmac
import re
import secrets
import shlex
import smtplib
import subprocess
import time

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.errors import BadRequest, Conflict, SharingError, TooMany
from radicale_plugin.index import Code
from radicale_plugin.vcard.matching import email_key, phone_key
from radicale_plugin.owner.me_cards import Owners

CODE_DIGITS = 6

#: What starting a verification answers, whoever the key belongs to.
SENT = ("if this number or e-mail can receive messages, a code is on its way to it; "
        "confirm it within %d minutes")


_EMAIL = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+$")


#: What is stored for a code that was not sent: no answer's digest (hex) ever equals it.
UNSENT = "unsent"


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat(
        timespec="seconds")


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return "a day" if days == 1 else "%d days" % days
    if seconds >= 3600:
        return "%g hours" % round(seconds / 3600, 1)
    return "%d seconds" % seconds


class Unavailable(SharingError):
    """The server has no way to send codes of this kind (the admin's setup)."""

    status = 409


class SendFailed(SharingError):
    """The mail server or SMS gateway failed; trying later may work."""

    status = 503


def normalize_key(text: str, region: str) -> str:
    """``tel:+E164`` or ``mailto:address`` for a number or e-mail as people write it."""
    if not isinstance(text, str) or not text.strip() or len(text) > 320:
        raise BadRequest("'key' must be a phone number or an e-mail address")
    raw = text.strip()
    if raw.lower().startswith("mailto:") or ("@" in raw and not raw.lower().startswith("tel:")):
        key = email_key(raw)
        if key is None or not _EMAIL.match(key[7:]):
            raise BadRequest("%r is not an e-mail address" % text[:80])
        return key
    key = phone_key(raw, region)
    if key is None or len(key) < 8:
        raise BadRequest("%r is neither a phone number nor an e-mail address" % text[:80])
    return key


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def digest(user: str, key: str, code: str) -> str:
    """What is stored of a code: bound to the user and the key."""
    return hashlib.sha256(("%s\0%s\0%s" % (user, key, code)).encode()).hexdigest()


class Senders:
    """Delivering a code to an e-mail address or a phone number."""

    def __init__(self, ctx: Context) -> None:
        self._settings = ctx.settings

    def can_send(self, key: str) -> bool:
        if key.startswith("mailto:"):
            return bool(self._settings.smtp_host)
        return bool(self._settings.sms_command.strip())

    def send(self, user: str, key: str, code: str) -> None:
        settings = self._settings
        minutes = max(1, int(settings.code_lifetime // 60))
        text = ("%s is your code to confirm this %s for the account %r at %s. It expires in "
                "%d minutes. If you did not ask for it, ignore this message." % (
                    code, "address" if key.startswith("mailto:") else "number", user,
                    settings.server_name, minutes))
        if key.startswith("mailto:"):
            self._mail(key[7:], text)
        else:
            self._sms(key[4:], text)

    def _mail(self, address: str, text: str) -> None:
        settings = self._settings
        message = email.message.EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = address
        message["Subject"] = "Your confirmation code for %s" % settings.server_name
        message.set_content(text)
        smtp_class = smtplib.SMTP_SSL if settings.smtp_security == "tls" else smtplib.SMTP
        with smtp_class(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(message)

    def _sms(self, number: str, text: str) -> None:
        command = shlex.split(self._settings.sms_command) + [number, text]
        subprocess.run(command, shell=False, check=True, timeout=30,
                       stdin=subprocess.DEVNULL, capture_output=True)


class Verification:
    """Starting and confirming verifications, and the keys' states."""

    def __init__(self, ctx: Context, owners: Owners, senders: Senders | None = None) -> None:
        self._ctx = ctx
        self._owners = owners
        self._senders = senders or Senders(ctx)

    def keys_of(self, user: str) -> list[dict]:
        """The user's keys: on the me card and/or verified, with their state."""
        index = self._ctx.index
        now = time.time()
        out = []
        for key in index.keys.of_user(user):
            code = index.keys.code(user, key.key)
            state = key.state
            # a key verified for somebody else reads "unverified" here: no probing
            if state == "unverified" and code is not None and code.expires > now:
                state = "pending"
            out.append({"key": key.key, "state": state, "on_me_card": key.on_card,
                        "verified": key.verified, "moved": key.lost})
        return out

    def start(self, user: str, text: str) -> dict:
        """Send a code to a key on the user's me card; the same answer for any key."""
        settings = self._ctx.settings
        index = self._ctx.index
        key = normalize_key(text, self._ctx.region_of(user))
        if key not in {k.key for k in index.keys.of_user(user) if k.on_card}:
            raise Conflict("%s is not on your me card: add it there first" % key)
        if not self._senders.can_send(key):
            raise Unavailable("this server cannot send codes to %s; ask the admin to verify "
                              "it (python -m radicale_plugin verify-key)" % (
                                  "e-mail addresses" if key.startswith("mailto:")
                                  else "phone numbers"))
        now = time.time()
        if index.keys.sends_since(now - 3600, user=user) >= settings.codes_per_user:
            raise TooMany("you asked for %d codes within the hour; try again later"
                          % settings.codes_per_user, 600)
        answer = {"key": key, "status": SENT % max(1, int(settings.code_lifetime // 60))}
        code = new_code()
        with index.transaction():
            # counted and recorded as one step, whichever process serves another request for
            # the key at the same moment
            index.limits.hold("code-sends", key)
            # each account may send only a few codes to one key, and the key gets only so
            # many in all: a claimant can neither flood the holder nor lock them out; a key
            # that had too many wrong answers gets none (they could not be confirmed)
            send = (self._locked_until(key, now) is None
                    and index.keys.sends_since(now - 3600, user=user, key=key)
                    < settings.codes_per_user_key
                    and index.keys.sends_since(now - 3600, key=key) < settings.codes_per_key)
            if send:
                index.keys.record_send(user, key, now)
                index.keys.put_code(Code(user, key, digest(user, key, code),
                                         now + settings.code_lifetime, 0))
            elif index.keys.code(user, key) is None:
                # no code is stored that was not sent: a blank that no answer matches keeps
                # "pending" and the answers to confirm the same whether or not one went out
                index.keys.put_code(Code(user, key, UNSENT, now + settings.code_lifetime, 0))
        if not send:
            logger.warning("Verification code for %r not sent: too many codes or wrong "
                           "answers for this key", user)
            return answer
        try:
            self._senders.send(user, key, code)
        except (OSError, ValueError, smtplib.SMTPException, subprocess.SubprocessError) as e:
            logger.error("Verification code for %r could not be sent: %s", user, e)
            index.keys.drop_code(user, key)
            raise SendFailed("the code could not be sent (the server's mail or SMS service "
                             "failed); try again later") from e
        logger.info("Verification code sent for %r", user)
        return answer

    def _locked_until(self, key: str, now: float) -> float | None:
        """When ``key`` may be verified again after too many wrong answers (None: it may)."""
        settings = self._ctx.settings
        times = self._ctx.index.keys.guess_times(key, now - settings.wrong_codes_window)
        if len(times) < settings.wrong_codes_per_key:
            return None
        return times[len(times) - settings.wrong_codes_per_key] + settings.wrong_codes_window

    def confirm(self, user: str, text: str, code_text: str) -> dict:
        """Check a code; on success the key is the user's (and moves from anybody else)."""
        settings = self._ctx.settings
        index = self._ctx.index
        key = normalize_key(text, self._ctx.region_of(user))  # as start() read it
        if not isinstance(code_text, str) or not code_text.strip().isdigit() \
                or len(code_text.strip()) > 12:
            raise BadRequest("'code' must be the digits you received")
        refusal: SharingError | None = None
        # the attempt is counted even though the answer is an error: decide in the
        # transaction, raise after it has committed
        with index.transaction():
            # answers for one key are taken one at a time across threads and processes:
            # without it, parallel guesses (on PostgreSQL, through several hosts) would all
            # read the same attempt counts and each be checked, past the limits
            index.limits.hold("code-answers", key)
            now = time.time()
            code = index.keys.code(user, key)
            until = self._locked_until(key, now)
            if until is not None:
                # not even a right code is taken: guessing must stop, not only slow down
                refusal = TooMany(
                    "too many wrong codes were entered for %s: nobody can verify it before "
                    "%s; try again then (or ask the admin)" % (key, _iso(until)), until - now)
            elif code is None:
                refusal = Conflict("no code is waiting for %s: start a verification first" % key)
            elif code.expires < now:
                index.keys.drop_code(user, key)
                refusal = Conflict("the code for %s has expired: start a verification again"
                                   % key)
            elif not hmac.compare_digest(code.digest, digest(user, key, code_text.strip())):
                self._wrong_answer(user, key, now)
                left = settings.code_attempts - code.attempts - 1
                if left <= 0:
                    index.keys.drop_code(user, key)
                    refusal = Conflict("wrong code, and no attempts are left: start a "
                                       "verification again")
                else:
                    index.keys.count_attempt(user, key)
                    refusal = BadRequest("wrong code; %d attempt(s) left" % left)
            else:
                index.keys.drop_code(user, key)
        if refusal is not None:
            raise refusal
        self.mark_verified(user, key)
        return {"key": key, "state": "verified"}

    def _wrong_answer(self, user: str, key: str, now: float) -> None:
        """Count a wrong answer against the key; the one that locks it tells its holder."""
        settings = self._ctx.settings
        index = self._ctx.index
        index.keys.record_guess(user, key, now)
        until = self._locked_until(key, now)
        if until is None or len(index.keys.guess_times(
                key, now - settings.wrong_codes_window)) != settings.wrong_codes_per_key:
            return
        logger.warning("Verification of a key locked after %d wrong codes within %d s (the "
                       "last from %r)", settings.wrong_codes_per_key,
                       settings.wrong_codes_window, user)
        holder = index.keys.holders([key]).get(key)
        if holder is not None:
            index.owners.add_notice(holder, (
                "%d wrong codes were entered for %s within %s by accounts trying to verify "
                "it: it stays yours, and nobody can verify it before %s. If that was not you, "
                "somebody tried to take it over." % (
                    settings.wrong_codes_per_key, key,
                    _duration(settings.wrong_codes_window), _iso(until))))

    def mark_verified(self, user: str, key: str) -> str | None:
        """Verify ``key`` for ``user`` (a code or the admin); return who held it before."""
        index = self._ctx.index
        with index.transaction():
            previous = index.keys.verify(user, key)
            if previous is not None:
                index.owners.add_notice(previous, "%s was verified by another account and no "
                                                  "longer identifies you" % key)
        if previous is not None:
            logger.info("Key verified for %r moved from another user", user)
        else:
            logger.info("Key verified for %r", user)
        # whoever else had it on their me card stops passing it on
        others = set(index.keys.claimants([key]).get(key, ())) | {previous or user}
        for other in sorted(others - {user}):
            self._owners.refresh_keys(other)
        with index.transaction():
            if not self._owners.refresh_keys(user):
                # same view, but copies may now be found and offers made
                index.outbox.requeue(user)
        self._ctx.wake()
        return previous
