"""Group commit for high-rate events: many concurrent writers, one transaction per batch.

Every tool call of every agent produces hook events. Writing each in its own
transaction would cap ingest at the disk's commit rate, so ``EventWriter`` queues them
and one task (``run()``, owned by the daemon's TaskGroup) stores whatever has gathered
in one ``store.add_events`` call. A writer still gets its event's id only once the event
is committed, so an HTTP answer never claims more than the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from farmbot.errors import StorageError
from farmbot.models import NewEvent
from farmbot.storage.base import Store

log = logging.getLogger(__name__)

_Waiter = tuple[NewEvent, asyncio.Future[int]]


class EventWriter:
    """Stores events in batches of up to ``max_batch``, gathered for up to ``max_delay`` s."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        *,
        max_batch: int = 500,
        max_delay: float = 0.005,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._store = store
        self._clock = clock
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: deque[_Waiter] = deque()
        self._queued = asyncio.Event()  # something is in the queue (or close() was called)
        self._full = asyncio.Event()  # a whole batch is waiting: stop gathering
        self._stopped = asyncio.Event()
        self._running = False
        self._closing = False
        self.written = 0
        self.batches = 0
        self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<EventWriter written={self.written} batches={self.batches} "
            f"failed={self.failed} queued={len(self._queue)}>"
        )

    async def write(self, event: NewEvent) -> int:
        """Queue ``event``; return its id once its batch is committed.

        Raises the batch's ``StorageError`` when storing it failed.
        """
        if self._closing:
            raise StorageError("the event writer is closed; event not stored")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._queued.set()
        if len(self._queue) >= self._max_batch:
            self._full.set()
        return await future

    async def run(self) -> None:
        """Commit queued events batch by batch until ``close()``."""
        if self._running:
            raise RuntimeError(f"{self!r} is already running")
        self._running = True
        try:
            while True:
                await self._queued.wait()
                if self._queue and not self._closing and not self._full.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._max_delay):
                            await self._full.wait()
                await self._commit_batch()
                if len(self._queue) < self._max_batch:
                    self._full.clear()
                if not self._queue:
                    self._queued.clear()
                    if self._closing:
                        return
        finally:
            self._running = False
            self._stopped.set()
            self._abandon(StorageError("the event writer stopped; event not stored"))

    async def close(self) -> None:
        """Commit what is queued, refuse new writes, and let ``run()`` return."""
        self._closing = True
        self._queued.set()
        self._full.set()  # stop gathering now
        if self._running:
            await self._stopped.wait()
        else:  # run() never started (or already ended): commit here
            while self._queue:
                await self._commit_batch()

    async def _commit_batch(self) -> None:
        count = min(len(self._queue), self._max_batch)
        if not count:
            return
        batch = [self._queue.popleft() for _ in range(count)]
        try:
            ids = await self._store.add_events([event for event, _ in batch], self._clock())
        except StorageError as exc:
            self.failed += count
            log.error("%d events not stored: %s", count, exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            # A bug or cancellation: nobody may wait forever for this batch.
            for _, future in batch:
                future.cancel()
            raise
        self.written += count
        self.batches += 1
        for (_, future), event_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(event_id)

    def _abandon(self, exc: StorageError) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(exc)
