"""Domain errors raised by service code, and how they travel over gRPC.

Services raise these; `common.grpc_server` turns them into a gRPC status whose
trailing metadata `eventhub-error-bin` holds the problem details as JSON, and the
gateway turns that back into an RFC 9457 problem response.
"""

from typing import Any

import grpc
import orjson

ERROR_METADATA_KEY = "eventhub-error-bin"
# What every service answers for an event the caller may not see or that does not exist.
EVENT_NOT_FOUND = "event not found"


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    title = "Error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        return {"title": self.title, "detail": self.detail, **self.extra}


class InvalidArgument(DomainError):
    """Bad input; `errors` lists each bad field as {"field", "message"} (an import's
    with its "line" too)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    title = "Validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str = "") -> None:
        super().__init__(detail or "; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.extra = {"errors": errors}

    @classmethod
    def field(cls, field: str, message: str) -> "InvalidArgument":
        return cls([{"field": field, "message": message}])


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    title = "Not found"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    title = "Already exists"


class Conflict(DomainError):
    """The change clashes with current state (overlapping events, last owner)."""

    code = grpc.StatusCode.ABORTED
    title = "Conflict"


class PreconditionFailed(DomainError):
    """An If-Match version is stale."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    title = "Precondition failed"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    title = "Forbidden"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    title = "Unauthorized"


class DeadlineExceeded(DomainError):
    """Answered to nobody: the caller has given up, and the work stops."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    title = "Gateway timeout"


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    title = "Service unavailable"


def error_trailer(error: DomainError) -> tuple[tuple[str, bytes], ...]:
    return ((ERROR_METADATA_KEY, orjson.dumps(error.problem())),)


def problem_from_rpc_error(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, Any]:
    """The problem details a service attached to a failed call, or {}."""
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_METADATA_KEY:
            try:
                problem = orjson.loads(value)
            except orjson.JSONDecodeError:
                return {}
            return problem if isinstance(problem, dict) else {}
    return {}
