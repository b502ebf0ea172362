from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

from common.timeutil import from_timestamp
from eventhub.auth.v1 import auth_pb2
from gateway.schemas.text import NoNul

Username = Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class RegisterIn(BaseModel):
    username: Username
    email: EmailStr
    password: Password


class LoginIn(BaseModel):
    username: Annotated[
        str, Field(min_length=1, max_length=320, description="Username or email"), NoNul
    ]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshIn(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class LogoutIn(BaseModel):
    refresh_token: Annotated[str | None, Field(default=None, max_length=512)] = None


class User(BaseModel):
    id: str
    username: str
    email: str
    created_at: datetime

    @classmethod
    def from_proto(cls, user: auth_pb2.User) -> "User":
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            created_at=from_timestamp(user.created_at),
        )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int

    @classmethod
    def from_proto(cls, pair: auth_pb2.TokenPair) -> "TokenPair":
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
