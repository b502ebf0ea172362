"""A TCP proxy that tests put in front of a backing server to simulate its outage."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from scripts.stack import free_port


class FlakyProxy:
    """Forwards 127.0.0.1:`port` to an upstream server until `set_down(True)`, which cuts
    every connection and from then on closes each new one at once (counted in `refused`),
    as a crashed or restarting server would, until `set_down(False)`. For PostgreSQL,
    `cut_after_commit` cuts one connection as its COMMIT reaches the server."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.port = free_port()
        self.refused = 0
        self._upstream = (upstream_host, upstream_port)
        self._down = False
        self._cut_marker: bytes | None = None
        self.cut = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def to(cls, url: str) -> "FlakyProxy":
        """A started proxy to the host and port of `url`."""
        parts = urlsplit(url.split(",")[0])
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 0)
        proxy.start()
        return proxy

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._started.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        if self._down:
            up_writer.close()
            writer.close()
            return
        pair = {writer, up_writer}
        self._writers |= pair
        marked = False
        committing = False

        async def to_server() -> None:
            nonlocal marked, committing
            try:
                while data := await reader.read(65536):
                    marked = marked or bool(self._cut_marker and self._cut_marker in data)
                    if marked and b"COMMIT" in data:
                        self._cut_marker, marked, committing = None, False, True
                    up_writer.write(data)
                    await up_writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                up_writer.close()

        async def to_client() -> None:
            try:
                while data := await up_reader.read(65536):
                    if committing:  # the server answered the COMMIT: the client never learns
                        writer.close()
                        self.cut.set()
                        continue
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
                up_writer.close()

        try:
            await asyncio.gather(to_server(), to_client())
        finally:
            self._writers -= pair

    def start(self) -> None:
        self._thread.start()
        self._started.wait(5)

    def set_down(self, down: bool) -> None:
        """Takes effect before this returns."""

        async def apply() -> None:
            self._down = down
            if down:
                for writer in self._writers:
                    writer.close()
                self._writers.clear()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(5)

    def cut_after_commit(self, marker: bytes) -> None:
        """Once: the first connection that sends `marker` is cut when the server answers
        its next COMMIT, so the transaction commits but the client is told nothing
        (`cut` is set then)."""
        self.cut.clear()
        self._cut_marker = marker

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.set_down(True)
        try:
            yield
        finally:
            self.set_down(False)

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def via(url: str, proxy: FlakyProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
