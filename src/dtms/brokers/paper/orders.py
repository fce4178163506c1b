"""The paper broker's order history: every order it filled or refused, with its state, comment and
magic, so that a request whose answer was lost can be found. Runs inside a `Book` transaction."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection, insert, select

from dtms.brokers.paper.schema import order_from_row, orders_t
from dtms.domain.broker_types import Order


def record_order(tx: Connection, order: Order, retcode: int) -> None:
    values = {**asdict(order), "direction": order.direction.value, "state": order.state.value}
    tx.execute(insert(orders_t).values(retcode=retcode, **values))


def history_orders(tx: Connection, since_ms: int) -> list[Order]:
    query = (
        select(orders_t).where(orders_t.c.time_ms >= since_ms).order_by(orders_t.c.time_ms, orders_t.c.ticket)
    )
    return [order_from_row(r) for r in tx.execute(query)]
