"""Fixtures of the security tests: events to attack, the stack's signing key, and extra
gateway processes with settings of their own."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_service.keys import SigningKey
from scripts.stack import Stack
from tests.conftest import User

START, END = "2033-04-05T09:00:00Z", "2033-04-05T10:00:00Z"


def create_event(api: httpx.Client, owner: User, **fields: Any) -> dict[str, Any]:
    body = {"title": "Board meeting", "start_time": START, "end_time": END, **fields}
    response = api.post("/api/events", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


def event_routes(event_id: str, user_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of every route that names an event, with valid bodies."""
    base = f"/api/events/{event_id}"
    event = {"title": "Taken over", "start_time": START, "end_time": END}
    return [
        ("GET", base, None),
        ("PUT", base, event),
        ("PATCH", base, {"title": "Taken over"}),
        ("DELETE", base, None),
        ("GET", f"{base}/occurrences?start={START}&end={END}", None),
        ("POST", f"{base}/share", {"users": [{"user_id": user_id, "role": "owner"}]}),
        ("GET", f"{base}/permissions", None),
        ("PUT", f"{base}/permissions/{user_id}", {"role": "owner"}),
        ("DELETE", f"{base}/permissions/{user_id}", None),
        ("GET", f"{base}/history", None),
        ("GET", f"{base}/history/1", None),
        ("POST", f"{base}/rollback/1", None),
        ("GET", f"{base}/changelog", None),
        ("GET", f"{base}/diff/1/2", None),
    ]


def snapshot(api: httpx.Client, owner: User, event_id: str) -> dict[str, Any]:
    """What an attack must leave unchanged: the event, its permissions and its history."""
    parts = {}
    for name in ("", "/permissions", "/changelog"):
        response = api.get(f"/api/events/{event_id}{name}", headers=owner.headers)
        assert response.status_code == 200, response.text
        parts[name or "event"] = response.json()
    return parts


@pytest.fixture(scope="session")
def signing_key(stack: Stack) -> SigningKey:
    """The key the stack's auth service signs access tokens with."""
    return SigningKey.from_pem(Path(stack.env["EVENTHUB_JWT_PRIVATE_KEY_FILE"]).read_bytes())
