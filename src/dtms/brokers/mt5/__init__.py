"""The MetaTrader 5 adapter: MT5Broker over the official module or the mt5linux bridge."""

from dtms.brokers.mt5.adapter import MT5Broker
from dtms.brokers.mt5.loader import MT5SetupError, load_mt5_module
from dtms.brokers.mt5.trade import KEEP
from dtms.brokers.mt5.worker import CallTimeout, Priority, WorkerStatus

__all__ = [
    "KEEP",
    "CallTimeout",
    "MT5Broker",
    "MT5SetupError",
    "Priority",
    "WorkerStatus",
    "load_mt5_module",
]
