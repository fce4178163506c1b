"""Builders shared by the intelligent-exit tests (no tests here): an EURUSD trade around 1.10000, quotes
whose trigger side is a given price, and market views seeded with constructed bars whose ATR and EMA
slopes are known by construction."""

from __future__ import annotations

from collections.abc import Sequence

from dtms.domain.broker_types import Bar, SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, Timeframe
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import Skip
from dtms.market.view import MarketView

SYMBOL = "EURUSD"
# point, digits, tick size, contract, stops level 10 points (0.0001), freeze 0, volume min 0.01, step 0.01
EURUSD = SymbolInfo(SYMBOL, 0.00001, 5, 0.00001, 100_000, 10, 0, 0.01, 0.01, 100, 10)
ENTRY = 1.1
SPREAD = 0.0001
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC
NOW = T0 + 10 * 86_400_000
M15, M30 = Timeframe.M15, Timeframe.M30


def at(direction: Direction, offset: float) -> float:
    """The price `offset` in the trade's favour from ENTRY (negative: against it), on the 5-digit grid."""
    return round(ENTRY + direction.sign * offset, 5)


def make_trade(
    direction: Direction,
    *,
    sl_offset: float | None = -0.002,
    tp_offset: float | None = 0.005,
    volume: float = 1.0,
    **kw: object,
) -> Trade:
    """ENTRY, SL 20 pips behind (R = 0.002) and TP 50 pips ahead by default; the SL is the initial stop."""
    sl = None if sl_offset is None else at(direction, sl_offset)
    tp = None if tp_offset is None else at(direction, tp_offset)
    return Trade(1, 1, SYMBOL, direction, ENTRY, volume, sl, tp, sl, **kw)  # type: ignore[arg-type]


def quote(direction: Direction, price: float) -> Tick:
    """A tick whose trigger price for `direction` is `price` (bid for a BUY, ask for a SELL)."""
    if direction is Direction.BUY:
        return Tick(SYMBOL, NOW, price, round(price + SPREAD, 5))
    return Tick(SYMBOL, NOW, round(price - SPREAD, 5), price)


def trend_bars(
    tf: Timeframe, steps: Sequence[int], step: float, wick: float, start: float = 1.08
) -> list[Bar]:
    """Bars opening at the previous close and moving steps[i] × `step` (+1 up, −1 down), with `wick`/2 of
    wick beyond the open and the close: every true range is exactly step + wick, so ATR(14) = step + wick."""
    out: list[Bar] = []
    price = start
    period = tf.seconds * 1000
    for i, s in enumerate(steps):
        o, c = price, price + s * step
        out.append(Bar(SYMBOL, tf, T0 + i * period, o, max(o, c) + wick / 2, min(o, c) - wick / 2, c, 100))
        price = c
    return out


def flat_bars(tf: Timeframe, n: int, half_range: float, price: float = ENTRY) -> list[Bar]:
    """n bars opening and closing at `price` with a fixed range: ATR(14) = 2 × half_range, ATR ratio 1."""
    period = tf.seconds * 1000
    return [
        Bar(SYMBOL, tf, T0 + i * period, price, price + half_range, price - half_range, price, 100)
        for i in range(n)
    ]


def view_of(m30: Sequence[Bar] = (), m15: Sequence[Bar] = ()) -> MarketView:
    view = MarketView(SYMBOL, "fx")
    if m30:
        view.seed(M30, m30)
    if m15:
        view.seed(M15, m15)
    return view


def stop_intents(out: Sequence[Intent | Skip]) -> list[Intent]:
    return [x for x in out if isinstance(x, Intent) and x.kind is ActionKind.MODIFY_STOPS]


def closes(out: Sequence[Intent | Skip]) -> list[Intent]:
    return [x for x in out if isinstance(x, Intent) and x.kind is ActionKind.CLOSE]


def skips(out: Sequence[Intent | Skip], reason: str) -> list[Skip]:
    return [x for x in out if isinstance(x, Skip) and x.reason == reason]
