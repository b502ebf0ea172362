"""Conflict detection: which occurrences of an owner's events a new schedule overlaps.

Intervals are half-open, so an event ending when another starts does not clash.
A series is checked over its whole span, or over its first five years if longer.
A series with exceptions is checked at its occurrences' effective times: a cancelled
occurrence blocks nothing, a moved one only where it now is.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from common import deadlines
from common.errors import InvalidArgument
from common.timeutil import rfc3339
from event_service.domain.exceptions import (
    ExceptionIndex,
    Instance,
    Override,
    exception_index,
    instances,
    recurrence_id_text,
)
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
    # The clashing occurrence's original start, when the existing event is a series.
    recurrence_id: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if self.event_id is not None or self.batch_index is not None:
            entry["event_id"] = self.event_id
        entry["start_time"] = rfc3339(self.occurrence.start)
        entry["end_time"] = rfc3339(self.occurrence.end)
        if self.recurrence_id is not None:
            entry["recurrence_id"] = recurrence_id_text(self.recurrence_id)
        if self.batch_index is not None:
            entry["index"] = self.batch_index
        return entry


class Excepted(NamedTuple):
    """An existing event with its exceptions (maybe none), for `find_clashes`: its
    clashes are at effective times, and a series' carry their recurrence ids."""

    schedule: Schedule
    overrides: Mapping[datetime, Override] | ExceptionIndex


class CheckedSchedule:
    """A schedule's occurrences within its check window, ready to test against others;
    at their effective times if `overrides` are given."""

    def __init__(
        self,
        schedule: Schedule,
        budget: ComparisonBudget | None = None,
        overrides: Mapping[datetime, Override] | ExceptionIndex | None = None,
    ) -> None:
        self.schedule = schedule
        self.overrides = exception_index(schedule, overrides) if overrides else None
        self._budget = budget or ComparisonBudget()
        span_end = schedule.span_end()
        self.window_start = schedule.start
        self.window_end = schedule.start + CHECK_HORIZON
        if span_end is not None:
            self.window_end = min(self.window_end, span_end)
        if self.overrides is not None:
            # Occurrences checked are also checked where they were moved to.
            moved = [i for i in self.overrides.moved if i.recurrence_id < self.window_end]
            self.window_start = min([self.window_start, *(i.start for i in moved)])
            self.window_end = max([self.window_end, *(i.end for i in moved)])
            if span_end is not None:
                span_end = max([span_end, *(i.end for i in self.overrides.moved)])
        self.span_end = span_end
        found = self._effective(schedule, self.overrides, MAX_CHECKED_OCCURRENCES)
        self._budget.spend(len(found))
        if len(found) >= MAX_CHECKED_OCCURRENCES:
            self.window_end = found[-1].end
        self._starts = [o.start for o in found]
        if self.overrides is None:
            self.occurrences: list[Occurrence] = found  # type: ignore[assignment]
            self._ends: list[datetime] = []
            self._one_duration, self._longest = True, schedule.duration
        else:
            self.occurrences = [Occurrence(o.start, o.end) for o in found]
            self._ends = [o.end for o in found]
            durations = {o.end - o.start for o in found}
            self._one_duration = len(durations) <= 1
            self._longest = max(durations, default=timedelta(0))

    def overlaps(self, occurrence: Occurrence | Instance) -> bool:
        """Whether any checked occurrence overlaps `occurrence`."""
        low = bisect_right(self._starts, occurrence.start - self._longest)
        high = bisect_left(self._starts, occurrence.end)
        if self._one_duration:
            return low < high
        return any(self._ends[i] > occurrence.start for i in range(low, high))

    def clashing(
        self, other: Schedule, overrides: Mapping[datetime, Override] | ExceptionIndex | None = None
    ) -> list[Instance]:
        """`other`'s effective occurrences that overlap this schedule's checked ones."""
        found = instances(other, overrides or {}, self.window_start, self.window_end)
        self._budget.spend(len(found))
        return [instance for instance in found if self.overlaps(instance)]

    def clashes_with(
        self, other: Schedule, overrides: Mapping[datetime, Override] | ExceptionIndex | None = None
    ) -> list[Occurrence]:
        """`other`'s occurrences that overlap this schedule's checked occurrences."""
        if overrides:
            return [Occurrence(i.start, i.end) for i in self.clashing(other, overrides)]
        found = other.occurrences(self.window_start, self.window_end)
        self._budget.spend(len(found))
        return [occurrence for occurrence in found if self.overlaps(occurrence)]

    def _effective(
        self,
        schedule: Schedule,
        overrides: ExceptionIndex | None,
        limit: int | None = None,
    ) -> list[Occurrence] | list[Instance]:
        if overrides is None:
            return schedule.occurrences(self.window_start, self.window_end, limit)
        return instances(schedule, overrides, self.window_start, self.window_end, limit=limit)


def find_clashes(
    checked: CheckedSchedule, existing: Sequence[tuple[str | None, Schedule | Excepted]]
) -> list[Clash]:
    """Clashes with the given existing events, earliest first, at most MAX_REPORTED_CONFLICTS.
    Those of an `Excepted` series carry their recurrence ids."""
    clashes = []
    for event_id, target in existing:
        if isinstance(target, Excepted):
            series = target.schedule.is_series
            clashes += [
                Clash(
                    event_id,
                    Occurrence(instance.start, instance.end),
                    recurrence_id=instance.recurrence_id if series else None,
                )
                for instance in checked.clashing(target.schedule, target.overrides)
            ]
        else:
            clashes += [Clash(event_id, o) for o in checked.clashes_with(target)]
    clashes.sort(key=lambda clash: (clash.occurrence.start, clash.event_id or ""))
    return clashes[:MAX_REPORTED_CONFLICTS]


def clashes_with_earlier_items(checked: list[CheckedSchedule], index: int) -> list[Clash]:
    """Occurrences of earlier items of a batch that item `index` overlaps."""
    later = checked[index]
    clashes = []
    for earlier_index, earlier in enumerate(checked[:index]):
        if not may_overlap(earlier, later):
            continue
        clashes += [
            Clash(None, o, earlier_index)
            for o in later.clashes_with(earlier.schedule, earlier.overrides)
        ]
    clashes.sort(key=lambda clash: clash.occurrence.start)
    return clashes[:MAX_REPORTED_CONFLICTS]


def may_overlap(earlier: CheckedSchedule, later: CheckedSchedule) -> bool:
    """Whether `later`'s window reaches into `earlier`'s span (cheap, before the
    occurrence by occurrence check)."""
    return not (
        (earlier.span_end is not None and earlier.span_end <= later.window_start)
        or later.window_end <= earlier.window_start
    )
