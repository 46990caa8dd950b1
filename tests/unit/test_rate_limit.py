"""workers.rate_limit.LocalLimiter: GCRA that grants only "now", on a clock the test moves."""

import asyncio

import pytest

from workers import rate_limit


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def ask(limiter, key="k", rate=5):
    return asyncio.run(limiter.wait_for(key, rate))


def test_requests_are_spaced_one_stretched_interval_apart():
    clock = Clock()
    limiter = rate_limit.LocalLimiter(clock)
    assert ask(limiter) == 0
    wait = ask(limiter)
    assert wait == pytest.approx(rate_limit.interval(5)) == pytest.approx(0.21)
    clock.now += wait
    assert ask(limiter) == 0


def test_a_refused_request_does_not_move_the_turn():
    clock = Clock()
    limiter = rate_limit.LocalLimiter(clock)
    ask(limiter)
    first, second = ask(limiter), ask(limiter)
    assert first == second  # asking again is free: only a grant takes a turn


def test_no_one_second_window_holds_more_than_the_limit():
    clock = Clock()
    limiter = rate_limit.LocalLimiter(clock)
    granted = []
    while clock.now < 1010:
        wait = ask(limiter, rate=7)
        if wait == 0:
            granted.append(clock.now)
        else:
            clock.now += wait
    assert 60 <= len(granted) <= 70
    assert max(sum(1 for t in granted if start <= t < start + 1) for start in granted) <= 7


def test_endpoints_do_not_share_a_limit():
    limiter = rate_limit.LocalLimiter(Clock())
    assert ask(limiter, "a") == 0
    assert ask(limiter, "b") == 0
    assert ask(limiter, "a") > 0


def test_the_limit_belongs_to_a_groups_endpoint():
    assert rate_limit.endpoint_key("g1", "https://crm/in") == rate_limit.endpoint_key("g1", "https://crm/in")
    assert rate_limit.endpoint_key("g1", "https://crm/in") != rate_limit.endpoint_key("g2", "https://crm/in")
    assert rate_limit.endpoint_key("g1", "https://crm/in") != rate_limit.endpoint_key("g1", "https://crm/other")
