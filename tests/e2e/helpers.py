from typing import Any

import httpx

from tests.conftest import User


def assert_problem(response: httpx.Response, status: int) -> dict:
    """Asserts an RFC 9457 problem response with `status`, and returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def share(api: httpx.Client, owner: User, event_id: str, user: User, role: str) -> None:
    """Give `user` `role` on the event (201 asserted)."""
    response = api.post(
        f"/api/events/{event_id}/share",
        json={"users": [{"user_id": user.id, "role": role}]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


def patch_anyway(api: httpx.Client, user: User, event_id: str, **fields: Any) -> dict[str, Any]:
    """PATCH the event with `allow_conflicts` (200 asserted); the updated event."""
    response = api.patch(
        f"/api/events/{event_id}", headers=user.headers, json={**fields, "allow_conflicts": True}
    )
    assert response.status_code == 200, response.text
    return response.json()
