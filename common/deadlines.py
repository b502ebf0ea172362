"""The deadline of the call being served, for whatever works on it: calls to other
services inherit what is left of it (`common.grpc_client.call_timeout`), and work
that runs beside the event loop, which cancelling the call cannot stop, stops
itself once it has passed (`check`)."""

import time
from contextvars import ContextVar

from common.errors import DeadlineExceeded

# When the call being served must be answered (time.monotonic()), if its caller set a
# deadline. Worker threads started for the call (asyncio.to_thread) see it too.
deadline_var: ContextVar[float | None] = ContextVar("deadline", default=None)


def check() -> None:
    """DeadlineExceeded if the call being served is past its deadline."""
    deadline = deadline_var.get()
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the request ran out of time")
