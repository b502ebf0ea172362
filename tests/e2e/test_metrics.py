"""Every process's Prometheus metrics (README, Observability): after a small load through
the API, each documented series is there, and those the load drives have moved."""

import uuid
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scripts.stack import SERVICES, Stack, wait_until
from tests.conftest import User
from tests.e2e.helpers import share

# (name, labels) -> value, for every sample of a scrape.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

AUTH = "/eventhub.auth.v1.AuthService/"
EVENTS = "/eventhub.events.v1.EventService/"
SHARING = "/eventhub.sharing.v1.SharingService/"
HISTORY = "/eventhub.history.v1.HistoryService/"
WINDOW = {"start": "2035-05-07T00:00:00Z", "end": "2035-05-14T00:00:00Z"}
CONSUMERS = (("history_service", "history"), ("sharing_service", "sharing_audit"))
POOL_SIZE = "eventhub_db_pool_size"
# SQLAlchemy's pool in every service, psycopg's own where a service has one.
POOLS = (
    ("auth_service", "sqlalchemy"),
    ("event_service", "sqlalchemy"),
    ("event_service", "writes"),
    ("sharing_service", "sqlalchemy"),
    ("history_service", "sqlalchemy"),
    ("history_service", "reads"),
)


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly these labels; None if there is none."""
    return samples.get((name, frozenset(labels.items())))


def processed(samples: dict[str, Samples], process: str, consumer: str) -> float:
    return value(samples[process], "eventhub_consumer_processed_total", consumer=consumer) or 0


def scrape_all(stack: Stack) -> dict[str, Samples]:
    return {
        **{service: scrape(stack.metrics_url(service)) for service in SERVICES},
        "gateway": scrape(f"{stack.gateway_url}/metrics"),
    }


def make_load(api: httpx.Client, make_user: Callable[..., User]) -> None:
    """Register, create, read (cached, missing, listed twice), share, read the history,
    ask for free/busy twice."""
    owner, reader = make_user("metrics"), make_user("metrics")
    body = {"title": "Scraped", "start_time": "2035-05-08T09:00:00Z"}
    body["end_time"] = "2035-05-08T10:00:00Z"
    created = api.post("/api/events", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    assert api.get(f"/api/events/{event_id}", headers=owner.headers).status_code == 200
    assert api.get(f"/api/events/{uuid.uuid4()}", headers=owner.headers).status_code == 404
    for _ in range(2):
        assert api.get("/api/events", headers=owner.headers).status_code == 200
    share(api, owner, event_id, reader, "viewer")
    history = api.get(f"/api/events/{event_id}/history", headers=owner.headers)
    assert history.status_code == 200, history.text
    for _ in range(2):
        busy = api.post(
            "/api/freebusy",
            json={**WINDOW, "users": [{"user_id": owner.id}]},
            headers=owner.headers,
        )
        assert busy.status_code == 200, busy.text


def test_every_process_exports_the_documented_series_and_they_move(
    stack: Stack, api: httpx.Client, make_user: Callable[..., User]
) -> None:
    before = scrape_all(stack)
    make_load(api, make_user)

    def settled() -> bool:
        now = scrape_all(stack)
        return all(
            processed(now, process, consumer) > processed(before, process, consumer)
            for process, consumer in CONSUMERS
        ) and all((value(now[process], POOL_SIZE, pool=pool) or 0) > 0 for process, pool in POOLS)

    wait_until(settled, 30, "the consumers to store the load and the pools to be measured")
    after = scrape_all(stack)

    def moved(process: str, name: str, **labels: str) -> None:
        new = value(after[process], name, **labels)
        assert new is not None, f"{process}: no {name}{labels}"
        old = value(before[process], name, **labels) or 0
        assert new > old, f"{process}: {name}{labels} stayed at {new}"

    def present(process: str, name: str, **labels: str) -> None:
        assert value(after[process], name, **labels) is not None, f"{process}: no {name}{labels}"

    # gRPC calls, by method and status code, domain errors' codes included.
    for process, method in (
        ("auth_service", AUTH + "Register"),
        ("auth_service", AUTH + "Login"),
        ("event_service", EVENTS + "CreateEvent"),
        ("sharing_service", SHARING + "ShareEvent"),
        ("sharing_service", SHARING + "FreeBusy"),
        ("history_service", HISTORY + "ListVersions"),
    ):
        moved(process, "eventhub_grpc_server_requests_total", method=method, code="OK")
        moved(process, "eventhub_grpc_server_request_duration_seconds_count", method=method)
        moved(
            process,
            "eventhub_grpc_server_request_duration_seconds_bucket",
            method=method,
            le="+Inf",
        )
    moved(
        "event_service",
        "eventhub_grpc_server_requests_total",
        method=EVENTS + "GetEvent",
        code="NOT_FOUND",
    )

    # Database pools.
    for process, pool in POOLS:
        for name in (POOL_SIZE, "eventhub_db_pool_max_connections"):
            assert (value(after[process], name, pool=pool) or 0) > 0, f"{process}: {name}{pool}"
        for name in (
            "eventhub_db_pool_connections_in_use",
            "eventhub_db_pool_waiting",
            "eventhub_db_pool_waits_total",
        ):
            present(process, name, pool=pool)

    # The outbox relay and the consumers.
    moved("event_service", "eventhub_outbox_published_total")
    for name in (
        "eventhub_outbox_pending_messages",
        "eventhub_outbox_oldest_pending_age_seconds",
        "eventhub_outbox_publish_failures_total",
    ):
        present("event_service", name)
    for process, consumer in CONSUMERS:
        moved(process, "eventhub_consumer_processed_total", consumer=consumer)
        for name in (
            "eventhub_consumer_pending_messages",
            "eventhub_consumer_ack_pending_messages",
            "eventhub_consumer_retries_total",
            "eventhub_consumer_dead_letters_total",
        ):
            present(process, name, consumer=consumer)

    # Read caches: each process counts its own reads.
    for process, cache, result in (
        ("gateway", "event", "hit"),  # the event just created
        ("gateway", "event", "miss"),  # the one that does not exist
        ("gateway", "listing", "miss"),
        ("gateway", "listing", "hit"),
        ("event_service", "event", "miss"),
        ("event_service", "busy", "miss"),
        ("event_service", "busy", "hit"),
        ("history_service", "event", "hit"),
    ):
        moved(process, "eventhub_cache_requests_total", cache=cache, result=result)

    # The gateway's own.
    moved(
        "gateway", "eventhub_http_requests_total", method="POST", route="/api/events", status="201"
    )
    moved(
        "gateway",
        "eventhub_http_request_duration_seconds_count",
        method="POST",
        route="/api/events",
    )
    present("gateway", "eventhub_ratelimit_fallback_total")


def test_a_gateway_with_several_workers_reports_all_of_them(
    start_gateway: Callable[..., httpx.Client],
) -> None:
    """Whichever worker answers `/metrics` counts every worker's requests."""
    gateway = start_gateway(EVENTHUB_GATEWAY_WORKERS="2")
    url = str(gateway.base_url).rstrip("/")
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    counted_before = value(scrape(f"{url}/metrics"), "eventhub_http_requests_total", **healthz) or 0
    for _ in range(20):  # a connection each, so the kernel spreads them over the workers
        assert httpx.get(f"{url}/healthz", headers={"Connection": "close"}).status_code == 200
    for _ in range(4):  # every answer, whichever worker gives it
        counted = value(scrape(f"{url}/metrics"), "eventhub_http_requests_total", **healthz)
        assert counted == counted_before + 20
