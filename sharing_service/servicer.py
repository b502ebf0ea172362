"""gRPC adapter of the sharing service: proto in, SharingService or FreeBusyService
call, proto out."""

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from common.errors import InvalidArgument
from common.grpc_server import current_caller
from common.roles import Role
from common.timeutil import from_timestamp, to_timestamp
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.events import Permission
from sharing_service.freebusy import FreeBusyService, FreeBusyUser
from sharing_service.models import FreeBusyGrant
from sharing_service.service import ShareTarget, SharingService


def permission_message(permission: Permission) -> sharing_pb2.Permission:
    return sharing_pb2.Permission(
        event_id=str(permission.event_id),
        user_id=str(permission.user_id),
        username=permission.username,
        role=permission.role.to_proto(),  # type: ignore[arg-type]
        granted_by=str(permission.granted_by),
        granted_at=to_timestamp(permission.granted_at),
    )


def grant_message(grant: FreeBusyGrant) -> sharing_pb2.FreeBusyGrant:
    return sharing_pb2.FreeBusyGrant(
        user_id=str(grant.grantee_id),
        username=grant.grantee_username,
        granted_at=to_timestamp(grant.granted_at),
    )


def _instant(field: str, present: bool, value: Timestamp) -> datetime | None:
    if not present:
        return None
    try:
        return from_timestamp(value)
    except ValueError:
        raise InvalidArgument.field(field, "is not a valid timestamp") from None


class SharingServicer(sharing_pb2_grpc.SharingServiceServicer):
    """Every call needs a verified caller."""

    def __init__(self, service: SharingService, freebusy: FreeBusyService) -> None:
        self._service = service
        self._freebusy = freebusy

    async def ShareEvent(self, request, context):  # type: ignore[no-untyped-def]
        targets = [
            ShareTarget(
                user_id=target.user_id,
                username=target.username,
                role=Role.from_proto(target.role),
            )
            for target in request.users
        ]
        granted = await self._service.share(current_caller(), request.event_id, targets)
        return sharing_pb2.ShareEventResponse(items=[permission_message(p) for p in granted])

    async def ListPermissions(self, request, context):  # type: ignore[no-untyped-def]
        permissions = await self._service.list_permissions(current_caller(), request.event_id)
        return sharing_pb2.ListPermissionsResponse(
            items=[permission_message(p) for p in permissions]
        )

    async def UpdatePermission(self, request, context):  # type: ignore[no-untyped-def]
        permission = await self._service.update_permission(
            current_caller(), request.event_id, request.user_id, Role.from_proto(request.role)
        )
        return permission_message(permission)

    async def RevokePermission(self, request, context):  # type: ignore[no-untyped-def]
        await self._service.revoke(current_caller(), request.event_id, request.user_id)
        return sharing_pb2.RevokePermissionResponse()

    async def FreeBusy(self, request, context):  # type: ignore[no-untyped-def]
        users = [FreeBusyUser(user_id=u.user_id, username=u.username) for u in request.users]
        start = _instant("start", request.HasField("start"), request.start)
        end = _instant("end", request.HasField("end"), request.end)
        answers = await self._freebusy.free_busy(
            current_caller(), start, end, users, request.timezone
        )
        return sharing_pb2.FreeBusyResponse(
            users=[
                sharing_pb2.UserFreeBusy(
                    busy_json=answer.busy_json,
                    error_reason=answer.error_reason,
                    error_message=answer.error_message,
                )
                for answer in answers
            ]
        )

    async def ListFreeBusyGrants(self, request, context):  # type: ignore[no-untyped-def]
        grants = await self._freebusy.list_grants(current_caller())
        return sharing_pb2.ListFreeBusyGrantsResponse(items=[grant_message(g) for g in grants])

    async def PutFreeBusyGrant(self, request, context):  # type: ignore[no-untyped-def]
        grant, created = await self._freebusy.put_grant(current_caller(), request.user_id)
        return sharing_pb2.PutFreeBusyGrantResponse(grant=grant_message(grant), created=created)

    async def DeleteFreeBusyGrant(self, request, context):  # type: ignore[no-untyped-def]
        await self._freebusy.delete_grant(current_caller(), request.user_id)
        return sharing_pb2.DeleteFreeBusyGrantResponse()
