"""Group commit: concurrent requests on one key share one transaction.

Creates on one calendar serialise on its owner's lock, and each held the lock until
its own COMMIT was flushed to disk, so one busy calendar took a few hundred creates
a second however many cores there were. Requests that arrive while a transaction of
their key is running now wait for it to end and then go together in the next one:
the lock and the COMMIT are paid once per group, and a lone request still goes at
once.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from opentelemetry.trace import Span

from common import tracing

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class Pending(Generic[Item, Result]):
    """A request in a group; the flush settles `outcome` with a result or an error.
    `trace` is the request's span (`common.tracing.current_span`)."""

    item: Item
    outcome: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    trace: Span | None = None


Flush = Callable[[Hashable, list[Pending[Item, Result]]], Awaitable[None]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, flush: Flush[Item, Result], max_group: int) -> None:
        self._flush = flush
        self._max_group = max_group
        self._queues: dict[Hashable, list[Pending[Item, Result]]] = {}
        self._draining: dict[Hashable, asyncio.Task[None]] = {}

    async def submit(self, key: Hashable, item: Item) -> Result:
        """Run `item` in the next group of `key` and return its outcome. A request
        cancelled before its group starts is dropped; once started, it is done."""
        pending: Pending[Item, Result] = Pending(item, trace=tracing.current_span())
        self._queues.setdefault(key, []).append(pending)
        if key not in self._draining:
            # The group's task serves many requests: not in this one's context, whose
            # deadline (`common.deadlines`) would stop the checks of later groups.
            drain = self._drain(key)
            self._draining[key] = asyncio.create_task(drain, context=contextvars.Context())
        return await pending.outcome

    async def _drain(self, key: Hashable) -> None:
        group: list[Pending[Item, Result]] = []
        try:
            while queue := self._queues.get(key):
                group = [p for p in queue[: self._max_group] if not p.outcome.cancelled()]
                del queue[: self._max_group]
                if group:
                    try:
                        with tracing.batch_span("group commit", [p.trace for p in group]):
                            await self._flush(key, group)
                    except Exception as error:
                        for pending in group:
                            settle(pending, error=error)
        except asyncio.CancelledError:  # stopping: the waiters are cancelled too
            for pending in group + self._queues.get(key, []):
                pending.outcome.cancel()
            raise
        finally:
            del self._draining[key]
            if not self._queues.get(key):
                self._queues.pop(key, None)


def settle(
    pending: Pending[Item, Result],
    result: Result | None = None,
    error: BaseException | None = None,
) -> None:
    """Give a request its outcome, unless its waiter is gone."""
    if pending.outcome.done():
        return
    if error is not None:
        pending.outcome.set_exception(error)
    else:
        pending.outcome.set_result(result)  # type: ignore[arg-type]
