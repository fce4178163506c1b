"""Market layer: bar windows, incremental indicators, regime and the trade-relative signal score."""
