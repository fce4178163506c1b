"""Calibration (SPEC-engine.md): replay the shipped EURUSD H1 year with trades every 4 hours in both
directions and compare the same trades with and without DTMS."""
