"""API keys (SPEC-api.md "Security"): `DTMS_API_KEY`, `DTMS_API_KEYS_FILE`, and the key generated on first
start in `DTMS_HOME`. No web framework here: the service, the CLI and the client library all read keys
through this module."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from dtms.config import MIN_KEY_LENGTH, ConfigError, Settings

log = structlog.get_logger("dtms.keys")

KEY_FILE_NAME = "api_key"
"""The generated key's file in DTMS_HOME: the key on one line, mode 0600."""
SINGLE_KEY_NAME = "operator"
"""The name (the `requested_by` of its intents) of DTMS_API_KEY and of the generated key."""
HEADER = "X-API-Key"
"""Where a caller sends its key (`Authorization: Bearer <key>` is accepted too)."""


class Scope(StrEnum):
    """What a key may do; each scope includes the ones before it (read < trade < admin)."""

    READ = "read"
    TRADE = "trade"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.TRADE: 1, Scope.ADMIN: 2}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One accepted key: its name, its highest scope and the SHA-256 of the secret (the secret itself is
    not kept, so it cannot leak through a repr or a log line)."""

    name: str
    scope: Scope
    digest: bytes = field(repr=False)

    @classmethod
    def of(cls, secret: str, name: str, scope: Scope) -> ApiKey:
        return cls(name, scope, _digest(secret))

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


class Keyring:
    """The accepted keys. `match` compares the presented key with every key, in constant time: the time
    it takes says neither which key nor how much of one matched."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys: tuple[ApiKey, ...] = tuple(keys)

    def match(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found: ApiKey | None = None
        for key in self.keys:  # no early exit
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.keys]

    def __len__(self) -> int:
        return len(self.keys)


def key_file(home: Path) -> Path:
    return home / KEY_FILE_NAME


def _scope_of(entry_name: str, raw: Any) -> Scope:
    """A keys-file entry's scopes: one of read/trade/admin or a list of them; the highest counts."""
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"DTMS_API_KEYS_FILE: key {entry_name!r}: scopes must be read, trade or admin")
    try:
        scopes = [Scope(v.strip().lower()) for v in values]
    except ValueError as exc:
        raise ConfigError(
            f"DTMS_API_KEYS_FILE: key {entry_name!r}: unknown scope in {values!r} (read, trade, admin)"
        ) from exc
    return max(scopes, key=lambda s: _RANK[s])


def read_keys_file(path: Path) -> list[ApiKey]:
    """`{"<key>": {"name": "...", "scopes": ["read", "trade"]}, ...}`; raise ConfigError naming the fault
    (never the key itself)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"DTMS_API_KEYS_FILE: file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"DTMS_API_KEYS_FILE: {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"DTMS_API_KEYS_FILE: {path} must be a JSON object of key -> {{name, scopes}}")
    keys: list[ApiKey] = []
    for number, (secret, entry) in enumerate(data.items(), start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"entry {number}" + (f" ({label})" if isinstance(label, str) else "")
        if not isinstance(entry, dict) or set(entry) - {"name", "scopes"}:
            raise ConfigError(f"DTMS_API_KEYS_FILE: {where}: the value must be {{name, scopes}}")
        name = entry.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or name != name.strip():
            raise ConfigError(f"DTMS_API_KEYS_FILE: {where}: name must be 1 to 64 characters")
        if len(secret) < MIN_KEY_LENGTH or secret != secret.strip():
            raise ConfigError(
                f"DTMS_API_KEYS_FILE: {where}: the key must be at least {MIN_KEY_LENGTH} characters "
                "without surrounding spaces"
            )
        keys.append(ApiKey.of(secret, name, _scope_of(where, entry.get("scopes"))))
    return keys


def configured_keys(settings: Settings) -> list[ApiKey]:
    """DTMS_API_KEY (every scope) and the keys file; names must be unique (they are who asked)."""
    keys: list[ApiKey] = []
    if settings.api_key:
        keys.append(ApiKey.of(settings.api_key, SINGLE_KEY_NAME, Scope.ADMIN))
    if settings.api_keys_file is not None:
        keys.extend(read_keys_file(settings.api_keys_file))
    seen: set[str] = set()
    for key in keys:
        if key.name in seen:
            raise ConfigError(
                f"DTMS_API_KEYS_FILE: the name {key.name!r} is given twice"
                + (" (DTMS_API_KEY is named operator)" if key.name == SINGLE_KEY_NAME else "")
            )
        seen.add(key.name)
    return keys


def _read_key_file(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the API key file {path} cannot be read: {exc}") from exc
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"the API key file {path} is damaged; delete it and a new key is generated")
    return key


def ensure_generated_key(home: Path) -> tuple[str, bool]:
    """The key in DTMS_HOME/api_key, created (mode 0600) when there is none: (key, created now).

    The file is written whole under a temporary name and linked into place, so two instances starting on
    one data directory agree on one key and nobody reads a half-written file."""
    path = key_file(home)
    if path.exists():
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
            log.warning("api_key_file_mode_fixed", path=str(path), mode="0600")
        return _read_key_file(path), False
    home.mkdir(parents=True, exist_ok=True)
    key = "dtms_" + secrets.token_urlsafe(32)
    tmp = home / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path), False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.info("api_key_generated", path=str(path))
    return key, True


def local_key(settings: Settings) -> str | None:
    """The key a local caller (the CLI, the client library) sends: DTMS_API_KEY, else the key generated in
    DTMS_HOME; None when there is neither."""
    if settings.api_key:
        return settings.api_key
    path = key_file(settings.home)
    if not path.is_file():
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key or None


@dataclass(frozen=True)
class KeySetup:
    """What the service accepts: `keyring` None with DTMS_AUTH=off; `generated` the key made at this start
    (printed once), `key_path` the file of the generated key when that is the one in use."""

    keyring: Keyring | None
    generated: str | None = field(default=None, repr=False)
    key_path: Path | None = None
    sources: Sequence[str] = ()


def key_setup(settings: Settings) -> KeySetup:
    """The keys for a starting service: the configured ones, else the generated key (made if missing)."""
    if settings.auth == "off":
        return KeySetup(None)
    keys = configured_keys(settings)
    if keys:
        sources = [
            *(["DTMS_API_KEY"] if settings.api_key else []),
            *([str(settings.api_keys_file)] if settings.api_keys_file else []),
        ]
        return KeySetup(Keyring(keys), sources=sources)
    key, created = ensure_generated_key(settings.home)
    path = key_file(settings.home)
    return KeySetup(
        Keyring([ApiKey.of(key, SINGLE_KEY_NAME, Scope.ADMIN)]),
        generated=key if created else None,
        key_path=path,
        sources=[str(path)],
    )
