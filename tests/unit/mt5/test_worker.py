"""The MT5 worker thread: priority order, a timeout on every call, calls dropped when their caller gave
up before they started, and a heartbeat that shows a stuck call."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator

import pytest

from dtms.brokers.mt5.worker import CallTimeout, Priority, Worker


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker(0.5, beat_s=0.05)
    w.start()
    yield w
    w.stop()


async def blocked(worker: Worker) -> tuple[threading.Event, asyncio.Task[None]]:
    """Occupy the worker until the returned event is set."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(5)

    task = asyncio.create_task(worker.run(hold, Priority.READ, "hold", timeout=5))
    while not started.is_set():
        await asyncio.sleep(0.005)
    return gate, task


async def test_orders_run_before_reads_before_polls(worker: Worker) -> None:
    gate, holder = await blocked(worker)
    ran: list[str] = []
    calls = [
        *(worker.run(functools.partial(ran.append, f"poll{i}"), Priority.POLL, "poll") for i in range(20)),
        worker.run(lambda: ran.append("read"), Priority.READ, "read"),
        worker.run(lambda: ran.append("order"), Priority.ORDER, "order"),
    ]
    tasks = [asyncio.create_task(c) for c in calls]
    await asyncio.sleep(0.05)  # all queued behind the held call
    gate.set()
    await asyncio.gather(holder, *tasks)
    assert ran[:2] == ["order", "read"]
    assert ran[2:] == [f"poll{i}" for i in range(20)]  # equal priorities keep their order


async def test_a_call_past_the_timeout_raises_and_the_worker_recovers(worker: Worker) -> None:
    release = threading.Event()
    with pytest.raises(CallTimeout) as caught:
        await worker.run(lambda: release.wait(2), Priority.ORDER, "order_send", timeout=0.1)
    assert caught.value.started and "may still complete" in str(caught.value)
    status = worker.status()
    assert status.current == "order_send" and status.busy_s > 0.05
    release.set()
    assert await worker.run(lambda: 42, Priority.READ, "after") == 42
    assert not worker.status().stuck


async def test_a_call_that_never_started_is_dropped(worker: Worker) -> None:
    gate, holder = await blocked(worker)
    ran: list[str] = []
    with pytest.raises(CallTimeout) as caught:
        await worker.run(lambda: ran.append("late order"), Priority.ORDER, "order_send", timeout=0.05)
    assert not caught.value.started and "never started" in str(caught.value)
    gate.set()
    await holder
    await worker.run(lambda: None, Priority.POLL, "flush")
    assert ran == []  # never run after its caller gave up


async def test_heartbeat_shows_a_stuck_worker(worker: Worker) -> None:
    release = threading.Event()
    task = asyncio.create_task(worker.run(lambda: release.wait(2), Priority.READ, "positions_get", timeout=3))
    await asyncio.sleep(0.7)  # past the worker's 0.5 s timeout
    status = worker.status()
    assert status.alive and status.stuck and status.current == "positions_get"
    assert status.beat_age_s >= 0.5  # the loop has not beaten while stuck
    release.set()
    await task
    await asyncio.sleep(0.1)
    status = worker.status()
    assert not status.stuck and status.current is None and status.beat_age_s < 0.5


async def test_exceptions_reach_the_caller(worker: Worker) -> None:
    def boom() -> None:
        raise ValueError("terminal said no")

    with pytest.raises(ValueError, match="terminal said no"):
        await worker.run(boom, Priority.READ, "boom")
    assert await worker.run(lambda: "alive", Priority.READ, "after")


async def test_run_needs_a_started_worker() -> None:
    with pytest.raises(RuntimeError):
        await Worker(1.0).run(lambda: None, Priority.READ, "x")
    with pytest.raises(ValueError):
        Worker(0)
