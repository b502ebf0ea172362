"""The Incremental sync section of API.md over HTTP against the running system."""

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from scripts.stack import Stack
from tests.conftest import User
from tests.e2e.helpers import assert_problem, patch_anyway, share


def create(api: httpx.Client, user: User, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "Synced",
        "start_time": "2031-02-03T09:00:00Z",
        "end_time": "2031-02-03T10:00:00Z",
        "allow_conflicts": True,
        **fields,
    }
    response = api.post("/api/events", headers=user.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def delete(api: httpx.Client, user: User, event_id: str) -> None:
    response = api.delete(f"/api/events/{event_id}", headers=user.headers)
    assert response.status_code == 204, response.text


def read(api: httpx.Client, user: User, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/events/{event_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def revoke(api: httpx.Client, owner: User, event_id: str, user: User) -> None:
    response = api.delete(f"/api/events/{event_id}/permissions/{user.id}", headers=owner.headers)
    assert response.status_code == 204, response.text


def pages(api: httpx.Client, user: User, limit: int = 200, **params: Any) -> list[dict]:
    """Every page of a listing (or a sync, with `sync_token`), following `next_cursor`."""
    found: list[dict] = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/events", headers=user.headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert "next_sync_token" in page and page["next_sync_token"] is None, page
        assert len(found) < 100, "paging does not end"
    assert isinstance(found[-1]["next_sync_token"], str) and found[-1]["next_sync_token"]
    return found


def listing(api: httpx.Client, user: User) -> tuple[list[dict], str]:
    """A full listing's items and its `next_sync_token`."""
    found = pages(api, user)
    return [item for page in found for item in page["items"]], found[-1]["next_sync_token"]


def sync(api: httpx.Client, user: User, token: str) -> tuple[list[dict], str]:
    """The items of a whole sync from `token` (all pages) and its `next_sync_token`; asserts
    each event comes at most once."""
    found = pages(api, user, sync_token=token)
    items = [item for page in found for item in page["items"]]
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), f"an event repeats within one sync: {ids}"
    return items, found[-1]["next_sync_token"]


def tombstone(event_id: str, version: int, reason: str) -> dict[str, Any]:
    return {"id": event_id, "deleted": True, "version": version, "reason": reason}


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


def test_only_the_last_page_of_a_listing_has_a_sync_token(api: httpx.Client, owner: User) -> None:
    for _ in range(5):
        create(api, owner)
    found = pages(api, owner, limit=2)
    assert [len(page["items"]) for page in found] == [2, 2, 1]
    assert [page["next_sync_token"] is None for page in found] == [True, True, False]


@pytest.mark.parametrize(
    "params",
    [
        {"q": "Synced"},
        {"role": "owner"},
        {"start": "2031-01-01T00:00:00Z"},
        {"end": "2032-01-01T00:00:00Z"},
        {"expand": "true", "start": "2031-01-01T00:00:00Z", "end": "2031-12-31T00:00:00Z"},
    ],
)
def test_a_filtered_listing_has_no_sync_token(
    api: httpx.Client, owner: User, params: dict[str, str]
) -> None:
    create(api, owner)
    response = api.get("/api/events", headers=owner.headers, params=params)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1
    assert response.json().get("next_sync_token") is None


def test_sync_returns_created_and_updated_events_and_deleted_tombstones(
    api: httpx.Client, owner: User
) -> None:
    """Read your writes, latest change oldest first, current Events, the delete's version."""
    updated, deleted, untouched = (create(api, owner)["id"] for _ in range(3))
    _, token = listing(api, owner)
    assert sync(api, owner, token)[0] == []

    created = create(api, owner)["id"]
    patch_anyway(api, owner, updated, title="Renamed")
    patch_anyway(api, owner, deleted, title="Doomed")
    delete(api, owner, deleted)

    items, _ = sync(api, owner, token)
    assert [item["id"] for item in items] == [created, updated, deleted]
    assert items[0] == read(api, owner, created)
    assert items[0]["version"] == 1 and items[0]["role"] == "owner"
    assert items[1] == read(api, owner, updated)
    assert (items[1]["version"], items[1]["title"]) == (2, "Renamed")
    assert items[2] == tombstone(deleted, 3, "deleted")


def test_sync_follows_share_role_change_and_revocation(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    grantee, stranger = make_user("grantee"), make_user("stranger")
    event_id = create(api, owner)["id"]
    _, first = listing(api, grantee)
    _, stranger_token = listing(api, stranger)

    share(api, owner, event_id, grantee, "viewer")
    items, token = sync(api, grantee, first)
    assert items == [read(api, grantee, event_id)]
    assert (items[0]["role"], items[0]["version"]) == ("viewer", 1)

    patch_anyway(api, owner, event_id, title="Updated by owner")
    items, token = sync(api, grantee, token)
    assert [(i["id"], i["version"], i["title"]) for i in items] == [
        (event_id, 2, "Updated by owner")
    ]

    promoted = api.put(
        f"/api/events/{event_id}/permissions/{grantee.id}",
        headers=owner.headers,
        json={"role": "editor"},
    )
    assert promoted.status_code == 200, promoted.text
    items, token = sync(api, grantee, token)
    assert items == [read(api, grantee, event_id)]
    assert (items[0]["role"], items[0]["version"]) == ("editor", 2)

    revoke(api, owner, event_id, grantee)
    items, token = sync(api, grantee, token)
    assert items == [tombstone(event_id, 2, "access_lost")]

    patch_anyway(api, owner, event_id, title="After revocation")
    assert sync(api, grantee, token)[0] == []
    assert sync(api, grantee, first)[0] == [tombstone(event_id, 2, "access_lost")]
    assert sync(api, stranger, stranger_token)[0] == []


def test_a_shared_event_deleted_by_its_owner_is_a_deleted_tombstone_for_the_grantee(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    grantee = make_user("grantee")
    event_id = create(api, owner)["id"]
    share(api, owner, event_id, grantee, "editor")
    patch_anyway(api, grantee, event_id, title="Edited by grantee")
    _, token = listing(api, grantee)
    delete(api, owner, event_id)
    assert sync(api, grantee, token)[0] == [tombstone(event_id, 3, "deleted")]


def test_each_event_once_in_the_order_of_its_latest_change(api: httpx.Client, owner: User) -> None:
    x, y, z = (create(api, owner)["id"] for _ in range(3))
    _, token = listing(api, owner)
    for event_id, title in [(x, "x1"), (y, "y1"), (x, "x2"), (z, "z1"), (y, "y2")]:
        patch_anyway(api, owner, event_id, title=title)
    items, _ = sync(api, owner, token)
    assert [(i["id"], i["version"], i["title"]) for i in items] == [
        (x, 3, "x2"),
        (z, 2, "z1"),
        (y, 3, "y2"),
    ]


def test_sync_pages_repeat_the_token_with_the_cursor(api: httpx.Client, owner: User) -> None:
    _, token = listing(api, owner)
    created = [create(api, owner)["id"] for _ in range(5)]
    found = pages(api, owner, limit=2, sync_token=token)
    assert [[item["id"] for item in page["items"]] for page in found] == [
        created[0:2],
        created[2:4],
        created[4:],
    ]
    assert [page["next_sync_token"] is None for page in found] == [True, True, False]


def test_a_change_made_while_paging_is_not_missed(api: httpx.Client, owner: User) -> None:
    """The next token counts from when the first page was served: changes after it come in
    the next sync, even for an event this sync already returned."""
    _, token = listing(api, owner)
    created = [create(api, owner)["id"] for _ in range(3)]
    params: dict[str, Any] = {"sync_token": token, "limit": 1}
    first = api.get("/api/events", headers=owner.headers, params=params)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["id"] for item in page["items"]] == created[:1]
    late = create(api, owner)["id"]
    patch_anyway(api, owner, created[0], title="Changed after its page")
    seen = [item["id"] for item in page["items"]]
    while page["next_cursor"] is not None:
        assert page["next_sync_token"] is None
        params["cursor"] = page["next_cursor"]
        response = api.get("/api/events", headers=owner.headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        assert len(seen) < 10, seen
    assert seen[:3] == created and len(seen) == len(set(seen))
    items, _ = sync(api, owner, page["next_sync_token"])
    assert {late, created[0]} <= {item["id"] for item in items}
    assert next(i for i in items if i["id"] == created[0])["version"] == 2


def test_an_empty_sync_gives_a_reusable_token(api: httpx.Client, owner: User) -> None:
    _, token = listing(api, owner)
    items, empty_token = sync(api, owner, token)
    assert items == []
    assert sync(api, owner, empty_token)[0] == []
    assert sync(api, owner, empty_token)[0] == []
    event = create(api, owner)
    for reused in (empty_token, empty_token, token):
        assert sync(api, owner, reused)[0] == [read(api, owner, event["id"])]


def test_a_malformed_or_forged_token_is_410(api: httpx.Client, owner: User) -> None:
    create(api, owner)
    _, token = listing(api, owner)
    middle = len(token) // 2
    forged = token[:middle] + ("B" if token[middle] != "B" else "C") + token[middle + 1 :]
    for bad in ["garbage", "AAAAAAAAAAAAAAAA", "eyJ1IjoiMSJ9.forged", forged, token + "A"]:
        response = api.get("/api/events", headers=owner.headers, params={"sync_token": bad})
        assert_problem(response, 410)


def test_another_users_token_is_410(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    _, token = listing(api, owner)
    response = api.get(
        "/api/events", headers=make_user("other").headers, params={"sync_token": token}
    )
    assert_problem(response, 410)
    assert sync(api, owner, token)[0] == []


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2031-01-01T00:00:00Z"},
        {"end": "2031-01-01T00:00:00Z"},
        {"q": "Synced"},
        {"role": "owner"},
        {"expand": "true", "start": "2031-01-01T00:00:00Z", "end": "2031-02-01T00:00:00Z"},
    ],
)
@pytest.mark.parametrize("valid_token", [True, False])
def test_sync_with_a_filter_is_422_before_the_token_is_checked(
    api: httpx.Client, owner: User, params: dict[str, str], valid_token: bool
) -> None:
    token = listing(api, owner)[1] if valid_token else "garbage"
    response = api.get("/api/events", headers=owner.headers, params={"sync_token": token, **params})
    body = assert_problem(response, 422)
    assert "sync_token" in [error["field"] for error in body["errors"]]


@pytest.mark.parametrize("limit", [0, 201])
def test_sync_limit_out_of_range_is_422(api: httpx.Client, owner: User, limit: int) -> None:
    _, token = listing(api, owner)
    params = {"sync_token": token, "limit": limit}
    body = assert_problem(api.get("/api/events", headers=owner.headers, params=params), 422)
    assert [error["field"] for error in body["errors"]] == ["limit"]


def test_a_cursor_not_of_this_sync_is_422(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    """A cursor is its user's, issued by this API; anything else is a bad cursor (the
    token itself is fine)."""
    _, token = listing(api, owner)
    for _ in range(3):
        create(api, owner)
    first = api.get(
        "/api/events", headers=owner.headers, params={"sync_token": token, "limit": 1}
    ).json()
    cursor = first["next_cursor"]
    assert cursor
    other = make_user("other")
    _, others_token = listing(api, other)
    for user, sync_token, bad in [(owner, token, "garbage"), (other, others_token, cursor)]:
        params = {"sync_token": sync_token, "cursor": bad}
        body = assert_problem(api.get("/api/events", headers=user.headers, params=params), 422)
        assert [error["field"] for error in body["errors"]] == ["cursor"]


def test_a_local_copy_kept_by_syncing_during_concurrent_writes_equals_the_listing(
    stack: Stack, make_user: Callable[..., User]
) -> None:
    """Three writers (two users, shared events) race a syncing reader; after the writers
    stop, one more sync makes the reader's copy equal a full listing, item for item."""
    alice, bob = make_user("alice"), make_user("bob")
    rounds = 12
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as setup:
        alices_shared = [create(setup, alice, title="alice shared")["id"] for _ in range(3)]
        bobs_shared = [create(setup, bob, title="bob shared")["id"] for _ in range(3)]
        for event_id in alices_shared:
            share(setup, alice, event_id, bob, "editor")
        for event_id in bobs_shared:
            share(setup, bob, event_id, alice, "editor")
        initial, token = listing(setup, alice)
    local = {item["id"]: item for item in initial}
    stop = threading.Event()
    failures: list[Exception] = []
    syncs = 0

    def alice_writes(client: httpx.Client) -> None:
        for n in range(rounds):
            event_id = create(client, alice, title=f"alice {n}")["id"]
            patch_anyway(client, alice, event_id, title=f"alice {n} updated")
            if n % 3 == 0:
                delete(client, alice, event_id)

    def bob_writes(client: httpx.Client) -> None:
        for n in range(rounds):
            event_id = create(client, bob, title=f"bob {n}")["id"]
            share(client, bob, event_id, alice, "viewer" if n % 2 else "editor")
            patch_anyway(client, bob, event_id, title=f"bob {n} updated")
            if n % 3 == 1:
                revoke(client, bob, event_id, alice)
            elif n % 3 == 2:
                delete(client, bob, event_id)

    def cross_writes(client: httpx.Client) -> None:
        for n in range(rounds):
            patch_anyway(client, bob, alices_shared[n % 3], description=f"bob's edit {n}")
            patch_anyway(client, alice, bobs_shared[n % 3], description=f"alice's edit {n}")

    def apply(items: list[dict]) -> None:
        for item in items:
            if item.get("deleted"):
                assert set(item) == {"id", "deleted", "version", "reason"}, item
                assert item["reason"] in {"deleted", "access_lost"}, item
                local.pop(item["id"], None)
            else:
                assert {"role", "version", "title"} <= item.keys(), item
                local[item["id"]] = item

    def reader(client: httpx.Client) -> None:
        nonlocal token, syncs
        while not stop.is_set():
            items, token = sync(client, alice, token)
            apply(items)
            syncs += 1

    def thread(work: Callable[[httpx.Client], None]) -> threading.Thread:
        def run() -> None:
            try:
                with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
                    work(client)
            except Exception as error:  # reported by the main thread
                failures.append(error)

        started = threading.Thread(target=run)
        started.start()
        return started

    syncing = thread(reader)
    writers = [thread(work) for work in (alice_writes, bob_writes, cross_writes)]
    for writer in writers:
        writer.join(120)
    stop.set()
    syncing.join(60)
    assert not syncing.is_alive() and not any(w.is_alive() for w in writers)
    assert not failures, failures
    assert syncs > 1

    with httpx.Client(base_url=stack.gateway_url, timeout=30) as final:
        apply(sync(final, alice, token)[0])
        expected, _ = listing(final, alice)
    assert {i: e["version"] for i, e in local.items()} == {e["id"]: e["version"] for e in expected}
    alices_left = len([n for n in range(rounds) if n % 3 != 0])
    bobs_still_shared = len([n for n in range(rounds) if n % 3 == 0])
    assert len(expected) == 3 + 3 + alices_left + bobs_still_shared
    assert [local[item["id"]] for item in expected] == expected
