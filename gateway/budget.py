"""Byte budgets: memory and disk that work in flight may reserve, so caps hold at full concurrency.

The gateway has three (gateway.main creates them; the README's settings table gives the formula):
`memory` (request bodies, their parsed forms and fetched images; admission refuses what does not fit),
`decode` (image decodes, estimated from each header; decodes wait for room in order) and `tmp` (multipart
uploads spooled to /tmp). All run on the event loop's thread, so a check and its update need no lock.
"""

from __future__ import annotations

from collections import deque

import anyio

from gateway import metrics


class ByteBudget:
    """`capacity` bytes; `try_reserve` takes bytes now or refuses, `reserve` waits its turn (FIFO)."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, anyio.Event]] = deque()
        metrics.BUDGET_BYTES.labels(budget=name).set(capacity)
        self._gauge = metrics.BUDGET_USED_BYTES.labels(budget=name)
        self._gauge.set(0)

    def fits(self, size: int) -> bool:
        return self.used + size <= self.capacity

    def try_reserve(self, size: int) -> bool:
        if not self.fits(size):
            return False
        self._add(size)
        return True

    async def reserve(self, size: int) -> None:
        """Waits until `size` bytes are free, after everyone who asked before. `size` must fit at all."""
        if size > self.capacity:
            raise ValueError(f"{size} bytes never fit the {self.name} budget of {self.capacity}")
        if not self._waiters and self.try_reserve(size):
            return
        granted = anyio.Event()
        entry = (size, granted)
        self._waiters.append(entry)
        try:
            await granted.wait()
        except BaseException:
            # Cancelled (its client went away): give back what was granted meanwhile, or leave the queue.
            if granted.is_set():
                self.release(size)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, size: int) -> None:
        self._add(-size)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.fits(self._waiters[0][0]):
            size, granted = self._waiters.popleft()
            self._add(size)
            granted.set()

    def _add(self, size: int) -> None:
        self.used += size
        self._gauge.set(self.used)


class Reservation:
    """What one request holds of a budget; `release()` at its end gives everything back at once."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> bool:
        if not self.budget.try_reserve(size):
            return False
        self.held += size
        return True

    def release(self) -> None:
        if self.held:
            self.budget.release(self.held)
            self.held = 0
