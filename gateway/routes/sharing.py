from fastapi import APIRouter
from starlette.responses import Response

from eventhub.sharing.v1 import sharing_pb2
from gateway.deps import CurrentUser, Services
from gateway.openapi import problem_responses
from gateway.schemas.events import ROLE_VALUES
from gateway.schemas.sharing import Permission, PermissionList, PermissionUpdateIn, ShareIn

router = APIRouter(prefix="/api/events", tags=["sharing"])


@router.post(
    "/{event_id}/share",
    status_code=201,
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def share_event(
    event_id: str, body: ShareIn, user: CurrentUser, gateway: Services
) -> PermissionList:
    """Grant roles to users by id or username, all or none; sharing again changes the role.

    Owners only. An unknown user is 404 and nothing is shared.
    """
    response = await gateway.sharing.ShareEvent(
        sharing_pb2.ShareEventRequest(
            event_id=event_id, users=[target.to_proto() for target in body.users]
        )
    )
    return PermissionList.from_proto(response.items)


@router.get("/{event_id}/permissions", responses=problem_responses(401, 404, 429))
async def list_permissions(event_id: str, user: CurrentUser, gateway: Services) -> PermissionList:
    """Everyone with a role on the event, owners first; any role may read it."""
    response = await gateway.sharing.ListPermissions(
        sharing_pb2.ListPermissionsRequest(event_id=event_id)
    )
    return PermissionList.from_proto(response.items)


@router.put(
    "/{event_id}/permissions/{user_id}",
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def update_permission(
    event_id: str, user_id: str, body: PermissionUpdateIn, user: CurrentUser, gateway: Services
) -> Permission:
    """Change a user's role (owners only); the last owner cannot be demoted (409)."""
    permission = await gateway.sharing.UpdatePermission(
        sharing_pb2.UpdatePermissionRequest(
            event_id=event_id, user_id=user_id, role=ROLE_VALUES[body.role]
        )
    )
    return Permission.from_proto(permission)


@router.delete(
    "/{event_id}/permissions/{user_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def revoke_permission(
    event_id: str, user_id: str, user: CurrentUser, gateway: Services
) -> Response:
    """Remove a user's role (owners only); the last owner cannot be removed (409)."""
    await gateway.sharing.RevokePermission(
        sharing_pb2.RevokePermissionRequest(event_id=event_id, user_id=user_id)
    )
    return Response(status_code=204)
