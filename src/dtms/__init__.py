"""DTMS: one authoritative service per trading account that guards every open position."""

__version__ = "0.1.0"
