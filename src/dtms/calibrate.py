"""`dtms calibrate` / `python -m dtms.calibrate`: replay the shipped EURUSD H1 year with and without DTMS
and print the report (SPEC-engine.md "Calibration"); exit code 1 when a target is not met."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from dtms.brokers.paper.replay import load_bars
from dtms.calibration.report import build
from dtms.calibration.run import Plan
from dtms.calibration.setup import load_settings
from dtms.calibration.sides import calibrate
from dtms.calibration.text import render
from dtms.config import ConfigError
from dtms.logs import configure_logging

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "eurusd_h1_2017" / "EURUSD_H1_2017.csv"
OVERLAY = REPO / "config" / "replay_h1.json"
QUICK_MONTHS = 2


def quick_until(csv: Path, months: int = QUICK_MONTHS) -> int:
    """The first of the month `months` calendar months after the data's first bar, in ms (UTC)."""
    first = datetime.fromtimestamp(load_bars(csv)[0].time_ms / 1000, UTC)
    month = first.month - 1 + months
    end = datetime(first.year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(end.timestamp() * 1000)


def parse_day(text: str) -> int:
    """YYYY-MM-DD (UTC midnight) in ms."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"--until: {text!r} is not a date YYYY-MM-DD") from None
    return int(day.timestamp() * 1000)


def run_cli(
    csv: Path | None = None,
    overlay: Path | None = None,
    *,
    quick: bool = False,
    until: str | None = None,
    json_out: Path | None = None,
) -> int:
    """Run and print the report (and write it as JSON); 0: every target met, 1: one is not, 2: bad input."""
    configure_logging("console", logging.WARNING)
    try:
        csv, settings = csv or SAMPLE, load_settings(overlay or OVERLAY)
        load_bars(csv)  # a bad file is reported here, before anything starts
        until_ms = parse_day(until) if until else quick_until(csv) if quick else None
        plan = Plan(csv, until_ms=until_ms)
        report = build(asyncio.run(calibrate(plan, settings)))
    except (OSError, ValueError, ConfigError) as exc:
        print(f"calibration error: {exc}", file=sys.stderr)
        return 2
    print(render(report, plan, settings))
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if all(report.targets.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dtms.calibrate", description=__doc__)
    parser.add_argument("--csv", type=Path, default=SAMPLE, help="H1 bars CSV (default: the shipped year)")
    parser.add_argument(
        "--overlay", type=Path, default=OVERLAY, help="replay overlay (config/replay_h1.json)"
    )
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_MONTHS} months only")
    parser.add_argument("--until", help="replay the data before this day only (YYYY-MM-DD, UTC)")
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    return run_cli(args.csv, args.overlay, quick=args.quick, until=args.until, json_out=args.json_out)


if __name__ == "__main__":
    raise SystemExit(main())
