# SPDX-License-Identifier: GPL-3.0-or-later
"""A notification e-mail is never sent twice, even when the server is killed (``kill -9``)
while it is being sent: the mail server has the whole message and has not answered yet.

The SMTP server here is a real one (a socket, the SMTP dialogue) that can hold back its
answer to the end of a notification message, so that the kill lands exactly while the
batch is being sent.
"""
from __future__ import annotations

import email
import email.message
import socket
import threading
import time

from tests.conftest import USERS
from tests.server import RadicaleServer, free_port, settled, wait_until
from tests.test_fanout_e2e import person
from tests.test_notify_e2e import ALLY, BOB, FAST, SETTLE, SPACING, edit


class HoldingSink:
    """An SMTP server on 127.0.0.1 that keeps every message; while ``hold`` is set it never
    answers the end of a notification message (one with ``List-Unsubscribe``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[email.message.Message] = []
        self.hold = threading.Event()
        self.held = threading.Event()  # a notification arrived and got no answer
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None

    def start(self) -> "HoldingSink":
        self._socket = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def _accept(self) -> None:
        assert self._socket is not None
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 sink\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-sink\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    for body_line in lines:
                        if body_line == b".\r\n":
                            break
                        data += body_line[1:] if body_line.startswith(b"..") else body_line
                    message = email.message_from_bytes(data)
                    with self._lock:
                        self.messages.append(message)
                    if self.hold.is_set() and message["List-Unsubscribe"]:
                        self.held.set()
                        conn.recv(1)  # no answer: returns when the client is gone
                        return
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")

    def to(self, address: str) -> list[str]:
        """Bodies of the messages to ``address`` (as ``MailSink.to``)."""
        with self._lock:
            return [m.get_payload(decode=True).decode() for m in self.messages
                    if address.lower() in (m["To"] or "").lower()]

    def notices(self, address: str) -> list[email.message.Message]:
        with self._lock:
            return [m for m in self.messages if address in (m["To"] or "").lower()
                    and m["List-Unsubscribe"] is not None]


def test_a_batch_being_sent_when_the_server_is_killed_is_never_sent_again(tmp_path):
    sink = HoldingSink()
    server = RadicaleServer(tmp_path, USERS, mecard_smtp_port=str(sink.port), **FAST)
    server.mail = sink  # type: ignore[assignment]  # started and stopped by the server
    server.start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        bob = person(server, "bob", "bob-me.vcf")  # codes go through the sink as usual
        assert bob.put("ally.vcf", ALLY).status_code == 201
        sink.hold.set()
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        assert sink.held.wait(30), "the notification never reached the mail server"
        server.kill()  # kill -9 while the message's end waits for its answer
        sink.hold.clear()
        server.start()
        first = sink.notices(BOB)
        assert len(first) == 1
        wait_until(lambda: "is not sent again" in server.log.read_text(), 30,
                   "the log line of the batch found being sent")
        time.sleep(SETTLE + SPACING + 2)  # the time it would take to send it again
        assert [m["Message-ID"] for m in sink.notices(BOB)] == [first[0]["Message-ID"]]
        # positive control: the sender works after the restart, for the next change
        edit(alice, 1)
        settled(alice)
        wait_until(lambda: len(sink.notices(BOB)) == 2, 30, "the next notification")
        assert len({m["Message-ID"] for m in sink.notices(BOB)}) == 2
    finally:
        server.stop()
