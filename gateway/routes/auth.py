from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from eventhub.auth.v1 import auth_pb2
from gateway.deps import (
    CurrentUser,
    Services,
    limit_login_per_username,
    login_rate_limit,
    refresh_rate_limit,
)
from gateway.openapi import problem_responses
from gateway.schemas.auth import LoginIn, LogoutIn, RefreshIn, RegisterIn, TokenPair, User

router = APIRouter(prefix="/api/auth", tags=["auth"])

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginIn.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginIn.model_json_schema()},
        },
    }
}


@router.post(
    "/register",
    status_code=201,
    dependencies=[Depends(login_rate_limit)],
    responses=problem_responses(409, 422, 429),
)
async def register(body: RegisterIn, gateway: Services) -> User:
    user = await gateway.auth.Register(
        auth_pb2.RegisterRequest(username=body.username, email=body.email, password=body.password)
    )
    return User.from_proto(user)


async def login_credentials(request: Request) -> LoginIn:
    """Credentials from a JSON body or from OAuth2 form fields (Swagger's Authorize)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            return LoginIn.model_validate({k: v for k, v in form.items() if isinstance(v, str)})
        return LoginIn.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


@router.post(
    "/login",
    dependencies=[Depends(login_rate_limit)],
    openapi_extra=_LOGIN_BODY,
    responses=problem_responses(401, 422, 429),
)
async def login(
    request: Request, credentials: Annotated[LoginIn, Depends(login_credentials)], gateway: Services
) -> TokenPair:
    await limit_login_per_username(request, gateway, credentials.username)
    pair = await gateway.auth.Login(
        auth_pb2.LoginRequest(username=credentials.username, password=credentials.password)
    )
    return TokenPair.from_proto(pair)


@router.post(
    "/refresh",
    dependencies=[Depends(refresh_rate_limit)],
    responses=problem_responses(401, 422, 429),
)
async def refresh(body: RefreshIn, gateway: Services) -> TokenPair:
    pair = await gateway.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=body.refresh_token))
    return TokenPair.from_proto(pair)


@router.post("/logout", status_code=204, responses=problem_responses(401, 422, 429))
async def logout(
    user: CurrentUser, gateway: Services, body: Annotated[LogoutIn | None, Body()] = None
) -> Response:
    refresh_token = body.refresh_token if body and body.refresh_token else ""
    await gateway.auth.Logout(auth_pb2.LogoutRequest(refresh_token=refresh_token))
    return Response(status_code=204)


@router.get("/me", responses=problem_responses(401, 429))
async def me(user: CurrentUser, gateway: Services) -> User:
    return User.from_proto(await gateway.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest()))
