"""Conflict detection: which occurrences of an owner's events a new schedule overlaps.

Intervals are half-open, so an event ending when another starts does not clash.
A series is checked over its whole span, or over its first five years if longer.
"""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from common import deadlines
from common.errors import InvalidArgument
from common.timeutil import rfc3339
from event_service.domain.recurrence import Occurrence, Schedule

CHECK_HORIZON = timedelta(days=5 * 365 + 1)
# A rule with many occurrences per day is checked over its first this many.
MAX_CHECKED_OCCURRENCES = 20_000
MAX_REPORTED_CONFLICTS = 100
# What the conflict checks of one request may compare: about 0.2-0.5 s of CPU. Series
# are compared occurrence by occurrence, and many long ones at once would otherwise
# hold the owner's calendar, and the service, for seconds.
REQUEST_COMPARED_OCCURRENCES = 100_000


class ComparisonBudget:
    """How many occurrences the conflict checks of one request may still compare;
    DeadlineExceeded once the request's deadline passed."""

    def __init__(self, occurrences: int = REQUEST_COMPARED_OCCURRENCES) -> None:
        self._left = occurrences

    def spend(self, occurrences: int) -> None:
        self._left -= occurrences
        deadlines.check()
        if self._left < 0:
            raise InvalidArgument.field(
                "allow_conflicts",
                f"checking for conflicts would compare more than "
                f"{REQUEST_COMPARED_OCCURRENCES:,} occurrences; send fewer series at once, "
                "or set allow_conflicts",
            )


@dataclass(frozen=True, slots=True)
class Clash:
    """An existing event's occurrence that overlaps the schedule being checked.
    `event_id` is None and `batch_index` set for an earlier item of the same batch;
    `event_id` alone is None for an event the one making the change has no role on
    (an editor learns when the owner is busy, not which of the owner's events it is)."""

    event_id: str | None
    occurrence: Occurrence
    batch_index: int | None = None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if self.event_id is not None or self.batch_index is not None:
            entry["event_id"] = self.event_id
        entry["start_time"] = rfc3339(self.occurrence.start)
        entry["end_time"] = rfc3339(self.occurrence.end)
        if self.batch_index is not None:
            entry["index"] = self.batch_index
        return entry


class CheckedSchedule:
    """A schedule's occurrences within its check window, ready to test against others."""

    def __init__(self, schedule: Schedule, budget: ComparisonBudget | None = None) -> None:
        self.schedule = schedule
        self._budget = budget or ComparisonBudget()
        span_end = schedule.span_end()
        self.span_end = span_end
        self.window_start = schedule.start
        self.window_end = schedule.start + CHECK_HORIZON
        if span_end is not None:
            self.window_end = min(self.window_end, span_end)
        self.occurrences = schedule.occurrences(
            self.window_start, self.window_end, limit=MAX_CHECKED_OCCURRENCES
        )
        self._budget.spend(len(self.occurrences))
        if len(self.occurrences) >= MAX_CHECKED_OCCURRENCES:
            self.window_end = self.occurrences[-1].end
        self._starts = [o.start for o in self.occurrences]
        self._duration = schedule.duration

    def overlaps(self, occurrence: Occurrence) -> bool:
        """Whether any checked occurrence overlaps `occurrence` (all share one duration)."""
        low = bisect_right(self._starts, occurrence.start - self._duration)
        return low < bisect_left(self._starts, occurrence.end)

    def clashes_with(self, other: Schedule) -> list[Occurrence]:
        """`other`'s occurrences that overlap this schedule's checked occurrences."""
        occurrences = other.occurrences(self.window_start, self.window_end)
        self._budget.spend(len(occurrences))
        return [occurrence for occurrence in occurrences if self.overlaps(occurrence)]


def find_clashes(
    checked: CheckedSchedule, existing: list[tuple[str | None, Schedule]]
) -> list[Clash]:
    """Clashes with the given existing events, earliest first, at most MAX_REPORTED_CONFLICTS."""
    clashes = [
        Clash(event_id, occurrence)
        for event_id, schedule in existing
        for occurrence in checked.clashes_with(schedule)
    ]
    clashes.sort(key=lambda clash: (clash.occurrence.start, clash.event_id or ""))
    return clashes[:MAX_REPORTED_CONFLICTS]


def clashes_with_earlier_items(checked: list[CheckedSchedule], index: int) -> list[Clash]:
    """Occurrences of earlier items of a batch that item `index` overlaps."""
    later = checked[index]
    clashes = []
    for earlier_index, earlier in enumerate(checked[:index]):
        if not may_overlap(earlier, later):
            continue
        clashes += [Clash(None, o, earlier_index) for o in later.clashes_with(earlier.schedule)]
    clashes.sort(key=lambda clash: clash.occurrence.start)
    return clashes[:MAX_REPORTED_CONFLICTS]


def may_overlap(earlier: CheckedSchedule, later: CheckedSchedule) -> bool:
    """Whether `later`'s window reaches into `earlier`'s span (cheap, before the
    occurrence by occurrence check)."""
    return not (
        (earlier.span_end is not None and earlier.span_end <= later.window_start)
        or later.window_end <= earlier.window_start
    )
