"""The alert sink: an EventSink that passes every event on and turns the triggering ones into alerts.

`emit` never waits: it describes the event, applies the per-key throttle and puts the alert on each
channel's bounded queue (a full queue drops the new alert and counts it). One sender task per channel
takes alerts off its queue, waits for its token bucket and posts (channels.post); a channel that hangs
or fails holds up only its own queue, never the engine and never the other channel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from dtms.alerts.channels import (
    REDACT,
    Channel,
    Discord,
    Posting,
    SendFailed,
    Telegram,
    install_log_redaction,
    post,
)
from dtms.alerts.messages import Alert, describe
from dtms.alerts.throttle import KeyThrottle, TokenBucket
from dtms.domain.events import EventSink

if TYPE_CHECKING:
    from dtms.config import Settings

log = structlog.get_logger("dtms.alerts")

FLUSH_S = 3.0
"""How long `stop` lets the senders deliver what is queued before it cancels them."""


@dataclass(frozen=True, slots=True)
class AlertOptions:
    """The numbers of the throttle, the queues and the posting (DTMS_ALERT_* settings)."""

    throttle_s: float = 300.0
    rate_per_min: float = 20.0
    burst: int = 5
    queue_size: int = 100
    posting: Posting = field(default_factory=Posting)


def channels_from(settings: Settings) -> list[Channel]:
    """The channels the settings configure: Telegram with token and chat, Discord with its webhook."""
    out: list[Channel] = []
    token, chat = settings.alert_telegram_token, settings.alert_telegram_chat
    if token is not None and chat:
        out.append(Telegram(token.get_secret_value(), chat))
    if settings.alert_discord_webhook is not None:
        out.append(Discord(settings.alert_discord_webhook.get_secret_value()))
    return out


def options_from(settings: Settings) -> AlertOptions:
    return AlertOptions(
        throttle_s=settings.alert_throttle_s,
        rate_per_min=settings.alert_rate_per_min,
        burst=settings.alert_burst,
        queue_size=settings.alert_queue_size,
        posting=Posting(timeout_s=settings.alert_timeout),
    )


class _Sender:
    """One channel's queue, token bucket and counters."""

    def __init__(self, channel: Channel, options: AlertOptions, clock: Callable[[], float]) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=options.queue_size)
        self.bucket = TokenBucket(options.rate_per_min, options.burst, clock)
        self.posting = options.posting
        self.sent = self.failed = self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    def offer(self, alert: Alert) -> None:
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:  # said, not once per alert of a flood
                log.warning(
                    "alert_dropped", channel=self.channel.name, trigger=alert.trigger, dropped=self.dropped
                )

    async def run(self, client: httpx.AsyncClient) -> None:
        name = self.channel.name
        while True:
            alert = await self.queue.get()
            try:
                await self.bucket.take()
                await post(client, self.channel, alert.text, self.posting)
                self.sent += 1
                log.info("alert_sent", channel=name, trigger=alert.trigger)
            except SendFailed as exc:
                self.failed += 1
                log.error("alert_not_sent", channel=name, trigger=alert.trigger, error=REDACT(str(exc)))
            except Exception as exc:  # noqa: BLE001 - a sender never dies of one alert (no traceback: secrets)
                self.failed += 1
                log.error("alert_not_sent", channel=name, trigger=alert.trigger, error=REDACT(repr(exc)))
            finally:
                self.queue.task_done()


class AlertSink:
    """Wraps the event sink the service already has (logging); see the module's docstring.

    With no channel configured the alerts are only logged (the `alert` log line). `emit` is safe from any
    thread once `start` ran in the loop the senders use; before `start` alerts wait in the queues."""

    def __init__(
        self,
        inner: EventSink,
        channels: Sequence[Channel] = (),
        options: AlertOptions | None = None,
        *,
        label: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.options = options or AlertOptions()
        self.label = label
        self.throttle = KeyThrottle(self.options.throttle_s, clock)
        self.senders = [_Sender(c, self.options, clock) for c in channels]
        self.raised = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        for channel in channels:
            REDACT.add(channel.secrets)
        if channels:
            install_log_redaction()

    @classmethod
    def from_settings(cls, settings: Settings, inner: EventSink) -> AlertSink:
        return cls(inner, channels_from(settings), options_from(settings), label=settings.account)

    # -- the engine's side: never waits, never raises ---------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        self.inner.emit(event, **fields)
        try:
            alert = describe(event, fields, self.label)
            if alert is None:
                return
            loop = self._loop
            if loop is not None and not loop.is_closed() and _running_loop() is not loop:
                loop.call_soon_threadsafe(self._accept, alert)
            else:
                self._accept(alert)
        except Exception as exc:  # an alert must never break the engine; the event itself is logged
            log.exception("alert_failed", event_name=event, error=str(exc))

    def _accept(self, alert: Alert) -> None:
        suppressed = self.throttle.admit(alert.key)
        if suppressed is None:
            log.info("alert_suppressed", trigger=alert.trigger, key=repr(alert.key))
            return
        if suppressed:
            similar = f"{suppressed} similar alert{'s' if suppressed > 1 else ''}"
            alert = Alert(alert.trigger, alert.key, f"{alert.text}\n({similar} suppressed since the last)")
        self.raised += 1
        log.warning(
            "alert", trigger=alert.trigger, text=alert.text, channels=[s.channel.name for s in self.senders]
        )
        for sender in self.senders:
            sender.offer(alert)

    # -- the senders' life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one sender task per channel in the running loop (no task without a channel)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        if not self.senders:
            return
        timeout = self.options.posting.timeout_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)
        for sender in self.senders:
            sender.task = asyncio.create_task(
                sender.run(self._client), name=f"dtms-alerts-{sender.channel.name}"
            )
        log.info("alerts_started", channels=[s.channel.name for s in self.senders])

    async def stop(self, flush_s: float = FLUSH_S) -> None:
        """Let the senders deliver what is queued for up to `flush_s`, then stop them."""
        running = [s for s in self.senders if s.task is not None]
        if running:
            joined = asyncio.gather(*(s.queue.join() for s in running))
            try:
                await asyncio.wait_for(joined, flush_s)
            except TimeoutError:
                left = {s.channel.name: s.queue.qsize() for s in running}
                log.warning("alerts_unsent_at_stop", queued=left)
        for sender in running:
            assert sender.task is not None
            sender.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender.task
            sender.task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    def stats(self) -> dict[str, Any]:
        """Counters for status and metrics: raised, suppressed, and per channel sent/failed/dropped/queued."""
        return {
            "raised": self.raised,
            "suppressed": self.throttle.suppressed_total,
            "channels": {
                s.channel.name: {
                    "sent": s.sent,
                    "failed": s.failed,
                    "dropped": s.dropped,
                    "queued": s.queue.qsize(),
                }
                for s in self.senders
            },
        }


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
