"""Brokers: the async Broker protocol and its adapters (paper now, MT5 later)."""
