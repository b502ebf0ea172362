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


# What a stream keeps: every notification for 7 days, which is what a consumer that was
# down (history, the sharing audit) and `history_service.rebuild` can catch up on, and
# at most 8 GiB, the oldest going first. Consumers ack within seconds normally.
STREAM_MAX_AGE = 7 * 86_400.0
STREAM_MAX_BYTES = 8 * 1024**3


async def ensure_stream(client: Client, stream: str, subjects: list[str]) -> None:
    """Create the stream, or bring an older release's up to date: subjects it did not
    publish on, the retention limits."""
    js = client.jetstream()
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=subjects,
                duplicate_window=600.0,
                max_age=STREAM_MAX_AGE,
                max_bytes=STREAM_MAX_BYTES,
            )
        )
        return
    config = info.config
    missing = [s for s in subjects if s not in (config.subjects or [])]
    if missing or config.max_age != STREAM_MAX_AGE or config.max_bytes != STREAM_MAX_BYTES:
        config.subjects = [*(config.subjects or []), *missing]
        config.max_age, config.max_bytes = STREAM_MAX_AGE, STREAM_MAX_BYTES
        await js.update_stream(config)
