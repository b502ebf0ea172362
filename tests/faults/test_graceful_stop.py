"""SIGTERM: each process stops taking new work, finishes what it is doing, exits 0.

A request is held in flight by a table lock the test takes in PostgreSQL, so it is
deterministically still running when the signal arrives.
"""

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.stack import SERVICE_ADDR_VARS, Stack, wait_until
from tests.conftest import User
from tests.faults.conftest import Backing
from tests.faults.helpers import create_event, history_versions

pytestmark = pytest.mark.faults

# process: (method, path of a request it serves, tables that request reads)
IN_FLIGHT = {
    "auth_service": ("GET", "/api/auth/me", ["auth.users"]),
    "event_service": ("PATCH", "/api/events/{id}", ["events.events"]),
    # Sharing reads access lists through the event service, which waits on the lock.
    "sharing_service": ("GET", "/api/events/{id}/permissions", ["events.event_access"]),
    "history_service": ("GET", "/api/events/{id}/history", ["history.event_versions"]),
    "gateway": ("GET", "/api/auth/me", ["auth.users"]),
}
GRPC_ADDRESS = {
    "auth_service": SERVICE_ADDR_VARS["auth"],
    "event_service": SERVICE_ADDR_VARS["events"],
    "sharing_service": SERVICE_ADDR_VARS["sharing"],
    "history_service": SERVICE_ADDR_VARS["history"],
}


def waiting_on_locks(database_url: str, tables: list[str]) -> int:
    """Statements that wait on a lock and name one of `tables`: the request held in
    flight, not some other work that happens to wait at that moment."""
    names = [f"%{table.split('.')[-1]}%" for table in tables]
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query LIKE ANY(%s) AND query NOT ILIKE 'LOCK TABLE%%'",
            (names,),
        ).fetchone()
    return row[0] if row else 0


def refuses_new_calls(stack: Stack, process: str) -> bool:
    if process == "gateway":
        try:
            httpx.get(f"{stack.gateway_url}/healthz", timeout=1)
        except httpx.ConnectError:
            return True
        return False
    with grpc.insecure_channel(stack.env[GRPC_ADDRESS[process]]) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAVAILABLE
    return False


@pytest.mark.parametrize("process", list(IN_FLIGHT))
def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    process: str,
    stack: Stack,
    api: httpx.Client,
    make_user: Callable[..., User],
    backing: Backing,
) -> None:
    user = make_user()
    event = create_event(api, user)
    assert history_versions(api, user, event["id"]) == [1]  # the consumer is idle
    method, path, tables = IN_FLIGHT[process]
    body = {"title": "changed in flight"} if method == "PATCH" else None
    log = stack.logs / f"{process}.log"
    logged_before = log.stat().st_size

    with (
        psycopg.connect(backing.database_url) as locker,
        httpx.Client(base_url=stack.gateway_url, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        locker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        in_flight = pool.submit(
            client.request, method, path.format(id=event["id"]), json=body, headers=user.headers
        )
        wait_until(
            lambda: waiting_on_locks(backing.database_url, tables) > 0, 10, "a blocked request"
        )
        stack.procs[process].send_signal(signal.SIGTERM)  # once, as an orchestrator would
        wait_until(lambda: refuses_new_calls(stack, process), 10, f"{process} to stop accepting")
        assert not in_flight.done()
        locker.rollback()
        response = in_flight.result(30)

    assert response.status_code == 200, response.text
    assert stack.procs[process].wait(30) == 0
    stack.stop(process)
    with log.open() as lines:
        lines.seek(logged_before)
        assert "Traceback" not in lines.read()
    if process == "event_service":
        stack.start(process)
        # The change finished during shutdown reaches the history (its outbox row survived).
        assert history_versions(api, user, event["id"]) == [1, 2]
