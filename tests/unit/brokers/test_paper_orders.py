"""Paper broker requests by MT5's rules: open, modify_stops, close, volumes, tickets, freeze level."""

from __future__ import annotations

import asyncio

import pytest

from dtms.brokers import retcodes
from dtms.brokers.paper import PaperBroker, build_symbols
from dtms.domain.enums import DealEntry, DealReason, Direction, Outcome


async def test_open_fills_at_the_right_quote_and_tags_comment_and_magic(paper, market, direction):
    result = await paper.open("EURUSD", direction, 0.1, None, None, "dtms:open-1", 4242)

    assert result.retcode == retcodes.DONE and result.outcome is Outcome.DONE
    assert result.price == market.fill_of(direction)
    assert result.volume == 0.1
    assert result.order == result.position
    position = await paper.position(result.position)
    assert position is not None
    assert position.ticket == position.identifier == result.position
    assert position.direction is direction
    assert position.price_open == market.fill_of(direction)
    assert position.price_current == market.trigger_of(direction)
    assert position.sl is None and position.tp is None
    assert (position.comment, position.magic) == ("dtms:open-1", 4242)
    assert position.time_ms == market.t0
    [deal] = await paper.deals(position=result.position)
    assert deal.ticket == result.deal and deal.order == result.order
    assert (deal.entry, deal.reason, deal.direction) == (DealEntry.IN, DealReason.EXPERT, direction)
    assert (deal.comment, deal.magic, deal.price) == ("dtms:open-1", 4242, market.fill_of(direction))


async def test_open_keeps_31_characters_of_the_comment_as_mt5(paper, direction):
    result = await paper.open("EURUSD", direction, 0.1, None, None, "x" * 40, 1)
    position = await paper.position(result.position)
    assert position.comment == "x" * 31


async def test_open_with_stops_is_checked_against_the_closing_quote(paper, market, direction):
    trigger = market.trigger_of(direction)
    sl_ok = market.away(trigger, 10, direction, loss_side=True)
    tp_ok = market.away(trigger, 10, direction, loss_side=False)
    ok = await paper.open("EURUSD", direction, 0.1, sl_ok, tp_ok, "", 1)
    assert ok.retcode == retcodes.DONE
    position = await paper.position(ok.position)
    assert (position.sl, position.tp) == (sl_ok, tp_ok)

    too_close = market.away(trigger, 9, direction, loss_side=True)
    bad = await paper.open("EURUSD", direction, 0.1, too_close, None, "", 1)
    assert bad.retcode == retcodes.INVALID_STOPS and bad.outcome is Outcome.FIX_AND_RETRY
    assert len(await paper.positions()) == 1


async def test_open_without_a_quote_is_no_quotes(paper):
    result = await paper.open("GBPUSD", Direction.BUY, 0.1, None, None, "", 1)
    assert result.retcode == retcodes.PRICE_OFF and result.outcome is Outcome.WAIT


async def test_open_unknown_symbol_is_invalid(paper):
    result = await paper.open("NOPE", Direction.BUY, 0.1, None, None, "", 1)
    assert result.retcode == retcodes.INVALID and result.outcome is Outcome.REJECTED


@pytest.mark.parametrize("volume", [0.015, 0.0, -0.1, 0.001, 100.01, 250.0])
async def test_open_volume_off_the_step_or_outside_limits_is_invalid_volume(paper, direction, volume):
    result = await paper.open("EURUSD", direction, volume, None, None, "", 1)
    assert result.retcode == retcodes.INVALID_VOLUME and result.outcome is Outcome.FIX_AND_RETRY
    assert await paper.positions() == []


async def test_open_beyond_free_margin_is_no_money(paper, direction):
    # 10 lots of EURUSD at 1.1 with leverage 100 need 11 000 of margin; the balance is 10 000.
    result = await paper.open("EURUSD", direction, 10.0, None, None, "", 1)
    assert result.retcode == retcodes.NO_MONEY and result.outcome is Outcome.REJECTED


async def test_prices_are_rounded_to_the_tick_size(paper, market, direction):
    trigger = market.trigger_of(direction)
    sl = market.away(trigger, 20, direction, loss_side=True) - direction.sign * 0.0000012
    result = await paper.open("EURUSD", direction, 0.1, sl, None, "", 1)
    position = await paper.position(result.position)
    assert position.sl == market.away(trigger, 20, direction, loss_side=True)


# -- modify_stops -----------------------------------------------------------------------------


async def test_modify_accepts_exactly_the_stops_level_and_refuses_one_point_closer(paper, market, direction):
    ticket = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    trigger = market.trigger_of(direction)

    closer_sl = market.away(trigger, 9, direction, loss_side=True)
    result = await paper.modify_stops(ticket, closer_sl, None)
    assert result.retcode == retcodes.INVALID_STOPS and result.outcome is Outcome.FIX_AND_RETRY
    closer_tp = market.away(trigger, 9, direction, loss_side=False)
    assert (await paper.modify_stops(ticket, None, closer_tp)).retcode == retcodes.INVALID_STOPS

    sl = market.away(trigger, 10, direction, loss_side=True)
    tp = market.away(trigger, 10, direction, loss_side=False)
    result = await paper.modify_stops(ticket, sl, tp)
    assert result.retcode == retcodes.DONE and result.position == ticket
    assert result.order is None and result.deal is None  # a stop change leaves no order or deal
    position = await paper.position(ticket)
    assert (position.sl, position.tp) == (sl, tp)


async def test_modify_with_levels_on_the_wrong_side_is_invalid_stops(paper, market, direction):
    ticket = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    trigger = market.trigger_of(direction)
    sl_in_profit = market.away(trigger, 50, direction, loss_side=False)
    tp_in_loss = market.away(trigger, 50, direction, loss_side=True)
    assert (await paper.modify_stops(ticket, sl_in_profit, None)).retcode == retcodes.INVALID_STOPS
    assert (await paper.modify_stops(ticket, None, tp_in_loss)).retcode == retcodes.INVALID_STOPS
    position = await paper.position(ticket)
    assert (position.sl, position.tp) == (None, None)


async def test_modify_to_the_same_values_is_no_changes(paper, market, direction):
    trigger = market.trigger_of(direction)
    sl = market.away(trigger, 30, direction, loss_side=True)
    tp = market.away(trigger, 30, direction, loss_side=False)
    ticket = (await paper.open("EURUSD", direction, 0.1, sl, tp, "", 1)).position
    result = await paper.modify_stops(ticket, sl, tp)
    assert result.retcode == retcodes.NO_CHANGES and result.outcome is Outcome.DONE
    none = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    assert (await paper.modify_stops(none, None, None)).retcode == retcodes.NO_CHANGES


async def test_modify_sets_both_levels_and_none_clears(paper, market, direction):
    trigger = market.trigger_of(direction)
    sl = market.away(trigger, 30, direction, loss_side=True)
    tp = market.away(trigger, 30, direction, loss_side=False)
    ticket = (await paper.open("EURUSD", direction, 0.1, sl, tp, "", 1)).position
    new_sl = market.away(trigger, 20, direction, loss_side=True)
    assert (await paper.modify_stops(ticket, new_sl, None)).retcode == retcodes.DONE
    position = await paper.position(ticket)
    assert (position.sl, position.tp) == (new_sl, None)  # an omitted TP means "no TP"


async def test_modify_unknown_ticket_is_invalid_and_closed_ticket_is_gone(paper, direction):
    assert (await paper.modify_stops(999_999, None, None)).retcode == retcodes.INVALID
    ticket = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    assert (await paper.close(ticket, None, "", 1)).retcode == retcodes.DONE
    result = await paper.modify_stops(ticket, None, None)
    assert result.retcode == retcodes.POSITION_CLOSED and result.outcome is Outcome.GONE


# -- close --------------------------------------------------------------------------------------


async def test_close_fills_at_the_closing_quote_with_profit(paper, market, direction):
    ticket = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    await market.trigger(
        direction, market.away(market.trigger_of(direction), 100, direction, loss_side=False)
    )
    position = await paper.position(ticket)
    result = await paper.close(ticket, None, "dtms:close-1", 77)
    assert result.retcode == retcodes.DONE
    assert result.price == position.price_current and result.volume == 0.1
    assert await paper.position(ticket) is None
    out = [d for d in await paper.deals(position=ticket) if d.entry is DealEntry.OUT]
    assert len(out) == 1 and out[0].ticket == result.deal
    assert (out[0].reason, out[0].comment, out[0].magic) == (DealReason.EXPERT, "dtms:close-1", 77)
    assert out[0].direction is direction.opposite
    assert out[0].profit == pytest.approx(9.0)  # 90 points (100 - 10 of spread) x 0.1 lot x 100 000
    account = await paper.account()
    assert account.balance == pytest.approx(10_009.0) == account.equity


async def test_valid_partial_close_keeps_the_identifier_and_reduces_the_volume(paper, direction):
    ticket = (await paper.open("EURUSD", direction, 0.3, None, None, "", 1)).position
    result = await paper.close(ticket, 0.1, "", 1)
    assert result.retcode == retcodes.DONE and result.volume == 0.1 and result.position == ticket
    position = await paper.position(ticket)
    assert position.identifier == ticket and position.volume == pytest.approx(0.2)


async def test_partial_close_leaving_less_than_volume_min_is_invalid_volume(
    paper_path, broker_factory, direction
):
    symbols = build_symbols({"EURUSD": {"volume_min": 0.1}})
    broker = await broker_factory(paper_path, symbols=symbols)
    await broker.push_tick("EURUSD", 1.1, 1.1001, 1)
    ticket = (await broker.open("EURUSD", direction, 0.25, None, None, "", 1)).position
    bad = await broker.close(ticket, 0.2, "", 1)  # would leave 0.05 < 0.1
    assert bad.retcode == retcodes.INVALID_VOLUME and bad.outcome is Outcome.FIX_AND_RETRY
    assert (await broker.position(ticket)).volume == pytest.approx(0.25)
    below_min = await broker.close(ticket, 0.05, "", 1)  # the close itself is below the minimum
    assert below_min.retcode == retcodes.INVALID_VOLUME
    assert (await broker.close(ticket, 0.1, "", 1)).retcode == retcodes.DONE  # leaves 0.15
    assert (await broker.position(ticket)).volume == pytest.approx(0.15)


@pytest.mark.parametrize("volume", [0.015, 0.4, 0.0])
async def test_close_volume_off_the_step_or_above_the_position_is_invalid_volume(paper, direction, volume):
    ticket = (await paper.open("EURUSD", direction, 0.3, None, None, "", 1)).position
    assert (await paper.close(ticket, volume, "", 1)).retcode == retcodes.INVALID_VOLUME
    assert (await paper.position(ticket)).volume == pytest.approx(0.3)


async def test_close_unknown_ticket_is_invalid_and_closed_ticket_is_gone(paper, direction):
    assert (await paper.close(424242, None, "", 1)).retcode == retcodes.INVALID
    ticket = (await paper.open("EURUSD", direction, 0.1, None, None, "", 1)).position
    assert (await paper.close(ticket, None, "", 1)).retcode == retcodes.DONE
    again = await paper.close(ticket, None, "", 1)
    assert again.retcode == retcodes.POSITION_CLOSED and again.outcome is Outcome.GONE


async def test_freeze_level_blocks_modify_and_close_near_a_level(paper_path, broker_factory, direction):
    symbols = build_symbols({"EURUSD": {"freeze_level": 5}})
    broker = await broker_factory(paper_path, symbols=symbols)
    bid, ask = 1.10000, 1.10010
    await broker.push_tick("EURUSD", bid, ask, 1)
    trigger = bid if direction is Direction.BUY else ask
    sl = round(trigger - direction.sign * 0.0001, 5)  # 10 points: the stops level
    ticket = (await broker.open("EURUSD", direction, 0.1, sl, None, "", 1)).position

    near = round(sl + direction.sign * 0.00004, 5)  # 4 points from the SL: frozen
    await broker.push_tick(
        "EURUSD", *((near, near + 0.0001) if direction is Direction.BUY else (near - 0.0001, near)), 2
    )
    frozen = await broker.close(ticket, None, "", 1)
    assert frozen.retcode == retcodes.FROZEN and frozen.outcome is Outcome.WAIT
    assert (await broker.modify_stops(ticket, None, None)).retcode == retcodes.FROZEN

    edge = round(sl + direction.sign * 0.00005, 5)  # exactly 5 points: still frozen (MT5 needs > 5)
    await broker.push_tick(
        "EURUSD", *((edge, edge + 0.0001) if direction is Direction.BUY else (edge - 0.0001, edge)), 3
    )
    assert (await broker.close(ticket, None, "", 1)).retcode == retcodes.FROZEN

    clear = round(sl + direction.sign * 0.00006, 5)  # 6 points: outside the freeze level
    await broker.push_tick(
        "EURUSD", *((clear, clear + 0.0001) if direction is Direction.BUY else (clear - 0.0001, clear)), 4
    )
    assert (await broker.close(ticket, None, "", 1)).retcode == retcodes.DONE


async def test_concurrent_requests_are_serialized(paper, direction):
    results = await asyncio.gather(
        *(paper.open("EURUSD", direction, 0.01, None, None, f"c{i}", i) for i in range(20))
    )
    assert all(r.retcode == retcodes.DONE for r in results)
    tickets = {r.position for r in results}
    assert len(tickets) == 20
    assert len(await paper.positions()) == 20


async def test_account_reports_equity_and_margin(paper, market, direction):
    await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    account = await paper.account()
    assert account.login.startswith("paper-") and len(account.login) == len("paper-") + 8
    assert account.currency == "USD" and account.trade_allowed
    assert account.equity == pytest.approx(10_000.0 - 1.0)  # the spread: 10 points on 0.1 lot
    assert account.margin == pytest.approx(0.1 * 100_000 * market.trigger_of(direction) / 100, abs=0.01)
    assert account.margin_free == pytest.approx(account.equity - account.margin)


async def test_requests_before_connect_are_unavailable(paper_path):
    from dtms.brokers.base import BrokerUnavailable

    broker = PaperBroker(paper_path, delay_ms=(0, 0))
    with pytest.raises(BrokerUnavailable):
        await broker.positions()
    assert not paper_path.exists()  # the constructor does not touch the file
