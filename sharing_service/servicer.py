"""gRPC adapter of the sharing service: proto in, SharingService call, proto out."""

from common.grpc_server import current_caller
from common.roles import Role
from common.timeutil import to_timestamp
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.events import Permission
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


class SharingServicer(sharing_pb2_grpc.SharingServiceServicer):
    """Every call needs a verified caller."""

    def __init__(self, service: SharingService) -> None:
        self._service = service

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
