"""The gRPC services as a stranger sees them: they listen on loopback unless told
otherwise, every call but signing in needs a user's token signed by the auth service,
the user directory answers without e-mail addresses, and the calls reserved for one
service need that service's token."""

import ipaddress
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from common.service_identity import ISSUER, SERVICE_METADATA
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.history.v1 import history_pb2
from eventhub.sharing.v1 import sharing_pb2
from scripts.stack import SERVICE_ADDR_VARS, Stack
from tests.conftest import User

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def decode(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} write it: hex, each 32-bit word little-endian."""
    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
    return ipaddress.ip_address(b"".join(words))


def is_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == _LISTEN and int(hex_port, 16) == port:
                    found.add(decode(address))
    return found


@pytest.mark.parametrize("service", sorted(SERVICE_ADDR_VARS))
def test_services_listen_on_loopback_only(stack: Stack, service: str) -> None:
    port = int(stack.env[SERVICE_ADDR_VARS[service]].split(",")[0].rsplit(":", 1)[1])
    addresses = listening_addresses(port)
    assert addresses, f"nothing listens on {port}"
    assert all(is_loopback(ip) for ip in addresses), addresses


def test_the_user_directory_needs_a_signed_in_caller(
    service_channel: Callable[[str], grpc.Channel], make_user: Callable[..., User]
) -> None:
    user, other = make_user(), make_user()
    directory = auth_pb2_grpc.AuthServiceStub(service_channel("auth"))
    request = auth_pb2.LookupUsersRequest(usernames=[other.username])

    with pytest.raises(grpc.RpcError) as stranger:
        directory.LookupUsers(request)
    assert stranger.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as forged:
        directory.LookupUsers(request, metadata=[("authorization", "Bearer forged.token.x")])
    assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED

    found = directory.LookupUsers(
        request, metadata=[("authorization", f"Bearer {user.access_token}")]
    )
    assert [(u.id, u.username, u.email) for u in found.users] == [(other.id, other.username, "")]


PUBLIC_RPCS = {
    # Signing up, signing in and out, and the keys to verify tokens need no token.
    "/eventhub.auth.v1.AuthService/Register",
    "/eventhub.auth.v1.AuthService/Login",
    "/eventhub.auth.v1.AuthService/Refresh",
    "/eventhub.auth.v1.AuthService/Logout",
    "/eventhub.auth.v1.AuthService/GetPublicKeys",
    # A calendar feed's secret is its credential (calendar apps hold no token).
    "/eventhub.events.v1.EventService/ExportFeed",
}
SERVICES = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "events": events_pb2.DESCRIPTOR.services_by_name["EventService"],
    "sharing": sharing_pb2.DESCRIPTOR.services_by_name["SharingService"],
    "history": history_pb2.DESCRIPTOR.services_by_name["HistoryService"],
}
RPCS = [
    (service, method)
    for service, descriptor in SERVICES.items()
    for method in descriptor.methods
    if f"/{descriptor.full_name}/{method.name}" not in PUBLIC_RPCS
]


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[f"{s}.{m.name}" for s, m in RPCS])
def test_every_rpc_refuses_a_stranger(
    service_channel: Callable[[str], grpc.Channel], service: str, method: MethodDescriptor
) -> None:
    """No token, or one not signed by the auth service: nothing is answered."""
    request_type = message_factory.GetMessageClass(method.input_type)
    call = service_channel(service).unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_type.SerializeToString,
        response_deserializer=lambda data: data,
    )
    for metadata in ([], [("authorization", f"Bearer {forged_user_token()}")]):
        with pytest.raises(grpc.RpcError) as refused:
            call(request_type(), metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata


def forged_user_token() -> str:
    """A well-formed access token signed with a key of the forger's own."""
    key = Ed25519PrivateKey.generate()
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "username": "forger",
        "iss": "eventhub-auth",
        "aud": "eventhub",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "forged"})


def service_token(key: bytes, service: str, **claims: object) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER, "aud": ISSUER, "sub": service, "iat": now, "exp": now + 60, **claims
    }  # fmt: skip
    return jwt.encode(payload, key, algorithm="HS256")


def test_calls_reserved_for_a_service_refuse_users_and_forged_services(
    service_channel: Callable[[str], grpc.Channel], make_user: Callable[..., User], stack: Stack
) -> None:
    """Rolling back to given content is the history service's call, changing an
    access list or reading anyone's busy times the sharing service's: the event's owner
    calling directly, a token signed with another key, an expired one or one of the
    other service are refused."""
    owner, other = make_user(), make_user()
    events = EventServiceStub(service_channel("events"))
    user = [("authorization", f"Bearer {owner.access_token}")]
    start, end = Timestamp(seconds=2_000_000_000), Timestamp(seconds=2_000_003_600)
    content = events_pb2.EventInput(title="mine", start_time=start, end_time=end)
    event = events.CreateEvent(events_pb2.CreateEventRequest(event=content), metadata=user)
    rollback = events_pb2.RollbackEventRequest(
        id=event.id, event=events_pb2.EventInput(title="forged", start_time=start, end_time=end)
    )
    share = events_pb2.ChangeAccessRequest(
        event_id=event.id,
        expected_access_version=1,
        changes=[events_pb2.AccessChange(user_id=other.id, username="admin", role=1)],
    )
    key = Path(stack.env["EVENTHUB_SERVICE_KEY_FILE"]).read_bytes().strip()
    forger_key = secrets.token_hex(32).encode()
    busy = events_pb2.BusyTimesRequest(user_ids=[other.id], start=start, end=end)
    reserved = [
        (events.RollbackEvent, rollback, "history"),
        (events.ChangeAccess, share, "sharing"),
        (events.BusyTimes, busy, "sharing"),
    ]

    for rpc, request, service in reserved:
        wrong_service = "sharing" if service == "history" else "history"
        for token in (
            None,
            service_token(forger_key, service),
            service_token(key, service, exp=int(time.time()) - 120),
            service_token(key, wrong_service),
        ):
            metadata = user + ([(SERVICE_METADATA, token)] if token else [])
            with pytest.raises(grpc.RpcError) as refused:
                rpc(request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (service, token)

    stored = events.GetEvent(events_pb2.GetEventRequest(id=event.id), metadata=user)
    assert (stored.title, stored.version) == ("mine", 1)
    access = events.GetAccess(events_pb2.GetAccessRequest(event_id=event.id), metadata=user)
    assert [entry.user_id for entry in access.entries] == [owner.id]

    history = user + [(SERVICE_METADATA, service_token(key, "history"))]
    assert events.RollbackEvent(rollback, metadata=history).title == "forged"
