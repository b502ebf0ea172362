"""gRPC adapter of the sharing service: proto in, SharingService call, proto out."""

from common.grpc_server import current_caller
from common.timeutil import to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.models import Grant, Role
from sharing_service.service import ShareTarget, SharingService

ROLE_TO_PROTO = {
    Role.OWNER: common_pb2.ROLE_OWNER,
    Role.EDITOR: common_pb2.ROLE_EDITOR,
    Role.VIEWER: common_pb2.ROLE_VIEWER,
}
ROLE_FROM_PROTO = {value: role for role, value in ROLE_TO_PROTO.items()}


def role_message(role: Role | None) -> int:
    return ROLE_TO_PROTO[role] if role else common_pb2.ROLE_UNSPECIFIED


def permission_message(grant: Grant) -> sharing_pb2.Permission:
    return sharing_pb2.Permission(
        event_id=str(grant.event_id),
        user_id=str(grant.user_id),
        username=grant.username,
        role=ROLE_TO_PROTO[Role(grant.role)],
        granted_by=str(grant.granted_by),
        granted_at=to_timestamp(grant.granted_at),
    )


class SharingServicer(sharing_pb2_grpc.SharingServiceServicer):
    """Every call needs a verified caller, the internal ones (GetRole, ListGrants) too."""

    def __init__(self, service: SharingService) -> None:
        self._service = service

    async def InitializeOwners(self, request, context):  # type: ignore[no-untyped-def]
        grants = await self._service.initialize_owners(current_caller(), request.event_ids)
        return sharing_pb2.InitializeOwnersResponse(items=[permission_message(g) for g in grants])

    async def GetRole(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        role = await self._service.get_role(request.event_id, request.user_id or caller.user_id)
        return sharing_pb2.GetRoleResponse(role=role_message(role))

    async def ListGrants(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        grants = await self._service.list_grants(
            request.user_id or caller.user_id, ROLE_FROM_PROTO.get(request.role)
        )
        return sharing_pb2.ListGrantsResponse(
            grants=[
                sharing_pb2.Grant(event_id=event_id, role=ROLE_TO_PROTO[role])
                for event_id, role in grants
            ]
        )

    async def ShareEvent(self, request, context):  # type: ignore[no-untyped-def]
        targets = [
            ShareTarget(
                user_id=target.user_id,
                username=target.username,
                role=ROLE_FROM_PROTO.get(target.role),
            )
            for target in request.users
        ]
        grants = await self._service.share(current_caller(), request.event_id, targets)
        return sharing_pb2.ShareEventResponse(items=[permission_message(g) for g in grants])

    async def ListPermissions(self, request, context):  # type: ignore[no-untyped-def]
        grants = await self._service.list_permissions(current_caller(), request.event_id)
        return sharing_pb2.ListPermissionsResponse(items=[permission_message(g) for g in grants])

    async def UpdatePermission(self, request, context):  # type: ignore[no-untyped-def]
        grant = await self._service.update_permission(
            current_caller(), request.event_id, request.user_id, ROLE_FROM_PROTO.get(request.role)
        )
        return permission_message(grant)

    async def RevokePermission(self, request, context):  # type: ignore[no-untyped-def]
        await self._service.revoke(current_caller(), request.event_id, request.user_id)
        return sharing_pb2.RevokePermissionResponse()
