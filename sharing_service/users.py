"""Resolving user ids and usernames through the auth service."""

import uuid
from dataclasses import dataclass

import grpc

from common.upstream import call
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc


@dataclass(frozen=True)
class KnownUser:
    id: uuid.UUID
    username: str


class UserDirectory:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._auth = auth_pb2_grpc.AuthServiceStub(channel)

    async def lookup(self, user_ids: list[str], usernames: list[str]) -> list[KnownUser]:
        """The users found among `user_ids` and `usernames`; unknown ones are left out.

        Acts as the current caller (the auth service requires a token).
        """
        response = await call(
            self._auth.LookupUsers,
            auth_pb2.LookupUsersRequest(user_ids=user_ids, usernames=usernames),
        )
        return [KnownUser(uuid.UUID(user.id), user.username) for user in response.users]
