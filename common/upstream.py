"""The one policy for errors from another service: passed on to our own caller.

A typed client (one per remote service, in the calling service's package) wraps
every call in `call`, so the rest of the service never sees a `grpc` exception:
the upstream's status and problem details travel on unchanged (a 404 stays a 404
with its detail), and a service that is down or too slow stays UNAVAILABLE or
DEADLINE_EXCEEDED, which the gateway answers with 503 or 504.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from common.errors import DomainError, problem_from_rpc_error

Response = TypeVar("Response")


class UpstreamError(DomainError):
    """An error another service answered, passed on with its status and problem details."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        problem = problem_from_rpc_error(error)
        title = problem.pop("title", None)
        detail = problem.pop("detail", None) or error.details() or ""
        super().__init__(detail, **problem)
        self.code = error.code()
        if title:
            self.title = title


async def call(method: Callable[[Any], Awaitable[Response]], request: Any) -> Response:
    try:
        return await method(request)
    except grpc.aio.AioRpcError as error:
        raise UpstreamError(error) from None
