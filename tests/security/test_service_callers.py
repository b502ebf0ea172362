"""The gRPC services as a stranger sees them: they listen on loopback unless told
otherwise, and the user directory answers only signed-in callers, without e-mail
addresses."""

import ipaddress
from collections.abc import Callable

import grpc
import pytest

from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc
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
