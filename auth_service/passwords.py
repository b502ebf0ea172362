"""Password hashing (argon2id) with its memory bounded.

Each hash or check holds `argon2_memory_kib` of memory for its duration, so the number
running at once is bounded by `password_hashing_memory_mib`: a burst of logins cannot
take the process's memory with it. A caller that gets no slot within
`password_hashing_wait` seconds is answered UNAVAILABLE (503 with Retry-After), not
queued without end.
"""

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from auth_service.config import AuthSettings
from common.errors import Unavailable

T = TypeVar("T")

BUSY = "too many password checks at once; retry shortly"


class Passwords:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        budget_kib = settings.password_hashing_memory_mib * 1024
        self.slots = max(1, budget_kib // settings.argon2_memory_kib)
        self._free = asyncio.Semaphore(self.slots)
        self._wait = settings.password_hashing_wait
        self._threads = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="argon2")
        # Checked against when the user does not exist, so both failures cost the same.
        self.unknown_user_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._in_slot(self._hasher.hash, password)

    async def matches(self, password_hash: str, password: str) -> bool:
        return await self._in_slot(self._matches, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _in_slot(self, work: Callable[..., T], *args: str) -> T:
        try:
            async with asyncio.timeout(self._wait):
                await self._free.acquire()
        except TimeoutError:
            raise Unavailable(BUSY) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
        finally:
            self._free.release()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
