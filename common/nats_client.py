"""Connecting to NATS and declaring the JetStream streams services publish to."""

import logging

import nats
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> Client:
    """A connection that keeps reconnecting forever; raises if NATS is down right now."""

    async def on_error(error: Exception) -> None:
        log.warning("nats error", extra={"error": repr(error)})

    return await nats.connect(
        servers=[url],
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=-1,
        error_cb=on_error,
    )


async def ensure_stream(client: Client, stream: str, subjects: list[str]) -> None:
    """Create the stream, or add subjects an older release did not publish on."""
    js = client.jetstream()
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=subjects, duplicate_window=600.0))
        return
    missing = [s for s in subjects if s not in (info.config.subjects or [])]
    if missing:
        config = info.config
        config.subjects = [*(config.subjects or []), *missing]
        await js.update_stream(config)
