"""The supervisor: a dead loop is restarted with `loop_restarted`, 3 times in a sliding hour of wall time;
the next death fails (on_failed, once); older restarts leave the window; a returning loop is not restarted;
a `final` exception stops the loop without a restart; cancelling stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dtms.domain.events import CollectingSink
from dtms.guardian.supervisor import Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fenced(Exception):
    pass


def make(clock: FakeClock, failed: list[tuple[str, str]]) -> tuple[Supervisor, CollectingSink]:
    events = CollectingSink()

    async def on_failed(loop: str, error: str) -> None:
        failed.append((loop, error))

    return Supervisor(clock, events, on_failed, delay_s=0, final=(Fenced,)), events


async def test_three_restarts_then_failure() -> None:
    clock, failed = FakeClock(), []
    sup, events = make(clock, failed)
    runs = 0

    async def dying() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        raise RuntimeError(f"tick queue closed #{runs}")

    task = sup.start("engine", dying)
    assert task.get_name() == "dtms-engine"
    await asyncio.wait_for(task, 2)
    assert runs == 4  # the first run and 3 restarts
    restarted = [f for e, f in events.events if e == "loop_restarted"]
    assert [(f["loop"], f["restarts"]) for f in restarted] == [("engine", 1), ("engine", 2), ("engine", 3)]
    assert restarted[0]["error"] == "RuntimeError: tick queue closed #1"
    assert failed == [("engine", "RuntimeError: tick queue closed #4")]
    assert sup.failure == "engine: RuntimeError: tick queue closed #4"
    assert sup.running["engine"] is False
    assert len(sup.restarts("engine")) == 3


async def test_the_budget_is_a_sliding_hour_shared_by_the_loops() -> None:
    clock, failed = FakeClock(), []
    sup, events = make(clock, failed)
    deaths = {"engine": asyncio.Queue[str](), "reconcile": asyncio.Queue[str]()}

    def loop_dying_on(name: str) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            await deaths[name].get()
            raise RuntimeError(f"{name} died")

        return loop

    engine = sup.start("engine", loop_dying_on("engine"))
    reconcile = sup.start("reconcile", loop_dying_on("reconcile"))

    async def die_once(name: str) -> None:
        before = len(events.events) + len(failed)
        deaths[name].put_nowait("x")
        for _ in range(100):
            await asyncio.sleep(0)
            if len(events.events) + len(failed) > before:
                return
        raise AssertionError("no death recorded")

    await die_once("engine")  # at t=0
    clock.now += 1800
    await die_once("reconcile")  # t=30 min
    await die_once("engine")  # t=30 min
    clock.now += 1800  # t=60 min: the first restart leaves the window
    await die_once("reconcile")
    assert not failed
    assert len(sup.restarts()) == 3 and len(sup.restarts("reconcile")) == 2
    clock.now += 1  # still within the hour of the two at 30 min
    await die_once("engine")
    assert len(failed) == 1
    assert {f["loop"] for e, f in events.events if e == "loop_restarted"} == {"engine", "reconcile"}
    for task in (engine, reconcile):
        task.cancel()
    await asyncio.gather(engine, reconcile, return_exceptions=True)


async def test_a_returning_loop_and_a_final_exception_are_not_restarted() -> None:
    clock, failed = FakeClock(), []
    sup, events = make(clock, failed)
    runs = {"done": 0, "fenced": 0}

    async def done() -> None:
        runs["done"] += 1

    async def fenced() -> None:
        runs["fenced"] += 1
        raise Fenced("the fencing epoch moved on")

    await asyncio.wait_for(asyncio.gather(sup.start("lease-watch", done), sup.start("x", fenced)), 2)
    assert runs == {"done": 1, "fenced": 1}
    assert events.events == [] and failed == []


async def test_cancelling_stops_the_loop_inside() -> None:
    clock, failed = FakeClock(), []
    sup, _ = make(clock, failed)
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    task = sup.start("engine", forever)
    await asyncio.sleep(0)
    assert sup.running["engine"] is True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set() and sup.running["engine"] is False
