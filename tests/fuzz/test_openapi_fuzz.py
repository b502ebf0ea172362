"""Schemathesis fuzzes every operation of the running gateway's `/openapi.json`.

Requests carry a real user's token, and path parameters are often ids that exist
(events the user owns, was shared, or may not see; a deleted one; real user ids;
see schemathesis_hooks.py), so the fuzzing reaches the services instead of
stopping at 401 or 404. Every response must be declared by the schema (status
code, content type, headers, body) and none may be a 5xx.

The run is deterministic and bounded for CI; EVENTHUB_FUZZ_EXAMPLES (examples per
operation) and EVENTHUB_FUZZ_SEED explore further locally.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from scripts.stack import Stack
from tests.conftest import User

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("EVENTHUB_FUZZ_EXAMPLES", "15")
SEED = os.environ.get("EVENTHUB_FUZZ_SEED", "20260601")
START, END = "2032-05-03T09:00:00Z", "2032-05-03T10:00:00Z"
# Every check but positive_data_acceptance: rules across fields (end after start,
# one of user_id or username) are not in the schema, so schema-valid data may be refused.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "no_internal_details",  # ours, in schemathesis_hooks.py
]


def _create(api: httpx.Client, user: User, **fields: Any) -> str:
    body = {"title": "Fuzz", "start_time": START, "end_time": END, "allow_conflicts": True}
    response = api.post("/api/events", json={**body, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _world(api: httpx.Client, make_user, base_url: str) -> dict[str, Any]:
    """Ids that exist: events owned (with versions, recurring, deleted), shared, hidden."""
    user: User = make_user("fuzz")
    friend: User = make_user("fuzzfriend")
    owned = _create(api, user, description="several versions")
    for title in ("Fuzz 2", "Fuzz 3"):
        patched = api.patch(f"/api/events/{owned}", json={"title": title}, headers=user.headers)
        assert patched.status_code == 200, patched.text
    series = _create(
        api, user, is_recurring=True, recurrence_rule="FREQ=WEEKLY;COUNT=5", timezone="Europe/Paris"
    )
    deleted = _create(api, user)
    assert api.delete(f"/api/events/{deleted}", headers=user.headers).status_code == 204
    shared = _create(api, friend)
    grant = {"users": [{"user_id": user.id, "role": "editor"}]}
    assert api.post(f"/api/events/{shared}/share", json=grant, headers=friend.headers).is_success
    hidden = _create(api, friend)
    window = {"start": START, "end": "2033-05-01T00:00:00Z"}
    listed = api.get(f"/api/events/{series}/occurrences", params=window, headers=user.headers)
    assert listed.status_code == 200, listed.text
    return {
        "base_url": base_url,
        "username": user.username,
        "password": user.password,
        "access_token": user.access_token,
        "event_ids": [owned, series, deleted, shared, hidden],
        "user_ids": [user.id, friend.id],
        "recurrence_ids": [item["recurrence_id"] for item in listed.json()["items"]] + [START],
    }


def test_every_response_matches_the_openapi_schema(
    api: httpx.Client, make_user, stack: Stack, tmp_path: Path
) -> None:
    world = _world(api, make_user, stack.gateway_url)
    command = [
        str(Path(sys.executable).parent / "st"),
        "--no-color",
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--generation-database",
        "none",
        # One worker: with two, Hypothesis parses lambdas' source in two threads at once,
        # which CPython 3.11's ast.parse does not survive ("AST constructor recursion
        # depth mismatch", an internal error of the run, not of the API).
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--continue-on-failure",
        "--max-failures",
        "50",
        # A change stream never ends by itself: tests/e2e/test_stream.py covers it.
        "--exclude-path",
        "/api/events/stream",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.fuzz.schemathesis_hooks",
        "EVENTHUB_FUZZ_WORLD": json.dumps(world),
    }
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout[-5_000:]
    assert int(selected[2]) - int(selected[1]) == 1, run.stdout[-5_000:]  # the stream
    assert selected[1] == tested[1], run.stdout[-5_000:]
