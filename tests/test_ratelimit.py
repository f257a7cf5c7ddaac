# SPDX-License-Identifier: GPL-3.0-or-later
"""Token buckets per user, with the clock given by the test (pure)."""

from __future__ import annotations

import pytest

from radicale_plugin.consent.ratelimit import RateLimiter

T0 = 1_000_000.0


def test_a_full_bucket_grants_its_capacity_at_once_then_says_how_long_to_wait():
    limiter = RateLimiter(capacity=3, per_hour=36)  # one unit every 100 s
    assert [limiter.take("alice", 1, T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("alice", 1, T0) == pytest.approx(100)
    assert limiter.take("alice", 1, T0 + 50) == pytest.approx(50)


def test_a_refusal_takes_nothing():
    limiter = RateLimiter(capacity=1, per_hour=3600)  # one unit a second
    assert limiter.take("alice", 1, T0) == 0.0
    for t in (0.0, 0.25, 0.5, 0.75):
        assert limiter.take("alice", 1, T0 + t) > 0
    assert limiter.take("alice", 1, T0 + 1) == 0.0  # the refilled unit is all there


def test_the_bucket_refills_with_time_but_never_beyond_its_capacity():
    limiter = RateLimiter(capacity=5, per_hour=3600)  # one unit a second
    assert limiter.take("alice", 5, T0) == 0.0
    assert limiter.take("alice", 2, T0 + 2) == 0.0
    later = T0 + 10 * 3600  # idle for hours: still only 5
    assert limiter.take("alice", 5, later) == 0.0
    assert limiter.take("alice", 1, later) == pytest.approx(1)


def test_users_have_their_own_buckets():
    limiter = RateLimiter(capacity=2, per_hour=1)
    assert limiter.take("alice", 2, T0) == 0.0
    assert limiter.take("alice", 1, T0) > 0
    assert limiter.take("bob", 2, T0) == 0.0
    assert limiter.take("bob", 1, T0) > 0


def test_amounts_count_in_units():
    limiter = RateLimiter(capacity=100, per_hour=3600)
    assert limiter.take("alice", 60, T0) == 0.0
    assert limiter.take("alice", 60, T0) == pytest.approx(20)  # 40 left, 20 s to 60
    assert limiter.take("alice", 40, T0) == 0.0


def test_a_wait_is_at_least_a_second():
    limiter = RateLimiter(capacity=1, per_hour=3600 * 100)  # a unit every 10 ms
    assert limiter.take("alice", 1, T0) == 0.0
    assert limiter.take("alice", 1, T0) == 1.0


def test_more_than_the_capacity_at_once_is_refused_even_from_a_full_bucket():
    limiter = RateLimiter(capacity=10, per_hour=3600)
    assert limiter.take("alice", 11, T0) > 0
    assert limiter.take("alice", 10, T0) == 0.0  # the refusal took nothing


def test_without_refill_a_drained_bucket_waits_an_hour():
    limiter = RateLimiter(capacity=1, per_hour=0)
    assert limiter.take("alice", 1, T0) == 0.0
    assert limiter.take("alice", 1, T0 + 10 ** 6) == 3600.0
