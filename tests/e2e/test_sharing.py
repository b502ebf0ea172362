"""The Collaboration section of API.md over HTTP against the running system."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.stack import Stack
from tests.conftest import User

PASSWORD = "correct horse battery"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


def register(api: httpx.Client, prefix: str) -> User:
    username = f"{prefix}_{uuid.uuid4().hex[:10]}"
    email = f"{username}@example.com"
    registered = api.post(
        "/api/auth/register", json={"username": username, "email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    tokens = api.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    pair = tokens.json()
    return User(
        registered.json()["id"],
        username,
        email,
        PASSWORD,
        pair["access_token"],
        pair["refresh_token"],
    )


def create_event(api: httpx.Client, owner: User) -> str:
    created = api.post(
        "/api/events",
        headers=owner.headers,
        json={
            "title": "Design review",
            "start_time": "2026-03-01T09:00:00Z",
            "end_time": "2026-03-01T10:00:00Z",
            "allow_conflicts": True,
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def share(api: httpx.Client, owner: User, event_id: str, *targets: dict) -> httpx.Response:
    return api.post(
        f"/api/events/{event_id}/share", headers=owner.headers, json={"users": list(targets)}
    )


def permissions(api: httpx.Client, user: User, event_id: str) -> dict[str, str]:
    """{user_id: role} of the event as `user` sees it."""
    response = api.get(f"/api/events/{event_id}/permissions", headers=user.headers)
    assert response.status_code == 200, response.text
    return {p["user_id"]: p["role"] for p in response.json()["items"]}


@dataclass
class Team:
    """An event its owner has shared with an editor and a viewer; a stranger has no role.

    Tests that use it must leave it as they found it.
    """

    owner: User
    editor: User
    viewer: User
    stranger: User
    event_id: str

    def member(self, role: str) -> User:
        return getattr(self, role)


@pytest.fixture(scope="module")
def team(stack: Stack) -> Iterator[Team]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as api:
        owner, editor, viewer, stranger = (
            register(api, name) for name in ("owner", "editor", "viewer", "stranger")
        )
        event_id = create_event(api, owner)
        shared = share(
            api,
            owner,
            event_id,
            {"user_id": editor.id, "role": "editor"},
            {"username": viewer.username, "role": "viewer"},
        )
        assert shared.status_code == 201, shared.text
        yield Team(owner, editor, viewer, stranger, event_id)


@pytest.fixture
def owner_and_event(api: httpx.Client, make_user) -> tuple[User, str]:
    owner = make_user("owner")
    return owner, create_event(api, owner)


def test_share_by_id_and_by_username(api: httpx.Client, make_user, owner_and_event) -> None:
    owner, event_id = owner_and_event
    editor, viewer = make_user("editor"), make_user("viewer")
    response = share(
        api,
        owner,
        event_id,
        {"user_id": editor.id, "role": "editor"},
        {"username": viewer.username.upper(), "role": "viewer"},
    )
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert [(p["user_id"], p["username"], p["role"]) for p in items] == [
        (editor.id, editor.username, "editor"),
        (viewer.id, viewer.username, "viewer"),
    ]
    for permission in items:
        assert set(permission) == {"user_id", "username", "role", "granted_by", "granted_at"}
        assert permission["granted_by"] == owner.id
        assert permission["granted_at"].endswith("Z")

    listed = api.get(f"/api/events/{event_id}/permissions", headers=viewer.headers)
    assert listed.status_code == 200
    assert [(p["user_id"], p["role"]) for p in listed.json()["items"]] == [
        (owner.id, "owner"),
        (editor.id, "editor"),
        (viewer.id, "viewer"),
    ]
    assert listed.json()["items"][0]["username"] == owner.username


@pytest.mark.parametrize("role", ["owner", "editor", "viewer"])
def test_every_role_reads_the_permissions(api: httpx.Client, team: Team, role: str) -> None:
    assert permissions(api, team.member(role), team.event_id) == {
        team.owner.id: "owner",
        team.editor.id: "editor",
        team.viewer.id: "viewer",
    }


@pytest.mark.parametrize("event_id", ["team", str(uuid.uuid4()), "not-a-uuid"])
def test_permissions_of_an_event_one_cannot_see_are_404(
    api: httpx.Client, team: Team, event_id: str
) -> None:
    event_id = team.event_id if event_id == "team" else event_id
    response = api.get(f"/api/events/{event_id}/permissions", headers=team.stranger.headers)
    assert_problem(response, 404)


def _share_call(team: Team, user: User, event_id: str) -> tuple[str, str, dict | None]:
    return (
        "POST",
        f"/api/events/{event_id}/share",
        {"users": [{"user_id": team.stranger.id, "role": "owner"}]},
    )


def _update_call(team: Team, user: User, event_id: str) -> tuple[str, str, dict | None]:
    return "PUT", f"/api/events/{event_id}/permissions/{team.owner.id}", {"role": "viewer"}


def _revoke_call(team: Team, user: User, event_id: str) -> tuple[str, str, dict | None]:
    return "DELETE", f"/api/events/{event_id}/permissions/{team.owner.id}", None


OWNER_ONLY_CALLS = {"share": _share_call, "update": _update_call, "revoke": _revoke_call}


@pytest.mark.parametrize("call", OWNER_ONLY_CALLS)
@pytest.mark.parametrize(
    ("who", "where", "status"),
    [
        ("editor", "team", 403),
        ("viewer", "team", 403),
        ("stranger", "team", 404),
        ("owner", "unknown", 404),
        ("owner", "malformed", 404),
    ],
)
def test_only_owners_change_permissions(
    api: httpx.Client, team: Team, call: str, who: str, where: str, status: int
) -> None:
    user = team.member(who)
    event_id = {"team": team.event_id, "unknown": str(uuid.uuid4()), "malformed": "nope"}[where]
    method, url, body = OWNER_ONLY_CALLS[call](team, user, event_id)
    assert_problem(api.request(method, url, headers=user.headers, json=body), status)
    assert permissions(api, team.owner, team.event_id) == {
        team.owner.id: "owner",
        team.editor.id: "editor",
        team.viewer.id: "viewer",
    }


def test_an_editor_cannot_revoke_even_itself(api: httpx.Client, team: Team) -> None:
    response = api.delete(
        f"/api/events/{team.event_id}/permissions/{team.editor.id}", headers=team.editor.headers
    )
    assert_problem(response, 403)
    assert permissions(api, team.owner, team.event_id)[team.editor.id] == "editor"


@pytest.mark.parametrize(
    "unknown",
    [
        {"user_id": str(uuid.uuid4()), "role": "viewer"},
        {"user_id": "not-a-uuid", "role": "viewer"},
        {"username": "nobody_" + uuid.uuid4().hex[:10], "role": "viewer"},
    ],
    ids=["unknown id", "malformed id", "unknown username"],
)
def test_sharing_to_an_unknown_user_shares_nothing(
    api: httpx.Client, make_user, owner_and_event, unknown: dict
) -> None:
    owner, event_id = owner_and_event
    known = make_user("known")
    response = share(api, owner, event_id, {"user_id": known.id, "role": "editor"}, unknown)
    assert assert_problem(response, 404)["unknown"] == ["users.1"]
    assert permissions(api, owner, event_id) == {owner.id: "owner"}


def test_sharing_again_changes_the_role(api: httpx.Client, make_user, owner_and_event) -> None:
    owner, event_id = owner_and_event
    user = make_user()
    assert share(api, owner, event_id, {"user_id": user.id, "role": "viewer"}).status_code == 201
    again = share(api, owner, event_id, {"username": user.username, "role": "editor"})
    assert again.status_code == 201, again.text
    assert [p["role"] for p in again.json()["items"]] == ["editor"]
    assert permissions(api, user, event_id) == {owner.id: "owner", user.id: "editor"}


def test_update_and_revoke(api: httpx.Client, make_user, owner_and_event) -> None:
    owner, event_id = owner_and_event
    user, other = make_user(), make_user()
    share(api, owner, event_id, {"user_id": user.id, "role": "viewer"})
    url = f"/api/events/{event_id}/permissions/{user.id}"

    updated = api.put(url, headers=owner.headers, json={"role": "editor"})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["user_id"], body["username"], body["role"]) == (user.id, user.username, "editor")
    assert body["granted_by"] == owner.id
    assert permissions(api, owner, event_id)[user.id] == "editor"

    revoked = api.delete(url, headers=owner.headers)
    assert revoked.status_code == 204 and revoked.content == b""
    assert permissions(api, owner, event_id) == {owner.id: "owner"}
    assert_problem(api.get(f"/api/events/{event_id}/permissions", headers=user.headers), 404)

    for target in (user.id, other.id, "not-a-uuid"):
        target_url = f"/api/events/{event_id}/permissions/{target}"
        assert_problem(api.delete(target_url, headers=owner.headers), 404)
        assert_problem(api.put(target_url, headers=owner.headers, json={"role": "viewer"}), 404)


def test_the_last_owner_cannot_be_demoted_or_removed(
    api: httpx.Client, make_user, owner_and_event
) -> None:
    owner, event_id = owner_and_event
    url = f"/api/events/{event_id}/permissions/{owner.id}"
    assert_problem(api.put(url, headers=owner.headers, json={"role": "editor"}), 409)
    assert_problem(api.delete(url, headers=owner.headers), 409)
    assert_problem(share(api, owner, event_id, {"user_id": owner.id, "role": "viewer"}), 409)
    assert permissions(api, owner, event_id) == {owner.id: "owner"}

    # With a second owner, the first may step down, and then no longer shares.
    second = make_user("second")
    assert share(api, owner, event_id, {"user_id": second.id, "role": "owner"}).status_code == 201
    demoted = api.put(url, headers=owner.headers, json={"role": "editor"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "editor"
    assert_problem(share(api, owner, event_id, {"user_id": owner.id, "role": "owner"}), 403)
    second_url = f"/api/events/{event_id}/permissions/{second.id}"
    assert_problem(api.delete(second_url, headers=second.headers), 409)


def test_changes_take_effect_on_the_next_request(
    api: httpx.Client, make_user, owner_and_event
) -> None:
    owner, event_id = owner_and_event
    user = make_user()
    event_url = f"/api/events/{event_id}"
    assert_problem(api.get(event_url, headers=user.headers), 404)

    share(api, owner, event_id, {"user_id": user.id, "role": "viewer"})
    seen = api.get(event_url, headers=user.headers)
    assert seen.status_code == 200 and seen.json()["role"] == "viewer"
    assert_problem(api.patch(event_url, headers=user.headers, json={"title": "Mine"}), 403)

    url = f"{event_url}/permissions/{user.id}"
    assert api.put(url, headers=owner.headers, json={"role": "editor"}).status_code == 200
    edited = api.patch(event_url, headers=user.headers, json={"title": "Renamed"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["role"] == "editor"

    assert api.delete(url, headers=owner.headers).status_code == 204
    assert_problem(api.get(event_url, headers=user.headers), 404)


TOO_MANY = [{"user_id": str(uuid.uuid4()), "role": "viewer"} for _ in range(101)]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["users"]),
        ({"users": []}, ["users"]),
        ({"users": TOO_MANY}, ["users"]),
        ({"users": "everyone"}, ["users"]),
        ({"users": [{"user_id": str(uuid.uuid4()), "role": "admin"}]}, ["users.0.role"]),
        ({"users": [{"user_id": str(uuid.uuid4())}]}, ["users.0.role"]),
        ({"users": [{"role": "viewer"}]}, ["users.0"]),
        (
            {"users": [{"user_id": str(uuid.uuid4()), "username": "bob", "role": "viewer"}]},
            ["users.0"],
        ),
        (
            {"users": [{"username": "ok_user", "role": "viewer"}, {"username": "", "role": "x"}]},
            ["users.1.username", "users.1.role"],
        ),
    ],
)
def test_bad_share_requests_are_422(
    api: httpx.Client, team: Team, body: dict, fields: list[str]
) -> None:
    response = api.post(f"/api/events/{team.event_id}/share", headers=team.owner.headers, json=body)
    problem = assert_problem(response, 422)
    assert sorted(e["field"] for e in problem["errors"]) == sorted(fields)


def test_naming_one_user_twice_is_422(api: httpx.Client, team: Team) -> None:
    response = share(
        api,
        team.owner,
        team.event_id,
        {"user_id": team.stranger.id, "role": "viewer"},
        {"username": team.stranger.username, "role": "editor"},
    )
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["users.1"]
    assert team.stranger.id not in permissions(api, team.owner, team.event_id)


def test_malformed_json_is_422(api: httpx.Client, team: Team) -> None:
    response = api.post(
        f"/api/events/{team.event_id}/share",
        headers={**team.owner.headers, "Content-Type": "application/json"},
        content=b'{"users": [',
    )
    assert_problem(response, 422)


@pytest.mark.parametrize("body", [{}, {"role": "boss"}, {"role": None}])
def test_bad_role_updates_are_422(api: httpx.Client, team: Team, body: dict) -> None:
    url = f"/api/events/{team.event_id}/permissions/{team.viewer.id}"
    problem = assert_problem(api.put(url, headers=team.owner.headers, json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["role"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/share"),
        ("GET", "/permissions"),
        ("PUT", "/permissions/{user}"),
        ("DELETE", "/permissions/{user}"),
    ],
)
def test_every_route_needs_a_token(api: httpx.Client, team: Team, method: str, path: str) -> None:
    url = f"/api/events/{team.event_id}" + path.format(user=team.viewer.id)
    body = {"role": "viewer"} if method == "PUT" else None
    response = api.request(method, url, json=body)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
