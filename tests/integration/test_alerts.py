"""Alerts end to end at the HTTP boundary (respx): for each trigger the exact text that reaches Telegram's
sendMessage and the Discord webhook; events that trigger nothing send nothing; the service itself sends
its pause and resume alerts; a bad or flaky endpoint is retried within bounds, and no secret is logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import structlog
from fastapi.testclient import TestClient

from dtms.alerts import AlertOptions, AlertSink, ClientAlerts, Discord, Posting, Telegram
from dtms.api.app import create_app
from dtms.config import load_config
from dtms.domain.events import CollectingSink
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import service_env, wait_ready

TOKEN = "123456:AAE-secret-bot-token"
CHAT = "-1001234"
WEBHOOK = "https://discord.com/api/webhooks/987/webhook-secret-token"
TELEGRAM_URL = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MIN = 60_000


@dataclass
class Endpoints:
    router: respx.MockRouter
    telegram: respx.Route
    discord: respx.Route

    def telegram_texts(self) -> list[str]:
        bodies = [json.loads(c.request.content) for c in self.telegram.calls]
        assert all(b["chat_id"] == CHAT for b in bodies)
        return [b["text"] for b in bodies]

    def discord_texts(self) -> list[str]:
        bodies = [json.loads(c.request.content) for c in self.discord.calls]
        assert all(b["allowed_mentions"] == {"parse": []} for b in bodies)
        return [b["content"] for b in bodies]

    async def until(self, telegram: int, discord: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.telegram.call_count < telegram or self.discord.call_count < discord:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.telegram.call_count} / {self.discord.call_count} delivered")
            await asyncio.sleep(0.005)


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    with respx.mock(assert_all_called=False) as router:
        telegram = router.post(TELEGRAM_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
        discord = router.post(WEBHOOK).mock(return_value=httpx.Response(204))
        yield Endpoints(router, telegram, discord)


def channels() -> list[Telegram | Discord]:
    return [Telegram(TOKEN, CHAT), Discord(WEBHOOK)]


FAST = AlertOptions(
    throttle_s=300, rate_per_min=6000, burst=100, posting=Posting(timeout_s=2, backoff_s=0.01)
)


@pytest.fixture
async def sink(endpoints: Endpoints) -> AsyncIterator[AlertSink]:
    alerts = AlertSink(CollectingSink(), channels(), FAST)
    await alerts.start()
    yield alerts
    await alerts.stop(flush_s=1)


TRADE = {"ticket": 1001, "symbol": "EURUSD"}
AT = {"market_ms": T0 + 45 * MIN}
WHEN = "\nmarket time 2026-01-01 00:45:00 UTC"

# (event, fields, the exact text): one row per trigger (and per form of one).
TRIGGERS: list[tuple[str, dict[str, Any], str]] = [
    (
        "transition",
        {**TRADE, "frm": "WARNING_L1", "to": "WARNING_L2", "trigger": "ESCALATE", "epoch": 2, **AT},
        "DTMS: EURUSD #1001 WARNING_L1 -> WARNING_L2 (ESCALATE)" + WHEN,
    ),
    (
        "transition",
        {**TRADE, "frm": "WARNING_L2", "to": "HEDGED", "trigger": "HEDGE_NEEDED", "epoch": 3, **AT},
        "DTMS: EURUSD #1001 WARNING_L2 -> HEDGED (HEDGE_NEEDED)" + WHEN,
    ),
    (
        "transition",
        {**TRADE, "frm": "HEDGED", "to": "CLOSED", "trigger": "FLAT_TIMER", "epoch": 4, **AT},
        "DTMS: EURUSD #1001 HEDGED -> CLOSED (FLAT_TIMER)" + WHEN,
    ),
    (
        "action_failed",
        {
            **TRADE,
            "action": "l2_partial",
            "kind": "close",
            "action_id": 42,
            "request": {},
            "retcode": 10006,
            **AT,
        },
        "DTMS: EURUSD #1001: l2_partial (close) REJECTED, retcode 10006\njournal #42" + WHEN,
    ),
    (
        "action_ambiguous",
        {**TRADE, "action": "hedge", "kind": "open", "action_id": 43, "request": {}, "retcode": 0, **AT},
        "DTMS: EURUSD #1001: hedge (open) UNSETTLED: no clear broker answer\n"
        "reconciliation settles it from the broker; nothing is resent before then\njournal #43" + WHEN,
    ),
    (
        "action_settled",
        {"ticket": 1001, "action_id": 43, "status": "failed"},
        "DTMS: #1001: unsettled action journal #43 settled as FAILED",
    ),
    (
        "trade_quarantined",
        {**TRADE, "action": "l1_tighten"},
        "DTMS: EURUSD #1001: QUARANTINED after repeated failures of l1_tighten\n"
        "DTMS no longer acts on it; its stop at the broker stays",
    ),
    (
        "trade_quarantined",
        {"ticket": 1002, "symbol": "XAUUSD", "error": "ZeroDivisionError: float division by zero"},
        "DTMS: XAUUSD #1002: QUARANTINED (ZeroDivisionError: float division by zero)\n"
        "DTMS no longer acts on it; its stop at the broker stays",
    ),
    (
        "protect_naked",
        {**TRADE, "found_sl": None, "sl": 1.0985, "status": "done"},
        "DTMS: EURUSD #1001: position without a stop given one at 1.0985 (DONE)",
    ),
    (
        "restore_stop",
        {**TRADE, "found_sl": 1.095, "sl": 1.098, "status": "done"},
        "DTMS: EURUSD #1001: stop loosened by hand to 1.095 put back at 1.098 (DONE)",
    ),
    (
        "rail_blocked",
        {
            "rail": "news_blackout",
            "symbol": "EURUSD",
            "action_id": 44,
            "detail": "USD Non-Farm Payrolls at 2026-01-02T13:30:00Z",
            "ticket": 1001,
            "action": "hedge",
        },
        "DTMS: EURUSD #1001: hedge BLOCKED by news_blackout: USD Non-Farm Payrolls at 2026-01-02T13:30:00Z\n"
        "journal #44",
    ),
    (
        "rail_blocked",
        {
            "rail": "daily_loss_limit",
            "symbol": "GBPUSD",
            "action_id": 45,
            "detail": "loss 210.00 today reaches the limit 200.00",
            "action": "execute",
        },
        "DTMS: GBPUSD: execute BLOCKED by daily_loss_limit: loss 210.00 today reaches the limit 200.00\n"
        "journal #45",
    ),
    (
        "rail_skipped",
        {
            "rail": "margin",
            "symbol": "EURUSD",
            "action_id": 46,
            "detail": "free margin 12.00 < 40.00 needed (no money)",
            "ticket": 1001,
            "action": "hedge",
        },
        "DTMS: EURUSD #1001: hedge SKIPPED by margin: free margin 12.00 < 40.00 needed (no money)\n"
        "journal #46",
    ),
    (
        "rail_waiting",
        {
            "rail": "market_closed",
            "symbol": "EURUSD",
            "action_id": 47,
            "detail": "EURUSD session closed at 2026-01-03T00:00:00Z",
            "ticket": 1001,
            "action": "l1_tighten",
        },
        "DTMS: EURUSD: market closed; requests held until it opens "
        "(EURUSD session closed at 2026-01-03T00:00:00Z)\nfirst held: EURUSD #1001 l1_tighten",
    ),
    (
        "rail_alert",
        {"key": "loss", "rail": "daily_loss_limit", "detail": "loss 210.00 today reaches the limit 200.00"},
        "DTMS: LOSS LIMIT reached: loss 210.00 today reaches the limit 200.00",
    ),
    (
        "rail_alert",
        {"key": "margin_level", "level_pct": 120.5},
        "DTMS: MARGIN LEVEL 120.5 % is below the alert level",
    ),
    (
        "rail_alert",
        {"key": "stale:XAUUSD", "rail": "stale_data", "detail": "no XAUUSD tick for 312 s of wall time"},
        "DTMS: XAUUSD: STALE DATA: no XAUUSD tick for 312 s of wall time",
    ),
    (
        "paused",
        {"requested_by": "ops", "reason": "broker maintenance", "action_id": 50},
        "DTMS: PAUSED by ops: broker maintenance\n"
        "no broker request is sent until it is resumed; stops at the broker stay",
    ),
    (
        "resumed",
        {"requested_by": "ops", "reason": "", "action_id": 50},
        "DTMS: RESUMED by ops: no reason given",
    ),
    (
        "store_damaged",
        {
            "severity": "critical",
            "path": "/data/dtms.db",
            "reason": "integrity_check: database disk image is malformed",
            "kept_as": "/data/dtms.db.damaged-20260101T000000Z",
            "moved": [],
        },
        "DTMS: STORE DAMAGED (integrity_check: database disk image is malformed); "
        "kept as /data/dtms.db.damaged-20260101T000000Z\n"
        "a fresh store is rebuilt from the broker's positions",
    ),
    (
        "store_rebuilt",
        {
            "severity": "critical",
            "kept_as": "/data/dtms.db.damaged-20260101T000000Z",
            "policy": "magic",
            "adopted": {"1001": "it carries DTMS's magic"},
            "linked": [2002],
            "unguarded": [3003, 3004],
        },
        "DTMS: store REBUILT from the broker: 1 positions re-adopted, 1 hedges or re-adds linked, "
        "2 left unguarded\nunguarded: #3003, #3004",
    ),
    (
        "store_unavailable",
        {"ticket": 1001, "error": "database is locked"},
        "DTMS: #1001: STORE UNAVAILABLE, nothing is sent: database is locked",
    ),
    (
        "lease_lost",
        {"account": "51234@Demo"},
        "DTMS: LEASE LOST for account 51234@Demo: this instance stops acting and exits",
    ),
    (
        "loop_restarted",
        {"loop": "engine", "error": "RuntimeError: tick queue closed", "restarts": 2},
        "DTMS: engine loop RESTARTED after RuntimeError: tick queue closed\nrestarts: 2",
    ),
    (
        "loop_failed",
        {"loop": "engine", "error": "RuntimeError: tick queue closed", "restarts": 3, "exit_code": 4},
        "DTMS: engine loop FAILED after 3 restarts within an hour: RuntimeError: tick queue closed\n"
        "this instance stops acting and exits (code 4); a standby takes the lease or the service manager "
        "restarts it; stops at the broker stay",
    ),
    (
        "config_rejected",
        {"path": "/etc/dtms/dtms_config.json", "reason": "risk.default_risk_pct: Input should be <= 50"},
        "DTMS: config edit REJECTED, the running config stays: risk.default_risk_pct: Input should be <= 50",
    ),
    (
        "registration_failures",
        {"count": 3, "ticket": 1003, "symbol": "EURUSD", "error": "ConnectError: connection refused"},
        "DTMS: 3 registrations in a row FAILED; last EURUSD #1003: ConnectError: connection refused",
    ),
    (
        "service_unreachable",
        {"url": "http://127.0.0.1:8001", "for_s": 301.0, "error": "ConnectError: connection refused"},
        "DTMS: service http://127.0.0.1:8001 UNREACHABLE for 5.0 min: ConnectError: connection refused",
    ),
    (
        "service_reachable",
        {"url": "http://127.0.0.1:8001", "for_s": 420.0},
        "DTMS: service http://127.0.0.1:8001 reachable again after 7.0 min",
    ),
]


def _id(row: tuple[str, dict[str, Any], str]) -> str:
    event, fields, _ = row
    return (
        f"{event}-{fields.get('to') or fields.get('key') or fields.get('rail') or fields.get('ticket', '')}"
    )


@pytest.mark.parametrize("row", TRIGGERS, ids=[_id(r) for r in TRIGGERS])
async def test_each_trigger_reaches_telegram_and_discord_with_its_text(
    row: tuple[str, dict[str, Any], str], sink: AlertSink, endpoints: Endpoints
) -> None:
    event, fields, text = row
    sink.emit(event, **fields)
    await endpoints.until(1, 1)
    assert endpoints.telegram_texts() == [text]
    assert endpoints.discord_texts() == [text]
    assert sink.inner.events == [(event, fields)]  # type: ignore[attr-defined]  # passed on as it came


async def test_every_trigger_in_one_run_in_order(sink: AlertSink, endpoints: Endpoints) -> None:
    for event, fields, _ in TRIGGERS:
        sink.emit(event, **fields)
    await endpoints.until(len(TRIGGERS), len(TRIGGERS))
    expected = [text for _, _, text in TRIGGERS]
    assert endpoints.telegram_texts() == expected
    assert endpoints.discord_texts() == expected


NOT_ALERTED: list[tuple[str, dict[str, Any]]] = [
    ("transition", {**TRADE, "frm": "HEALTHY", "to": "WARNING_L1", "trigger": "WEAK_TWICE", **AT}),
    ("transition", {**TRADE, "frm": "RECOVERING", "to": "HEALTHY", "trigger": "RECOVERED_PLAIN", **AT}),
    (
        "action_done",
        {**TRADE, "action": "breakeven", "kind": "modify_stops", "action_id": 1, "retcode": 10009},
    ),
    ("action_waiting", {**TRADE, "action": "breakeven", "kind": "modify_stops", "error": "paused"}),
    ("rail_waiting", {"rail": "spread_spike", "symbol": "EURUSD", "action_id": 2, "detail": "spread 40"}),
    ("trade_adopted", {**TRADE}),
    ("trade_closed", {**TRADE, "reason": "sl"}),
    ("intent_deferred", {**TRADE, "manager": "exits", "action": "trail", "reason": "defensive"}),
]


async def test_events_that_trigger_nothing_send_nothing(sink: AlertSink, endpoints: Endpoints) -> None:
    for event, fields in NOT_ALERTED:
        sink.emit(event, **fields)
    sink.emit("paused", requested_by="ops", reason="marker", action_id=1)  # the one that is sent
    await endpoints.until(1, 1)
    await asyncio.sleep(0.05)
    assert endpoints.telegram_texts() == ["DTMS: PAUSED by ops: marker\n" + TRIGGERS[17][2].split("\n")[1]]
    assert len(sink.inner.events) == len(NOT_ALERTED) + 1  # type: ignore[attr-defined]


async def test_the_label_names_the_account(endpoints: Endpoints) -> None:
    alerts = AlertSink(CollectingSink(), channels(), FAST, label="51234@Demo")
    await alerts.start()
    alerts.emit("lease_lost", account="51234@Demo")
    await endpoints.until(1, 1)
    await alerts.stop(flush_s=1)
    assert endpoints.telegram_texts()[0].startswith("DTMS 51234@Demo: LEASE LOST")


# -- throttling ----------------------------------------------------------------------------------------


async def test_one_alert_per_trigger_and_ticket_per_window_the_rest_counted(endpoints: Endpoints) -> None:
    now = [1000.0]
    alerts = AlertSink(CollectingSink(), channels(), FAST, clock=lambda: now[0])
    await alerts.start()
    hedged = {**TRADE, "frm": "WARNING_L2", "to": "HEDGED", "trigger": "HEDGE_NEEDED", **AT}
    for _ in range(4):
        alerts.emit("transition", **hedged)
    alerts.emit("transition", **{**hedged, "ticket": 1002})  # another ticket: its own key
    alerts.emit(
        "transition", **{**hedged, "frm": "HEDGED", "to": "CLOSED", "trigger": "FLAT_TIMER"}
    )  # another trigger
    await endpoints.until(3, 3)
    now[0] += 299.0
    alerts.emit("transition", **hedged)  # still within 300 s: suppressed
    now[0] += 2.0
    alerts.emit("transition", **hedged)  # 301 s after the first: sent, saying how many were held back
    await endpoints.until(4, 4)
    await alerts.stop(flush_s=1)
    texts = endpoints.telegram_texts()
    assert texts[0] == "DTMS: EURUSD #1001 WARNING_L2 -> HEDGED (HEDGE_NEEDED)" + WHEN
    assert texts[1].startswith("DTMS: EURUSD #1002 ") and texts[2].startswith(
        "DTMS: EURUSD #1001 HEDGED -> CLOSED"
    )
    assert texts[3] == (
        "DTMS: EURUSD #1001 WARNING_L2 -> HEDGED (HEDGE_NEEDED)"
        + WHEN
        + "\n(4 similar alerts suppressed since the last)"
    )
    assert endpoints.discord_texts() == texts
    assert alerts.stats()["suppressed"] == 4 and alerts.stats()["raised"] == 4


async def test_the_channel_rate_limit_spaces_a_burst_out(endpoints: Endpoints) -> None:
    options = AlertOptions(throttle_s=0, rate_per_min=600, burst=2, posting=Posting(backoff_s=0.01))  # 10/s
    alerts = AlertSink(CollectingSink(), channels(), options)
    await alerts.start()
    started = time.monotonic()
    for i in range(5):
        alerts.emit("paused", requested_by="ops", reason=f"r{i}", action_id=i)
    await endpoints.until(5, 5)
    took = time.monotonic() - started
    await alerts.stop(flush_s=1)
    assert 0.25 <= took < 2.0  # 2 at once, then 3 more at 10 a second: ~0.3 s
    assert [t.split("\n")[0] for t in endpoints.telegram_texts()] == [
        f"DTMS: PAUSED by ops: r{i}" for i in range(5)
    ]


# -- failures, retries, secrets ------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


async def test_retries_on_5xx_and_429_then_sends_once(
    endpoints: Endpoints, captured: list[dict[str, Any]]
) -> None:
    endpoints.telegram.side_effect = [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(429, json={"ok": False, "error_code": 429, "parameters": {"retry_after": 0.05}}),
        httpx.Response(200, json={"ok": True}),
    ]
    endpoints.discord.side_effect = [httpx.ConnectError("connection refused"), httpx.Response(204)]
    alerts = AlertSink(CollectingSink(), channels(), FAST)
    await alerts.start()
    alerts.emit("lease_lost", account="a")
    await endpoints.until(3, 2)
    await alerts.stop(flush_s=1)
    stats = alerts.stats()["channels"]
    assert stats["telegram"]["sent"] == 1 and stats["discord"]["sent"] == 1
    assert len(set(endpoints.telegram_texts())) == 1  # the same alert each attempt
    assert [e["channel"] for e in captured if e["event"] == "alert_sent"] == ["telegram", "discord"] or [
        e["channel"] for e in captured if e["event"] == "alert_sent"
    ] == ["discord", "telegram"]


async def test_a_final_answer_is_not_retried_and_no_secret_is_logged(
    endpoints: Endpoints, captured: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoints.telegram.mock(
        return_value=httpx.Response(404, json={"ok": False, "description": f"Not Found: bot{TOKEN} unknown"})
    )
    endpoints.discord.side_effect = httpx.ConnectError(f"cannot reach {WEBHOOK}")
    alerts = AlertSink(CollectingSink(), channels(), FAST)
    await alerts.start()
    alerts.emit("lease_lost", account="a")
    await endpoints.until(1, 3)  # Telegram: one final 404; Discord: three attempts
    await alerts.stop(flush_s=1)
    assert endpoints.telegram.call_count == 1 and endpoints.discord.call_count == 3
    failures = {e["channel"]: e["error"] for e in captured if e["event"] == "alert_not_sent"}
    assert failures == {
        "telegram": "telegram: 404: Not Found: bot*** unknown",
        "discord": "discord: ConnectError: cannot reach ***",
    }
    logged = repr(captured) + caplog.text  # structlog events, and httpx's own lines through logging
    assert "POST https://api.telegram.org/bot***/sendMessage" in caplog.text  # httpx's own line, redacted
    assert TOKEN not in logged and WEBHOOK not in logged and "webhook-secret-token" not in logged
    assert TOKEN not in repr(Telegram(TOKEN, CHAT)) and "secret" not in repr(Discord(WEBHOOK))


async def test_a_long_retry_after_or_a_hanging_endpoint_ends_the_alert_in_bounded_time(
    endpoints: Endpoints,
) -> None:
    endpoints.telegram.mock(return_value=httpx.Response(429, json={"retry_after": 3600}))  # too long to wait

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(204)

    endpoints.discord.side_effect = hang
    posting = Posting(timeout_s=0.1, attempts=2, backoff_s=0.01)
    alerts = AlertSink(CollectingSink(), channels(), AlertOptions(posting=posting))
    await alerts.start()
    started = time.monotonic()
    alerts.emit("lease_lost", account="a")
    while sum(c["failed"] for c in alerts.stats()["channels"].values()) < 2:
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.01)
    await alerts.stop(flush_s=0.1)
    assert endpoints.telegram.call_count == 1  # final at once
    assert time.monotonic() - started < 1.0  # Discord: two attempts of 0.1 s each


async def test_client_side_triggers_reach_the_channels(sink: AlertSink, endpoints: Endpoints) -> None:
    now = [0.0]
    client = ClientAlerts(sink, clock=lambda: now[0])
    for ticket in (1001, 1002, 1003):
        client.registration_failed(ticket, "EURUSD", "ConnectError: connection refused")
    client.unreachable("http://127.0.0.1:8001", "ConnectError: connection refused")
    now[0] = 301.0
    client.check()
    now[0] = 420.0
    client.reachable()
    await endpoints.until(3, 3)
    assert endpoints.telegram_texts() == [
        "DTMS: 3 registrations in a row FAILED; last EURUSD #1003: ConnectError: connection refused",
        "DTMS: service http://127.0.0.1:8001 UNREACHABLE for 5.0 min: ConnectError: connection refused",
        "DTMS: service http://127.0.0.1:8001 reachable again after 7.0 min",
    ]
    assert endpoints.discord_texts() == endpoints.telegram_texts()


async def test_a_full_queue_drops_the_new_alert_and_counts_it(endpoints: Endpoints) -> None:
    gate, holding = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        holding.set()
        await gate.wait()
        return httpx.Response(200, json={"ok": True})

    endpoints.telegram.side_effect = held
    options = AlertOptions(throttle_s=0, rate_per_min=6000, burst=100, queue_size=2, posting=Posting())
    alerts = AlertSink(CollectingSink(), [Telegram(TOKEN, CHAT)], options)
    await alerts.start()
    alerts.emit("paused", requested_by="ops", reason="r0", action_id=0)
    await asyncio.wait_for(holding.wait(), 5)  # the sender holds r0; r1 and r2 fill the queue, r3 and r4 drop
    for i in range(1, 5):
        alerts.emit("paused", requested_by="ops", reason=f"r{i}", action_id=i)
    assert alerts.stats()["channels"]["telegram"] == {"sent": 0, "failed": 0, "dropped": 2, "queued": 2}
    gate.set()
    await endpoints.until(3, 0)
    await alerts.stop(flush_s=1)
    assert [t.split("\n")[0] for t in endpoints.telegram_texts()] == [
        "DTMS: PAUSED by ops: r0",
        "DTMS: PAUSED by ops: r1",
        "DTMS: PAUSED by ops: r2",
    ]


async def test_without_a_channel_alerts_are_only_logged(captured: list[dict[str, Any]]) -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        alerts = AlertSink(CollectingSink())
        await alerts.start()
        alerts.emit("lease_lost", account="a")
        await alerts.stop()
        assert router.calls.call_count == 0
    logged = [e for e in captured if e["event"] == "alert"]
    assert logged == [
        {
            "event": "alert",
            "log_level": "warning",
            "trigger": "lease_lost",
            "text": "DTMS: LEASE LOST for account a: this instance stops acting and exits",
            "channels": [],
        }
    ]


async def test_emit_from_another_thread_reaches_the_channels(sink: AlertSink, endpoints: Endpoints) -> None:
    await asyncio.to_thread(sink.emit, "lease_lost", account="a")
    await endpoints.until(1, 1)
    assert endpoints.discord_texts() == [
        "DTMS: LEASE LOST for account a: this instance stops acting and exits"
    ]


# -- the service sends its own alerts ---------------------------------------------------------------


def test_the_service_alerts_pause_and_resume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoints: Endpoints
) -> None:
    service_env(
        monkeypatch,
        tmp_path / "home",
        DTMS_AUTH="off",
        DTMS_ALERT_TELEGRAM_TOKEN=TOKEN,
        DTMS_ALERT_TELEGRAM_CHAT=CHAT,
        DTMS_ALERT_DISCORD_WEBHOOK=WEBHOOK,
    )
    app = create_app(load_config(), make_broker)
    with TestClient(app) as client:
        wait_ready(client)
        assert (
            client.post("/dtms/pause", json={"reason": "maintenance", "requested_by": "ops"}).status_code
            == 200
        )
        assert client.post("/dtms/resume", json={"reason": "done", "requested_by": "ops"}).status_code == 200
        deadline = time.monotonic() + 5
        while (
            endpoints.telegram.call_count + endpoints.discord.call_count < 4 and time.monotonic() < deadline
        ):
            time.sleep(0.01)
    assert endpoints.telegram_texts() == [
        "DTMS: PAUSED by ops: maintenance\n"
        "no broker request is sent until it is resumed; stops at the broker stay",
        "DTMS: RESUMED by ops: done",
    ]
    assert endpoints.discord_texts() == endpoints.telegram_texts()
