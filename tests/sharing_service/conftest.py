"""What the sharing service's gRPC tests share: stubs of the sharing and event
services, and a user's call metadata."""

from collections.abc import Callable

import grpc
import pytest

from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from tests.conftest import User


def auth(user: User) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {user.access_token}")]


@pytest.fixture
def sharing(service_channel: Callable[[str], grpc.Channel]) -> SharingServiceStub:
    return SharingServiceStub(service_channel("sharing"))


@pytest.fixture
def events(service_channel: Callable[[str], grpc.Channel]) -> EventServiceStub:
    return EventServiceStub(service_channel("events"))
