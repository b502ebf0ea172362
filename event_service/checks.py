"""Checking writes against their owner's calendar, under its lock: the candidates
PostgreSQL found (span and week footprint overlap) are expanded and compared
occurrence by occurrence; a clash is a Conflict that lists the clashing occurrences."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from common.errors import Conflict
from event_service import write_repo
from event_service.domain.conflicts import (
    CheckedSchedule,
    Clash,
    ComparisonBudget,
    Excepted,
    clashes_with_earlier_items,
    find_clashes,
)
from event_service.domain.events import ValidEvent, make_schedule
from event_service.domain.exceptions import ExceptionIndex, Override, overrides_from_json

T = TypeVar("T")


def existing_by_item(
    candidates: list[write_repo.Candidate], items: int
) -> list[list[tuple[str | None, Excepted]]]:
    """For each checked item, (id, schedule with exceptions) of the owner's events it
    may clash with; the id is None for an event the one making the change has no
    role on."""
    schedules: dict[uuid.UUID, Excepted] = {}
    existing: list[list[tuple[str | None, Excepted]]] = [[] for _ in range(items)]
    for item, event_id, start, end, zone, rule, overrides, visible in candidates:
        excepted = schedules.get(event_id)
        if excepted is None:
            schedule = make_schedule(start, end, zone, rule)
            index = ExceptionIndex(overrides_from_json(overrides), schedule.duration)
            excepted = schedules[event_id] = Excepted(schedule, index)
        existing[item].append((str(event_id) if visible else None, excepted))
    return existing


async def beside_the_loop(series: bool, work: Callable[..., T], *args: Any) -> T:
    """Run `work` (validating, placing or checking events); in a worker thread when
    series are involved, whose rules are searched and compared occurrence by occurrence
    (up to the request's budgets), so that the event loop keeps serving other calls."""
    if series:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def involve_series(candidates: list[write_repo.Candidate]) -> bool:
    return any(rule for *_, rule, _overrides, _visible in candidates)


class Checked:
    """New schedules to check against their owner's calendar; a batch's items are
    checked against the items before them too. Build it with `Checked.of` and refuse
    with `refuse`, which run the comparisons of series beside the event loop."""

    @classmethod
    async def of(
        cls,
        valid: list[ValidEvent],
        placements: list[write_repo.Placement],
        batch: bool,
        overrides: list[dict[datetime, Override]] | None = None,
        numbers: list[int] | None = None,
    ) -> "Checked":
        """`overrides`: each item's exceptions, if any; `numbers`: the items' numbers
        in a Conflict's `index` (default: their positions)."""
        series = any(item.schedule.is_series for item in valid)
        return await beside_the_loop(series, cls, valid, placements, batch, overrides, numbers)

    def __init__(
        self,
        valid: list[ValidEvent],
        placements: list[write_repo.Placement],
        batch: bool,
        overrides: list[dict[datetime, Override]] | None = None,
        numbers: list[int] | None = None,
    ) -> None:
        budget = ComparisonBudget()  # the request's
        self._schedules = [
            CheckedSchedule(item.schedule, budget, overrides[index] if overrides else None)
            for index, item in enumerate(valid)
        ]
        self._batch = batch
        self._numbers = numbers or list(range(len(valid)))
        self.checks: list[write_repo.Check] = [
            (c.window_start, c.window_end, placement.footprint)
            for c, placement in zip(self._schedules, placements, strict=True)
        ]
        self._within = [
            clashes_with_earlier_items(self._schedules, index) for index in range(len(valid))
        ]
        self.clash_within = any(self._within)
        self._series = any(c.schedule.is_series for c in self._schedules)

    async def refuse(self, candidates: list[write_repo.Candidate]) -> None:
        """`refuse_clashes`, beside the event loop when series are involved."""
        series = self._series or involve_series(candidates)
        await beside_the_loop(series, self.refuse_clashes, candidates)

    def refuse_clashes(self, candidates: list[write_repo.Candidate]) -> None:
        """Conflict naming the first item that clashes with one of the owner's events
        (among `candidates`) or with an earlier item."""
        if not candidates and not self.clash_within:
            return
        existing = existing_by_item(candidates, len(self._schedules))
        for index, checked in enumerate(self._schedules):
            clashes = find_clashes(checked, existing[index]) + self._within[index]
            if clashes:
                clashes.sort(key=lambda clash: clash.occurrence.start)
                raise conflict(clashes, self._numbers[index] if self._batch else None)


def conflict(clashes: list[Clash], index: int | None = None) -> Conflict:
    extra: dict[str, Any] = {"conflicts": [clash.as_json() for clash in clashes]}
    if index is not None:
        extra["index"] = index
    where = f"item {index}" if index is not None else "the event"
    return Conflict(
        f"{where} overlaps other events of the owner; set allow_conflicts to accept that",
        **extra,
    )
