"""The retry mechanism both connectors' callers share, driven with a connector's failure reading
made up here: which failures are retried, when a write is sent again, when retrying stops."""

from __future__ import annotations

import logging

import pytest

from crm_pipeline.crm.retrying import BudgetRegistry, Failures, call_with_retries


class Refused(Exception):
    """Turned away before anything happened: retryable, certain."""


class Lost(Exception):
    """No answer: retryable, and the write may have landed."""


class TooLong(Refused):
    """Retryable, but the wait asked for is longer than anyone sits out."""


class Invalid(Exception):
    """Never retried."""


FAILURES = Failures(
    service="Test CRM",
    logger=logging.getLogger("crm_pipeline.tests.retrying"),
    is_retryable=lambda e: isinstance(e, Refused | Lost),
    is_uncertain=lambda e: isinstance(e, Lost),
    wait=lambda e, n: float(n),
    describe=lambda e: type(e).__name__,
    give_up=lambda e: isinstance(e, TooLong),
)


class Script:
    """Answers attempts from a script (an exception is raised), recording the waits slept."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.attempts = 0
        self.slept: list[float] = []

    async def attempt(self) -> str:
        self.attempts += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_retryable_failures_are_retried_with_the_connectors_waits(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(Refused(), Lost(), "done")
    caplog.set_level(logging.INFO, logger="crm_pipeline.tests.retrying")
    assert await call_with_retries(script.attempt, FAILURES, max_attempts=3, sleep=script.sleep) == "done"
    assert script.slept == [1.0, 2.0]
    assert [r.getMessage() for r in caplog.records] == [
        "Test CRM request failed (Refused); retry 1 in 1.00s",
        "Test CRM request failed (Lost); retry 2 in 2.00s",
    ]


async def test_retrying_stops_at_max_attempts_at_a_give_up_and_at_a_failure_not_retried() -> None:
    for answers, attempts, error in [
        ((Refused(), Refused(), "never"), 2, Refused),
        ((TooLong(), "never"), 1, TooLong),
        ((Invalid(), "never"), 1, Invalid),
    ]:
        script = Script(*answers)
        with pytest.raises(error):
            await call_with_retries(script.attempt, FAILURES, max_attempts=2, sleep=script.sleep)
        assert script.attempts == attempts


async def test_a_write_that_may_have_landed_is_not_sent_again_without_a_lookup() -> None:
    script = Script(Lost(), "duplicate")
    with pytest.raises(Lost):
        await call_with_retries(script.attempt, FAILURES, max_attempts=3, sleep=script.sleep, idempotent=False)
    assert script.attempts == 1
    refused = Script(Refused(), "created")  # refused up front: nothing landed, so it is sent again
    assert await call_with_retries(
        refused.attempt, FAILURES, max_attempts=3, sleep=refused.sleep, idempotent=False
    ) == ("created")


async def test_after_an_uncertain_failure_the_lookup_runs_first_and_its_find_is_returned() -> None:
    lookups: list[str | None] = ["landed"]

    async def recover() -> str | None:
        return lookups.pop(0)

    script = Script(Lost(), "sent twice")
    found = await call_with_retries(
        script.attempt, FAILURES, max_attempts=3, sleep=script.sleep, idempotent=False, recover=recover
    )
    assert (found, script.attempts) == ("landed", 1)
    lookups.append(None)  # not found: the write is sent again
    script = Script(Lost(), "created")
    found = await call_with_retries(
        script.attempt, FAILURES, max_attempts=3, sleep=script.sleep, idempotent=False, recover=recover
    )
    assert (found, script.attempts) == ("created", 2)


async def test_a_budget_is_shared_per_token_and_limit() -> None:
    registry: BudgetRegistry[int, object] = BudgetRegistry(lambda limit: object())
    first = registry.shared("token-a", 3)
    assert registry.shared("token-a", 3) is first
    assert registry.shared("token-b", 3) is not first
    assert registry.shared("token-a", 4) is not first
