"""A call a service makes while serving one inherits what is left of that call's
deadline, so no service keeps working for a caller that has given up."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from common.deadlines import deadline_var
from common.errors import DeadlineExceeded, InvalidArgument
from common.grpc_client import call_timeout
from event_service.domain.conflicts import ComparisonBudget
from event_service.domain.events import EventDraft, validate
from event_service.group_commit import GroupCommit, Pending, settle


def test_outside_a_served_call_the_own_deadline_holds() -> None:
    assert call_timeout(5.0) == 5.0


def test_a_call_gets_what_is_left_of_the_served_calls_deadline() -> None:
    token = deadline_var.set(time.monotonic() + 1.0)
    try:
        assert 0.9 < call_timeout(5.0) <= 1.0
        assert call_timeout(0.5) == 0.5  # its own, when shorter
    finally:
        deadline_var.reset(token)


def test_a_call_after_the_deadline_passed_gets_none_left() -> None:
    token = deadline_var.set(time.monotonic() - 1.0)
    try:
        assert call_timeout(5.0) == 0.0
    finally:
        deadline_var.reset(token)


def test_checks_beside_the_event_loop_stop_at_the_deadline() -> None:
    """Cancelling a call cannot stop a worker thread: the thread sees the call's
    deadline (asyncio.to_thread copies the context) and stops searching a rule or
    comparing occurrences once it has passed, instead of finishing for nobody."""
    never = EventDraft(
        title="never",
        description="",
        location="",
        start_time=datetime(2026, 1, 1, 9, tzinfo=UTC),
        end_time=datetime(2026, 1, 1, 10, tzinfo=UTC),
        timezone="UTC",
        is_recurring=True,
        recurrence_rule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
    )

    async def validate_in_a_thread() -> None:
        deadline_var.set(time.monotonic() - 1.0)
        await asyncio.to_thread(validate, never)

    with pytest.raises(DeadlineExceeded):
        asyncio.run(validate_in_a_thread())
    with pytest.raises(InvalidArgument):  # with time left, the rule's own error
        validate(never)

    token = deadline_var.set(time.monotonic() - 1.0)
    try:
        with pytest.raises(DeadlineExceeded):
            ComparisonBudget().spend(1)
    finally:
        deadline_var.reset(token)


def test_a_group_of_creates_is_not_bound_by_its_first_requests_deadline() -> None:
    """Group commit's task outlives the request that started it and serves later
    ones: it runs outside any request's context."""
    seen: list[float | None] = []

    async def flush(key: object, group: list[Pending[str, None]]) -> None:
        seen.append(deadline_var.get())
        for pending in group:
            settle(pending)

    async def submit_with_a_deadline() -> None:
        deadline_var.set(time.monotonic() + 0.5)
        await GroupCommit(flush, max_group=8).submit("owner", "create")

    asyncio.run(submit_with_a_deadline())
    assert seen == [None]
