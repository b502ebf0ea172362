"""The one role type: owner > editor > viewer, with what each may do.

Stored as its text value (`"owner"`) in PostgreSQL and JSON, sent as the
`eventhub.common.v1.Role` enum over gRPC.
"""

from enum import StrEnum

from eventhub.common.v1 import common_pb2


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, minimum: "Role") -> bool:
        """Whether this role may do what `minimum` may."""
        return self.rank >= minimum.rank

    @property
    def may_edit(self) -> bool:
        return self.allows(Role.EDITOR)

    @property
    def may_share(self) -> bool:
        """Share, change roles, revoke and delete: owners only."""
        return self is Role.OWNER

    def to_proto(self) -> int:
        return _TO_PROTO[self]

    @classmethod
    def from_proto(cls, value: int) -> "Role | None":
        """None for ROLE_UNSPECIFIED (no role) or an unknown number."""
        return _FROM_PROTO.get(value)


_RANK = {Role.OWNER: 3, Role.EDITOR: 2, Role.VIEWER: 1}
_TO_PROTO = {
    Role.OWNER: common_pb2.ROLE_OWNER,
    Role.EDITOR: common_pb2.ROLE_EDITOR,
    Role.VIEWER: common_pb2.ROLE_VIEWER,
}
_FROM_PROTO = {value: role for role, value in _TO_PROTO.items()}
ROLE_VALUES = tuple(role.value for role in Role)
NO_ROLE = common_pb2.ROLE_UNSPECIFIED


def role_to_proto(role: "Role | None") -> int:
    return role.to_proto() if role is not None else NO_ROLE
