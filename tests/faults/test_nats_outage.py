"""NATS down: writes still succeed (the outbox keeps their notifications), and the
history catches up once NATS is back, every version exactly once."""

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User
from tests.faults.conftest import Backing
from tests.faults.helpers import assert_unavailable, create_event, history_versions

pytestmark = pytest.mark.faults


def test_writes_succeed_and_history_catches_up(
    api: httpx.Client, make_user: Callable[..., User], backing: Backing
) -> None:
    user = make_user()
    event = create_event(api, user)
    url = f"/api/events/{event['id']}"
    assert history_versions(api, user, event["id"]) == [1]

    with backing.nats.outage():
        for version in (2, 3, 4):
            updated = api.patch(url, json={"title": f"v{version}"}, headers=user.headers)
            assert updated.status_code == 200, updated.text
            assert updated.json()["version"] == version
        created = create_event(api, user)
        # History cannot have them yet: the read waits its bound, then says so.
        assert_unavailable(lambda: api.get(f"{url}/history", headers=user.headers))

    assert history_versions(api, user, event["id"]) == [1, 2, 3, 4]
    assert history_versions(api, user, created["id"]) == [1]
    changelog = api.get(f"{url}/changelog", headers=user.headers).json()["items"]
    assert [entry["changes"].get("title", {}).get("new") for entry in changelog[1:]] == [
        "v2",
        "v3",
        "v4",
    ]
