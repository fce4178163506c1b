"""Tests of the MT5 adapter (src/dtms/brokers/mt5) and of the fake MetaTrader5 module it runs against."""
