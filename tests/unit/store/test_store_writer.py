"""The group-commit writer: answers after commit, per-item savepoints, batching under concurrency."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from functools import partial

import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from dtms.store.meta import get_meta, set_meta
from dtms.store.schema import meta
from dtms.store.writer import GroupWriter, WriterClosed


def _read_meta(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return get_meta(conn, key)


def _blocker(writer: GroupWriter) -> tuple[threading.Event, threading.Event, Future[None]]:
    """Occupy the writer thread until the returned `release` event is set."""
    started, release = threading.Event(), threading.Event()

    def hold(_conn: Connection) -> None:
        started.set()
        assert release.wait(10)

    future = writer.submit(hold)
    assert started.wait(10)
    return started, release, future


def test_future_resolves_only_after_commit(engine: Engine, writer: GroupWriter) -> None:
    _, release, _blocked = _blocker(writer)
    seen_at_resolution: list[str | None] = []
    called = threading.Event()

    def on_done(_future: Future[None]) -> None:
        # Runs in the writer thread the moment the future resolves: a new connection must see the row.
        seen_at_resolution.append(_read_meta(engine, "answer"))
        called.set()

    future = writer.submit(lambda conn: set_meta(conn, "answer", "42"))
    future.add_done_callback(on_done)
    release.set()
    future.result(10)
    assert called.wait(10)
    assert seen_at_resolution == ["42"]


def test_run_sync_and_async_run_return_values(engine: Engine, writer: GroupWriter) -> None:
    def write_and_answer(conn: Connection) -> int:
        set_meta(conn, "a", "1")
        return 7

    assert writer.run_sync(write_and_answer, timeout=10) == 7

    async def main() -> str | None:
        await writer.run(lambda conn: set_meta(conn, "b", "2"))
        return await asyncio.to_thread(_read_meta, engine, "b")

    assert asyncio.run(main()) == "2"


def test_failing_item_does_not_affect_its_batch(engine: Engine, writer: GroupWriter) -> None:
    _, release, blocked = _blocker(writer)

    def fails(conn: Connection) -> None:
        set_meta(conn, "bad", "x")
        raise ValueError("boom")

    def duplicate(conn: Connection) -> None:
        conn.execute(meta.insert().values(key="good1", value="again"))  # IntegrityError on the PK

    futures: list[Future[None]] = [
        writer.submit(lambda conn: set_meta(conn, "good1", "1")),
        writer.submit(fails),
        writer.submit(duplicate),
        writer.submit(lambda conn: set_meta(conn, "good2", "2")),
    ]
    release.set()
    blocked.result(10)
    futures[0].result(10)
    futures[3].result(10)
    with pytest.raises(ValueError, match="boom"):
        futures[1].result(10)
    with pytest.raises(IntegrityError):
        futures[2].result(10)
    assert writer.commits == 2  # the blocker's commit, then one shared by the four queued items
    assert _read_meta(engine, "good1") == "1"
    assert _read_meta(engine, "good2") == "2"
    assert _read_meta(engine, "bad") is None


# SQLite only: its deferred foreign-key check makes the COMMIT itself fail
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_failed_commit_fails_every_future_and_writer_recovers(engine: Engine, writer: GroupWriter) -> None:
    _, release, blocked = _blocker(writer)

    def orphan(conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        conn.exec_driver_sql(
            "INSERT INTO registry (ticket, managed_by, breakeven_triggered, adopted) VALUES (999, 'x', 0, 0)"
        )

    futures = [writer.submit(lambda conn: set_meta(conn, "k", "v")), writer.submit(orphan)]
    release.set()
    blocked.result(10)
    for future in futures:
        with pytest.raises(IntegrityError):
            future.result(10)
    assert _read_meta(engine, "k") is None
    writer.run_sync(lambda conn: set_meta(conn, "after", "ok"), timeout=10)
    assert _read_meta(engine, "after") == "ok"


def test_concurrent_submits_are_group_committed(engine: Engine, writer: GroupWriter) -> None:
    per_thread, threads = 25, 8
    futures: list[Future[None]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def producer(t: int) -> None:
        start.wait()
        mine = [writer.submit(partial(set_meta, key=f"k{t}-{i}", value="v")) for i in range(per_thread)]
        with lock:
            futures.extend(mine)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    for future in futures:
        future.result(30)
    assert len(futures) == per_thread * threads == 200
    assert writer.items >= 200
    assert writer.commits < writer.items
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(meta)).scalar_one() == 200


def test_close_drains_queue_then_refuses(engine: Engine) -> None:
    writer = GroupWriter(engine, max_batch=4)
    futures = [writer.submit(partial(set_meta, key=f"d{i}", value=str(i))) for i in range(20)]
    writer.close(timeout=10)
    assert [f.result(0) for f in futures] == [None] * 20
    assert writer.items == 20
    with pytest.raises(WriterClosed):
        writer.submit(lambda conn: None)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM meta")).scalar_one() == 20


def test_submit_from_inside_a_callback_is_refused(writer: GroupWriter) -> None:
    def nested(_conn: Connection) -> None:
        writer.submit(lambda conn: None)

    with pytest.raises(RuntimeError, match="deadlock"):
        writer.run_sync(nested, timeout=10)
