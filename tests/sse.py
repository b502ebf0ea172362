"""A Server-Sent Events client for tests: opens `GET /api/events/stream` and parses its
frames in a background thread, so that a test waits for a frame with a deadline."""

import json
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx

STREAM = "/api/events/stream"
DELIVERY = 2.0  # seconds from a change to its frame, by the contract


@dataclass
class Frame:
    id: str | None
    event: str
    data: str

    @property
    def body(self) -> Any:
        return json.loads(self.data)

    def about(self, event_id: str) -> bool:
        with suppress(ValueError, TypeError, AttributeError):
            return self.body.get("event_id") == event_id
        return False


class EventStream:
    """One open stream; a background thread parses its SSE frames into `frames` and its
    comment lines into `comments`, so tests can wait for one with a deadline."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=60))
        self.frames: list[Frame] = []
        self.comments: list[str] = []
        self.ended = False
        self._arrived = threading.Condition()
        started = time.monotonic()
        self._request = self.client.stream(
            "GET", STREAM, headers={**headers, "Accept": "text/event-stream"}
        )
        self.response = self._request.__enter__()
        self.opened_in = time.monotonic() - started
        self._reader: threading.Thread | None = None
        if self.response.status_code == 200:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        else:
            self.response.read()
            self.ended = True

    def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if data or "event" in fields:
                        frame = Frame(
                            fields.get("id"), fields.get("event", "message"), "\n".join(data)
                        )
                        self._add(self.frames, frame)
                    fields, data = {}, []
                elif line.startswith(":"):
                    self._add(self.comments, line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    else:
                        fields[name] = value
        except Exception:  # closed by the test, or by the server mid-frame
            pass
        finally:
            with self._arrived:
                self.ended = True
                self._arrived.notify_all()

    def _add(self, into: list, item: Any) -> None:
        with self._arrived:
            into.append(item)
            self._arrived.notify_all()

    def _wait(self, found: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                result = found()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    raise AssertionError(
                        f"no {what} within {timeout}s (ended: {self.ended}); frames: {self.frames}"
                    )
                self._arrived.wait(remaining)

    def wait_for(
        self, predicate: Callable[[Frame], bool], timeout: float = DELIVERY, what: str = "frame"
    ) -> Frame:
        return self._wait(lambda: next(filter(predicate, self.frames), None), timeout, what)

    def wait_change(
        self, event_id: str, version: int, event: str = "changed", timeout: float = DELIVERY
    ) -> Frame:
        def match(frame: Frame) -> bool:
            return (
                frame.about(event_id) and frame.event == event and frame.body["version"] == version
            )

        return self.wait_for(match, timeout, f"{event} v{version} of {event_id}")

    def wait_comments(self, count: int, timeout: float) -> list[str]:
        return self._wait(
            lambda: self.comments[:count] if len(self.comments) >= count else None,
            timeout,
            f"{count} comments",
        )

    def wait_ended(self, timeout: float) -> None:
        self._wait(lambda: self.ended, timeout, "end of the stream")

    def about(self, event_id: str) -> list[Frame]:
        with self._arrived:
            return [frame for frame in self.frames if frame.about(event_id)]

    def close(self) -> None:
        """Shuts the socket down (a plain close would not wake the reading thread)."""
        if self._reader is not None:
            network = self.response.extensions.get("network_stream")
            with suppress(OSError, AttributeError):
                network.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            self._reader.join(10)
        with suppress(Exception):
            self._request.__exit__(None, None, None)
        self.client.close()
