"""The config file, watched: a valid edit is applied to new decisions, an invalid one is rejected.

Every POLL_S of wall time the watcher looks at the file's modification time and size; when they moved it
reads the file and compares a hash of its bytes with the last content it processed (so a touch, or an
editor's save of the same text, does nothing). New content is validated as at start
(dtms.config.read_config_file: JSON, unknown keys, ranges, the news calendar, the service section).

- Invalid: `config_rejected` is logged (and alerted) with the reason; the running config stays.
- Valid: the changed keys are logged (`config_reloaded`, each with its old and new value) and the
  engine-facing objects are swapped in one synchronous step between two tick passes
  (Engine.between_decisions): the intelligent exits and strategy rules (Engine), the score, cadence's
  re-add switch and default risk (Defence), the rails and the news calendar (Rails), the adoption age
  (Reconciler). The `service` section, `symbols` and `paper` are read at start only: a change there is
  logged as `config_restart_required` with its keys and applies at the next start.

The runtime's AppConfig is replaced too, so that a standby that takes the lease later builds its leader
from the file as it is now."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from dtms.config import ConfigError, ConfigFile, EngineConfig, read_config_file
from dtms.managers.rails import NewsEvent
from dtms.market.config import ScoreConfig

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

log = structlog.get_logger("dtms.config")

POLL_S = 1.0
RESTART_SECTIONS = ("symbols", "paper")
"""Engine-config sections read once, when the broker is built: a change applies at the next start."""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}, "c": {}}` -> `{"a.b": 1}`; lists are values (compared whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): value}


def diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """The keys whose value differs, sorted, each with its old and new value (None where absent)."""
    before, after = flatten(old), flatten(new)
    return [
        {"key": key, "old": before.get(key), "new": after.get(key)}
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def _dump(engine: EngineConfig) -> dict[str, Any]:
    dumped: dict[str, Any] = engine.model_dump(mode="json")
    return dumped


class ConfigWatcher:
    """Polls the runtime's config file and applies or rejects what changed (see the module's text)."""

    def __init__(self, rt: Runtime, poll_s: float = POLL_S) -> None:
        self._rt, self.poll_s = rt, poll_s
        self.path: Path = rt.config.config_path
        self._stamp: tuple[int, int] | None = self._stat()
        self._digest: str | None = self._hash()
        self._service = self._service_section()  # the file's service section as last processed
        self._written = _dump(rt.config.engine)  # the engine config as the file last had it (valid)
        self.reloads = 0
        self.rejections = 0

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _service_section(self) -> dict[str, Any]:
        try:
            service = read_config_file(self.path).service
        except ConfigError:
            return {}
        return service

    def _hash(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def run(self) -> None:
        """Poll until cancelled; a failure of one look is logged and the next look tries again."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.check()
            except Exception as exc:  # the watcher must outlive one bad look, and say why
                log.exception("config_watch_failed", path=str(self.path), error=str(exc))

    def check(self) -> bool | None:
        """One look: None when nothing changed, True when an edit was applied, False when rejected."""
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        digest = self._hash()
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            if digest is None:
                raise ConfigError(f"{self.path}: cannot be read (missing or not accessible)")
            loaded = read_config_file(self.path)
        except ConfigError as exc:
            self.rejections += 1  # the event is logged (error) and alerted by the sink
            self._rt.events.emit(
                "config_rejected", path=str(self.path), reason=str(exc), kept="the running config"
            )
            return False
        self.apply(loaded)
        return True

    def apply(self, loaded: ConfigFile) -> None:
        rt = self._rt
        written = _dump(loaded.engine)
        changes = diff(self._written, written)
        restart = [c for c in changes if c["key"].split(".", 1)[0] in RESTART_SECTIONS]
        restart += diff({"service": self._service}, {"service": loaded.service})
        self._written, self._service = written, loaded.service
        # Sections read at start stay as they run; everything else is the file's.
        kept = {section: getattr(rt.config.engine, section) for section in RESTART_SECTIONS}
        engine = loaded.engine.model_copy(update=kept)
        applied = [c for c in changes if c not in restart]
        rt.config = rt.config.model_copy(update={"engine": engine, "news": loaded.news})
        if rt.leader is not None:
            leader = rt.leader
            leader.engine.between_decisions(lambda: apply_to_leader(leader, engine, loaded.news))
        self.reloads += 1
        log.info("config_reloaded", path=str(self.path), changes=applied, applied=len(applied))
        if restart:
            log.warning(
                "config_restart_required",
                path=str(self.path),
                changes=restart,
                reason="read at start only; applies at the next start",
            )


def apply_to_leader(leader: Leader, engine: EngineConfig, news: tuple[NewsEvent, ...] | None) -> None:
    """Swap the engine-facing config objects, all in one synchronous step (no await: no decision runs
    in between)."""
    leader.engine.reconfigure(engine)
    defence = leader.engine.defence
    if defence is not None:
        defence.reconfigure(
            ScoreConfig.from_dict(engine.signal_score),
            replace(defence.cadence, re_add=engine.recovery.re_add),
            replace(defence.actions, default_risk_pct=engine.risk.default_risk_pct),
        )
    rails = leader.engine.rails
    if rails is not None:
        rails.config, rails.news = engine.rails, tuple(news or ())
    leader.reconciler.reconfigure(engine.adoption.min_age_s)
