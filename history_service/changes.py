"""Validating the event service's change notifications before they are stored.

Everything stored here is later rendered without further checks, so a message
that would not render (bad JSON, missing or mistyped fields) is refused up front.
"""

import uuid
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from common.notifications import EventChange

MAX_VERSION = 2**63 - 1


class PoisonMessage(Exception):
    """A notification that can never be stored, however often it is retried."""


class Snapshot(BaseModel):
    """An event's fields as a notification carries them."""

    id: uuid.UUID
    title: str
    description: str | None = None
    location: str | None = None
    start_time: AwareDatetime
    end_time: AwareDatetime
    timezone: str
    is_recurring: bool
    recurrence_rule: str | None = None
    owner_id: str
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    # A series' exceptions by recurrence id (absent from notifications made before
    # series had exceptions).
    overrides: dict[str, dict[str, Any]] = {}


class FieldChange(BaseModel):
    old: Any = None
    new: Any = None


class _StoredChange(BaseModel):
    """What `EventChange` promises in types, checked strictly enough to store."""

    event_id: uuid.UUID
    version: int = Field(ge=1, le=MAX_VERSION)
    occurred_at: AwareDatetime
    snapshot: Snapshot
    changes: dict[str, FieldChange]


def parse_change(data: bytes) -> dict[str, Any]:
    """The `event_versions` row a notification becomes; PoisonMessage if it is unusable."""
    try:
        change = EventChange.model_validate_json(data)
        checked = _StoredChange.model_validate(change.model_dump())
    except ValidationError as error:
        raise PoisonMessage(_describe(error)) from None
    except (ValueError, orjson.JSONDecodeError) as error:
        raise PoisonMessage(f"not JSON: {error}") from None
    return {
        "event_id": checked.event_id,
        "version": change.version,
        "change_type": change.change_type,
        "changed_by": change.actor_id,
        "changed_at": checked.occurred_at,
        "snapshot": change.snapshot,
        "changes": change.changes,
    }


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
        for e in error.errors(include_url=False)
    )[:2000]
