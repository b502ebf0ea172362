"""Sync tokens and cursors read back only for the user they were issued to, unaltered
and within their lifetime; anything else is Gone (410)."""

import base64
import time
import uuid

import pytest

from event_service.sync import TOKEN_LIFETIME, Gone, SyncTokens, _Position, snapshot_horizon

TOKENS = SyncTokens(b"a service key")
USER = uuid.uuid4()


def test_a_token_reads_back_its_horizon() -> None:
    assert TOKENS.horizon_of(TOKENS.token(USER, 123_456), USER) == 123_456


def test_a_cursor_reads_back_its_position() -> None:
    position = _Position(42, "40:50:41,43", (47, uuid.uuid4()))
    assert TOKENS.position_of(TOKENS.cursor(USER, position), USER) == position


def test_another_users_token_is_gone() -> None:
    with pytest.raises(Gone):
        TOKENS.horizon_of(TOKENS.token(USER, 1), uuid.uuid4())


def test_a_token_signed_with_another_key_is_gone() -> None:
    with pytest.raises(Gone):
        TOKENS.horizon_of(SyncTokens(b"another key").token(USER, 1), USER)


def test_a_cursor_is_not_a_token_and_a_token_not_a_cursor() -> None:
    cursor = TOKENS.cursor(USER, _Position(1, "1:1:", (1, uuid.uuid4())))
    with pytest.raises(Gone):
        TOKENS.horizon_of(cursor, USER)
    with pytest.raises(Gone):
        TOKENS.position_of(TOKENS.token(USER, 1), USER)


def test_an_altered_token_is_gone() -> None:
    raw = bytearray(base64.urlsafe_b64decode(TOKENS.token(USER, 1) + "=="))
    raw[-20] ^= 1  # the horizon's last byte
    altered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(Gone):
        TOKENS.horizon_of(altered, USER)


@pytest.mark.parametrize("text", ["", "x", "!!!!", "A" * 80, "é"])
def test_garbage_is_gone(text: str) -> None:
    with pytest.raises(Gone):
        TOKENS.horizon_of(text, USER)


def test_an_expired_token_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    token = TOKENS.token(USER, 1)
    later = time.time() + TOKEN_LIFETIME.total_seconds() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Gone):
        TOKENS.horizon_of(token, USER)


def test_a_snapshots_horizon_is_its_xmin() -> None:
    assert snapshot_horizon("780:790:781,785") == 780
