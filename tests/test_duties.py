# SPDX-License-Identifier: GPL-3.0-or-later
"""Duties run by one process at a time (:mod:`radicale_plugin.index.duties`): two index
objects on one SQLite file stand for two processes, as two workers of a WSGI server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from radicale_plugin.index import duties
from radicale_plugin.index.duties import Duty, dead_here, holder
from radicale_plugin.index.sqlite import SQLiteIndex


@pytest.fixture
def two(tmp_path):
    first = SQLiteIndex(str(tmp_path / "x.sqlite"))
    second = SQLiteIndex(str(tmp_path / "x.sqlite"))
    try:
        yield first, second
    finally:
        second.close()
        first.close()


def gone_pid() -> int:
    """The id of a process of this machine that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_each_index_object_is_its_own_holder_named_by_host_and_process(two):
    first, second = two
    assert holder(first) == holder(first) != holder(second)
    host, pid, _ = holder(first).rsplit(":", 2)
    assert pid == str(os.getpid()) and host == holder(second).rsplit(":", 2)[0]


def test_a_duty_runs_in_one_process_and_the_other_takes_over_when_it_stops_renewing(two):
    first, second = two
    mine, theirs = Duty(first, "digest", 30), Duty(second, "digest", 30)
    assert mine.hold(1000.0) and mine.gained
    assert not theirs.hold(1010.0) and not theirs.gained
    assert mine.hold(1020.0) and not mine.gained  # renewed: still the same holding
    assert not theirs.hold(1049.0)
    assert theirs.hold(1051.0) and theirs.gained  # lapsed: taken over, with what was left
    assert not mine.hold(1052.0)
    theirs.release()  # a clean stop: the other takes it at once
    assert mine.hold(1053.0) and mine.gained


def test_the_duty_of_a_killed_process_of_this_machine_is_taken_over_at_once(two):
    first, second = two
    host = holder(first).rsplit(":", 2)[0]
    killed = "%s:%d:0badc0de" % (host, gone_pid())
    assert dead_here(killed)
    assert first.leases.take("digest", killed, 3600, time.time())
    duty = Duty(second, "digest", 30)
    assert duty.hold() and duty.gained
    assert second.leases.holder("digest", time.time()) == holder(second)


@pytest.mark.parametrize("kind", ["another machine", "a process that runs", "unreadable"])
def test_a_holder_that_may_be_alive_is_waited_out(two, kind):
    first, second = two
    host = holder(first).rsplit(":", 2)[0]
    other = {"another machine": "elsewhere.example.org:%d:0badc0de" % gone_pid(),
             "a process that runs": "%s:%d:0badc0de" % (host, os.getppid()),
             "unreadable": "garbage"}[kind]
    assert not dead_here(other)
    assert first.leases.take("digest", other, 3600, time.time())
    assert not Duty(second, "digest", 30).hold()


def test_a_forked_process_is_another_holder(two, monkeypatch):
    first, _ = two
    before = holder(first)
    monkeypatch.setattr(duties.os, "getpid", lambda: 4_000_000)
    after = holder(first)
    assert after != before and ":4000000:" in after
