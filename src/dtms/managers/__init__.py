"""Managers: pure policies that turn (trade, market view, clock) into intents."""
