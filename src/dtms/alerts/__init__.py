"""Alerts (Telegram, Discord) from the service's events, throttled and sent off the engine's path.

`AlertSink` wraps the service's event sink; `ClientAlerts` gives the client library its own triggers
(registration failures, the service unreachable). The texts are in `messages`."""

from __future__ import annotations

from dtms.alerts.channels import Discord, Posting, SendFailed, Telegram
from dtms.alerts.client import ClientAlerts
from dtms.alerts.messages import ALERTED_EVENTS, Alert, describe
from dtms.alerts.sink import AlertOptions, AlertSink, channels_from, options_from

__all__ = [
    "ALERTED_EVENTS",
    "Alert",
    "AlertOptions",
    "AlertSink",
    "ClientAlerts",
    "Discord",
    "Posting",
    "SendFailed",
    "Telegram",
    "channels_from",
    "describe",
    "options_from",
]
