"""Tick polling (MT5 pushes nothing): the watched symbols and those with open positions are read with
symbol_info_tick, and the ticks between two polls are filled in with copy_ticks_from. Also the
measurement of the server's UTC offset. Worker thread only."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dtms.brokers.mt5 import convert
from dtms.brokers.mt5.reads import Reads
from dtms.brokers.mt5.session import MT5CallError
from dtms.domain.broker_types import Tick
from dtms.domain.sessions import DEFAULT_HOURS, default_hours

log = logging.getLogger(__name__)

COPY_TICKS_ALL = -1
GAP_TICKS = 1000  # at most this many ticks are recovered between two polls of a symbol
POSITIONS_REFRESH_S = 1.0


@dataclass(slots=True)
class _Seen:
    """The last tick handed out for a symbol: its server time, how many ticks at that very
    millisecond were handed out, and its quote."""

    msc: int
    count: int
    bid: float
    ask: float


class TickTracker:
    """Which symbols to poll and what was already handed out."""

    def __init__(self, reads: Reads) -> None:
        self.reads = reads
        self.watched: set[str] = set()
        self._positions_read = float("-inf")
        self._seen: dict[str, _Seen] = {}
        self._selected: set[str] = set()

    def symbols(self) -> list[str]:
        return sorted(self.watched | self.reads.position_symbols)

    def poll(self) -> list[Tick]:
        """The new ticks of every polled symbol since the last poll, oldest first per symbol."""
        now = time.monotonic()
        if now - self._positions_read >= POSITIONS_REFRESH_S:
            positions = self.reads.session.rows("positions_get")
            self.reads.position_symbols = {str(p.symbol) for p in positions}
            self._positions_read = now
        fresh: list[Tick] = []
        for symbol in self.symbols():
            if symbol not in self._selected:  # symbol_info_tick needs it in the Market Watch
                self.reads.session.optional("symbol_select", symbol, True)
                self._selected.add(symbol)
            raw = self.reads.raw_tick(symbol)
            if raw is not None:
                fresh.extend(self.reads.note(t) for t in self._new_ticks(symbol, raw))
        return fresh

    def _new_ticks(self, symbol: str, raw: Any) -> list[Tick]:
        msc, bid, ask = int(raw.time_msc), float(raw.bid), float(raw.ask)
        seen = self._seen.get(symbol)
        if seen is None:  # the first look: hand out the current tick only
            self._seen[symbol] = _Seen(msc, 1, bid, ask)
            return [convert.tick(symbol, raw, self.reads.time)]
        if msc < seen.msc or (msc == seen.msc and (bid, ask) == (seen.bid, seen.ask)):
            return []
        rows = self._since(symbol, seen.msc)
        new: list[Any] = []
        at_last = 0
        for row in rows:
            row_msc = int(convert.field(row, "time_msc"))
            if row_msc == seen.msc:
                at_last += 1
                if at_last <= seen.count:
                    continue
            if row_msc >= seen.msc:
                new.append(row)
        if not new or int(convert.field(new[-1], "time_msc")) < msc:
            new.append(raw)  # the history did not reach the current tick: hand it out anyway
        last_msc = int(convert.field(new[-1], "time_msc"))
        count = sum(1 for r in new if int(convert.field(r, "time_msc")) == last_msc)
        if last_msc == seen.msc:
            count += seen.count
        last = new[-1]
        self._seen[symbol] = _Seen(
            last_msc, count, float(convert.field(last, "bid")), float(convert.field(last, "ask"))
        )
        return [convert.tick(symbol, r, self.reads.time) for r in new]

    def _since(self, symbol: str, msc: int) -> list[Any]:
        """Ticks from the second of `msc` on (server time), or none when the history cannot be read."""
        start = self.reads.time.server_datetime(self.reads.time.utc_ms(msc - msc % 1000))
        try:
            rows = self.reads.session.rows("copy_ticks_from", symbol, start, GAP_TICKS, COPY_TICKS_ALL)
        except MT5CallError as exc:
            if exc.unreachable:
                raise
            log.warning("mt5 ticks of %s since %s could not be read: %s", symbol, msc, exc)
            return []
        found = list(rows)
        if len(found) >= GAP_TICKS:
            log.warning(
                "mt5 more than %s ticks of %s since the last poll: some were skipped", GAP_TICKS, symbol
            )
        return found

    def measure_offset(self, wall_ms: int, extra: Iterable[str] = ()) -> int | None:
        """The server's UTC offset in seconds from the freshest tick of a symbol whose session is open
        now (a stale weekend quote would mislead), rounded to 15 minutes; None when there is none."""
        candidates = sorted(set(self.symbols()) | set(extra) | set(DEFAULT_HOURS))
        freshest: int | None = None
        for symbol in candidates:
            if not default_hours(symbol).is_open(wall_ms):
                continue
            raw = self.reads.raw_tick(symbol)
            if raw is not None and int(raw.time_msc) > 0:
                freshest = max(freshest or 0, int(raw.time_msc))
        if freshest is None:
            return None
        offset = convert.measure_offset_s(freshest, wall_ms)
        if abs(offset) > convert.MAX_OFFSET_S:
            log.warning("mt5 measured a server offset of %s s, beyond ±14 h: ignored", offset)
            return None
        return offset
