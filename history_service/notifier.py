"""In-process wake-ups for reads waiting until the consumer stores an event's version."""

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class VersionNotifier:
    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    @contextmanager
    def watch(self, event_id: str) -> Iterator[asyncio.Event]:
        """An asyncio.Event set whenever a version of `event_id` is stored, while inside."""
        woken = asyncio.Event()
        self._waiters[event_id].add(woken)
        try:
            yield woken
        finally:
            waiters = self._waiters[event_id]
            waiters.discard(woken)
            if not waiters:
                del self._waiters[event_id]

    def stored(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            for woken in self._waiters.get(event_id, ()):
                woken.set()
