"""Convert gym-anytrading 2.0.0's FOREX_EURUSD_1H_ASK.csv (read from the wheel) into DTMS's replay CSV.

    pip download --no-deps gym-anytrading==2.0.0 -d /tmp/gym
    python samples/eurusd_h1_2017/convert.py /tmp/gym/gym_anytrading-2.0.0-py3-none-any.whl

Writes EURUSD_H1_2017.csv and LICENSE next to this script. Prices and volumes are copied as
written in the source; only the time is rewritten, from "dd.mm.yyyy HH:MM:SS.fff" (UTC) to ISO-8601.
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

SOURCE = "gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv"
LICENSE = "gym_anytrading-2.0.0.dist-info/LICENSE"
HERE = Path(__file__).resolve().parent
OUT = HERE / "EURUSD_H1_2017.csv"


def convert(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as z:
        source = z.read(SOURCE).decode("utf-8")
        (HERE / "LICENSE").write_bytes(z.read(LICENSE))
    reader = csv.DictReader(io.StringIO(source))
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        rows = 0
        for row in reader:
            time = datetime.strptime(row["Time"], "%d.%m.%Y %H:%M:%S.%f").replace(tzinfo=UTC)
            iso = time.strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([iso, row["Open"], row["High"], row["Low"], row["Close"], row["Volume"]])
            rows += 1
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: convert.py <path to gym_anytrading-2.0.0-py3-none-any.whl>")
    print(f"{convert(Path(sys.argv[1]))} rows written to {OUT}")
