"""The change stream across failures: NATS cut while streams are open, and a gateway
replica killed under its clients. Either way a client that resumes with the last
`Last-Event-ID` it got misses nothing."""

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from scripts.stack import Stack
from tests.conftest import User
from tests.faults.conftest import Backing
from tests.faults.helpers import RECOVERY_TIMEOUT, create_event
from tests.sse import EventStream

pytestmark = pytest.mark.faults


def rename(api: httpx.Client, user: User, event_id: str, title: str) -> int:
    response = api.patch(f"/api/events/{event_id}", json={"title": title}, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["version"]


def test_a_nats_outage_loses_no_change_for_an_open_or_resumed_stream(
    api: httpx.Client,
    make_user: Callable[..., User],
    backing: Backing,
    open_stream: Callable[..., EventStream],
) -> None:
    user = make_user()
    stream = open_stream(user)
    event_id = create_event(api, user)["id"]
    created = stream.wait_change(event_id, 1)

    with backing.nats.outage():
        versions = [rename(api, user, event_id, f"during outage {n}") for n in range(3)]
        assert versions == [2, 3, 4]

    # The open stream stays open and catches up once the outbox is published...
    for version in versions:
        stream.wait_change(event_id, version, timeout=RECOVERY_TIMEOUT)
    assert [frame.event for frame in stream.frames] == ["changed"] * 4
    # ...and a client that was away resumes after what it had, nothing skipped.
    resumed = open_stream(user, last_event_id=created.id)
    for version in versions:
        resumed.wait_change(event_id, version)
    assert all(frame.event != "reset" for frame in resumed.frames)


def test_clients_of_a_killed_gateway_resume_on_another_with_nothing_lost(
    api: httpx.Client,
    stack: Stack,
    make_user: Callable[..., User],
    start_gateway: Callable[..., httpx.Client],
    open_stream: Callable[..., EventStream],
) -> None:
    user = make_user()
    doomed = start_gateway()
    stream = open_stream(user, base_url=str(doomed.base_url))
    event_id = create_event(api, user)["id"]
    last = stream.wait_change(event_id, 1)

    process = stack.procs[f"gateway-extra-{urlsplit(str(doomed.base_url)).port}"]
    process.kill()
    process.wait(10)
    stream.wait_ended(timeout=10)
    versions = [rename(api, user, event_id, f"while reconnecting {n}") for n in range(3)]

    resumed = open_stream(user, last_event_id=last.id)
    for version in versions:
        resumed.wait_change(event_id, version)
    assert all(frame.event != "reset" for frame in resumed.frames)
