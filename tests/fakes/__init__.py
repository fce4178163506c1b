"""Test doubles of outside systems (the MetaTrader5 module), written from their documented behaviour."""
