"""`make bench`: the load harness. Starts an isolated system (or uses a running
one with --url), seeds it through the API, drives each scenario with wrk from a
separate process, and prints requests/s, p50, p99 and errors per scenario, with
throughput as a ratio of a bare FastAPI app served the same way (the ceiling).

--smoke runs every scenario for a couple of seconds and only checks for errors.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.wrk import Figures, run_wrk
from scripts.stack import REPO, Stack, free_port, isolated_deployment, wait_until

PASSWORD = "bench password 1"
SEED_START = datetime(2030, 1, 7, 9, tzinfo=UTC)


@dataclass
class Options:
    seconds: float
    connections: int
    threads: int
    workers: int
    owned_events: int
    users: int


@dataclass
class Seeded:
    token: str
    event_id: str
    users: list[dict]


def lua_string(value: str) -> str:
    return json.dumps(value)


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(lua_string(v) for v in values) + "}"


def login(client: httpx.Client, prefix: str) -> tuple[str, str]:
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    registered = client.post("/api/auth/register", json=body)
    registered.raise_for_status()
    tokens = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    tokens.raise_for_status()
    return registered.json()["id"], tokens.json()["access_token"]


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def seed(client: httpx.Client, options: Options) -> Seeded:
    """One heavy owner (one-offs and weekly series) and a crowd of users sharing events."""
    _, token = login(client, "owner")
    headers = {"Authorization": f"Bearer {token}"}
    for first in range(0, options.owned_events, 500):
        batch = [
            {
                "title": f"seeded {i}",
                "start_time": iso(SEED_START + timedelta(hours=2 * i)),
                "end_time": iso(SEED_START + timedelta(hours=2 * i, minutes=30)),
            }
            for i in range(first, min(first + 500, options.owned_events))
        ]
        client.post("/api/events/batch", json={"events": batch}, headers=headers).raise_for_status()
    series = [
        {
            "title": f"weekly {i}",
            "start_time": iso(SEED_START + timedelta(minutes=45 + i)),
            "end_time": iso(SEED_START + timedelta(minutes=46 + i)),
            "timezone": "Europe/Berlin",
            "is_recurring": True,
            "recurrence_rule": "FREQ=WEEKLY;BYDAY=MO,WE",
        }
        for i in range(50)
    ]
    created = client.post(
        "/api/events/batch", json={"events": series, "allow_conflicts": True}, headers=headers
    )
    created.raise_for_status()
    event_id = created.json()["items"][0]["id"]

    users = []
    for n in range(options.users):
        user_id, user_token = login(client, f"crowd{n}")
        auth = {"Authorization": f"Bearer {user_token}"}
        events = [
            {
                "title": f"crowd {n}-{i}",
                "start_time": iso(SEED_START + timedelta(days=i, hours=n % 12)),
                "end_time": iso(SEED_START + timedelta(days=i, hours=n % 12, minutes=30)),
            }
            for i in range(10)
        ]
        batch = client.post("/api/events/batch", json={"events": events}, headers=auth)
        batch.raise_for_status()
        users.append(
            {"id": user_id, "token": user_token, "own": [e["id"] for e in batch.json()["items"]]}
        )
    for n, user in enumerate(users):
        neighbour = users[(n + 1) % len(users)]
        share = {"users": [{"user_id": neighbour["id"], "role": "editor"}]}
        for event_id_to_share in user["own"][:3]:
            client.post(
                f"/api/events/{event_id_to_share}/share",
                json=share,
                headers={"Authorization": f"Bearer {user['token']}"},
            ).raise_for_status()
        neighbour.setdefault("shared", []).extend(user["own"][:3])
    return Seeded(token=token, event_id=event_id, users=users)


def scenario_scripts(seeded: Seeded) -> dict[str, tuple[str, str]]:
    """Scenario name → (URL path, wrk Lua script)."""
    auth = lua_string(f"Bearer {seeded.token}")
    window = "start=2030-03-01T00:00:00Z&end=2030-04-01T00:00:00Z"
    unique_slots = """
local counter = 0
local started = 0
setup = function(thread) thread:set("tid", started); started = started + 1 end
local function slot_body(title)
  counter = counter + 1
  -- One slot a day per thread from 2040 on, at 20:00 UTC + thread: clear of every
  -- seeded event and series, so creates measure the check, not 409s.
  local start = 2208988800 + counter * 86400 + 72000 + (tid or 0) * 3600
  return string.format('{"title":"%s","start_time":"%s","end_time":"%s"}', title,
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
end
"""
    users = seeded.users
    tokens = lua_list([f"Bearer {u['token']}" for u in users])
    readable = "{" + ",".join(lua_list(u["own"] + u.get("shared", [])) for u in users) + "}"
    own = "{" + ",".join(lua_list(u["own"]) for u in users) + "}"
    return {
        "S1 GET /api/events/{id} (warm cache)": (
            f"/api/events/{seeded.event_id}",
            f'wrk.method = "GET"\nwrk.headers["Authorization"] = {auth}\n',
        ),
        "S2 POST /api/events (10,000 owned)": (
            "/api/events",
            unique_slots
            + f"""
request = function()
  return wrk.format("POST", "/api/events",
    {{["Content-Type"] = "application/json", ["Authorization"] = {auth}}}, slot_body("bench"))
end
""",
        ),
        "S3 GET /api/events?expand=true (1 month)": (
            f"/api/events?expand=true&{window}",
            f'wrk.method = "GET"\nwrk.headers["Authorization"] = {auth}\n',
        ),
        "S4 mixed 80/15/5 over 100 users": (
            "/api/events",
            unique_slots
            + f"""
local tokens = {tokens}
local readable = {readable}
local own = {own}
request = function()
  local u = math.random(#tokens)
  local headers = {{["Authorization"] = tokens[u], ["Content-Type"] = "application/json"}}
  local roll = math.random(100)
  if roll <= 80 then
    local ids = readable[u]
    return wrk.format("GET", "/api/events/" .. ids[math.random(#ids)], headers)
  elseif roll <= 95 then
    local ids = own[u]
    local body = string.format('{{"title":"edited %d"}}', math.random(1000000))
    return wrk.format("PATCH", "/api/events/" .. ids[math.random(#ids)], headers, body)
  end
  return wrk.format("POST", "/api/events", headers, slot_body("mixed"))
end
""",
        ),
    }


def measure_ceiling(options: Options, workdir: Path) -> Figures:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "bench.ceiling_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(options.workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ],
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/ping"), 30, "the ceiling app")
        return drive(f"http://127.0.0.1:{port}/ping", 'wrk.method = "GET"\n', options, workdir)
    finally:
        server.terminate()
        server.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def drive(url: str, script: str, options: Options, workdir: Path) -> Figures:
    return run_wrk(
        url,
        script,
        seconds=options.seconds,
        connections=options.connections,
        threads=options.threads,
        workdir=workdir,
    )


def report(ceiling: Figures, results: dict[str, Figures]) -> None:
    print(
        f"\n{'scenario':44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x ceiling':>9}"
    )
    rows = [("ceiling: bare FastAPI GET /ping", ceiling), *results.items()]
    for name, f in rows:
        ratio = f.requests_per_s / ceiling.requests_per_s
        figures = f"{f.requests_per_s:8.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} {f.errors:7d}"
        print(f"{name:44} {figures} {ratio:9.3f}")


def run(options: Options, url: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="eventhub-bench-") as scratch:
        workdir = Path(scratch)
        if url:
            return bench_against(url, options, workdir)
        limits = {
            "EVENTHUB_RATE_LIMIT_LOGIN": "1000000/minute",
            "EVENTHUB_RATE_LIMIT_REFRESH": "1000000/minute",
            "EVENTHUB_RATE_LIMIT_USER": "100000000/minute",
            "EVENTHUB_ARGON2_TIME_COST": "1",
            "EVENTHUB_ARGON2_MEMORY_KIB": "8192",
            "EVENTHUB_GATEWAY_WORKERS": str(options.workers),
            "EVENTHUB_LOG_LEVEL": "WARNING",
        }
        with isolated_deployment(workdir, **limits) as env:
            stack = Stack(env, workdir)
            stack.migrate()
            stack.start_all()
            try:
                stack.wait_ready()
                return bench_against(stack.gateway_url, options, workdir)
            finally:
                stack.stop_all()


def bench_against(url: str, options: Options, workdir: Path) -> int:
    ceiling = measure_ceiling(options, workdir)
    with httpx.Client(base_url=url, timeout=60) as client:
        seeded = seed(client, options)
    results = {
        name: drive(url + path, script, options, workdir)
        for name, (path, script) in scenario_scripts(seeded).items()
    }
    report(ceiling, results)
    errors = sum(f.errors for f in results.values())
    if errors:
        print(f"\nFAILED: {errors} requests failed", file=sys.stderr)
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds each; checks errors only"
    )
    parser.add_argument("--url", help="bench a running gateway instead of starting one")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    args = parser.parse_args()
    options = Options(
        seconds=2 if args.smoke else args.seconds,
        connections=8 if args.smoke else args.connections,
        threads=args.threads,
        workers=args.workers,
        owned_events=1000 if args.smoke else 10_000,
        users=10 if args.smoke else 100,
    )
    sys.exit(run(options, args.url))


if __name__ == "__main__":
    main()
