"""JetStream streams keep 7 days and at most 8 GiB of notifications (on real NATS)."""

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig

from common.nats_client import STREAM_MAX_AGE, STREAM_MAX_BYTES, ensure_stream


@pytest.fixture
def names(stack_env: dict[str, str]) -> tuple[str, str, str]:
    namespace = stack_env["EVENTHUB_NAMESPACE"]
    return stack_env["EVENTHUB_NATS_URL"], f"{namespace.upper()}_LIMITS", f"{namespace}.limits"


async def _limits(url: str, stream: str, subject: str, created_before: bool) -> tuple:
    client = await nats.connect(url)
    js = client.jetstream()
    try:
        if created_before:  # by a release without limits
            await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.a"]))
        await ensure_stream(client, stream, [f"{subject}.a", f"{subject}.b"])
        config = (await js.stream_info(stream)).config
        return config.max_age, config.max_bytes, sorted(config.subjects or [])
    finally:
        await js.delete_stream(stream)
        await client.close()


@pytest.mark.parametrize("created_before", [False, True])
def test_a_stream_keeps_what_consumers_need_and_no_more(names, created_before: bool) -> None:
    url, stream, subject = names
    max_age, max_bytes, subjects = asyncio.run(_limits(url, stream, subject, created_before))
    assert (max_age, max_bytes) == (STREAM_MAX_AGE, STREAM_MAX_BYTES)
    assert subjects == [f"{subject}.a", f"{subject}.b"]
