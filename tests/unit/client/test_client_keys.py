"""One Idempotency-Key per logical call that changes something, the same on every retry (and on every
delivery of an outbox row, across client restarts); the API key on every request."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.unit.client.fake import FakeService, Sleeps, envelope, settings

from dtms.client import ClientSettings, DTMSClient, RegistrationStatus


def test_one_key_reused_across_the_retries_of_a_call() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", httpx.ConnectError, envelope(503, "not_ready"), envelope(429, "rate_limited"))
    with DTMSClient(settings=settings(), transport=service.transport(), sleep=sleeps) as dtms:
        dtms.execute("EURUSD", "BUY", 0.1)
        dtms.execute("EURUSD", "BUY", 0.1)
    keys = [r.headers["Idempotency-Key"] for r in service.requests]
    assert len(keys) == 5
    assert len(set(keys[:4])) == 1  # the first call: four attempts, one key
    assert keys[4] != keys[0]  # the second logical call: a new key
    cids = [r.headers["X-Correlation-ID"] for r in service.requests]
    assert len(set(cids[:4])) == 1 and cids[4] != cids[0]


def test_a_given_key_is_used_and_reads_carry_none() -> None:
    service = FakeService()
    with DTMSClient(settings=settings(), transport=service.transport()) as dtms:
        dtms.disable_trade(7, idempotency_key="mine-1")
        dtms.status()
        dtms.submit_intent(7, "close", idempotency_key="mine-2")
    assert service.requests[0].headers["Idempotency-Key"] == "mine-1"
    assert "Idempotency-Key" not in service.requests[1].headers
    assert service.requests[2].headers["Idempotency-Key"] == "mine-2"


def test_registration_retries_share_one_key(tmp_path: Path) -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", httpx.ReadTimeout, httpx.ReadTimeout)
    with DTMSClient(settings=settings(tmp_path), transport=service.transport(), sleep=sleeps) as dtms:
        result = dtms.register_trade(11, "EURUSD", "BUY")
    assert result.status is RegistrationStatus.REGISTERED
    assert len({r.headers["Idempotency-Key"] for r in service.requests}) == 1
    assert len(service.requests) == 3


def test_an_outbox_row_keeps_its_key_across_client_restarts(tmp_path: Path) -> None:
    service, sleeps = FakeService(), Sleeps()
    service.down.add("a")
    with DTMSClient(settings=settings(tmp_path), transport=service.transport(), sleep=sleeps) as first:
        assert first.register_trade(12, "EURUSD", "SELL").status is RegistrationStatus.QUEUED
    keys_while_down = {r.headers["Idempotency-Key"] for r in service.requests}
    assert len(keys_while_down) == 1
    service.down.clear()
    with DTMSClient(settings=settings(tmp_path), transport=service.transport(), sleep=sleeps) as second:
        assert second.flush_outbox() == 1
    assert service.posted()[-1].headers["Idempotency-Key"] in keys_while_down
    assert service.tickets_posted()[-1] == 12


def test_the_api_key_goes_in_x_api_key() -> None:
    service = FakeService()
    with DTMSClient(settings=settings(api_key="k" * 20), transport=service.transport()) as dtms:
        dtms.status()
        dtms.wait_ready(1)
    assert [r.headers["X-API-Key"] for r in service.requests] == ["k" * 20] * 2
    with DTMSClient(settings=settings(), transport=service.transport()) as dtms:
        dtms.status()
    assert "X-API-Key" not in service.requests[-1].headers


def test_the_key_comes_from_dtms_api_key_else_the_generated_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert ClientSettings.from_env({"DTMS_HOME": str(home)}).api_key is None
    home.mkdir()
    (home / "api_key").write_text("generated-key-0123456789\n")
    assert ClientSettings.from_env({"DTMS_HOME": str(home)}).api_key == "generated-key-0123456789"
    assert ClientSettings.from_env({}, home=home).api_key == "generated-key-0123456789"
    env = {"DTMS_HOME": str(home), "DTMS_API_KEY": "from-the-environment-1"}
    assert ClientSettings.from_env(env).api_key == "from-the-environment-1"
    assert ClientSettings.from_env(env, api_key="given").api_key == "given"
    assert "generated-key" not in repr(ClientSettings.from_env({}, home=home))
