import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import service_metadata
from common.outbox import outbox_table

SCHEMA = "sharing"


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


ROLE_VALUES = tuple(role.value for role in Role)
_ROLE_CHECK = "role IN ('owner', 'editor', 'viewer')"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class EventAcl(Base):
    """One row per event that has ever had a grant.

    Every permission change locks this row first, so changes to one event run one at a
    time (two concurrent demotions cannot both see another owner), and numbers itself
    from `last_sequence`.
    """

    __tablename__ = "event_acls"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """A user's current role on an event."""

    __tablename__ = "grants"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Copied from the auth service when granted; usernames never change.
    username: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[uuid.UUID]
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_ROLE_CHECK, name="role"),
        # ListGrants reads a user's grants from this index alone.
        Index("ix_grants_user_id_event_id", "user_id", "event_id", postgresql_include=["role"]),
    )


class PermissionChange(Base):
    """Audit trail: every grant, role change and revoke, never updated or deleted."""

    __tablename__ = "permission_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID]
    sequence: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[uuid.UUID]
    # None for a revoke.
    role: Mapped[str | None] = mapped_column(String(16))
    # None for a first grant.
    previous_role: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID]
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("uq_permission_changes_event_id_sequence", "event_id", "sequence", unique=True),
    )


outbox = outbox_table(Base.metadata)
