"""The client's settings: where the service is, the API key, timeouts, retries, breaker, outbox.

Read from the same `DTMS_*` variables as the service where SPEC-api.md names them (`DTMS_TIMEOUT`,
`DTMS_RETRY_COUNT`, `DTMS_API_KEY`, `DTMS_HOME`, `DTMS_API_HOST`, `DTMS_API_PORT`); the client ships to
bots without the server, so this module reads the environment itself instead of importing dtms.config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8001
KEY_FILE = "api_key"
"""The file in DTMS_HOME holding the key `dtms serve` generates when none is configured."""
OUTBOX_FILE = "client_outbox.db"
"""The outbox's SQLite file in DTMS_HOME."""


def _urls(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    urls = tuple(u.strip().rstrip("/") for u in items if u and u.strip())
    if not urls:
        raise ValueError("at least one service URL is needed")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a service URL starts with http:// or https://: {url!r}")
    return urls


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything a client needs; `ClientSettings.from_env()` fills it the way the service does."""

    urls: tuple[str, ...] = (f"http://127.0.0.1:{DEFAULT_PORT}",)
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 5.0
    retry_count: int = 3
    """Retries after the first attempt (DTMS_RETRY_COUNT): 3 means up to 4 attempts."""
    backoff_base: float = 1.0
    """The first wait; then doubled (1, 2, 4 s)."""
    backoff_jitter: float = 0.5
    """Each wait adds a uniform random 0 .. jitter seconds."""
    backoff_max: float = 30.0
    retry_after_max: float = 30.0
    """A longer Retry-After is cut to this."""
    breaker_threshold: int = 5
    breaker_reset: float = 30.0
    outbox_path: Path | None = None
    """The durable outbox's SQLite file; None: no outbox (a registration the service cannot take fails)."""
    flush_interval: float = 5.0
    """How often the outbox is offered to the service while it holds registrations."""
    verify: bool = False
    """Read every registered trade back (GET /dtms/trade/{ticket}) and compare it."""
    max_connections: int = 10
    max_keepalive: int = 5
    health_poll: float = 0.5
    """wait_ready's pause between probes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", _urls(self.urls))
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if self.retry_count < 0:
            raise ValueError("retry_count must be >= 0")
        if self.breaker_threshold < 1:
            raise ValueError("breaker_threshold must be >= 1")
        for name in ("backoff_base", "backoff_jitter", "backoff_max", "retry_after_max", "breaker_reset"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.flush_interval <= 0 or self.health_poll <= 0:
            raise ValueError("flush_interval and health_poll must be > 0")

    @property
    def attempts(self) -> int:
        return self.retry_count + 1

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based) without jitter: base x 2^(retry-1), capped."""
        return float(min(self.backoff_base * 2 ** (retry - 1), self.backoff_max))

    @property
    def delivery_budget(self) -> float:
        """The longest one logical call can take: every attempt timing out plus the longest waits."""
        waits = sum(
            max(min(self.backoff(n) + self.backoff_jitter, self.backoff_max), self.retry_after_max)
            for n in range(1, self.attempts)
        )
        return self.attempts * self.timeout * len(self.urls) + waits + 1.0

    def with_(self, **changes: Any) -> ClientSettings:
        return replace(self, **changes)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: str | Path | None = None, **changes: Any
    ) -> ClientSettings:
        """Settings from the environment: `DTMS_URLS` (comma-separated, in order of preference; default
        http://DTMS_API_HOST:DTMS_API_PORT), `DTMS_API_KEY` or else the key file `dtms serve` writes in
        DTMS_HOME, `DTMS_TIMEOUT`, `DTMS_RETRY_COUNT`, and the outbox in DTMS_HOME (`DTMS_CLIENT_OUTBOX`
        names another file; `off` disables it). Keyword arguments override what was read."""
        env = os.environ if env is None else env
        base = Path(home) if home is not None else Path(env.get("DTMS_HOME") or "./data")
        values: dict[str, Any] = {}
        urls = env.get("DTMS_URLS") or env.get("DTMS_URL")
        if urls:
            values["urls"] = _urls(urls)
        else:
            host = env.get("DTMS_API_HOST") or "127.0.0.1"
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            values["urls"] = (f"http://{host}:{int(env.get('DTMS_API_PORT') or DEFAULT_PORT)}",)
        if env.get("DTMS_TIMEOUT"):
            values["timeout"] = float(env["DTMS_TIMEOUT"])
        if env.get("DTMS_RETRY_COUNT"):
            values["retry_count"] = int(env["DTMS_RETRY_COUNT"])
        values["api_key"] = env.get("DTMS_API_KEY") or read_key_file(base / KEY_FILE)
        outbox = env.get("DTMS_CLIENT_OUTBOX")
        if outbox and outbox.lower() == "off":
            values["outbox_path"] = None
        else:
            values["outbox_path"] = Path(outbox) if outbox else base / OUTBOX_FILE
        values.update(changes)
        if "urls" in changes:
            values["urls"] = _urls(changes["urls"])
        return cls(**values)


def read_key_file(path: Path) -> str | None:
    """The key in the file `dtms serve` generates: its text, or the `key` of a JSON object; None when the
    file is missing, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        key = data.get("key") or data.get("api_key") if isinstance(data, dict) else None
        return str(key) if key else None
    return text.splitlines()[0].strip() if text else None
