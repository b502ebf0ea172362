import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import service_metadata

SCHEMA = "sharing"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class PermissionChange(Base):
    """Audit trail: every grant, role change and revoke, never updated or deleted.
    `sequence` is the event's access version after the change."""

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


class FreeBusyGrant(Base):
    """`grantee_id` may see `owner_id`'s free/busy. `grantee_username` as it was when
    granted, so a listing needs no call to the auth service."""

    __tablename__ = "freebusy_grants"

    owner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    grantee_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    grantee_username: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
