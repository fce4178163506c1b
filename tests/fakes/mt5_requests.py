"""The fake trade server's order_send and order_check: TRADE_ACTION_DEAL (open, close, netting
reduce/reverse), TRADE_ACTION_SLTP and TRADE_ACTION_CLOSE_BY, each answered with MT5's retcodes."""

from __future__ import annotations

from typing import Any

from tests.fakes import mt5_rules as rules
from tests.fakes import mt5_types as t
from tests.fakes.mt5_server import Pos, Server
from tests.fakes.mt5_specs import Spec

_request_ids = iter(range(1, 1 << 62))


class Reply(Exception):
    """A request ends with this retcode (raised from deep inside the checks)."""

    def __init__(self, retcode: int) -> None:
        super().__init__(retcode)
        self.retcode = retcode


def result(server: Server, request: dict[str, Any], retcode: int, **fields: Any) -> Any:
    quote = server.quote(str(request.get("symbol", ""))) or (0.0, 0.0)
    return t.OrderSendResult(
        retcode=retcode,
        bid=quote[0],
        ask=quote[1],
        comment=t.RETCODE_COMMENTS.get(retcode, ""),
        request_id=next(_request_ids),
        request=t.TradeRequest(**request),
        **fields,
    )


def execute(server: Server, request: dict[str, Any]) -> Any:
    """Run a request under the server lock; always an OrderSendResult."""
    with server.lock:
        try:
            action = request.get("action")
            if action == t.TRADE_ACTION_SLTP:
                return _sltp(server, request)
            if action == t.TRADE_ACTION_DEAL:
                return _deal(server, request)
            if action == t.TRADE_ACTION_CLOSE_BY:
                return _close_by(server, request)
            raise Reply(t.TRADE_RETCODE_INVALID)
        except Reply as reply:
            return result(server, request, reply.retcode)


def check(server: Server, request: dict[str, Any]) -> Any:
    """order_check: validate an open without executing it; retcode 0 when it would pass."""
    with server.lock:
        floating, used = server.used_margin()
        equity = round(server.balance + floating, 2)
        need = 0.0
        retcode = 0
        try:
            spec, order_type, volume, price = _deal_basics(server, request, closing=False)
            _stops(request, order_type, server, spec)
            need = rules.margin(volume, price, spec, server.leverage)
            if need > equity - used:
                raise Reply(t.TRADE_RETCODE_NO_MONEY)
        except Reply as reply:
            retcode = reply.retcode
        free = round(equity - used - need, 2)
        return t.OrderCheckResult(
            retcode=retcode,
            balance=server.balance,
            equity=equity,
            profit=round(floating, 2),
            margin=round(need, 2),
            margin_free=free,
            margin_level=round(equity / (used + need) * 100, 2) if used + need else 0.0,
            comment="Done" if retcode == 0 else t.RETCODE_COMMENTS.get(retcode, ""),
            request=t.TradeRequest(**request),
        )


def _position(server: Server, ticket: Any) -> Pos:
    pos = server.positions.get(int(ticket or 0))
    if pos is None:
        closed = bool(ticket) and server.was_position(int(ticket))
        raise Reply(t.TRADE_RETCODE_POSITION_CLOSED if closed else t.TRADE_RETCODE_INVALID)
    return pos


def _quote(server: Server, symbol: str) -> tuple[float, float]:
    quote = server.quote(symbol)
    if quote is None:
        raise Reply(t.TRADE_RETCODE_PRICE_OFF)
    return quote


def _sltp(server: Server, r: dict[str, Any]) -> Any:
    pos = _position(server, r.get("position"))
    if r.get("symbol", pos.symbol) != pos.symbol:
        raise Reply(t.TRADE_RETCODE_INVALID)
    spec = server.specs[pos.symbol]
    sl, tp = float(r.get("sl", 0.0)), float(r.get("tp", 0.0))  # an omitted level means "none"
    if abs(sl - pos.sl) < rules.EPS and abs(tp - pos.tp) < rules.EPS:
        raise Reply(t.TRADE_RETCODE_NO_CHANGES)
    bid, ask = _quote(server, pos.symbol)
    if rules.frozen(pos.type, pos.sl, pos.tp, bid, ask, spec):
        raise Reply(t.TRADE_RETCODE_FROZEN)
    error = rules.stops_error(pos.type, sl, tp, bid, ask, spec)
    if error is not None:
        raise Reply(error)
    pos.sl, pos.tp, pos.update_msc = sl, tp, server.now_msc()
    return result(server, r, t.TRADE_RETCODE_DONE)


def _deal_basics(server: Server, r: dict[str, Any], closing: bool) -> tuple[Spec, int, float, float]:
    """Symbol, type, volume, filling and price checks shared by every DEAL; answers the fill price."""
    spec = server.specs.get(str(r.get("symbol", "")))
    order_type = r.get("type", t.ORDER_TYPE_BUY)
    if spec is None or order_type not in (t.ORDER_TYPE_BUY, t.ORDER_TYPE_SELL):
        raise Reply(t.TRADE_RETCODE_INVALID)
    error = rules.trade_mode_error(spec, order_type, closing)
    if error is not None:
        raise Reply(error)
    volume = float(r.get("volume", 0.0))
    error = rules.volume_error(volume, spec) or rules.filling_error(r.get("type_filling", 0), spec)
    if error is not None:
        raise Reply(error)
    bid, ask = _quote(server, spec.name)
    market = ask if order_type == t.ORDER_TYPE_BUY else bid
    asked = float(r.get("price", 0.0))
    if asked and rules.points(abs(asked - market), spec) > int(r.get("deviation", 0)):
        raise Reply(t.TRADE_RETCODE_REQUOTE)
    return spec, order_type, volume, market


def _stops(r: dict[str, Any], order_type: int, server: Server, spec: Spec) -> tuple[float, float]:
    sl, tp = float(r.get("sl", 0.0)), float(r.get("tp", 0.0))
    bid, ask = _quote(server, spec.name)
    error = rules.stops_error(order_type, sl, tp, bid, ask, spec)
    if error is not None:
        raise Reply(error)
    return sl, tp


def _deal(server: Server, r: dict[str, Any]) -> Any:
    closing = bool(r.get("position"))
    spec, order_type, volume, price = _deal_basics(server, r, closing)
    magic, comment = int(r.get("magic", 0)), str(r.get("comment", ""))
    filling = int(r.get("type_filling", 0))
    if closing:
        pos = _position(server, r["position"])
        if pos.symbol != spec.name or pos.type == order_type:
            raise Reply(t.TRADE_RETCODE_INVALID)
        if volume > pos.volume + rules.EPS:
            raise Reply(t.TRADE_RETCODE_INVALID_CLOSE_VOLUME)
        rest = round(pos.volume - volume, 8)
        if rules.EPS < rest < spec.volume_min - rules.EPS:
            raise Reply(t.TRADE_RETCODE_INVALID_VOLUME)
        if rules.frozen(pos.type, pos.sl, pos.tp, *_quote(server, spec.name), spec):
            raise Reply(t.TRADE_RETCODE_FROZEN)
        order = server.add_order(
            spec.name, order_type, volume, price, magic, comment, pos.identifier, filling=filling
        )
        deal = server.close_volume(pos, order, volume, price, t.DEAL_REASON_EXPERT, comment)
        return result(
            server, r, t.TRADE_RETCODE_DONE, deal=deal.ticket, order=order.ticket, volume=volume, price=price
        )
    sl, tp = _stops(r, order_type, server, spec)
    same = [p for p in server.positions.values() if p.symbol == spec.name]
    netted = same[0] if same and server.margin_mode != t.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING else None
    if server.hedge_prohibited and any(p.type != order_type for p in same):
        raise Reply(t.TRADE_RETCODE_HEDGE_PROHIBITED)
    added = volume if netted is None or netted.type == order_type else max(0.0, volume - netted.volume)
    floating, used = server.used_margin()
    if added and rules.margin(added, price, spec, server.leverage) > server.balance + floating - used:
        raise Reply(t.TRADE_RETCODE_NO_MONEY)
    ticket = server.next_id()
    position_id = ticket if netted is None else netted.identifier
    order = server.add_order(
        spec.name,
        order_type,
        volume,
        price,
        magic,
        comment,
        position_id,
        sl=sl,
        tp=tp,
        filling=filling,
        ticket=ticket,
    )
    if netted is None:
        _, deal = server.open_position(order, price, sl, tp)
    else:
        deal = _net(server, netted, order, volume, price, sl, tp)
    return result(
        server, r, t.TRADE_RETCODE_DONE, deal=deal.ticket, order=order.ticket, volume=volume, price=price
    )


def _net(server: Server, pos: Pos, order: Any, volume: float, price: float, sl: float, tp: float) -> Any:
    """Netting: the same direction adds at the weighted price; the opposite reduces, closes, or
    reverses the position (one INOUT deal, as MT5 books a reversal)."""
    spec = server.specs[pos.symbol]
    if pos.type == order.type:
        total = round(pos.volume + volume, 8)
        pos.price_open = round((pos.price_open * pos.volume + price * volume) / total, spec.digits + 3)
        pos.volume, pos.sl, pos.tp = total, sl or pos.sl, tp or pos.tp
        pos.update_msc = server.now_msc()
        return server.add_deal(
            order,
            pos.identifier,
            order.type,
            t.DEAL_ENTRY_IN,
            volume,
            price,
            0.0,
            t.DEAL_REASON_EXPERT,
            order.comment,
        )
    if volume <= pos.volume + rules.EPS:
        return server.close_volume(pos, order, volume, price, t.DEAL_REASON_EXPERT, order.comment)
    gain = rules.profit(pos.type, pos.price_open, price, pos.volume, spec)
    deal = server.add_deal(
        order,
        pos.identifier,
        order.type,
        t.DEAL_ENTRY_INOUT,
        volume,
        price,
        gain,
        t.DEAL_REASON_EXPERT,
        order.comment,
    )
    pos.type, pos.volume, pos.price_open = order.type, round(volume - pos.volume, 8), price
    pos.sl, pos.tp, pos.update_msc = sl, tp, server.now_msc()
    return deal


def _close_by(server: Server, r: dict[str, Any]) -> Any:
    """Hedging only: both positions lose the smaller volume at the opposite position's open price;
    the larger keeps the remainder."""
    if server.margin_mode != t.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING:
        raise Reply(t.TRADE_RETCODE_INVALID)
    pos = _position(server, r.get("position"))
    by = _position(server, r.get("position_by"))
    if pos.ticket == by.ticket or pos.symbol != by.symbol or pos.type == by.type:
        raise Reply(t.TRADE_RETCODE_INVALID)
    spec = server.specs[pos.symbol]
    if rules.frozen(pos.type, pos.sl, pos.tp, *_quote(server, spec.name), spec):
        raise Reply(t.TRADE_RETCODE_FROZEN)
    amount, price, magic = min(pos.volume, by.volume), by.price_open, int(r.get("magic", 0))
    order = server.add_order(
        pos.symbol, t.ORDER_TYPE_CLOSE_BY, amount, price, magic, f"#{pos.ticket} by #{by.ticket}",
        pos.identifier, position_by_id=by.identifier,
    )  # fmt: skip
    deal = server.close_volume(
        pos, order, amount, price, t.DEAL_REASON_EXPERT, f"[by #{by.ticket}]", t.DEAL_ENTRY_OUT_BY
    )
    server.close_volume(
        by, order, amount, price, t.DEAL_REASON_EXPERT, f"[by #{pos.ticket}]", t.DEAL_ENTRY_OUT_BY
    )
    return result(
        server, r, t.TRADE_RETCODE_DONE, deal=deal.ticket, order=order.ticket, volume=amount, price=price
    )
