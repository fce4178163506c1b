"""API keys and token buckets (dtms.keys, dtms.api.limits): the keys file's checks, matching, scopes,
the generated key (0600, one per data directory), the local key the CLI and client send, and the bucket's
rate, burst and Retry-After."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from dtms.api.limits import Rate, RateClass, RateLimiter, TokenBucket
from dtms.config import ConfigError, Settings
from dtms.keys import (
    ApiKey,
    Keyring,
    Scope,
    configured_keys,
    ensure_generated_key,
    key_setup,
    local_key,
    read_keys_file,
)

LONG = "k" * 16


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(data))
    return path


def test_a_keys_file_gives_names_and_the_highest_scope(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "a" * 20: {"name": "dash", "scopes": ["read"]},
            "b" * 20: {"name": "bot", "scopes": ["read", "TRADE"]},
            "c" * 20: {"name": "ops", "scopes": "admin"},
        },
    )
    keys = {k.name: k for k in read_keys_file(path)}
    assert {n: k.scope for n, k in keys.items()} == {"dash": "read", "bot": "trade", "ops": "admin"}
    assert keys["bot"].allows(Scope.READ) and keys["bot"].allows(Scope.TRADE)
    assert not keys["bot"].allows(Scope.ADMIN) and not keys["dash"].allows(Scope.TRADE)
    assert "a" * 20 not in repr(keys["dash"])  # only the digest is kept, and not shown


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "must be a JSON object"),
        ({"short": {"name": "x", "scopes": ["read"]}}, "at least 16 characters"),
        ({LONG: {"name": "x", "scopes": ["write"]}}, "unknown scope"),
        ({LONG: {"name": "x", "scopes": []}}, "scopes must be"),
        ({LONG: {"name": "", "scopes": ["read"]}}, "name must be"),
        ({LONG: {"name": "x", "scopes": ["read"], "extra": 1}}, r"\{name, scopes\}"),
        ({LONG: "x"}, r"\{name, scopes\}"),
    ],
)
def test_a_bad_keys_file_is_named_without_the_key(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        read_keys_file(write(tmp_path, data))
    assert LONG not in str(caught.value) and "DTMS_API_KEYS_FILE" in str(caught.value)


def test_a_missing_or_broken_keys_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_keys_file(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot be read as JSON"):
        read_keys_file(tmp_path / "bad.json")


def test_names_are_unique_across_the_single_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"a" * 20: {"name": "operator", "scopes": ["read"]}})
    with pytest.raises(ConfigError, match=r"operator.* twice"):
        configured_keys(Settings(api_key="z" * 20, api_keys_file=path))
    keys = configured_keys(
        Settings(api_key="z" * 20, api_keys_file=write(tmp_path, {"a" * 20: {"name": "b", "scopes": "read"}}))
    )
    assert [(k.name, k.scope) for k in keys] == [("operator", "admin"), ("b", "read")]


def test_a_short_dtms_api_key_is_refused_and_an_empty_one_is_none() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(api_key="secret")
    assert Settings(api_key="").api_key is None


def test_match_finds_the_key_or_none() -> None:
    ring = Keyring([ApiKey.of("a" * 20, "a", Scope.READ), ApiKey.of("b" * 20, "b", Scope.ADMIN)])
    assert ring.match("b" * 20) is not None and ring.match("b" * 20).name == "b"  # type: ignore[union-attr]
    assert ring.match("b" * 19) is None and ring.match("") is None and ring.match("a" * 21) is None


def test_the_generated_key_is_private_stable_and_single(tmp_path: Path) -> None:
    home = tmp_path / "home"
    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_generated_key(home))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({key for key, _ in results}) == 1  # racing starts agree on one key
    assert [created for _, created in results].count(True) == 1
    path = home / "api_key"
    assert path.stat().st_mode & 0o777 == 0o600
    key = path.read_text().strip()
    assert key.startswith("dtms_") and len(key) >= 40
    assert sorted(p.name for p in home.iterdir()) == ["api_key"]  # no temporary file left
    path.chmod(0o644)
    assert ensure_generated_key(home) == (key, False)
    assert path.stat().st_mode & 0o777 == 0o600  # a loosened file is made private again
    path.write_text("\n")
    with pytest.raises(ConfigError, match="damaged"):
        ensure_generated_key(home)


def test_key_setup_and_the_local_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert local_key(Settings(home=home)) is None
    assert key_setup(Settings(home=home, auth="off")).keyring is None
    assert not home.exists()  # auth off: nothing generated
    first = key_setup(Settings(home=home))
    assert first.generated is not None and first.key_path == home / "api_key"
    assert local_key(Settings(home=home)) == first.generated  # what the CLI and the client send
    second = key_setup(Settings(home=home))
    assert second.generated is None and second.keyring is not None
    assert second.keyring.match(first.generated) is not None
    assert local_key(Settings(home=home, api_key="e" * 20)) == "e" * 20  # DTMS_API_KEY first
    configured = key_setup(Settings(home=tmp_path / "other", api_key="e" * 20))
    assert configured.key_path is None and not (tmp_path / "other").exists()


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(Rate(2.0, 3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # 1 token at 2/s
    assert bucket.take(0.25) == pytest.approx(0.25)  # waiting refills; nothing taken on refusal
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at the burst


def test_the_limiter_keeps_a_bucket_per_caller_and_class_and_rounds_retry_after_up() -> None:
    now = [0.0]
    limiter = RateLimiter(
        {RateClass.WRITE: Rate(0.4, 1), RateClass.QUERY: Rate(10.0, 2)}, clock=lambda: now[0], max_buckets=4
    )
    assert limiter.take("key:a", RateClass.WRITE) is None
    assert limiter.take("key:a", RateClass.WRITE) == 3  # 2.5 s, rounded up
    assert limiter.take("key:b", RateClass.WRITE) is None
    assert limiter.take("key:a", RateClass.QUERY) is None
    assert limiter.take("key:a", RateClass.QUERY) is None
    assert limiter.take("key:a", RateClass.QUERY) == 1  # 0.1 s: at least 1
    now[0] = 10.0
    for n in range(10):  # new addresses past max_buckets: refilled buckets are forgotten, memory bounded
        assert limiter.take(f"addr:{n}", RateClass.QUERY) is None
        assert len(limiter) <= 4
    assert RateClass.of("GET") is RateClass.QUERY and RateClass.of("delete") is RateClass.WRITE
