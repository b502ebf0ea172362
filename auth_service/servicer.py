"""gRPC adapter of the auth service: proto in, AuthService call, proto out."""

from auth_service.models import User
from auth_service.service import AuthService
from common.grpc_server import current_caller
from common.idempotency import NO_USER, IdempotencyKeys
from common.timeutil import to_timestamp
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc


def user_message(user: User) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        username=user.username,
        email=user.email,
        created_at=to_timestamp(user.created_at),
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService, keys: IdempotencyKeys) -> None:
        self._service = service
        self._keys = keys

    async def Register(self, request, context):  # type: ignore[no-untyped-def]
        once = self._keys.of_call(NO_USER, lambda user: user_message(user).SerializeToString())
        user = await self._service.register(request.username, request.email, request.password, once)
        return user_message(user)

    async def Login(self, request, context):  # type: ignore[no-untyped-def]
        pair = await self._service.login(request.username, request.password)
        return auth_pb2.TokenPair(**vars(pair))

    async def Refresh(self, request, context):  # type: ignore[no-untyped-def]
        pair = await self._service.refresh(request.refresh_token)
        return auth_pb2.TokenPair(**vars(pair))

    async def Logout(self, request, context):  # type: ignore[no-untyped-def]
        await self._service.logout(current_caller(), request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def GetCurrentUser(self, request, context):  # type: ignore[no-untyped-def]
        return user_message(await self._service.get_user(current_caller().user_id))

    async def LookupUsers(self, request, context):  # type: ignore[no-untyped-def]
        """For a signed-in caller (sharing, on the user's behalf); without e-mail addresses:
        sharing by username must not tell anyone another user's address."""
        current_caller()
        users = await self._service.lookup_users(list(request.user_ids), list(request.usernames))
        found = [user_message(u) for u in users]
        for user in found:
            user.ClearField("email")
        return auth_pb2.LookupUsersResponse(users=found)

    async def GetPublicKeys(self, request, context):  # type: ignore[no-untyped-def]
        key = self._service.signing_key
        settings = self._service.settings
        return auth_pb2.GetPublicKeysResponse(
            keys=[
                auth_pb2.PublicKey(kid=key.kid, algorithm="EdDSA", public_key_pem=key.public_pem)
            ],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
