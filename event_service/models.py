import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import INT4MULTIRANGE, JSONB, TSTZRANGE, Range
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from common.db import service_metadata
from common.idempotency import idempotency_table
from common.notifications import EDITABLE_FIELDS
from common.outbox import outbox_table
from common.timeutil import rfc3339
from event_service.domain.events import EventDraft, make_schedule
from event_service.domain.recurrence import Schedule

SCHEMA = "events"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class TransactionId(UserDefinedType[int]):
    """PostgreSQL's `xid8`: a transaction's id, never reused, growing with time."""

    cache_ok = True

    def get_col_spec(self) -> str:
        return "xid8"


def changed_in_column() -> Mapped[int]:
    """The transaction that last changed the row's user's view of the event; syncs
    page by it (`event_service.sync`)."""
    return mapped_column(TransactionId(), server_default=text("pg_current_xact_id()"))


class Event(Base):
    """An event or a recurring series. Deleted events stay as tombstones (`deleted_at`)
    so that their last version number can still be asked for."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(Text)
    is_recurring: Mapped[bool]
    recurrence_rule: Mapped[str | None] = mapped_column(Text)
    # From the first start to the last end (unbounded for an endless series), so
    # events that cannot overlap a window are skipped by the GiST index.
    span: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    # Minutes of the week (UTC) in which occurrences can fall; see domain.recurrence.
    footprint: Mapped[list[Range[int]]] = mapped_column(INT4MULTIRANGE)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # +1 on every change of the event's access list (EventAccess rows): readers and
    # the cache keep the newest, and the sharing service changes access optimistically.
    access_version: Mapped[int] = mapped_column(BigInteger)
    # A series' exceptions, {recurrence id: override}, as `domain.exceptions` writes
    # them (at most 1,000). A map on the series rather than a row per exception: every
    # expansion, conflict check and cached copy needs all of them with the rule, every
    # exception write is a version of the series under its row lock, and history
    # snapshots and rollbacks carry them whole.
    overrides: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class EventAccess(Base):
    """A user's role on an event: the system of record for access.

    `event_created_at` repeats the event's creation time so that a user's listing
    (newest first) walks this table's index in order and stops after one page,
    however many events the user can see.
    """

    __tablename__ = "event_access"

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Event.id), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(Text)
    # Copied from the token or the auth service when granted; usernames never change.
    username: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[uuid.UUID]
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_in: Mapped[int] = changed_in_column()

    __table_args__ = (
        CheckConstraint("role IN ('owner', 'editor', 'viewer')", name="role"),
        Index(
            "ix_event_access_user_listing",
            "user_id",
            event_created_at.desc(),
            event_id.desc(),
            postgresql_include=["role"],
        ),
        Index("ix_event_access_user_changes", "user_id", "changed_in", "event_id"),
    )


class AccessLost(Base):
    """A user whose role on an event was taken away, at the event's `version` then:
    kept a while (`event_service.sync.KEEP_LOST_ACCESS`) so that the user's next
    sync learns it; gone again if the user is given a role back."""

    __tablename__ = "access_lost"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    lost_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_in: Mapped[int] = changed_in_column()

    __table_args__ = (
        Index("ix_access_lost_user_changes", "user_id", "changed_in", "event_id"),
        Index("ix_access_lost_lost_at", "lost_at"),
    )


class CalendarFeed(Base):
    """A user's secret calendar feed: only the SHA-256 of the URL's secret is kept."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImportedUid(Base):
    """The event an iCalendar UID of a user's import became: a re-import of that UID
    updates the event instead of making another."""

    __tablename__ = "imported_uids"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column()


outbox = outbox_table(Base.metadata)
idempotency_keys = idempotency_table(Base.metadata)


_FIXED_ANSWER_BYTES = 400


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event row as the service works with it (from PostgreSQL or the cache)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    location: str
    start_time: datetime
    end_time: datetime
    timezone: str
    is_recurring: bool
    recurrence_rule: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: bool = False

    def draft(self) -> EventDraft:
        return EventDraft(**{name: getattr(self, name) for name in EDITABLE_FIELDS})

    def schedule(self) -> Schedule:
        return make_schedule(self.start_time, self.end_time, self.timezone, self.recurrence_rule)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready fields, as change notifications carry them."""
        return {
            "id": str(self.id),
            **self.draft().snapshot(),
            "owner_id": str(self.owner_id),
            "version": self.version,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "overrides": self.overrides,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_PASSTHROUGH_DATACLASS, default=_encode)

    def answer_bytes(self) -> int:
        """About the size of the event in an answer: its text in UTF-8 and a fixed
        allowance for ids, times and field names (see `common.paging`)."""
        texts = (self.title, self.description, self.location, self.recurrence_rule or "")
        return _FIXED_ANSWER_BYTES + sum(len(text.encode()) for text in texts)

    @classmethod
    def from_json(cls, data: bytes) -> "StoredEvent":
        raw = orjson.loads(data)
        return cls(
            **{
                **raw,
                "id": uuid.UUID(raw["id"]),
                "owner_id": uuid.UUID(raw["owner_id"]),
                "start_time": datetime.fromisoformat(raw["start_time"]),
                "end_time": datetime.fromisoformat(raw["end_time"]),
                "created_at": datetime.fromisoformat(raw["created_at"]),
                "updated_at": datetime.fromisoformat(raw["updated_at"]),
            }
        )


def _encode(value: Any) -> Any:
    if isinstance(value, StoredEvent):
        return {name: getattr(value, name) for name in StoredEvent.__slots__}
    raise TypeError(type(value))
