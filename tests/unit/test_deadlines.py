"""A call a service makes while serving one inherits what is left of that call's
deadline, so no service keeps working for a caller that has given up."""

import time

from common.grpc_client import call_timeout
from common.grpc_server import deadline_var


def test_outside_a_served_call_the_own_deadline_holds() -> None:
    assert call_timeout(5.0) == 5.0


def test_a_call_gets_what_is_left_of_the_served_calls_deadline() -> None:
    token = deadline_var.set(time.monotonic() + 1.0)
    try:
        assert 0.9 < call_timeout(5.0) <= 1.0
        assert call_timeout(0.5) == 0.5  # its own, when shorter
    finally:
        deadline_var.reset(token)


def test_a_call_after_the_deadline_passed_gets_none_left() -> None:
    token = deadline_var.set(time.monotonic() - 1.0)
    try:
        assert call_timeout(5.0) == 0.0
    finally:
        deadline_var.reset(token)
