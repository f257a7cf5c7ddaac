# SPDX-License-Identifier: GPL-3.0-or-later
"""``status``: each recipient's state, as the owner may see it."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.output import emit


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``status`` to the command line."""
    p = command("status", "delivery state of your card per recipient", [common],
                "Each recipient's state: delivered, behind (holds an earlier change), pending,\n"
                "offered, postponed, refused, blocked, failed (with the reason), stopped, "
                "withdrawn.")
    p.set_defaults(run=cmd_status)


STATES = {
    "delivered": "holds your latest change",
    "behind": "holds an earlier change of yours; the latest reaches them with your next "
              "update to everyone",
    "pending": "on its way",
    "offered": "was asked to accept your change",
    "postponed": "will decide about your change later",
    "refused": "refused this change; your next change is offered again",
    "blocked": "does not take your card",
    "retrying": "could not be written for now (a passing error on the server); tried "
                "again by itself",
    "failed": "your change could not be delivered; it is tried again at your next change",
    "stopped": "no longer a target; their copy is left as it was",
    "withdrawn": "no longer a target; your values were taken out of their copy",
}


def status_report(server: Server) -> dict[str, Any]:
    """GET /targets, with ``behind`` worked out from the seqs where the server says
    ``delivered`` for a copy that holds an earlier change (servers before "behind")."""
    report = server.api_get("/targets")
    seq = report.get("seq")
    recipients = []
    for r in report["recipients"]:
        state, delivered = r["state"], r.get("delivered_seq")
        behind = None
        if (state in ("delivered", "behind") and isinstance(seq, int)
                and isinstance(delivered, int) and delivered < seq):
            state, behind = "behind", seq - delivered
        recipients.append({**r, "state": state, "server_state": r["state"],
                           "behind": behind,
                           "description": STATES.get(state, "")})
    # e.g. "your number ... is not verified": what the owner should fix first
    return {**report, "recipients": recipients, "notices": server.me().get("notices") or []}


def status_lines(report: dict[str, Any]) -> list[str]:
    """The status report for people: one line per recipient, then a count per state."""
    lines = ["targets: %s" % (", ".join(report["targets"]) or "(none)")]
    lines.extend("notice: %s" % notice for notice in report.get("notices") or [])
    recipients = report["recipients"]
    # a recipient no longer a target is skipped with the reason, shown on their own line
    users = {r["user"] for r in recipients}
    skipped = [s for s in report["skipped"] if s.get("user") not in users]
    width = max([len("recipient")] + [len(r["user"]) for r in recipients]
                + [len(s["contact"]) for s in skipped])
    fmt = "%%-%ds  %%-10s %%s" % width
    if recipients or skipped:
        lines.append((fmt % ("recipient", "state", "")).rstrip())
    for r in recipients:
        what = r["description"]
        if r["state"] == "behind" and r["behind"]:
            what = "%d change(s) behind (holds change %d of %d); the latest reaches them with " \
                   "your next update to everyone" % (r["behind"], r["delivered_seq"],
                                                     report["seq"])
        if r["state"] == "retrying":
            what = "%s; tried again by itself%s (attempt %s failed)" % (
                r.get("reason") or "a passing error",
                " at %s" % r["next_attempt"] if r.get("next_attempt") else "",
                r.get("attempts") or "?")
        elif r["state"] == "behind" and r["reason"] and not r["behind"]:
            # their phone wrote an older copy back: the server's reason says what happens
            what = "%s%s" % (r["reason"], " (at %s)" % r["next_attempt"]
                             if r.get("next_attempt") else "")
        elif r["reason"]:
            what = "%s: %s" % (what, r["reason"]) if r["state"] != "failed" else \
                "%s; tried again at your next change" % r["reason"]
        if not r.get("target", True) and r["state"] not in ("stopped", "withdrawn"):
            what += " (no longer a target)"
        lines.append(fmt % (r["user"], r["state"], what))
    for s in skipped:
        lines.append(fmt % (s["contact"], "skipped", s["reason"]))
    counts: dict[str, int] = {}
    for r in recipients:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    if recipients:
        lines.append("%d recipient(s): %s." % (len(recipients), ", ".join(
            "%d %s" % (n, state) for state, n in sorted(counts.items()))))
    held = report.get("held_back")
    if held:
        lines.append("%d offer(s) held back by your limit of %d new offers a day; the next go "
                     "out at %s." % (held["count"], held["per_day"], held["next"]))
    if report["queued"]:
        lines.append("(%d change(s) still queued on the server)" % report["queued"])
    return lines


def cmd_status(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``status``: each recipient's state, as the owner may see it."""
    report = status_report(server)
    emit(args, out, report, status_lines(report))
    return 0
