"""Secrets never reach the logs: exercise every path that sees one, then read every log."""

from pathlib import Path

import httpx

from scripts.stack import Stack


def test_passwords_and_tokens_never_appear_in_logs(
    api: httpx.Client, stack: Stack, make_user
) -> None:
    user = make_user("logcheck")
    secrets = {user.password, user.access_token, user.refresh_token}
    # Exercise the paths that see secrets, failures included.
    api.post(
        "/api/auth/login", json={"username": user.username, "password": "wrong " + user.password}
    )
    api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    api.get("/api/auth/me", headers={"Authorization": f"Bearer {user.access_token}x"})
    api.post("/api/auth/logout", headers=user.headers)
    api.post(
        "/api/auth/register", json={"username": "x", "email": "bad", "password": user.password}
    )

    logs = list(Path(stack.logs).glob("*.log"))
    assert logs
    text = "".join(log.read_text(errors="replace") for log in logs)
    assert "logging configured" in text
    for secret in secrets:
        assert secret not in text
