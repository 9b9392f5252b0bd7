"""Byte budgets (gateway.budget): refuse or queue what does not fit, give everything back, in order."""

from __future__ import annotations

import anyio
import pytest

from gateway.budget import ByteBudget, Reservation

pytestmark = pytest.mark.unit


def test_try_reserve_takes_what_fits_and_refuses_the_rest() -> None:
    budget = ByteBudget("test-try", 100)
    assert budget.try_reserve(60)
    assert not budget.try_reserve(41)
    assert budget.try_reserve(40)
    budget.release(100)
    assert budget.used == 0


def test_waiters_are_served_in_order_once_bytes_are_released() -> None:
    async def scenario() -> list[str]:
        budget = ByteBudget("test-fifo", 100)
        order: list[str] = []
        await budget.reserve(90)

        async def wait(name: str, size: int) -> None:
            await budget.reserve(size)
            order.append(name)

        async with anyio.create_task_group() as group:
            group.start_soon(wait, "big", 80)
            await anyio.sleep(0.01)
            group.start_soon(wait, "small", 5)  # would fit now, but "big" asked first
            await anyio.sleep(0.01)
            assert order == []
            budget.release(90)
        assert budget.used == 85
        return order

    assert anyio.run(scenario) == ["big", "small"]


def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_gets_its_turn() -> None:
    async def scenario() -> int:
        budget = ByteBudget("test-cancel", 100)
        await budget.reserve(100)
        async with anyio.create_task_group() as group:
            group.start_soon(budget.reserve, 70)
            await anyio.sleep(0.01)
            group.cancel_scope.cancel()
        budget.release(100)
        await budget.reserve(100)  # nothing of the cancelled 70 is left behind
        return budget.used

    assert anyio.run(scenario) == 100


def test_a_size_that_can_never_fit_is_an_error_not_a_wait() -> None:
    with pytest.raises(ValueError, match="never fit"):
        anyio.run(ByteBudget("test-huge", 10).reserve, 11)


def test_a_reservation_gives_back_all_it_took_at_once() -> None:
    budget = ByteBudget("test-reservation", 100)
    held = Reservation(budget)
    assert held.take(30)
    assert held.take(30)
    assert not held.take(50)
    assert (held.held, budget.used) == (60, 60)
    held.release()
    held.release()  # twice is harmless
    assert budget.used == 0
