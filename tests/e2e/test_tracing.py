"""Traces: a create through the gateway is one trace, from the gateway's request to the
history service's store of the version it made, each span the child of the one that
caused it; across the NATS hop too (the outbox row and the message carry the context).

A system of its own, traced at ratio 1 to an in-process OTLP receiver.
"""

import uuid
from collections.abc import Iterator

import httpx
import pytest

from scripts.otlp_receiver import OtlpReceiver, ReceivedSpan
from scripts.stack import Stack, isolated_deployment, wait_until

PASSWORD = "correct horse battery"
CREATE = "eventhub.events.v1.EventService/CreateEvent"
# (service, span name) of the spans a create's trace is complete with.
EXPECTED = {
    ("gateway", "POST /api/events"),
    ("gateway", CREATE),
    ("event_service", CREATE),
    ("event_service", "transaction"),
    ("history_service", "history.store_versions"),
    ("history_service", "INSERT"),
    ("sharing_service", "sharing.store_audit"),
    ("sharing_service", "INSERT"),
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def traced_stack(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("traced")
    with isolated_deployment(
        run_dir,
        EVENTHUB_OTEL_ENDPOINT=receiver.address,
        EVENTHUB_OTEL_SAMPLE_RATIO="1.0",
        OTEL_BSP_SCHEDULE_DELAY="100",  # export every 100 ms (the default is 5 s)
        EVENTHUB_ARGON2_TIME_COST="1",
        EVENTHUB_ARGON2_MEMORY_KIB="8192",
    ) as env:
        stack = Stack(env, run_dir)
        stack.migrate()
        stack.start_all()
        try:
            stack.wait_ready()
            yield stack
        finally:
            stack.stop_all()


class Trace:
    """The spans of one trace received so far."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.by_id = {span.span_id: span for span in spans}

    def one(self, service: str, kind: str, name: str) -> ReceivedSpan | None:
        found = [s for s in self.spans if (s.service, s.kind, s.name) == (service, kind, name)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def ancestors(self, span: ReceivedSpan) -> list[str]:
        """The ids of the span's parent, its parent's parent, ... as far as received."""
        chain = []
        while span.parent_id in self.by_id:
            chain.append(span.parent_id)
            span = self.by_id[span.parent_id]
        return chain


def sql_of(span: ReceivedSpan, service: str) -> bool:
    return span.service == service and span.attributes.get("db.system") == "postgresql"


def test_a_create_is_one_trace_from_the_gateway_to_the_stored_version(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    username = f"traced_{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as api:
        account = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        assert api.post("/api/auth/register", json=account).status_code == 201
        login = api.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        token = login.json()["access_token"]
        created = api.post(
            "/api/events",
            json={
                "title": "Traced",
                "start_time": "2031-03-02T09:00:00Z",
                "end_time": "2031-03-02T10:00:00Z",
            },
            # A client's trace context is ignored: the gateway starts the trace.
            headers={
                "Authorization": f"Bearer {token}",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
        )
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    def create_trace() -> Trace | None:
        spans = receiver.spans()
        requests = [s for s in spans if s.service == "gateway" and s.name == "POST /api/events"]
        if not requests:
            return None
        assert len(requests) == 1, requests
        found = Trace([s for s in spans if s.trace_id == requests[0].trace_id])
        # Each process sends its spans when it likes: wait for the last of each.
        last = {(s.service, s.name) for s in found.spans}
        return found if EXPECTED <= last else None

    wait_until(lambda: create_trace() is not None, 30, "the create's whole trace")
    found = create_trace()
    assert found is not None

    request = found.one("gateway", "server", "POST /api/events")
    assert request is not None
    assert request.parent_id == "" and request.trace_id != "0af7651916cd43dd8448eb211c80319c"
    assert request.attributes["http.route"] == "/api/events"
    assert request.attributes["http.response.status_code"] == 201
    call = found.one("gateway", "client", CREATE)
    assert call is not None and call.parent_id == request.span_id
    served = found.one("event_service", "server", CREATE)
    assert served is not None and served.parent_id == call.span_id
    assert served.attributes["rpc.grpc.status_code"] == 0

    # Its statements: one span for the pipelined transaction the creates of that moment
    # share, holding every statement of it.
    group = found.one("event_service", "internal", "group commit")
    assert group is not None and group.parent_id == served.span_id
    [transaction] = [s for s in found.spans if sql_of(s, "event_service")]
    assert transaction.name == "transaction" and transaction.parent_id == group.span_id
    statements = transaction.attributes["db.statement"].split(";\n")
    assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
    assert transaction.attributes["db.operation.batch.size"] == len(statements) >= 4
    assert any("INSERT INTO events.events" in statement for statement in statements)

    version = found.one("history_service", "consumer", "history.store_versions")
    assert version is not None
    assert version.attributes["messaging.message.id"] == f"{event_id}:1"
    # The child of the call that queued it, so of the request too.
    assert version.parent_id == served.span_id
    assert found.ancestors(version) == [served.span_id, call.span_id, request.span_id]
    stored = [s for s in found.spans if sql_of(s, "history_service")]
    assert any("INSERT INTO history.event_versions" in s.attributes["db.statement"] for s in stored)
    assert all(s.parent_id == version.span_id for s in stored)
    audit = found.one("sharing_service", "consumer", "sharing.store_audit")
    assert audit is not None and audit.parent_id == served.span_id
    assert audit.attributes["messaging.message.id"] == f"{event_id}:access:1"

    # Only requests start traces: the relay's, sweeps' and purges' statements do not.
    roots = [s for s in receiver.spans() if not s.parent_id]
    assert roots and {(s.service, s.kind) for s in roots} == {("gateway", "server")}

    # No credential in any span of the trace.
    for span in found.spans:
        for value in span.attributes.values():
            assert token not in str(value) and PASSWORD not in str(value)
