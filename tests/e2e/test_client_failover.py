"""A client with two URLs against a leader and a standby of one account: it moves from the standby to
the leader, stays there, and when the leader dies its registrations wait in the outbox and reach the
standby once that has taken over."""

from __future__ import annotations

from pathlib import Path

from dtms.client import DTMSClient, RegistrationStatus
from tests.e2e.server import wait_until
from tests.e2e.test_client_harness import answered, logged_server, market, open_position
from tests.e2e.test_client_outbox import fast

Status = RegistrationStatus


def test_a_client_with_two_urls_moves_from_the_standby_to_the_leader(tmp_path: Path) -> None:
    home = tmp_path / "home"
    leader = logged_server(home).start()
    standby = logged_server(home)
    try:
        leader.wait_ready()
        standby.start().wait_role("standby")
        market(leader)
        tickets = [open_position(leader, side) for side in ("BUY", "SELL", "BUY")]
        settings = fast(leader, urls=(standby.url, leader.url), outbox_path=tmp_path / "bot" / "outbox.db")
        with DTMSClient(settings=settings) as dtms:
            first = dtms.register_trade(tickets[0], "EURUSD", "BUY")
            assert first.status is Status.REGISTERED
            assert dtms.current_url == leader.url
            assert [(a["ticket"], a["status"], a["error"]) for a in answered(home, standby.port)] == [
                (tickets[0], 503, "not_leader")
            ]
            second = dtms.register_trade(tickets[1], "EURUSD", "SELL")
            assert second.status is Status.REGISTERED
            assert len(answered(home, standby.port)) == 1  # straight to the leader now

            leader.kill()
            third = dtms.register_trade(tickets[2], "EURUSD", "BUY")
            assert third.status in (Status.QUEUED, Status.REGISTERED)  # QUEUED unless the takeover was quick
            standby.wait_ready(20)
            outbox = dtms.outbox
            assert outbox is not None
            wait_until(lambda: outbox.pending_count() == 0, 30)
            assert dtms.current_url == standby.url
            assert dtms.get_trade(tickets[2])["trade_info"]["ticket"] == tickets[2]

        taken = [(a["ticket"], a["port"]) for a in answered(home) if a["status"] == 200]
        assert taken == [(tickets[0], leader.port), (tickets[1], leader.port), (tickets[2], standby.port)]
        assert not any(a["already_registered"] for a in answered(home) if a["status"] == 200)
    finally:
        leader.kill()
        standby.kill()
