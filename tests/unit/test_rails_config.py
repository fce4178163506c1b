"""The rails' configuration: defaults from the spec, validated keys, and a news calendar loaded at start
whose bad row stops the start with an error naming the file and the line; the shipped calendar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dtms.config import ConfigError, RailsConfig, load_config
from dtms.managers.rails import CalendarError, parse_news_calendar

REPO = Path(__file__).resolve().parents[2]
HEADER = "time_utc,currency,impact,title\n"


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> None:
    path = tmp_path / "dtms_config.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DTMS_CONFIG", str(path))


def test_defaults_are_the_spec() -> None:
    rails = RailsConfig()
    assert (rails.daily_loss_pct, rails.hourly_loss_pct, rails.max_consecutive_stop_outs) == (2, 1, 3)
    assert (rails.news_before_min, rails.news_after_min, rails.spread_spike_factor) == (30, 15, 2)
    assert (rails.stale_after_s, rails.margin_level_alert_pct) == (300, 150)


@pytest.mark.parametrize(
    ("rails", "needle"),
    [
        ({"daily_loss_pct": 0}, "rails.daily_loss_pct"),
        ({"spread_spike_factor": 1}, "rails.spread_spike_factor"),
        ({"max_consecutive_stop_outs": 0}, "rails.max_consecutive_stop_outs"),
        ({"loss_limit": 2}, "rails.loss_limit: Extra inputs are not permitted"),
    ],
)
def test_bad_rails_keys_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rails: dict[str, Any], needle: str
) -> None:
    _config(tmp_path, monkeypatch, {"rails": rails})
    with pytest.raises(ConfigError, match=needle):
        load_config()


def test_the_calendar_next_to_the_config_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "news.csv").write_text(HEADER + "2026-03-06T13:30:00Z,USD,high,Non-Farm Payrolls\n")
    _config(tmp_path, monkeypatch, {"rails": {"news_calendar": "news.csv"}})
    (event,) = load_config().news or ()
    assert (event.currency, event.impact, event.title) == ("USD", "high", "Non-Farm Payrolls")


def test_a_bad_row_stops_the_start_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "2026-03-06T13:30:00Z,USD,high,NFP\n2026-03-19T13:15:00Z,EUR,huge,ECB\n"
    (tmp_path / "news.csv").write_text(HEADER + rows)
    _config(tmp_path, monkeypatch, {"rails": {"news_calendar": "news.csv"}})
    with pytest.raises(ConfigError, match=r"news\.csv line 3: impact 'huge' must be one of high"):
        load_config()


def test_a_named_calendar_must_exist_an_unnamed_one_may_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, {"rails": {"news_calendar": "missing.csv"}})
    with pytest.raises(ConfigError, match=r"missing\.csv does not exist"):
        load_config()
    _config(tmp_path, monkeypatch, {})
    assert load_config().news is None  # no calendar beside this config: blackout off, said at start
    _config(tmp_path, monkeypatch, {"rails": {"news_calendar": None}})
    assert load_config().news is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("time,currency,impact,title\n", "line 1: the header must be time_utc,currency,impact,title"),
        (HEADER + "2026-13-01T10:00Z,USD,high,X\n", "line 2: time '2026-13-01T10:00Z' is not an ISO 8601"),
        (HEADER + "2026-01-09T13:30+01:00,USD,high,X\n", "line 2: time .* must be UTC"),
        (HEADER + "2026-01-09T13:30Z,usd,high,X\n", "line 2: currency 'usd' must be three capital letters"),
        (HEADER + "2026-01-09T13:30Z,USD,high\n", "line 2: expected 4 fields"),
        (HEADER + "2026-01-09T13:30Z,USD,high, \n", "line 2: the title is empty"),
        (HEADER + "# a comment\n\n2026-01-09T13:30Z,USD,low,X\nbad\n", "line 5: expected 4 fields"),
    ],
)
def test_calendar_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(CalendarError, match=needle):
        parse_news_calendar(text, "cal.csv")


def test_the_shipped_calendar() -> None:
    text = (REPO / "config" / "news_calendar.csv").read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    events = parse_news_calendar(text, "news_calendar.csv")
    high = [e for e in events if e.impact == "high"]
    assert len(high) >= 30 and {e.currency for e in events} == {"USD", "EUR"}
    assert all(e.time_ms >= 1_767_225_600_000 for e in events)  # 2026
    assert [e.time_ms for e in events] == sorted(e.time_ms for e in events)
    config = json.loads((REPO / "config" / "dtms_config.json").read_text())
    assert config["rails"]["news_calendar"] == "news_calendar.csv"
