"""Replicas on one machine behave as one system: two gateways, two event services and two
history services of one isolated deployment (not the session stack), addressed one by one."""

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.stack import PROCESSES, Stack, isolated_deployment, replica_key, wait_until
from tests.conftest import User
from tests.e2e.helpers import assert_problem

REPLICAS = {"gateway": 2, "event_service": 2, "history_service": 2}
REFRESH_LIMIT = 6
UPDATES = 50
START = "2032-05-03T09:00:00Z"
END = "2032-05-03T10:00:00Z"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="reads sockets and logs of processes via /proc"
)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("replicas")
    with isolated_deployment(
        run_dir,
        replicas=REPLICAS,
        EVENTHUB_RATE_LIMIT_LOGIN="100000/minute",
        EVENTHUB_RATE_LIMIT_REFRESH=f"{REFRESH_LIMIT}/minute",
        EVENTHUB_RATE_LIMIT_USER="1000000/minute",
        EVENTHUB_ARGON2_TIME_COST="1",
        EVENTHUB_ARGON2_MEMORY_KIB="8192",
    ) as env:
        stack = Stack(env, run_dir, gateway_replicas=REPLICAS["gateway"])
        stack.migrate()
        for name in PROCESSES:
            # History replicas log each stored batch at DEBUG: the split is visible per replica.
            debug = {"EVENTHUB_LOG_LEVEL": "DEBUG"} if name == "history_service" else {}
            for index in range(stack.replica_count(name)):
                stack.start_replica(name, index, debug)
        try:
            stack.wait_ready()
            yield stack
        finally:
            stack.stop_all()


@pytest.fixture(scope="module")
def gateways(replicated: Stack) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    first, second = (httpx.Client(base_url=url, timeout=30) for url in replicated.gateway_urls)
    yield first, second
    first.close()
    second.close()


def register(api: httpx.Client) -> User:
    username = f"replica_{uuid.uuid4().hex[:10]}"
    password = "correct horse battery"
    registered = api.post(
        "/api/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert registered.status_code == 201, registered.text
    tokens = api.post("/api/auth/login", json={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    pair = tokens.json()
    return User(
        registered.json()["id"],
        username,
        f"{username}@example.com",
        password,
        pair["access_token"],
        pair["refresh_token"],
    )


@pytest.fixture(scope="module")
def owner(gateways: tuple[httpx.Client, httpx.Client]) -> User:
    return register(gateways[0])


def create_event(api: httpx.Client, owner: User, **fields: Any) -> dict[str, Any]:
    body = {"title": "Replicated", "start_time": START, "end_time": END, **fields}
    response = api.post(
        "/api/events", json={**body, "allow_conflicts": True}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def patch(api: httpx.Client, owner: User, event_id: str, **fields: Any) -> dict[str, Any]:
    response = api.patch(f"/api/events/{event_id}", json=fields, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


def read(api: httpx.Client, owner: User, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/events/{event_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    return response.json()


def test_each_replica_listens_on_its_own_port(replicated: Stack) -> None:
    for name, count in REPLICAS.items():
        keys = [replica_key(name, index) for index in range(count)]
        assert all(replicated.procs[key].poll() is None for key in keys)
    for service in ("event_service", "history_service"):
        ports = [address.rsplit(":", 1)[1] for address in replicated.addresses(service)]
        assert len(set(ports)) == 2
        for index, port in enumerate(ports):
            log = replicated.logs / f"{replica_key(service, index)}.log"
            assert f'"msg":"serving","port":{port},' in log.read_text()


def test_refresh_budget_holds_across_both_gateways(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    token = register(gateways[0]).refresh_token
    for attempt in range(REFRESH_LIMIT):
        response = gateways[attempt % 2].post("/api/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Remaining"] == str(REFRESH_LIMIT - 1 - attempt)
        token = response.json()["refresh_token"]
    for gateway in gateways:
        refused = gateway.post("/api/auth/refresh", json={"refresh_token": token})
        assert_problem(refused, 429)
        assert refused.headers["RateLimit-Remaining"] == "0"


def test_a_write_through_one_gateway_is_read_at_once_through_both(
    gateways: tuple[httpx.Client, httpx.Client], owner: User
) -> None:
    first, second = gateways
    event = create_event(first, owner)
    for round_ in range(6):
        # Warm the cache of the reading side, write through the other gateway, read again.
        reader, writer = (first, second) if round_ % 2 == 0 else (second, first)
        assert read(reader, owner, event["id"])["version"] == round_ + 1
        updated = patch(writer, owner, event["id"], title=f"Replicated {round_}")
        assert updated["version"] == round_ + 2
        for gateway in (reader, writer, reader):
            seen = read(gateway, owner, event["id"])
            assert (seen["version"], seen["title"]) == (round_ + 2, f"Replicated {round_}")


def test_changelog_read_through_the_other_gateway_includes_the_write(
    gateways: tuple[httpx.Client, httpx.Client], owner: User
) -> None:
    event = create_event(gateways[0], owner)
    for round_ in range(6):
        writer, reader = gateways[round_ % 2], gateways[1 - round_ % 2]
        patch(writer, owner, event["id"], location=f"Room {round_}")
        response = reader.get(f"/api/events/{event['id']}/changelog", headers=owner.headers)
        assert response.status_code == 200, response.text
        last = response.json()["items"][-1]
        assert last["version"] == round_ + 2
        assert last["changes"]["location"]["new"] == f"Room {round_}"


def stored_versions(log: Path, offset: int) -> int:
    """New versions a history replica's log reports stored after byte `offset`."""
    with log.open("rb") as lines:
        lines.seek(offset)
        entries = [json.loads(line) for line in lines if line.startswith(b"{")]
    return sum(entry["new_versions"] for entry in entries if entry["msg"] == "stored")


def test_both_history_replicas_store_each_change_exactly_once(
    replicated: Stack, gateways: tuple[httpx.Client, httpx.Client], owner: User
) -> None:
    logs = [replicated.logs / f"{replica_key('history_service', i)}.log" for i in range(2)]
    offsets = [log.stat().st_size for log in logs]
    event = create_event(gateways[0], owner)
    for update in range(UPDATES):
        patch(gateways[update % 2], owner, event["id"], description=f"Revision {update}")
    last_version = UPDATES + 1

    history = gateways[1].get(f"/api/events/{event['id']}/history", headers=owner.headers)
    assert history.status_code == 200, history.text
    assert [item["version"] for item in history.json()["items"]] == list(range(1, last_version + 1))
    changelog = gateways[0].get(f"/api/events/{event['id']}/changelog", headers=owner.headers)
    descriptions = [item["changes"]["description"]["new"] for item in changelog.json()["items"]]
    assert descriptions[1:] == [f"Revision {update}" for update in range(UPDATES)]

    def all_logged() -> bool:
        return sum(map(stored_versions, logs, offsets)) >= last_version

    wait_until(all_logged, 10, "both history replicas to log what they stored")
    shares = [stored_versions(log, offset) for log, offset in zip(logs, offsets, strict=True)]
    assert sum(shares) == last_version
    assert all(share > 0 for share in shares), shares


def connected_ports(pid: int) -> set[int]:
    """Remote ports of the established TCP connections of process `pid`."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in sockets:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def test_calls_reach_each_event_service_replica(
    replicated: Stack, gateways: tuple[httpx.Client, httpx.Client], owner: User
) -> None:
    ports = [int(address.rsplit(":", 1)[1]) for address in replicated.addresses("event_service")]
    gateway_pids = [replicated.procs[replica_key("gateway", i)].pid for i in range(2)]
    event = create_event(gateways[0], owner)

    def connected(replica: int) -> bool:
        return all(ports[replica] in connected_ports(pid) for pid in gateway_pids)

    def served_while_stopped(replica: int) -> None:
        """Every call through either gateway succeeds with `replica` stopped: the other one
        serves them."""
        replicated.stop(replica_key("event_service", replica))
        for call in range(4):
            gateway = gateways[call % 2]
            version = patch(gateway, owner, event["id"], title=f"Served {call}")["version"]
            assert read(gateway, owner, event["id"])["version"] == version
        replicated.start_replica("event_service", replica)

    # Round robin keeps a connection to every replica (pick-first would hold one).
    wait_until(lambda: connected(0) and connected(1), 10, "gateways to connect to both replicas")
    served_while_stopped(1)
    wait_until(lambda: connected(1), 30, "both gateways to reconnect to the restarted replica")
    served_while_stopped(0)


def listed(api: httpx.Client, user: User, query: str = "") -> dict[str, tuple[str, str]]:
    """The user's listing: event id -> (title, role)."""
    response = api.get(f"/api/events{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    return {item["id"]: (item["title"], item["role"]) for item in response.json()["items"]}


def test_every_kind_of_write_shows_at_once_in_cached_listings_on_both_gateways(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    """Listings are cached per user; each write below goes through the other gateway
    right after both gateways served (and cached) the listing, and must show at once."""
    first, second = gateways
    owner, reader = register(first), register(first)
    window = f"?start={START}&end={END}"

    def warm() -> None:
        for gateway in gateways:
            for user in (owner, reader):
                listed(gateway, user)
                listed(gateway, user, window)

    def both_see(user: User, expected: dict[str, tuple[str, str]]) -> None:
        for gateway in (first, second, first):
            assert listed(gateway, user) == expected
            assert listed(gateway, user, window) == expected

    warm()
    event = create_event(second, owner, title="created")
    both_see(owner, {event["id"]: ("created", "owner")})
    both_see(reader, {})

    warm()
    shared = second.post(
        f"/api/events/{event['id']}/share",
        json={"users": [{"user_id": reader.id, "role": "viewer"}]},
        headers=owner.headers,
    )
    assert shared.status_code == 201, shared.text
    both_see(reader, {event["id"]: ("created", "viewer")})

    warm()
    patch(first, owner, event["id"], title="renamed")
    both_see(owner, {event["id"]: ("renamed", "owner")})
    both_see(reader, {event["id"]: ("renamed", "viewer")})

    warm()
    promoted = first.put(
        f"/api/events/{event['id']}/permissions/{reader.id}",
        json={"role": "editor"},
        headers=owner.headers,
    )
    assert promoted.status_code == 200, promoted.text
    both_see(reader, {event["id"]: ("renamed", "editor")})

    warm()
    revoked = second.delete(
        f"/api/events/{event['id']}/permissions/{reader.id}", headers=owner.headers
    )
    assert revoked.status_code == 204, revoked.text
    both_see(reader, {})
    both_see(owner, {event["id"]: ("renamed", "owner")})

    warm()
    deleted = first.delete(f"/api/events/{event['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    both_see(owner, {})


def test_a_cached_expansion_follows_a_change_of_the_series(
    gateways: tuple[httpx.Client, httpx.Client], owner: User
) -> None:
    first, second = gateways
    series = create_event(
        first, owner, title="weekly", is_recurring=True, recurrence_rule="FREQ=WEEKLY;COUNT=3"
    )
    query = "/api/events?expand=true&start=2032-05-01T00:00:00Z&end=2032-06-01T00:00:00Z"

    def titles(api: httpx.Client) -> list[str]:
        response = api.get(query, headers=owner.headers)
        assert response.status_code == 200, response.text
        return [o["title"] for o in response.json()["items"] if o["event_id"] == series["id"]]

    assert titles(first) == titles(second) == ["weekly"] * 3
    patch(
        second,
        owner,
        series["id"],
        recurrence_rule="FREQ=WEEKLY;COUNT=2",
        title="shorter",
        allow_conflicts=True,
    )
    assert titles(first) == titles(second) == ["shorter"] * 2
