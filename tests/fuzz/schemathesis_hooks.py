"""Schemathesis hooks (loaded by the CLI via SCHEMATHESIS_HOOKS) for the fuzz test.

The test passes the ids that exist in EVENTHUB_FUZZ_WORLD (JSON), so that path
parameters often name real events and users and the fuzzing reaches the services.
"""

import json
import os
from typing import Any

import requests
import schemathesis
from hypothesis import strategies as st

WORLD: dict[str, Any] = json.loads(os.environ.get("EVENTHUB_FUZZ_WORLD", "{}"))
# Words that only an internal error would show: stack traces, modules, drivers, SQL.
INTERNALS = ("traceback", 'file "', '.py"', "grpc", "statuscode", "psycopg", "sqlalchemy")


@schemathesis.check
def no_internal_details(ctx: Any, response: Any, case: Any) -> None:
    """Error answers say what went wrong for the client, never how the system failed."""
    if response.status_code >= 400:
        text = response.text.lower()
        leaked = [word for word in INTERNALS if word in text]
        assert not leaked, f"internal details {leaked} in {response.text[:500]}"


@schemathesis.hook
def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return st.just(path_parameters)
    real: dict[str, Any] = {}
    if "event_id" in path_parameters:
        real["event_id"] = st.sampled_from(WORLD["event_ids"])
    if "user_id" in path_parameters:
        real["user_id"] = st.sampled_from(WORLD["user_ids"])
    if "recurrence_id" in path_parameters:
        real["recurrence_id"] = st.sampled_from(WORLD["recurrence_ids"])
    if "version_id" in path_parameters:
        real["version_id"] = st.integers(1, 4)
    for name in ("version_id1", "version_id2"):
        if name in path_parameters:
            real[name] = st.integers(1, 4)
    if not real:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.fixed_dictionaries({**path_parameters, **real}))


def _bearer(case: Any, token: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


# retry_on=[]: a 401 is an answer to check, not a cue to log in again.
@schemathesis.auth(retry_on=[]).skip_for(path="/api/auth/logout")
class SharedToken:
    def get(self, case: Any, ctx: Any) -> str:
        return WORLD["access_token"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        _bearer(case, data)


@schemathesis.auth(refresh_interval=None, retry_on=[]).apply_to(path="/api/auth/logout")
class FreshToken:
    """Logout revokes its token: it gets a new one each time, not the one the others use."""

    def get(self, case: Any, ctx: Any) -> str:
        login = requests.post(
            f"{WORLD['base_url']}/api/auth/login",
            json={"username": WORLD["username"], "password": WORLD["password"]},
            timeout=10,
        )
        login.raise_for_status()
        return login.json()["access_token"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        _bearer(case, data)
