"""The paper broker's file: what a restart keeps, its pragmas, its account, readers in another process."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap

import pytest

from dtms.brokers import retcodes
from dtms.brokers.paper import AccountMismatch, PaperBroker
from dtms.domain.enums import MarginMode


async def test_a_restart_keeps_positions_deals_clock_account_and_balance(
    paper_path, broker_factory, direction
):
    first = await broker_factory()
    await first.push_tick("EURUSD", 1.1, 1.1001, 5_000)
    kept = await first.open("EURUSD", direction, 0.2, None, None, "dtms:keep", 5)
    closed = await first.open("EURUSD", direction, 0.1, None, None, "", 5)
    await first.close(closed.position, None, "", 5)
    await first.push_tick("EURUSD", 1.1005, 1.1006, 6_000)
    before = (await first.account(), await first.positions(), await first.deals(), await first.tick("EURUSD"))
    await first.disconnect()

    second = await broker_factory()
    assert second.market_time_ms() == 6_000
    after = (
        await second.account(),
        await second.positions(),
        await second.deals(),
        await second.tick("EURUSD"),
    )
    assert after == before
    assert after[0].login == first.account_id == second.account_id
    assert after[0].balance != 10_000  # the closed trade's profit stayed
    assert (await second.close(closed.position, None, "", 5)).retcode == retcodes.POSITION_CLOSED
    new = await second.open("EURUSD", direction, 0.1, None, None, "", 5)
    assert new.position > max(d.ticket for d in before[2])  # the id counter continued
    assert (await second.position(kept.position)).comment == "dtms:keep"
    with pytest.raises(Exception, match="older"):
        await second.push_tick("EURUSD", 1.1, 1.1001, 5_999)


async def test_a_given_account_id_is_used_and_checked(paper_path, broker_factory):
    broker = await broker_factory(account_id="paper-acct0001")
    assert (await broker.account()).login == "paper-acct0001"
    await broker.disconnect()
    again = await broker_factory(account_id="paper-acct0001")
    assert again.account_id == "paper-acct0001"
    await again.disconnect()
    with pytest.raises(AccountMismatch):
        await broker_factory(account_id="paper-other")
    with pytest.raises(AccountMismatch):
        await broker_factory(margin_mode=MarginMode.NETTING)


async def test_the_file_uses_wal_and_the_account_defaults(paper, paper_path):
    with sqlite3.connect(paper_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        currency, balance, leverage, mode = conn.execute(
            "SELECT currency, balance, leverage, margin_mode FROM account"
        ).fetchone()
    assert (currency, balance, leverage, mode) == ("USD", 10_000.0, 100, "HEDGING")
    [(sync,), (fk,), (busy,)] = [
        row
        for row in await paper._run(
            lambda d: [
                d.book.conn.exec_driver_sql(f"PRAGMA {p}").fetchone()
                for p in ("synchronous", "foreign_keys", "busy_timeout")
            ],
            delay=False,
        )
    ]
    assert (sync, fk, busy) == (2, 1, 10_000)  # FULL, ON, 10 s


async def test_every_mutation_is_committed_before_the_answer(paper, paper_path, direction):
    result = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    with sqlite3.connect(paper_path) as conn:  # another connection sees it at once
        rows = conn.execute("SELECT ticket FROM positions").fetchall()
        clock = conn.execute("SELECT value FROM state WHERE key = 'clock_ms'").fetchone()[0]
    assert rows == [(result.position,)]
    assert clock == paper.market_time_ms()


_READER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from dtms.brokers.paper import PaperBroker

    async def main() -> None:
        broker = PaperBroker(Path(sys.argv[1]), delay_ms=(0, 0))
        await broker.connect()
        counts = []
        for _ in range(int(sys.argv[2])):
            positions = await broker.positions()
            deals = await broker.deals()
            await broker.account()
            assert len(deals) >= len(positions)
            counts.append(len(positions))
        await broker.disconnect()
        assert counts == sorted(counts)
        print(len(set(counts)))

    asyncio.run(main())
    """
)


async def test_another_process_reads_while_this_one_writes(paper, paper_path, direction):
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _READER,
        str(paper_path),
        "300",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    done = asyncio.ensure_future(reader.communicate())
    opened = 0
    while not done.done():  # keep writing for as long as the reader reads
        if opened < 500:  # 5 lots at most: within the margin
            assert (await paper.open("EURUSD", direction, 0.01, None, None, "", 1)).ok
            opened += 1
        await paper.push_tick("EURUSD", 1.1, 1.1001)
    stdout, stderr = await asyncio.wait_for(done, timeout=60)
    assert reader.returncode == 0, stderr.decode()
    assert int(stdout) > 1  # the reader saw the book grow while it was being written
    assert len(await paper.positions()) == opened


async def test_disconnect_stops_requests(paper_path, broker_factory):
    from dtms.brokers.base import BrokerUnavailable

    broker: PaperBroker = await broker_factory()
    await broker.disconnect()
    assert not broker.connected
    with pytest.raises(BrokerUnavailable):
        await broker.account()
    await broker.disconnect()  # a second disconnect is harmless


async def test_a_request_holds_the_write_lock_from_its_first_read(paper, paper_path):
    """Writes begin IMMEDIATE: a read-check-write cannot be overtaken by another process."""

    def probe(desk):
        other = sqlite3.connect(paper_path, timeout=0, isolation_level=None)
        try:
            with desk.book.write(), pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            with desk.book.read():
                other.execute("BEGIN IMMEDIATE")  # a reader does not block a writer
                other.execute("ROLLBACK")
        finally:
            other.close()

    await paper._run(probe, delay=False)
