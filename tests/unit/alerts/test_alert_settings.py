"""The DTMS_ALERT_* settings: what configures which channel, the numbers, and secrets kept out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dtms.alerts import AlertSink, Discord, Telegram, channels_from, options_from
from dtms.config import Settings
from dtms.domain.events import CollectingSink

TOKEN = "123456:AAE-secret-bot-token"
WEBHOOK = "https://discord.com/api/webhooks/987/webhook-secret-token"


def test_none_configured_means_no_channel_and_sane_defaults() -> None:
    settings = Settings()
    assert channels_from(settings) == []
    options = options_from(settings)
    assert (options.throttle_s, options.rate_per_min, options.burst, options.queue_size) == (300, 20, 5, 100)
    assert (options.posting.timeout_s, options.posting.attempts) == (10, 3)


def test_both_channels_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTMS_ALERT_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("DTMS_ALERT_TELEGRAM_CHAT", "-1001234")
    monkeypatch.setenv("DTMS_ALERT_DISCORD_WEBHOOK", WEBHOOK)
    monkeypatch.setenv("DTMS_ALERT_THROTTLE_S", "60")
    monkeypatch.setenv("DTMS_ALERT_TIMEOUT", "3")
    settings = Settings()
    assert channels_from(settings) == [Telegram(TOKEN, "-1001234"), Discord(WEBHOOK)]
    assert options_from(settings).throttle_s == 60 and options_from(settings).posting.timeout_s == 3
    shown = repr(settings) + str(settings.model_dump())
    assert TOKEN not in shown and WEBHOOK not in shown  # SecretStr
    sink = AlertSink.from_settings(settings, CollectingSink())
    assert [s.channel.name for s in sink.senders] == ["telegram", "discord"]


def test_empty_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_TOKEN", "TELEGRAM_CHAT", "DISCORD_WEBHOOK"):
        monkeypatch.setenv(f"DTMS_ALERT_{name}", "")
    assert channels_from(Settings()) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"alert_telegram_token": TOKEN},
            "DTMS_ALERT_TELEGRAM_TOKEN and DTMS_ALERT_TELEGRAM_CHAT go together",
        ),
        (
            {"alert_telegram_chat": "-100"},
            "DTMS_ALERT_TELEGRAM_TOKEN and DTMS_ALERT_TELEGRAM_CHAT go together",
        ),
        ({"alert_discord_webhook": "http://discord.com/api/webhooks/1/x"}, "must be an https:// webhook URL"),
        ({"alert_throttle_s": -1}, "alert_throttle_s"),
        ({"alert_rate_per_min": 0}, "alert_rate_per_min"),
        ({"alert_queue_size": 0}, "alert_queue_size"),
    ],
)
def test_bad_alert_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(**values)  # type: ignore[arg-type]
    assert TOKEN not in str(refused.value)
