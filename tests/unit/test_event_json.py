"""Routes send `fields_from_proto` values straight through orjson; the JSON must be
byte for byte what the pydantic models (the documented `response_model`s) write."""

from datetime import UTC, datetime

import pytest

from common.timeutil import to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2
from gateway.etags import event_response
from gateway.responses import JSONResponse, items_response
from gateway.schemas.events import Event, Occurrence


def stamp(*args: int) -> object:
    return to_timestamp(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


EVENTS = [
    events_pb2.Event(
        id="e1",
        title="Standup ✓",
        description='quotes " and \\ and\nnewlines',
        location="Room 1",
        start_time=stamp(2031, 1, 1, 9),
        end_time=stamp(2031, 1, 1, 9, 15),
        timezone="Europe/Berlin",
        is_recurring=True,
        recurrence_rule="FREQ=DAILY;COUNT=3",
        owner_id="u1",
        role=common_pb2.ROLE_EDITOR,
        version=7,
        created_at=stamp(2026, 3, 1, 12, 0, 0, 123456),
        updated_at=stamp(2026, 3, 1, 12, 0, 1, 5),
        overrides_json='{"2031-01-02T08:00:00Z":{"title":"Late","end_time":"2031-01-02T09:00:00Z"},'
        '"2031-01-03T08:00:00Z":{"status":"cancelled"}}',
    ),
    # Defaults: no time zone, no rule, no role (history's stored events).
    events_pb2.Event(id="e2", title="t", owner_id="u2", version=1),
]


@pytest.mark.parametrize("event", EVENTS)
def test_an_event_is_written_as_its_model_writes_it(event: events_pb2.Event) -> None:
    response = event_response(event)
    assert response.body == Event.from_proto(event).model_dump_json().encode()
    assert response.headers["ETag"] == f'"{event.version}"'
    assert response.status_code == 200


def test_a_created_event_has_its_location() -> None:
    response = event_response(EVENTS[0], 201, {"Location": "/api/events/e1"})
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/events/e1"
    assert response.headers["ETag"] == '"7"'


def test_occurrences_are_written_as_their_model_writes_them() -> None:
    occurrence = events_pb2.Occurrence(
        event_id="e1",
        title="Standup",
        start_time=stamp(2031, 1, 1, 8),
        end_time=stamp(2031, 1, 1, 8, 15, 0, 250000),
        recurrence_id=stamp(2031, 1, 1, 8),
        description="Daily",
        location="Room 2",
        is_override=True,
    )
    fields = Occurrence.fields_from_proto(occurrence)
    expected = Occurrence.model_construct(**fields).model_dump_json()
    assert JSONResponse(fields).body == expected.encode()


def test_lists_keep_their_extra_members() -> None:
    response = items_response([Event.fields_from_proto(e) for e in EVENTS], next_cursor=None)
    models = ",".join(Event.from_proto(e).model_dump_json() for e in EVENTS)
    assert response.body == f'{{"items":[{models}],"next_cursor":null}}'.encode()
