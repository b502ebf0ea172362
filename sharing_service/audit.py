"""The permission audit trail, written from the event service's access-change
notifications.

Sharing replicas share one durable JetStream consumer. Each change is stored once,
keyed by (event, access version), and its message is acked only after the commit:
a process that dies between a change and its audit record leaves the message
unacked, and JetStream delivers it again. A message that can never be stored is
logged and terminated rather than retried forever.
"""

import logging
import uuid
from datetime import datetime

import orjson
from nats.aio.msg import Msg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from common.consumer import DurableConsumer, Subscription, is_passing
from common.notifications import AccessChanged, access_subject
from sharing_service import repo
from sharing_service.config import SharingSettings

log = logging.getLogger(__name__)


def audit_rows(data: bytes) -> list[dict]:
    """The audit rows of one notification; ValueError if it is not one."""
    try:
        notice = AccessChanged.model_validate(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError) as error:
        raise ValueError(f"not an access-change notification: {error}") from None
    event_id, actor_id = uuid.UUID(notice.event_id), uuid.UUID(notice.actor_id)
    occurred_at = datetime.fromisoformat(notice.occurred_at)
    return [
        {
            "event_id": event_id,
            "sequence": change.sequence,
            "user_id": uuid.UUID(change.user_id),
            "role": change.role,
            "previous_role": change.previous_role,
            "actor_id": actor_id,
            "occurred_at": occurred_at,
        }
        for change in notice.changes
    ]


class AuditConsumer(DurableConsumer):
    trace_name = "sharing.store_audit"

    def __init__(self, settings: SharingSettings, sessions: async_sessionmaker) -> None:
        namespace = settings.namespace
        super().__init__(
            Subscription.to_event_stream(
                settings.nats_url,
                namespace,
                filter_subject=access_subject(namespace, "*"),
                durable=f"{namespace}_sharing_audit",
                batch_size=settings.audit_batch_size,
                ack_wait=settings.audit_ack_wait,
            ),
            name="sharing_audit",
        )
        self._sessions = sessions
        self._retry_delay = settings.audit_retry_delay

    async def handle(self, messages: list[Msg]) -> None:
        rows: list[dict] = []
        storable: list[Msg] = []
        for msg in messages:
            try:
                rows += audit_rows(msg.data)
                storable.append(msg)
            except ValueError as error:
                log.error(
                    "unreadable access change", extra={"subject": msg.subject, "error": str(error)}
                )
                await self.dead_letter(msg)
        try:
            async with self._sessions() as session, session.begin():
                await repo.add_permission_changes(session, rows)
        except Exception as error:
            if not is_passing(error):
                log.exception("storing audit records failed")
            await self.retry(storable, self._retry_delay)
            return
        for msg in storable:
            await self.ack(msg)
