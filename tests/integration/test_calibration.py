"""`dtms calibrate --quick` end to end (the real engine, reconciliation and two paper brokers on the
shipped EURUSD H1 data): the report's structure, and its accounting checked against the raw deals; the
defensive ATR timeframes seam that puts R's floor and stop distances on H1 for such a replay; and the
overlay's intelligent-exit timeframes."""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

import dtms.calibrate
from dtms.brokers.paper.symbols import DEFAULT_SYMBOLS
from dtms.calibration.report import LIVE_STATES, deal_money
from dtms.calibration.run import END_COMMENT, Plan, Side
from dtms.calibration.setup import OverlayError, Settings, load_settings
from dtms.calibration.sides import Run
from dtms.cli import app
from dtms.config import load_config
from dtms.domain.broker_types import Tick
from dtms.domain.enums import (
    DealEntry,
    Direction,
    JournalStatus,
    MarginMode,
    Timeframe,
    TradeState,
    TradeType,
)
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Intent, Trade
from dtms.guardian.defence import Defence, Frames
from dtms.guardian.executor import Executed
from dtms.managers.fsm import Trigger, step
from tests.integration.test_defensive_scenarios import T0, bars


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, dict[str, Any], Run]]:
    """One `dtms calibrate --quick --json` through the CLI, keeping the raw run it reported on."""
    runs: list[Run] = []
    real = dtms.calibrate.calibrate

    async def spy(plan: Plan, settings: Settings) -> Run:
        runs.append(await real(plan, settings))
        return runs[-1]

    out = tmp_path_factory.mktemp("calibration") / "report.json"
    logging_config, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dtms.calibrate, "calibrate", spy)
            result = CliRunner().invoke(app, ["calibrate", "--quick", "--json", str(out)])
    finally:  # the command set up logging to the runner's captured stderr, closed by now
        structlog.configure(**logging_config)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    yield result.exit_code, result.output, json.loads(out.read_text()), runs[0]


def test_the_report_has_every_part(quick: tuple[Any, str, dict[str, Any], Run]) -> None:
    code, text, report, _ = quick
    for part in ("replay_h1.json", "signals on H1", "share of trade-time", "Actions done", "with DTMS"):
        assert part in text
    assert "intelligent exits' trailing H1 and widening H1" in text
    for part in ("without DTMS", "worst trade", "max drawdown", "Accounting", "Targets"):
        assert part in text
    assert all(state.value in text for state in LIVE_STATES)
    assert "2017-01-01" in text and "2017-02-28" in text  # the first two months only
    assert set(report["targets"]) == {"healthy_share_ge_60", "hedged_share_le_5", "worst_trade_not_worse"}
    assert code == (0 if all(report["targets"].values()) else 1)
    for side in ("with_dtms", "without_dtms"):
        assert {"pnl", "worst_trade", "max_drawdown", "deals_sum", "balance_change"} <= set(report[side])


def _per_trade(side: Side, tickets: list[int]) -> dict[int, float]:
    """Each trade's money, its hedges (tagged DTMS_H<ticket>_) counted with it."""
    owner = {t: t for t in tickets}
    for deal in side.deals:
        if deal.comment.startswith("DTMS_H"):
            owner[deal.position_id] = int(deal.comment[6:].split("_")[0])
    money: dict[int, float] = defaultdict(float)
    for deal in side.deals:
        money[owner[deal.position_id]] += deal_money(deal)
    return money


def test_the_accounting_adds_up(quick: tuple[Any, str, dict[str, Any], Run]) -> None:
    _, _, report, run = quick
    assert report["trades"] == len(run.dtms.opened) == len(run.baseline.opened) > 100
    assert report["refused"] == 0
    for key, side in (("with_dtms", run.dtms), ("without_dtms", run.baseline)):
        deals = round(sum(deal_money(d) for d in side.deals), 2)
        money = _per_trade(side, [o.ticket for o in side.opened])
        assert report[key]["pnl"] == report[key]["deals_sum"] == deals
        assert report[key]["balance_change"] == round(side.balance - side.start_balance, 2) == deals
        assert round(sum(money.values()), 2) == deals
        assert report[key]["worst_trade"] == round(min(money.values()), 2)
        assert report[key]["max_drawdown"] >= 0
    outs = [d for d in run.baseline.deals if d.entry is DealEntry.OUT]
    assert len(outs) == len(run.baseline.opened)  # alone, a trade ends once: at its SL, TP or the end
    assert all(d.reason.value in ("sl", "tp") or d.comment == END_COMMENT for d in outs)
    for shares in (report["time_share"], report["mean_share"]):
        assert set(shares) == {s.value for s in LIVE_STATES}
        assert sum(shares.values()) == pytest.approx(100, abs=0.05)
    assert report["reached"][TradeState.HEALTHY.value] == report["trades"]
    done = sum(a.status is JournalStatus.DONE for a in run.actions)
    assert report["actions_per_trade"] == round(done / report["trades"], 2)
    assert all(not t.active for t in run.trades.values())  # every trade was closed out


class _Stops:
    """An executor that records the stops asked for and says they were done."""

    def __init__(self) -> None:
        self.sent: list[float | None] = []

    async def modify_stops(self, trade: Trade, intent: Intent) -> Executed:
        self.sent.append(intent.sl)
        return Executed(1, JournalStatus.DONE, None)


@pytest.mark.parametrize(
    ("frames", "distance"), [(Frames(), 0.0003), (Frames.on_timeframe(Timeframe.H1), 0.0012)]
)
async def test_defensive_atrs_come_from_the_configured_timeframes(frames: Frames, distance: float) -> None:
    """WARNING_L1's tighten: 0.3 R behind price, R floored at 0.5 × ATR (M15 by default, H1 in an H1
    replay); the stop's minimum distance uses ATR(M5) or ATR(H1) likewise."""
    stops = _Stops()
    defence = Defence(None, stops, CollectingSink(), MarginMode.HEDGING, frames=frames)  # type: ignore[arg-type]
    view = defence.view("EURUSD")
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
    view.seed(Timeframe.H1, bars(Timeframe.H1, 40, 0.0080))
    # R = 0.00005 from the initial stop: the floor decides (0.5 × 0.0020, or 0.5 × 0.0080 on H1).
    trade = Trade(1, 1, "EURUSD", Direction.BUY, 1.10010, 0.1, 1.09500, None, 1.10005)
    tick = Tick("EURUSD", T0, 1.10000, 1.10010)
    move = step(TradeState.HEALTHY, Trigger.WEAK_TWICE)
    assert await defence.apply(trade, move, Trigger.WEAK_TWICE, tick, DEFAULT_SYMBOLS["EURUSD"], view, None)
    assert stops.sent == [pytest.approx(1.10000 - distance)]
    assert Frames() == Frames(Timeframe.M15, Timeframe.M5, Timeframe.M5)


@pytest.fixture
def shipped_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTMS_CONFIG", str(dtms.calibrate.REPO / "config" / "dtms_config.json"))


@pytest.mark.usefixtures("shipped_config")
def test_the_overlay_puts_the_intelligent_exits_on_h1() -> None:
    """config/replay_h1.json maps the exits' trailing (ATR and EMA gate) and widening (ATR and ATR ratio)
    to H1 for every trade type; everything else in the rules is the engine config's, which keeps M30/M15."""
    base = load_config().engine
    settings = load_settings(dtms.calibrate.OVERLAY)
    rules, live = settings.engine.exit_rules_by_type(), base.exit_rules_by_type()
    assert set(rules) == set(TradeType)
    for kind, rule in rules.items():
        assert (rule.trailing_timeframe, rule.widening_timeframe) == (Timeframe.H1, Timeframe.H1)
        assert (live[kind].trailing_timeframe, live[kind].widening_timeframe) == (
            Timeframe.M30,
            Timeframe.M15,
        )
        assert replace(rule, trailing_timeframe=Timeframe.M30, widening_timeframe=Timeframe.M15) == live[kind]
    assert settings.engine.model_copy(update={"intelligent_exits": base.intelligent_exits}) == base


@pytest.mark.usefixtures("shipped_config")
def test_an_overlay_without_exit_timeframes_keeps_the_engine_configs(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps({"timeframe": "H1", "intelligent_exits": {"trailing_timeframe": "M15"}}))
    rules = load_settings(overlay).engine.exit_rules_by_type()
    assert {(r.trailing_timeframe, r.widening_timeframe) for r in rules.values()} == {
        (Timeframe.M15, Timeframe.M15)
    }
    overlay.write_text(json.dumps({"timeframe": "H1"}))
    assert load_settings(overlay).engine == load_config().engine


@pytest.mark.usefixtures("shipped_config")
@pytest.mark.parametrize(
    ("exits", "message"),
    [
        ({"trailing_timeframe": "M2"}, "intelligent_exits.trailing_timeframe: Input should be"),
        ({"trailing_timeframe": "H4"}, "intelligent_exits.trailing_timeframe: .*market view's windows"),
        ({"widening_timeframe": 60}, "intelligent_exits.widening_timeframe"),
        ({"trailing_atr": 2.0}, "unknown key 'intelligent_exits.trailing_atr'"),  # only the timeframes
        ({"INTRADAY": {"trailing_timeframe": "H1"}}, "unknown key 'intelligent_exits.INTRADAY'"),
        (["H1"], "intelligent_exits: expected an object"),
    ],
)
def test_bad_exit_timeframes_in_the_overlay_are_named(tmp_path: Path, exits: Any, message: str) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps({"timeframe": "H1", "intelligent_exits": exits}))
    with pytest.raises(OverlayError, match=re.escape(str(overlay)) + ": " + message):
        load_settings(overlay)
