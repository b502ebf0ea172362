"""The write path of the event service: a create is refused by PostgreSQL when an event
of the owner can clash and then checked carefully; a create commits its events, the
owner's access rows and all their notifications together, or nothing."""

import time

import grpc
import psycopg

from common.errors import problem_from_rpc_error
from eventhub.events.v1 import events_pb2 as pb
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from scripts.stack import Stack
from tests.event_service.test_event_grpc import (
    auth,
    create,
    database_url,
    event_input,
    rpc_error,
)


def outbox_ids(stack: Stack, event_ids: list[str]) -> list[str]:
    """The notification ids queued for the events, in queue order."""
    with psycopg.connect(database_url(stack)) as conn:
        rows = conn.execute(
            "SELECT msg_id FROM events.outbox WHERE split_part(msg_id, ':', 1) = ANY(%s)"
            " ORDER BY id",
            (event_ids,),
        ).fetchall()
    return [msg_id for (msg_id,) in rows]


def test_a_candidate_that_does_not_clash_is_checked_and_accepted(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """Every other Monday: a Monday in between overlaps its span and its week footprint
    (a candidate) but no occurrence."""
    owner = make_user()
    fortnightly = create(
        events,
        owner,
        start="2031-01-06T09:00",
        end="2031-01-06T10:00",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;INTERVAL=2;COUNT=10",
    )
    between = create(events, owner, start="2031-01-13T09:00", end="2031-01-13T10:00")
    assert between.version == 1
    assert outbox_ids(stack, [between.id]) == [f"{between.id}:1", f"{between.id}:access:1"]

    on_a_monday_of_the_series = pb.CreateEventRequest(
        event=event_input("2031-01-20T09:30", "2031-01-20T09:45")
    )
    error = rpc_error(lambda: events.CreateEvent(on_a_monday_of_the_series, metadata=auth(owner)))
    assert problem_from_rpc_error(error)["conflicts"] == [
        {
            "event_id": fortnightly.id,
            "start_time": "2031-01-20T09:00:00Z",
            "end_time": "2031-01-20T10:00:00Z",
            "recurrence_id": "2031-01-20T09:00:00Z",
        }
    ]


def test_a_refused_batch_leaves_nothing_and_names_the_first_clashing_item(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    owner = make_user()
    existing = create(events, owner, start="2032-03-02T09:00", end="2032-03-02T10:00")
    items = [
        event_input("2032-03-01T09:00", "2032-03-01T10:00", title="first"),
        event_input("2032-03-03T09:00", "2032-03-03T10:00", title="second"),
        event_input("2032-03-02T09:30", "2032-03-02T10:30", title="clashes with the calendar"),
        event_input("2032-03-01T09:30", "2032-03-01T10:30", title="clashes with the first"),
    ]
    batch = pb.BatchCreateEventsRequest(events=items)
    error = rpc_error(lambda: events.BatchCreateEvents(batch, metadata=auth(owner)))
    problem = problem_from_rpc_error(error)
    assert problem["index"] == 2
    assert [c["event_id"] for c in problem["conflicts"]] == [existing.id]

    within_only = pb.BatchCreateEventsRequest(events=[items[0], items[1], items[3]])
    error = rpc_error(lambda: events.BatchCreateEvents(within_only, metadata=auth(owner)))
    problem = problem_from_rpc_error(error)
    assert problem["index"] == 2
    assert problem["conflicts"] == [
        {"event_id": None, "start_time": "2032-03-01T09:00:00Z", "end_time": "2032-03-01T10:00:00Z",
         "index": 0}
    ]  # fmt: skip

    listed = events.ListEvents(pb.ListEventsRequest(), metadata=auth(owner))
    assert [event.id for event in listed.items] == [existing.id]
    with psycopg.connect(database_url(stack)) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM events.events WHERE owner_id = %s", (owner.id,)
        ).fetchone()
    assert stored == (1,)


def test_a_batch_commits_every_event_with_its_access_row_and_notifications(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    owner = make_user()
    items = [event_input(f"2033-05-0{day}T09:00", f"2033-05-0{day}T10:00") for day in (1, 2, 3)]
    created = events.BatchCreateEvents(
        pb.BatchCreateEventsRequest(events=items), metadata=auth(owner)
    ).items
    ids = [event.id for event in created]
    assert outbox_ids(stack, ids) == [f"{i}:1" for i in ids] + [f"{i}:access:1" for i in ids]
    with psycopg.connect(database_url(stack)) as conn:
        rows = conn.execute(
            "SELECT a.event_id::text, a.role, a.granted_by::text,"
            " a.event_created_at = e.created_at, e.access_version, upper(e.span) = e.end_time,"
            " e.footprint::text"
            " FROM events.event_access a JOIN events.events e ON e.id = a.event_id"
            " WHERE a.user_id = %s ORDER BY e.created_at",
            (owner.id,),
        ).fetchall()
    assert [row[:6] for row in rows] == [(i, "owner", owner.id, True, 1, True) for i in ids]
    # Sunday 1 May 2033, 09:00 UTC: minute 6 * 1440 + 540 of the week, for an hour (+1).
    assert rows[0][6] == "{[9180,9241)}"


def test_concurrent_creates_on_one_calendar_are_checked_as_if_one_after_another(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """Creates in flight together share transactions (group commit); each must still
    see the ones committed or accepted before it. Three creates per slot race: one
    wins, the other two are refused naming it; creates that allow conflicts all land."""
    owner = make_user()
    metadata = auth(owner)

    def slot(index: int, **fields: object) -> pb.CreateEventRequest:
        day = f"2033-02-{1 + index // 24:02d}"
        start = f"{day}T{index % 24:02d}:00"
        end = f"{day}T{index % 24:02d}:30"
        return pb.CreateEventRequest(event=event_input(start, end), **fields)  # type: ignore[arg-type]

    racing = {index: [events.CreateEvent.future(slot(index), metadata=metadata) for _ in range(3)]
              for index in range(30)}  # fmt: skip
    forced = [
        events.CreateEvent.future(slot(index, allow_conflicts=True), metadata=metadata)
        for index in range(30, 40)
        for _ in range(2)
    ]
    created: list[str] = []
    for calls in racing.values():
        won = [call.result() for call in calls if call.exception() is None]
        assert len(won) == 1
        for call in calls:
            if call.exception() is not None:
                problem = problem_from_rpc_error(call.exception())
                assert [c["event_id"] for c in problem["conflicts"]] == [won[0].id]
        created.append(won[0].id)
    created += [call.result().id for call in forced]
    assert len(set(created)) == 50

    with psycopg.connect(database_url(stack)) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM events.events WHERE owner_id = %s", (owner.id,)
        ).fetchone()
        assert stored == (50,)
    assert sorted(outbox_ids(stack, created)) == sorted(
        f"{event_id}:{suffix}" for event_id in created for suffix in ("1", "access:1")
    )


def calendar_lock_key(owner_id: str) -> str:
    return f"events.owner:{owner_id}"


def test_only_a_change_of_times_waits_for_the_owners_calendar(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """The calendar lock serialises what can clash (creates, moves); a new title cannot
    clash, so it goes through while another transaction holds the owner's calendar."""
    owner = make_user()
    event = create(events, owner, start="2033-03-01T09:00", end="2033-03-01T10:00")
    with psycopg.connect(database_url(stack), autocommit=True) as holder:
        holder.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (calendar_lock_key(owner.id),)
        )
        renamed = events.UpdateEvent(
            pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="renamed")),
            metadata=auth(owner),
            timeout=5,
        )
        assert (renamed.version, renamed.title) == (2, "renamed")
        moved = events.UpdateEvent.future(
            pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(location="moved")),
            metadata=auth(owner),
            timeout=10,
        )
        assert moved.result().version == 3  # a location is not a time either
        rescheduled = events.ReplaceEvent.future(
            pb.ReplaceEventRequest(
                id=event.id, event=event_input("2033-03-01T11:00", "2033-03-01T12:00")
            ),
            metadata=auth(owner),
            timeout=20,
        )
        wait_for_advisory_lock_waiter(holder)
        assert not rescheduled.done()
        holder.execute(
            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (calendar_lock_key(owner.id),)
        )
        assert rescheduled.result().version == 4


def wait_for_advisory_lock_waiter(conn: psycopg.Connection, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
            " AND datname = current_database()"
        ).fetchone()
        if waiting and waiting[0] > 0:
            return
        time.sleep(0.05)
    raise AssertionError("no transaction waited for the calendar lock")


def test_a_change_that_moves_the_event_after_all_is_checked_under_the_calendar_lock(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """The service guesses from the (cached) event whether a change moves it. Here the
    stored event moved behind the cache's back, so a PUT of the cached times does move
    it, onto another event: it must be checked, and refused."""
    owner = make_user()
    event = create(events, owner, start="2033-04-01T09:00", end="2033-04-01T10:00")
    events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))  # now cached
    with psycopg.connect(database_url(stack), autocommit=True) as conn:
        conn.execute(
            "UPDATE events.events SET start_time = start_time + interval '1 day',"
            " end_time = end_time + interval '1 day',"
            " span = tstzrange(start_time + interval '1 day', end_time + interval '1 day')"
            " WHERE id = %s",
            (event.id,),
        )
    other = create(events, owner, start="2033-04-01T09:30", end="2033-04-01T10:30")
    back_to_the_cached_times = pb.ReplaceEventRequest(
        id=event.id, event=event_input("2033-04-01T09:00", "2033-04-01T10:00")
    )
    lock = "SELECT pg_advisory%s(hashtextextended(%%s, 0))"
    with psycopg.connect(database_url(stack), autocommit=True) as holder:
        holder.execute(lock % "_lock", (calendar_lock_key(owner.id),))
        put = events.ReplaceEvent.future(back_to_the_cached_times, metadata=auth(owner), timeout=20)
        wait_for_advisory_lock_waiter(holder)
        holder.execute(lock % "_unlock", (calendar_lock_key(owner.id),))
        error = rpc_error(put.result)
    assert [c["event_id"] for c in problem_from_rpc_error(error)["conflicts"]] == [other.id]


def test_concurrent_updates_of_one_event_each_make_one_version(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """Updates that read the same version race to write it: one wins at once, the
    others find it gone and are applied under the event's lock, one after another."""
    owner = make_user()
    event = create(events, owner)
    events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))  # now cached
    titles = [f"title {n}" for n in range(12)]
    calls = [
        events.UpdateEvent.future(
            pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title=title)),
            metadata=auth(owner),
            timeout=20,
        )
        for title in titles
    ]
    answers = [call.result() for call in calls]
    assert sorted(answer.version for answer in answers) == list(range(2, 2 + len(titles)))
    last = max(answers, key=lambda answer: answer.version)
    stored = events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))
    assert (stored.version, stored.title) == (last.version, last.title)
    versions = [f"{event.id}:{v}" for v in range(1, 14)]
    assert outbox_ids(stack, [event.id]) == [versions[0], f"{event.id}:access:1", *versions[1:]]


def test_an_update_by_a_caller_who_lost_the_role_behind_the_cache_writes_nothing(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """The cache still says the caller owns the event; the database, which decides,
    says they hold no role any more."""
    owner = make_user()
    event = create(events, owner)
    events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))  # now cached
    with psycopg.connect(database_url(stack), autocommit=True) as conn:
        conn.execute("DELETE FROM events.event_access WHERE event_id = %s", (event.id,))
        error = rpc_error(
            lambda: events.UpdateEvent(
                pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="taken over")),
                metadata=auth(owner),
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        title, version = conn.execute(
            "SELECT title, version FROM events.events WHERE id = %s", (event.id,)
        ).fetchone()
    assert (title, version) == (event.title, 1)
    assert outbox_ids(stack, [event.id]) == [f"{event.id}:1", f"{event.id}:access:1"]


def test_an_update_that_changes_nothing_is_checked_against_the_stored_version(
    events: EventServiceStub,
    make_user,
    stack: Stack,
) -> None:
    """A change to what the cache holds is no change only if the cache is current:
    here the stored event moved on behind the cache's back."""
    owner = make_user()
    event = create(events, owner)
    events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))  # now cached
    same = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title=event.title))
    unchanged = events.UpdateEvent(same, metadata=auth(owner))
    assert (unchanged.version, unchanged.title) == (1, event.title)
    with psycopg.connect(database_url(stack), autocommit=True) as conn:
        conn.execute(
            "UPDATE events.events SET title = 'renamed elsewhere', version = 2 WHERE id = %s",
            (event.id,),
        )
    changed_back = events.UpdateEvent(same, metadata=auth(owner))
    assert (changed_back.version, changed_back.title) == (3, event.title)
