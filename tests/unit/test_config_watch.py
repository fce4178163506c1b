"""The config watcher without a service: what counts as a change, the diff it logs, the sections that wait
for a restart, and a file that disappears."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from dtms.config import load_config
from dtms.domain.events import CollectingSink
from dtms.guardian.reload import ConfigWatcher, diff, flatten

REPO = Path(__file__).resolve().parents[2]


def test_flatten_and_diff() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2]}
    old = {"rails": {"daily_loss_pct": 2.0, "news": None}, "risk": {"default_risk_pct": 0.5}}
    new = {"rails": {"daily_loss_pct": 3.0, "news": None}, "risk": {"default_risk_pct": 0.5}, "x": {"y": 1}}
    assert diff(old, new) == [
        {"key": "rails.daily_loss_pct", "old": 2.0, "new": 3.0},
        {"key": "x.y", "old": None, "new": 1},
    ]


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ConfigWatcher, Any, Path]:
    config = tmp_path / "dtms_config.json"
    shutil.copy(REPO / "config" / "dtms_config.json", config)
    shutil.copy(REPO / "config" / "news_calendar.csv", tmp_path / "news_calendar.csv")
    for key in [k for k in os.environ if k.startswith("DTMS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DTMS_CONFIG", str(config))
    rt = SimpleNamespace(config=load_config(), events=CollectingSink(), leader=None)
    return ConfigWatcher(rt, poll_s=0), rt, config  # type: ignore[arg-type]


def _write(path: Path, data: dict[str, Any]) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(data))
    os.replace(staged, path)


def test_engine_keys_apply_and_start_only_sections_wait_for_a_restart(
    watched: tuple[ConfigWatcher, Any, Path],
) -> None:
    watcher, rt, path = watched
    assert watcher.check() is None  # nothing moved
    data = json.loads(path.read_text())
    data["rails"]["daily_loss_pct"] = 3.0
    data["paper"] = {"slippage_points": 2}
    data["service"] = {"api_port": 8011}
    with structlog.testing.capture_logs() as logs:
        _write(path, data)
        assert watcher.check() is True
    assert rt.config.engine.rails.daily_loss_pct == 3.0
    assert rt.config.engine.paper.slippage_points == 0  # the running broker's, until the next start
    reloaded = next(e for e in logs if e["event"] == "config_reloaded")
    assert reloaded["changes"] == [{"key": "rails.daily_loss_pct", "old": 2.0, "new": 3.0}]
    restart = next(e for e in logs if e["event"] == "config_restart_required")
    assert [c["key"] for c in restart["changes"]] == ["paper.slippage_points", "service.api_port"]
    assert restart["log_level"] == "warning"

    os.utime(path)  # touched, same bytes: nothing to do
    assert watcher.check() is None
    path.unlink()
    assert watcher.check() is False
    assert rt.events.events[-1][0] == "config_rejected"
    assert "cannot be read" in rt.events.events[-1][1]["reason"]
    assert rt.config.engine.rails.daily_loss_pct == 3.0


def test_a_bad_service_section_is_rejected_now_rather_than_at_the_next_start(
    watched: tuple[ConfigWatcher, Any, Path],
) -> None:
    watcher, rt, path = watched
    data = json.loads(path.read_text())
    data["service"] = {"api_port": 99999}
    _write(path, data)
    assert watcher.check() is False
    assert "DTMS_API_PORT" in rt.events.events[-1][1]["reason"]
