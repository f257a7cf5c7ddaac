# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's diagnoses name the real problem (issue 13, section 4).

- ``https://`` to a server that speaks plain HTTP is not a certificate problem;
- a stock Radicale without the plugin is not a wrong path;
- a server whose certificate comes from a private CA works with ``--ca-bundle``
  (a real TLS terminator on 127.0.0.1 in front of the real server, its
  certificate signed by a CA made here with ``cryptography``);
- a user the owner may not see is never said not to exist.

Each against real servers, with a positive control.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import USERS
from tests.server import RadicaleServer, free_port
from tests.test_bridge_defaults_e2e import login, one_line
from tests.test_bridge_e2e import bridge
from tests.test_fanout_e2e import person


# -- a private CA and a TLS terminator ----------------------------------------------------
def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def private_ca(folder: Path, name: str = "Family CA") -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TlsTerminator:
    """HTTPS on 127.0.0.1 in front of a plain-HTTP server, as nginx with a home CA's
    certificate would be: TLS is taken off and the bytes go through unchanged."""

    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self._backend = backend_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stopped:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # a client that did not trust us: the handshake failed
            return
        backend = socket.create_connection(("127.0.0.1", self._backend))

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(backend, client), daemon=True).start()
        pump(client, backend)

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()


@pytest.fixture
def tls(public_server, tmp_path) -> Iterator[tuple[TlsTerminator, Path]]:
    ca, cert, key = private_ca(tmp_path / "pki")
    terminator = TlsTerminator(public_server.port, cert, key)
    try:
        yield terminator, ca
    finally:
        terminator.stop()


# -- a stock Radicale --------------------------------------------------------------------
@pytest.fixture
def stock_radicale(tmp_path) -> Iterator[str]:
    """Radicale as its own package ships it, with no plugin at all."""
    port = free_port()
    (tmp_path / "users").write_text("alice:%s\n" % USERS["alice"])
    (tmp_path / "stock.conf").write_text(
        "[server]\nhosts = 127.0.0.1:%d\n[auth]\ntype = htpasswd\nhtpasswd_filename = %s\n"
        "htpasswd_encryption = plain\ndelay = 0\n[storage]\nfilesystem_folder = %s\n"
        % (port, tmp_path / "users", tmp_path / "stock-collections"))
    process = subprocess.Popen([sys.executable, "-m", "radicale", "--config",
                                str(tmp_path / "stock.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("stock radicale did not start")
                time.sleep(0.1)
        yield "http://127.0.0.1:%d" % port
    finally:
        process.terminate()
        process.wait(10)


def as_alice(monkeypatch, server: RadicaleServer, url: str) -> None:
    login(monkeypatch, server)
    monkeypatch.setenv("MECARD_URL", url)


# -- the diagnoses -----------------------------------------------------------------------
def test_https_to_a_plain_http_server_says_so_not_a_certificate(public_server, monkeypatch,
                                                                 capsys):
    person(public_server, "alice")
    https = public_server.url.replace("http://", "https://")
    as_alice(monkeypatch, public_server, https)
    assert bridge("status")[0] == 3
    line = one_line(capsys)
    assert "the server at %s speaks plain HTTP, not HTTPS: give the URL as %s" % (
        https, public_server.url) in line
    assert "certificate" not in line
    # the positive control: the URL it names works
    monkeypatch.setenv("MECARD_URL", public_server.url)
    assert bridge("status")[0] == 0


def test_a_radicale_without_the_plugin_is_named_not_a_wrong_path(
        public_server, stock_radicale, monkeypatch, capsys):
    as_alice(monkeypatch, public_server, stock_radicale)
    assert bridge("status")[0] == 3
    line = one_line(capsys)
    assert "the server at %s is a Radicale without the sharing plugin (radicale-mecard)" \
        % stock_radicale in line
    assert "check the path" not in line
    # a wrong path on a server with the plugin is still a wrong path
    as_alice(monkeypatch, public_server, public_server.url + "/alice/contacts")
    assert bridge("status")[0] == 3
    assert "check the path of --url" in one_line(capsys)


def test_a_private_ca_is_trusted_with_ca_bundle(public_server, tls, monkeypatch, capsys,
                                                tmp_path):
    terminator, ca = tls
    person(public_server, "alice")
    as_alice(monkeypatch, public_server, terminator.url)
    assert bridge("status")[0] == 3
    line = one_line(capsys)
    assert "the TLS certificate of %s could not be checked" % terminator.url in line
    assert "give that CA with --ca-bundle FILE.pem (or ca_bundle= in the config)" in line

    code, out = bridge("status", "--ca-bundle", str(ca))
    assert code == 0 and out.startswith("targets: (none)"), out
    # the same from the config file
    config = tmp_path / "bridge.ini"
    config.write_text("[server]\nca_bundle = %s\n" % ca)
    assert bridge("--config", str(config), "region")[0] == 0

    # another CA does not make the server's certificate trusted
    other, _, _ = private_ca(tmp_path / "other", "Another CA")
    assert bridge("status", "--ca-bundle", str(other))[0] == 3
    assert "is not signed by the CA in --ca-bundle %s" % other in one_line(capsys)
    assert bridge("status", "--ca-bundle", str(tmp_path / "missing.pem"))[0] == 3
    assert "missing.pem: no such file" in one_line(capsys)


def test_a_user_the_owner_may_not_see_is_never_said_not_to_exist(public_server, monkeypatch):
    alice = person(public_server, "alice", "alice-me.vcf")
    person(public_server, "bob", "bob-me.vcf")  # bob exists, but does not know alice
    alice.put("c-bob.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-bob\r\nFN:Bob\r\n"
                           "TEL:+1 202 555 0102\r\nEND:VCARD\r\n")
    alice.put("c-zed.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-zed\r\nFN:Zed\r\n"
                           "TEL:+1 202 555 0177\r\nEND:VCARD\r\n")  # nobody here
    login(monkeypatch, public_server)
    code, out = bridge("select", "all")
    assert code == 0, out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.strip()}
    for name in ("Bob", "Zed"):  # the same words for both: existence is not told
        assert lines[name].endswith(
            "no user you may see here (they may not have you in their contacts)")
    assert "not a user of this server" not in out
