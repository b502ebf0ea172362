import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import service_metadata

SCHEMA = "history"
CHANGE_TYPES = ("created", "updated", "rolled_back", "deleted")


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class EventVersion(Base):
    """One version of an event, as the event service announced it."""

    __tablename__ = "event_versions"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    change_type: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The whole event after the change (its last state, for a delete).
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # {field: {"old", "new"}} for each editable field the change touched.
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "change_type IN ('created', 'updated', 'rolled_back', 'deleted')", name="change_type"
        ),
        CheckConstraint("version > 0", name="version_positive"),
    )


class DeadLetter(Base):
    """A notification that can never be stored (bad JSON or schema), kept for inspection."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The message's stream sequence; unique so a rebuild does not record it twice.
    stream_sequence: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    subject: Mapped[str] = mapped_column(Text)
    msg_id: Mapped[str | None] = mapped_column(Text)
    # The version the message stood for, when its id names one: history reads count it
    # as a gap in the event's history rather than wait for it (see `repo`).
    event_id: Mapped[uuid.UUID | None] = mapped_column()
    version: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_dead_letters_event_version", "event_id", "version"),)
