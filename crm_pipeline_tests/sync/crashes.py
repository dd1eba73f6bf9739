"""Crashes injected into a pass: ``CrashAt`` kills it just before its n-th step.

The steps of a pass are its external calls (every HTTP request to Notion, retries included) and
its commits (every transaction of the sync state and the data it covers). A crash before an
external call falls between two of them; a crash before a commit falls between an external call
and the commit of its result (the transaction rolls back, as a kill leaves it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from notion_client import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import Actor
from crm_pipeline.sync import SyncStatus


class Crash(BaseException):
    """The process dies here: nothing below catches it, as nothing catches a kill."""


class CrashAt:
    """Counts the steps since ``arm(n)`` and crashes at the n-th; once dead, every later step (a
    concurrent write of the same pass still under way) dies too, until ``revive``. Unarmed, it
    only counts."""

    def __init__(self) -> None:
        self.n = 0
        self.steps: list[str] = []
        self.dead = False

    def arm(self, n: int) -> None:
        self.n = n
        self.steps = []

    def step(self, what: str) -> None:
        if self.dead:
            raise Crash(f"after the crash: {what}")
        self.steps.append(what)
        if len(self.steps) == self.n:
            self.dead = True
            raise Crash(f"step {self.n}: {what}")

    async def revive(self) -> None:
        """Let the concurrent work a crash left behind die at its next step, then disarm."""
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        if others:
            await asyncio.wait(others, timeout=5)
        self.dead = False
        self.n = 0


def install(monkeypatch: pytest.MonkeyPatch, crash: CrashAt) -> None:
    """Route every external call and every commit of the sync through ``crash.step``."""
    request = AsyncClient.request

    async def counted_request(self: AsyncClient, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        crash.step(f"{method} {path}")
        return await request(self, path, method, *args, **kwargs)

    transaction = SyncStatus.transaction

    @asynccontextmanager
    async def counted_transaction(self: SyncStatus, *, actor: Actor | None = None) -> AsyncIterator[AsyncConnection]:
        async with transaction(self, actor=actor) as connection:
            yield connection
            crash.step("commit")  # raising here rolls the transaction back

    monkeypatch.setattr(AsyncClient, "request", counted_request)
    monkeypatch.setattr(SyncStatus, "transaction", counted_transaction)
