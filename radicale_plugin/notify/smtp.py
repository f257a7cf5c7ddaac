# SPDX-License-Identifier: GPL-3.0-or-later
"""One notification e-mail handed to the mail server (the plugin's ``mecard_smtp_*``
settings, as verification codes use), and what the attempt means for sending again.

The SMTP dialogue is split where the answer to "may it have arrived?" changes:

* until the mail server has the whole message — connecting, STARTTLS, login, MAIL
  FROM, RCPT TO, DATA's 354 — a failure means it has nothing: :data:`AGAIN` (retry
  later) or, for a 5xx refusal of the sender or recipient, :data:`FAILED`;
* the mail server's answer to the message's end: 250 :data:`SENT`; 4xx :data:`AGAIN`
  and 5xx :data:`FAILED` (it said it did not take it);
* no answer to the message's end (the connection broke, or timed out): the server may
  have it: :data:`UNKNOWN`, never sent again.
"""

from __future__ import annotations

import smtplib

from radicale_plugin.settings import Settings

SENT, AGAIN, FAILED, UNKNOWN = "sent", "again", "failed", "unknown"

#: Seconds one step of the dialogue may take.
TIMEOUT = 30.0


def _refused(code: int, what: str, answer: bytes | str) -> tuple[str, str]:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    return (FAILED if 500 <= code < 600 else AGAIN), "%s: %d %s" % (what, code, text[:200])


def send(settings: Settings, address: str, text: str) -> tuple[str, str]:
    """Send ``text`` (a whole message) to ``address`` (``mailto:``); returns what came of
    it (:data:`SENT`, :data:`AGAIN`, :data:`FAILED` or :data:`UNKNOWN`) and why."""
    to = address[len("mailto:"):]
    if not (text + to).isascii():
        # the message is written 7-bit (quoted-printable, encoded words): only an address
        # needing SMTPUTF8 gets here
        return FAILED, "the address %r is not ASCII; this server sends no SMTPUTF8" % to
    smtp_class = smtplib.SMTP_SSL if settings.smtp_security == "tls" else smtplib.SMTP
    try:
        smtp = smtp_class(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT)
    except (OSError, smtplib.SMTPException) as e:
        return AGAIN, "the mail server %s:%d cannot be reached: %s" % (
            settings.smtp_host, settings.smtp_port, e or type(e).__name__)
    try:
        try:
            if settings.smtp_security == "starttls":
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.ehlo_or_helo_if_needed()
            code, answer = smtp.mail(settings.smtp_from)
            if code != 250:
                return _refused(code, "MAIL FROM", answer)
            code, answer = smtp.rcpt(to)
            if code not in (250, 251):
                return _refused(code, "RCPT TO", answer)
        except (OSError, smtplib.SMTPException) as e:
            return AGAIN, "the mail server failed before the message: %s" % (
                e or type(e).__name__)
        # from here on the mail server may have the message
        try:
            code, answer = smtp.data(text)
        except smtplib.SMTPDataError as e:  # it answered, and did not take it
            return _refused(e.smtp_code, "DATA", e.smtp_error)
        except (OSError, smtplib.SMTPException) as e:
            return UNKNOWN, "no answer to the message's end (%s): it may have arrived" % (
                e or type(e).__name__)
        if code != 250:
            return _refused(code, "DATA", answer)
        return SENT, ""
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
