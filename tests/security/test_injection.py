"""SQL metacharacters, LIKE wildcards, backslashes, NUL and unusual Unicode in every string
field, query parameter and id: a 4xx or a correct 2xx, never a 5xx, and text that is
accepted comes back verbatim."""

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import User
from tests.e2e.helpers import assert_problem
from tests.security.conftest import END, START, create_event

PAYLOADS = {
    "sql-or": "' OR 1=1 --",
    "sql-drop": '"; DROP TABLE events; --',
    "percent": "%",
    "underscore": "_",
    "backslash": "\\",
    "mixed": "50%_off\\' OR ''='",
    "unicode": "Ωμέγα 𝄞 👩‍👩‍👧 \u202emirrored\u202c مرحبا \ufeff",
}
NUL = "a\x00b"


@pytest.fixture
def owner(make_user) -> User:
    return make_user("owner")


def field_names(response: httpx.Response) -> set[str]:
    return {error["field"] for error in assert_problem(response, 422)["errors"]}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_free_text_is_stored_verbatim(api: httpx.Client, owner: User, payload: str) -> None:
    event = create_event(
        api, owner, title=payload, description=payload, location=payload, allow_conflicts=True
    )
    fetched = api.get(f"/api/events/{event['id']}", headers=owner.headers).json()
    assert [fetched[name] for name in ("title", "description", "location")] == [payload] * 3

    patched = api.patch(
        f"/api/events/{event['id']}", json={"location": payload + payload}, headers=owner.headers
    )
    assert patched.status_code == 200 and patched.json()["location"] == payload + payload
    changelog = api.get(f"/api/events/{event['id']}/changelog", headers=owner.headers).json()
    assert changelog["items"][0]["changes"]["title"]["new"] == payload
    assert changelog["items"][1]["changes"]["location"] == {"old": payload, "new": payload * 2}


def test_search_matches_metacharacters_literally(api: httpx.Client, owner: User) -> None:
    titles = ["100% sure", "1000 sure", "snake_case", "snakeXcase", "back\\slash", "O'Reilly"]
    for title in titles:
        create_event(api, owner, title=title, allow_conflicts=True)
    expected = {
        "%": {"100% sure"},
        "_": {"snake_case"},
        "\\": {"back\\slash"},
        "'": {"O'Reilly"},
        "' OR 1=1 --": set(),
        '"; DROP TABLE events; --': set(),
        "%%": set(),
    }
    for q, matches in expected.items():
        response = api.get("/api/events", params={"q": q}, headers=owner.headers)
        assert response.status_code == 200, (q, response.text)
        assert {item["title"] for item in response.json()["items"]} == matches, q


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_metacharacters_in_checked_fields_are_422(
    api: httpx.Client, owner: User, payload: str
) -> None:
    event = create_event(api, owner, allow_conflicts=True)
    base = f"/api/events/{event['id']}"
    timed = {"title": "t", "start_time": START, "end_time": END, "allow_conflicts": True}
    requests: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/events", {"json": {**timed, "timezone": payload}}, "timezone"),
        (
            "POST",
            "/api/events",
            {"json": {**timed, "is_recurring": True, "recurrence_rule": payload}},
            "recurrence_rule",
        ),
        ("PATCH", base, {"json": {"timezone": payload}}, "timezone"),
        ("POST", "/api/events", {"json": {**timed, "start_time": payload}}, "start_time"),
        ("GET", "/api/events", {"params": {"role": payload}}, "role"),
        ("GET", "/api/events", {"params": {"cursor": payload}}, "cursor"),
        ("GET", "/api/events", {"params": {"start": payload}}, "start"),
        ("GET", "/api/events", {"params": {"limit": payload}}, "limit"),
        ("GET", f"{base}/occurrences", {"params": {"start": payload, "end": END}}, "start"),
        ("GET", f"{base}/history", {"params": {"after": payload}}, "after"),
        ("GET", f"{base}/history/{quote(payload, safe='')}", {}, "version_id"),
        ("PUT", f"{base}/permissions/{owner.id}", {"json": {"role": payload}}, "role"),
        (
            "POST",
            f"{base}/share",
            {"json": {"users": [{"user_id": owner.id, "role": payload}]}},
            "users.0.role",
        ),
        (
            "POST",
            "/api/auth/register",
            {"json": {"username": payload, "email": "x@example.com", "password": "long enough"}},
            "username",
        ),
    ]
    for method, path, kwargs, field in requests:
        response = api.request(method, path, headers=owner.headers, **kwargs)
        assert field in field_names(response), (method, path, response.text)
    assert api.get(base, headers=owner.headers).json()["version"] == 1


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_metacharacters_in_ids_and_usernames_find_nothing(
    api: httpx.Client, owner: User, payload: str
) -> None:
    event = create_event(api, owner, allow_conflicts=True)
    base = f"/api/events/{event['id']}"
    bad_id = quote(payload, safe="")
    valid = {"title": "t", "start_time": START, "end_time": END}
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/api/events/{bad_id}", None),
        ("PUT", f"/api/events/{bad_id}", valid),
        ("PATCH", f"/api/events/{bad_id}", {"title": "t"}),
        ("DELETE", f"/api/events/{bad_id}", None),
        ("GET", f"/api/events/{bad_id}/permissions", None),
        ("GET", f"/api/events/{bad_id}/changelog", None),
        ("POST", f"/api/events/{bad_id}/rollback/1", None),
        ("PUT", f"{base}/permissions/{bad_id}", {"role": "viewer"}),
        ("DELETE", f"{base}/permissions/{bad_id}", None),
        ("POST", f"{base}/share", {"users": [{"user_id": payload, "role": "viewer"}]}),
        ("POST", f"{base}/share", {"users": [{"username": payload, "role": "viewer"}]}),
    ]
    for method, path, body in requests:
        response = api.request(method, path, json=body, headers=owner.headers)
        assert_problem(response, 404)
    permissions = api.get(f"{base}/permissions", headers=owner.headers).json()["items"]
    assert [p["user_id"] for p in permissions] == [owner.id]
    login = api.post("/api/auth/login", json={"username": payload, "password": payload})
    assert_problem(login, 401)


def test_nul_characters_are_422_wherever_text_is_stored_or_searched(
    api: httpx.Client, owner: User
) -> None:
    """PostgreSQL text cannot hold NUL, so the gateway refuses it instead of failing later."""
    event = create_event(api, owner, allow_conflicts=True)
    base = f"/api/events/{event['id']}"
    timed = {"title": "t", "start_time": START, "end_time": END, "allow_conflicts": True}
    for field in ("title", "description", "location", "timezone", "recurrence_rule"):
        body = {**timed, field: NUL, "is_recurring": field == "recurrence_rule"}
        assert field in field_names(api.post("/api/events", json=body, headers=owner.headers))
        assert field in field_names(api.put(base, json=body, headers=owner.headers))
        assert field in field_names(api.patch(base, json={field: NUL}, headers=owner.headers))
    search = api.get("/api/events", params={"q": NUL}, headers=owner.headers)
    assert field_names(search) == {"q"}
    for target in ("user_id", "username"):
        share = {"users": [{target: NUL, "role": "viewer"}]}
        response = api.post(f"{base}/share", json=share, headers=owner.headers)
        assert field_names(response) == {f"users.0.{target}"}
    credentials = {"username": NUL, "password": "whatever1"}
    assert field_names(api.post("/api/auth/login", json=credentials)) == {"username"}
    assert field_names(api.post("/api/auth/login", data=credentials)) == {"username"}
    assert_problem(api.get("/api/events/%00", headers=owner.headers), 404)
    assert api.get(base, headers=owner.headers).json()["version"] == 1
