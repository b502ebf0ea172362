"""Stubs of the services the event-service tests call."""

from collections.abc import Callable

import grpc
import pytest

from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub


@pytest.fixture
def events(service_channel: Callable[[str], grpc.Channel]) -> EventServiceStub:
    return EventServiceStub(service_channel("events"))


@pytest.fixture
def sharing(service_channel: Callable[[str], grpc.Channel]) -> SharingServiceStub:
    return SharingServiceStub(service_channel("sharing"))
