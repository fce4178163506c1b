"""When a symbol trades: weekly sessions in the exchange's time zone, with optional daily breaks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = "America/New_York"


@dataclass(frozen=True, slots=True)
class TradingHours:
    """A weekly session: open from (open_weekday, open_time) to (close_weekday, close_time) local time,
    closed during the daily break; `always` for markets that never close (crypto).
    Weekdays are Python's: Monday 0 ... Sunday 6."""

    asset_class: str
    timezone: str = NEW_YORK
    open_weekday: int = 6
    open_time: time = time(17, 0)
    close_weekday: int = 4
    close_time: time = time(17, 0)
    daily_break: tuple[time, time] | None = None
    always: bool = False

    def is_open(self, utc_ms: int) -> bool:
        if self.always:
            return True
        local = datetime.fromtimestamp(utc_ms / 1000, tz=UTC).astimezone(ZoneInfo(self.timezone))
        if not self._in_week(local):
            return False
        if self.daily_break is not None:
            start, end = self.daily_break
            if start <= local.time() < end:
                return False
        return True

    def _in_week(self, local: datetime) -> bool:
        """Inside the weekly window from the open (e.g. Sunday 17:00) to the close (Friday 17:00)."""
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        opens = self.open_weekday * 1440 + self.open_time.hour * 60 + self.open_time.minute
        closes = self.close_weekday * 1440 + self.close_time.hour * 60 + self.close_time.minute
        if opens <= closes:
            return opens <= minute < closes
        return minute >= opens or minute < closes

    def next_open_ms(self, utc_ms: int, horizon_days: int = 8) -> int | None:
        """The first minute at or after utc_ms when the market is open (None if none within the horizon)."""
        if self.is_open(utc_ms):
            return utc_ms
        start = datetime.fromtimestamp(utc_ms / 1000, tz=UTC).replace(second=0, microsecond=0)
        for minute in range(1, horizon_days * 1440):
            candidate = int((start + timedelta(minutes=minute)).timestamp() * 1000)
            if self.is_open(candidate):
                return candidate
        return None


FX = TradingHours("fx")
METAL = TradingHours("metal", daily_break=(time(17, 0), time(18, 0)))
CRYPTO = TradingHours("crypto", always=True)
US_INDEX = TradingHours("index", open_time=time(18, 0), daily_break=(time(17, 0), time(18, 0)))

DEFAULT_HOURS = {
    "EURUSD": FX,
    "GBPUSD": FX,
    "USDJPY": FX,
    "XAUUSD": METAL,
    "BTCUSD": CRYPTO,
    "US30": US_INDEX,
}


def default_hours(symbol: str) -> TradingHours:
    """The asset class's hours for a known symbol; FX hours for anything else."""
    return DEFAULT_HOURS.get(symbol.upper(), FX)
