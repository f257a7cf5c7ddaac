# SPDX-License-Identifier: GPL-3.0-or-later
"""The test servers' fork server (``tests/zygote.py``) makes processes that behave as fresh
``python -m`` processes: their own random state, environment, working directory, log, exit
codes and signals.  A probe module stands in for the launcher, so each property is seen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import zygote
from tests.server import RadicaleServer, wait_until

PROBE = '''
import json, os, random, secrets, signal, sys, time, logging
logging.basicConfig(level=logging.INFO)
logging.getLogger("probe").info("logged by the probe")
print(json.dumps({"random": random.random(), "token": secrets.token_hex(16),
                  "argv": sys.argv[1:], "cwd": os.getcwd(), "env": os.environ.get("PROBE"),
                  "sid": os.getsid(0) == os.getpid(), "name": __name__,
                  "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}))
if sys.argv[1:] == ["sleep"]:
    time.sleep(60)
sys.exit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
'''


def spawn(tmp_path: Path, name: str, *args: str) -> tuple[zygote.Forked, Path]:
    (tmp_path / "zygote_probe.py").write_text(PROBE)
    log = tmp_path / (name + ".log")
    forked = zygote.spawn([sys.executable, "-m", "zygote_probe", *args],
                          {**os.environ, "PYTHONUNBUFFERED": "1", "PROBE": name},
                          str(tmp_path), log)
    assert forked is not None, "the zygote is off (MECARD_TEST_NO_ZYGOTE=1)"
    return forked, log


@pytest.fixture(autouse=True)
def zygote_on(monkeypatch):
    monkeypatch.delenv("MECARD_TEST_NO_ZYGOTE", raising=False)


def said(log: Path) -> dict:
    return json.loads([ln for ln in log.read_text().splitlines() if ln.startswith("{")][0])


def test_two_forked_processes_draw_different_random_numbers_and_tokens(tmp_path):
    first, first_log = spawn(tmp_path, "first")
    second, second_log = spawn(tmp_path, "second")
    assert first.wait(20) == 0 and second.wait(20) == 0
    one, two = said(first_log), said(second_log)
    assert one["random"] != two["random"] and one["token"] != two["token"]
    # and each is its own fresh process: its environment, folder, session, log, handlers
    assert (one["env"], two["env"]) == ("first", "second")
    assert one["cwd"] == str(tmp_path) and one["sid"] and one["name"] == "__main__"
    assert one["sigterm"] and "INFO:probe:logged by the probe" in first_log.read_text()


def test_exit_codes_and_signals_read_as_popen_reads_them(tmp_path):
    exits, _ = spawn(tmp_path, "exits", "3")
    assert exits.wait(20) == 3 and exits.poll() == 3
    sleeps, log = spawn(tmp_path, "sleeps", "sleep")
    wait_until(lambda: log.exists() and log.read_text(), 20, "the probe's start")
    with pytest.raises(subprocess.TimeoutExpired):
        sleeps.wait(0.05)
    sleeps.send_signal(signal.SIGTERM)  # the default handler, as in a fresh process
    assert sleeps.wait(20) == -signal.SIGTERM
    sleeps.kill()  # ended already: no signal to a pid the system may have given away


def test_the_default_server_is_forked_and_a_customised_one_is_not(tmp_path):
    (tmp_path / "default").mkdir()
    (tmp_path / "stock").mkdir()
    default = RadicaleServer(tmp_path / "default", {"alice": "pw"})
    stock = RadicaleServer(tmp_path / "stock", {"alice": "pw"})
    stock.launcher = "radicale"  # stock Radicale's own launcher: a real Popen, as ever
    try:
        default.start()
        stock.start()
        assert isinstance(default.process, zygote.Forked)
        assert isinstance(stock.process, subprocess.Popen)
        default.client("alice").login()
    finally:
        default.stop()
        stock.stop()
    assert default.process.returncode == 0


def test_a_dead_zygote_is_said_and_the_next_start_gets_a_new_one(tmp_path):
    running, _ = spawn(tmp_path, "orphan", "sleep")
    old = zygote._client
    assert old is not None
    old.process.kill()
    old.process.wait()
    with pytest.raises(zygote.ZygoteGone, match="the test zygote .* does not answer poll"):
        running.poll()
    os.kill(running.pid, signal.SIGKILL)  # the orphan: nobody else ends it
    again, log = spawn(tmp_path, "again", "4")
    assert zygote._client is not old and again.wait(20) == 4 and said(log)["env"] == "again"
