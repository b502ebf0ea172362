"""Another user's event id gets the caller nowhere: every route answers 404, exactly as for
an id that does not exist (no existence leak), and nothing changes."""

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.security.conftest import create_event, event_routes, snapshot


@pytest.fixture
def victim(api: httpx.Client, make_user) -> tuple[User, dict[str, Any]]:
    """An owner's event with two versions, shared with a viewer."""
    owner: User = make_user("owner")
    viewer: User = make_user("viewer")
    event = create_event(api, owner, description="private agenda")
    patched = api.patch(f"/api/events/{event['id']}", json={"title": "v2"}, headers=owner.headers)
    assert patched.status_code == 200
    share = {"users": [{"user_id": viewer.id, "role": "viewer"}]}
    shared = api.post(f"/api/events/{event['id']}/share", json=share, headers=owner.headers)
    assert shared.status_code == 201, shared.text
    return owner, patched.json()


def _answers(api: httpx.Client, event_id: str, user_id: str, headers: dict) -> list[tuple]:
    answers = []
    for method, path, body in event_routes(event_id, user_id):
        response = api.request(method, path, json=body, headers=headers)
        problem = json.loads(response.text.replace(event_id, "{id}"))
        answers.append((method, path.replace(event_id, "{id}"), response.status_code, problem))
    return answers


def test_every_route_is_404_for_an_event_the_caller_has_no_role_on(
    api: httpx.Client, make_user, victim
) -> None:
    owner, event = victim
    attacker: User = make_user("attacker")
    before = snapshot(api, owner, event["id"])

    for target in (attacker.id, owner.id):
        hidden = _answers(api, event["id"], target, attacker.headers)
        missing = _answers(api, str(uuid.uuid4()), target, attacker.headers)
        assert [answer[2] for answer in hidden] == [404] * len(hidden), hidden
        assert hidden == missing

    assert snapshot(api, owner, event["id"]) == before
    listed = api.get("/api/events", headers=attacker.headers).json()["items"]
    assert listed == []


def test_a_deleted_event_stays_hidden_from_other_users(
    api: httpx.Client, make_user, victim
) -> None:
    owner, event = victim
    attacker: User = make_user("attacker")
    assert api.delete(f"/api/events/{event['id']}", headers=owner.headers).status_code == 204
    for suffix in ("/history", "/changelog", "/history/1", "/diff/1/2"):
        response = api.get(f"/api/events/{event['id']}{suffix}", headers=attacker.headers)
        assert response.status_code == 404, (suffix, response.text)
    # The owner still reads it: the 404s above are about the attacker, not the deletion.
    changelog = api.get(f"/api/events/{event['id']}/changelog", headers=owner.headers)
    assert changelog.status_code == 200
    assert [entry["change_type"] for entry in changelog.json()["items"]] == [
        "created",
        "updated",
        "deleted",
    ]
