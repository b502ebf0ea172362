"""Answers that would exceed gRPC's default 4 MiB message: large pages are cut by size
(and continue on the next page), an expansion of the largest kind passes whole."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import User

# 10,000 characters of four bytes each in UTF-8: the longest description the API takes,
# about 40 KB in an answer.
LONG_TEXT = "\U0001d11e" * 10_000
OTHER_LONG_TEXT = "\U0001f600" * 10_000


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("large")


def post_json(api: httpx.Client, user: User, url: str, body: Any) -> httpx.Response:
    """Sends the body as UTF-8 JSON (httpx's `json=` escapes to ASCII, 3 times larger)."""
    headers = {**user.headers, "Content-Type": "application/json"}
    return api.post(url, headers=headers, content=orjson.dumps(body))


def create_many(api: httpx.Client, user: User, count: int, **fields: Any) -> list[str]:
    ids: list[str] = []
    for first in range(0, count, 20):  # 20 events of ~40 KB stay under the 1 MiB body limit
        events = [
            {
                "title": f"large {n}",
                "start_time": f"2031-{1 + n // 28:02d}-{1 + n % 28:02d}T09:00:00Z",
                "end_time": f"2031-{1 + n // 28:02d}-{1 + n % 28:02d}T10:00:00Z",
                **fields,
            }
            for n in range(first, min(first + 20, count))
        ]
        response = post_json(
            api, user, "/api/events/batch", {"events": events, "allow_conflicts": True}
        )
        assert response.status_code == 201, response.text
        ids += [item["id"] for item in response.json()["items"]]
    return ids


def pages(api: httpx.Client, user: User, url: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a cursor-paged listing."""
    while True:
        response = api.get(url, headers=user.headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        yield page
        if not page.get("next_cursor"):
            return
        params = {**params, "cursor": page["next_cursor"]}


def test_a_listing_of_large_events_is_cut_by_size(api: httpx.Client, owner: User) -> None:
    created = create_many(api, owner, 150, description=LONG_TEXT)  # ~6 MB in all

    listed = list(pages(api, owner, "/api/events", limit=200))

    assert len(listed) > 1, "150 events of 40 KB fit no 4 MiB page"
    assert all(len(page["items"]) < 150 for page in listed)
    ids = [item["id"] for page in listed for item in page["items"]]
    assert sorted(ids) == sorted(created)  # each exactly once
    assert listed[0]["items"][0]["description"] == LONG_TEXT


def test_a_changelog_of_large_changes_is_cut_by_size(api: httpx.Client, owner: User) -> None:
    (event_id,) = create_many(api, owner, 1, description=LONG_TEXT)
    url = f"/api/events/{event_id}"
    for n in range(60):  # each change holds two 40 KB texts: ~4.8 MB in all
        text = OTHER_LONG_TEXT if n % 2 == 0 else LONG_TEXT
        headers = {**owner.headers, "Content-Type": "application/json"}
        response = api.patch(url, headers=headers, content=orjson.dumps({"description": text}))
        assert response.status_code == 200, response.text

    versions: list[int] = []
    next_url: str | None = f"{url}/changelog"
    while next_url:
        response = api.get(next_url, headers=owner.headers)
        assert response.status_code == 200, response.text
        versions += [item["version"] for item in response.json()["items"]]
        next_url = response.links.get("next", {}).get("url")
    assert versions == list(range(1, 62))
    first_page = api.get(f"{url}/changelog", headers=owner.headers)
    assert len(first_page.json()["items"]) < 61
    assert first_page.json()["items"][-1]["changes"]["description"]["new"] in (
        LONG_TEXT,
        OTHER_LONG_TEXT,
    )


def test_the_largest_expansion_passes_whole(api: httpx.Client, owner: User) -> None:
    """49 daily series with 200-character titles over a year: 17,885 occurrences of
    almost 1 KB each, near the 20,000 occurrences an expansion may hold."""
    title = "\U0001d11e" * 200
    series = [
        {
            "title": title,
            "start_time": f"2031-01-01T{n // 4:02d}:{n % 4 * 15:02d}:00Z",
            "end_time": f"2031-01-01T{n // 4:02d}:{n % 4 * 15 + 10:02d}:00Z",
            "is_recurring": True,
            "recurrence_rule": "FREQ=DAILY",
        }
        for n in range(49)
    ]
    batch = {"events": series, "allow_conflicts": True}
    response = post_json(api, owner, "/api/events/batch", batch)
    assert response.status_code == 201, response.text

    expanded = api.get(
        "/api/events",
        headers=owner.headers,
        params={"expand": "true", "start": "2031-01-01T00:00:00Z", "end": "2032-01-01T00:00:00Z"},
    )

    assert expanded.status_code == 200, expanded.text[:500]
    items = expanded.json()["items"]
    assert len(items) == 49 * 365
    assert items[0]["title"] == title
