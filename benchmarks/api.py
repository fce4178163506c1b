"""API throughput and latency against a real server, each beside a no-op route of the same app, same run.

Starts the real ``dtms serve`` (tests.e2e.server.make_server: SQLite store in a temp dir, paper broker,
manual feed, DTMS_ADOPT_UNREGISTERED=none, the service's default 10 s reconciliation, rate limits far above
this load) with DTMS_BENCH_ROUTES=true, which mounts two benchmark-only no-op routes (dtms.api.routes_bench)
behind the same key, scope and rate-limit dependency and the same middleware as every protected route:

- POST /bench/noop: validates the registration body (TradeEnableBody) and answers; nothing else;
- GET /bench/noop/{ticket}: validates the ticket and answers.

The server runs pinned to core 0, the load generator to core 1, both at niceness -10 (--nice; root). The
load generator is wrk (Debian package `wrk`, one thread, keep-alive connections, a Lua script giving each
request its own ticket); the script prints wrk's own CPU time (wait4 rusage) next to the server's (/proc,
also per request) and what else ran on each core meanwhile.
For each number of clients (10, 100) and each round, four runs of --duration seconds follow each other:

1. no-op POST:   POST /bench/noop with the registration body (same tickets, so the same body size);
2. registration: POST /dtms/trade/enable, every request a new open position (`{"ticket", "symbol":
   "EURUSD", "direction": "BUY"}`: a broker check, a tick read, one trade insert through the store's
   group-commit writer, answered after its commit);
3. no-op GET:    GET /bench/noop/{ticket};
4. query:        GET /dtms/trade/{ticket} over registered trades.

Ratios compare registration with the no-op POST and the query with the no-op GET; throughput is pooled
over the rounds, p50/p99 come from wrk's latency histograms merged over the rounds. Targets (issue 6
item 11): registrations >= 75 % of the no-op POST's throughput at 10 clients and p99 <= 1.5 x its p99 at
10 and 100 clients; queries >= 80 % of the no-op GET's throughput.

The positions are written straight into the paper broker's file (its Book and Ledger, one transaction;
the warm-up's before the server starts, then before each registration run as many as it may register, so
that few more are open than registered: every reconciliation pass lists them all). Opening them through
the API checks the margin over every open position and would take minutes. The quote is 0.02 so that
they fit the paper account's margin. The paper broker simulates 0-5 ms per broker call by default; this
benchmark sets it to 0 (a registration makes two broker calls) so that it measures the service, not the
simulation; --broker-delay keeps the default.

    apt-get install wrk                          # Debian package; the benchmark needs it
    .venv/bin/python benchmarks/api.py           # ~2.5 min
    .venv/bin/python benchmarks/api.py --quick   # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.server import Server, make_server  # noqa: E402

from dtms.brokers.paper.book import Book  # noqa: E402
from dtms.brokers.paper.costs import Costs  # noqa: E402
from dtms.brokers.paper.ledger import Ledger  # noqa: E402
from dtms.domain.broker_types import Tick  # noqa: E402
from dtms.domain.enums import Direction, MarginMode  # noqa: E402

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PRICE = 0.02  # EURUSD quote: 0.2 of margin per 0.01 lot at 1:100, so 40,000 positions fit 10,000
SERVER_CORE, LOAD_CORE = 0, 1
QUERY_TICKETS = 2000  # the trades queried (registered during warm-up), cycled through
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    method: str
    path: str


NOOP_POST = Kind("noop_post", "POST /bench/noop (no-op)", "POST", "/bench/noop")
REGISTER = Kind("register", "POST /dtms/trade/enable", "POST", "/dtms/trade/enable")
NOOP_GET = Kind("noop_get", "GET /bench/noop/{t} (no-op)", "GET", "/bench/noop/")
QUERY = Kind("query", "GET /dtms/trade/{ticket}", "GET", "/dtms/trade/")
KINDS = (NOOP_POST, REGISTER, NOOP_GET, QUERY)

LUA = """-- benchmarks/api.py: one ticket per request, from a file; the latency histogram to a file at the end
local tickets, n, once = {{}}, 0, {once}
function init(args)
  for line in io.lines("{tickets}") do tickets[#tickets + 1] = line end
end
function request()
  n = n + 1
  local ticket
  if n <= #tickets then ticket = tickets[n]
  elseif once then ticket = "0"  -- out of positions: an invalid ticket (422), counted as a failure
  else ticket = tickets[(n - 1) % #tickets + 1] end
  if "{method}" == "POST" then
    local body = '{{"ticket":' .. ticket .. ',"symbol":"EURUSD","direction":"BUY"}}'
    return wrk.format("POST", "{path}", nil, body)
  end
  return wrk.format("GET", "{path}" .. ticket)
end
function done(summary, latency, requests)
  local f = io.open("{out}", "w")
  local e = summary.errors
  f:write(string.format('{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"histogram":[', summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout))
  for i = 1, #latency do
    local value, count = latency(i)
    f:write(string.format(i > 1 and ",[%d,%d]" or "[%d,%d]", value, count))
  end
  f:write("]}}\\n")
  f:close()
end
"""


def percentile(histogram: Counter[int], q: float) -> float:
    """The q-quantile (0..1) in ms of a {latency µs: count} histogram (nearest rank)."""
    total = sum(histogram.values())
    if total == 0:
        return float("nan")
    rank = max(1, round(q * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value / 1000
    return max(histogram) / 1000


@dataclass
class Run:
    kind: Kind
    clients: int
    requests: int
    seconds: float
    failures: int
    histogram: Counter[int]
    wrk_cpu: float
    """wrk's CPU seconds / wall seconds (1.0 = one core)."""
    server_cpu: float
    server_cpu_s: float
    """The server's CPU seconds during the run."""
    others: dict[int, float]
    """Per core: the share of the core others than the server and wrk used meanwhile."""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


@dataclass
class Pooled:
    runs: list[Run] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return sum(r.requests for r in self.runs) / sum(r.seconds for r in self.runs)

    def p(self, q: float) -> float:
        merged: Counter[int] = Counter()
        for r in self.runs:
            merged.update(r.histogram)
        return percentile(merged, q)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time per answered request, ms."""
        return 1000 * sum(r.server_cpu_s for r in self.runs) / max(1, self.requests)

    def mean(self, attr: str) -> float:
        return statistics.fmean(getattr(r, attr) for r in self.runs)


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def core_busy() -> dict[int, float]:
    """Busy CPU seconds per core since boot (/proc/stat: everything but idle and iowait)."""
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            busy[int(name[3:])] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK
    return busy


def seed_positions(home: Path, count: int, *, first: bool = False) -> list[int]:
    """Open `count` EURUSD BUY positions of 0.01 lot in the paper broker's file, in one transaction (the
    file is made for several processes: a writer takes the write lock up front; the server, running,
    sees them at its next read)."""
    book = Book(home / "paper_broker.db")
    book.open(None, MarginMode.HEDGING)
    ledger = Ledger(book, Costs())
    tickets = []
    try:
        with book.write():
            if first:
                tick = Tick(symbol="EURUSD", time_ms=T0, bid=PRICE, ask=PRICE + 0.00001, volume=0.0)
                book.save_tick(tick)
                book.set_clock_ms(T0)
            for _ in range(count):
                position, _deal = ledger.open_position(
                    order=book.next_id(), symbol="EURUSD", direction=Direction.BUY, volume=0.01,
                    price=PRICE + 0.00001, sl=None, tp=None, magic=0, comment="bench", time_ms=T0,
                )  # fmt: skip
                tickets.append(position.ticket)
    finally:
        book.close()
    return tickets


def start_server(home: Path, broker_delay: bool, reconcile_interval: float) -> Server:
    # a copy of the shipped config directory (its files name each other by relative path)
    config_dir = shutil.copytree(REPO / "config", home.parent / "config")
    config_path = config_dir / "dtms_config.json"
    config = json.loads(config_path.read_text())
    if not broker_delay:
        config.setdefault("paper", {})["delay_ms"] = [0, 0]
    config_path.write_text(json.dumps(config))
    server = make_server(
        home,
        DTMS_BENCH_ROUTES="true",
        DTMS_ADOPT_UNREGISTERED="none",
        DTMS_RECONCILE_INTERVAL=str(reconcile_interval),  # default 10 s: the service's, not the e2e 0.5 s
        DTMS_CONFIG=str(config_path),
    )
    # Children inherit the affinity: the server and every thread it starts run on SERVER_CORE only.
    os.sched_setaffinity(0, {SERVER_CORE})
    try:
        server.start()
    finally:
        os.sched_setaffinity(0, {LOAD_CORE})
    return server


async def register_all(server: Server, tickets: list[int], concurrency: int) -> None:
    """Register `tickets` (the warm-up, and the trades the queries read) with httpx."""
    todo = iter(tickets)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=30, limits=limits
    ) as client:

        async def worker() -> None:
            for ticket in todo:
                body = {"ticket": ticket, "symbol": "EURUSD", "direction": "BUY"}
                answer = await client.post(REGISTER.path, json=body)
                if answer.status_code != 200 or answer.json().get("already_registered"):
                    raise RuntimeError(
                        f"warm-up registration of {ticket}: {answer.status_code} {answer.text}"
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))


class Bench:
    def __init__(self, server: Server, work: Path, duration: float) -> None:
        self.server = server
        self.work = work
        self.duration = duration
        self.key = server.headers["X-API-Key"]
        self.count = 0
        assert server.proc is not None
        self.pid = server.proc.pid

    def wrk(self, kind: Kind, clients: int, tickets: list[int], seconds: float, *, once: bool) -> Run:
        """One wrk run; `once`: each ticket is sent once (then ticket 0, a failure)."""
        self.count += 1
        ticket_file = self.work / f"tickets-{self.count}.txt"
        ticket_file.write_text("\n".join(map(str, tickets)) + "\n")
        out = self.work / f"wrk-{self.count}.json"
        script = self.work / f"wrk-{self.count}.lua"
        script.write_text(
            LUA.format(
                tickets=ticket_file,
                once="true" if once else "false",
                method=kind.method,
                path=kind.path,
                out=out,
            )
        )
        command = [
            "wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s", "--timeout", "30s", "-s", str(script),
            "-H", f"X-API-Key: {self.key}", "-H", "Content-Type: application/json", self.server.url,
        ]  # fmt: skip
        server_before, cores_before = process_cpu(self.pid), core_busy()
        began = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CORE}),  # wrk's core
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        server_after, cores_after = process_cpu(self.pid), core_busy()
        text = proc.stdout.read().decode() if proc.stdout else ""
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
        result: dict[str, Any] = json.loads(out.read_text())
        wrk_cpu = usage.ru_utime + usage.ru_stime
        server_cpu = server_after - server_before
        busy = {c: cores_after[c] - cores_before[c] for c in cores_after}
        others = {
            SERVER_CORE: max(0.0, busy.get(SERVER_CORE, 0.0) - server_cpu) / wall,
            LOAD_CORE: max(0.0, busy.get(LOAD_CORE, 0.0) - wrk_cpu) / wall,
        }
        errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
        return Run(
            kind=kind,
            clients=clients,
            requests=int(result["requests"]),
            seconds=result["duration_us"] / 1e6,
            failures=errors,
            histogram=Counter({int(v): int(c) for v, c in result["histogram"]}),
            wrk_cpu=wrk_cpu / wall,
            server_cpu=server_cpu / wall,
            server_cpu_s=server_cpu,
            others=others,
        )

    def active_trades(self) -> int:
        return int(self.server.get("/dtms/status").json()["dtms_status"]["active_trades"])


def row(label: str, pooled: Pooled) -> str:
    return (
        f"{label:<30} {pooled.requests:>8} {pooled.failures:>6} {pooled.throughput:>8.0f} "
        f"{pooled.p(0.50):>7.2f} {pooled.p(0.99):>7.2f} {pooled.mean('server_cpu'):>6.0%} "
        f"{pooled.cpu_ms:>6.2f} {pooled.mean('wrk_cpu'):>6.0%}"
    )


def report(results: dict[tuple[str, int], Pooled], clients: list[int], rounds: int) -> list[str]:
    """Print the table and the ratios; the targets missed."""
    missed = []
    for c in clients:
        print(f"\n{c} clients, {rounds} rounds")
        header = (
            f"{'endpoint':<30} {'requests':>8} {'failed':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'server':>6} {'cpu ms':>6} {'wrk':>6}"
        )
        print(header)
        print("-" * len(header))
        for kind in KINDS:
            print(row(kind.label, results[(kind.name, c)]))
        noop_post, register = results[("noop_post", c)], results[("register", c)]
        noop_get, query = results[("noop_get", c)], results[("query", c)]
        others0 = statistics.fmean(r.others[SERVER_CORE] for p in (noop_post, register) for r in p.runs)
        others1 = statistics.fmean(r.others[LOAD_CORE] for p in (noop_post, register) for r in p.runs)
        print(f"other processes meanwhile: core {SERVER_CORE} {others0:.0%}, core {LOAD_CORE} {others1:.0%}")
        reg_ratio = register.throughput / noop_post.throughput
        reg_p99 = register.p(0.99) / noop_post.p(0.99)
        query_ratio = query.throughput / noop_get.throughput
        per_round = " ".join(
            f"{r.throughput / n.throughput:.0%}" for n, r in zip(noop_post.runs, register.runs, strict=True)
        )
        per_round_q = " ".join(
            f"{q.throughput / n.throughput:.0%}" for n, q in zip(noop_get.runs, query.runs, strict=True)
        )
        checks = [
            (
                f"registration / no-op POST throughput: {reg_ratio:.0%} (rounds {per_round})",
                reg_ratio >= 0.75 if c == 10 else None,
                "target >= 75 % at 10 clients",
            ),
            (
                f"registration p99 / no-op POST p99: {reg_p99:.2f} x "
                f"({register.p(0.99):.2f} / {noop_post.p(0.99):.2f} ms)",
                reg_p99 <= 1.5,
                "target <= 1.5 x",
            ),
            (
                f"query / no-op GET throughput: {query_ratio:.0%} (rounds {per_round_q})",
                query_ratio >= 0.80,
                "target >= 80 %",
            ),
        ]
        for text, met, target in checks:
            verdict = "" if met is None else ("  met" if met else "  MISSED")
            print(f"{text}  [{target}]{verdict}" if met is not None else f"{text}")
            if met is False:
                missed.append(f"{c} clients: {text}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, help="seconds per run (default 4; 2 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds of the four runs per client count (3; 2 --quick)")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100], help="connections (10 100)")
    parser.add_argument("--broker-delay", action="store_true", help="keep the paper broker's 0-5 ms delay")
    parser.add_argument(
        "--reconcile-interval", type=float, default=10.0, help="DTMS_RECONCILE_INTERVAL (the default, 10 s)"
    )
    parser.add_argument(
        "--nice", type=int, default=-10, help="niceness of the server and wrk (-10; 0: none; < 0 needs root)"
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (~1 min)")
    args = parser.parse_args()
    duration = args.duration or (2 if args.quick else 4)
    rounds = args.rounds or (2 if args.quick else 3)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian package)")
    if len(os.sched_getaffinity(0)) < 2 or not {SERVER_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {SERVER_CORE} and {LOAD_CORE}")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores")
    if args.nice:
        # the server and wrk inherit it: other processes on a shared machine take less of their cores
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
            print(f"niceness {args.nice} (the server and wrk inherit it)")
        except PermissionError:
            print(
                f"niceness {args.nice} not permitted (root only); "
                f"running at {os.getpriority(os.PRIO_PROCESS, 0)}"
            )

    with tempfile.TemporaryDirectory(prefix="dtms-bench-api-") as tmp:
        work = Path(tmp)
        home = work / "home"
        began = time.perf_counter()
        warm = seed_positions(home, QUERY_TICKETS, first=True)
        print(f"seeded {len(warm)} paper positions in {time.perf_counter() - began:.1f} s", flush=True)
        server = start_server(home, args.broker_delay, args.reconcile_interval)
        try:
            server.wait_ready(60)
            tick = {"symbol": "EURUSD", "bid": PRICE, "ask": PRICE + 0.00001, "time": T0 + 1000}
            server.post("/paper/ticks", json=tick).raise_for_status()
            bench = Bench(server, work, duration)
            print(f"server pid {bench.pid} on core {SERVER_CORE}; wrk on core {LOAD_CORE}", flush=True)
            # warm-up: every route once for a while; the registrations give the trades queried
            bench.wrk(NOOP_POST, 10, warm, 1.0, once=False)
            asyncio.run(register_all(server, warm, 10))
            queried = warm
            bench.wrk(NOOP_GET, 10, queried, 1.0, once=False)
            bench.wrk(QUERY, 10, queried, 1.0, once=False)
            registered = bench.active_trades()
            left: list[int] = []
            counted, seeded, expected = 0, len(warm), 1000.0  # expected: registrations per second
            results = {(k.name, c): Pooled() for k in KINDS for c in args.clients}
            for c in args.clients:
                for n in range(rounds):
                    for kind in KINDS:
                        if kind is REGISTER:
                            # top up the open positions to what this run may register (more than the last
                            # run's rate): the reconciliation lists every open position each pass, so the
                            # benchmark keeps few more open than it registers
                            want = int(expected * duration * 1.5) + c + 100
                            if len(left) < want:
                                more = seed_positions(home, want - len(left))
                                left += more
                                seeded += len(more)
                            run = bench.wrk(kind, c, left, duration, once=True)
                            # requests still in flight when wrk stopped are registered after: skip them
                            left = left[run.requests + c :]
                            counted += run.requests
                            expected = max(expected * 0.5, run.throughput)
                        else:
                            run = bench.wrk(kind, c, queried, duration, once=False)
                        results[(kind.name, c)].runs.append(run)
                        print(
                            f"  {c:>3} clients round {n + 1} {kind.label:<30} {run.throughput:>7.0f} req/s "
                            f"p99 {percentile(run.histogram, 0.99):6.2f} ms  failed {run.failures}  "
                            f"server {run.server_cpu:.0%} wrk {run.wrk_cpu:.0%}",
                            flush=True,
                        )
            active = bench.active_trades()
        finally:
            server.kill()
    print(
        f"\ntrades registered during the measured runs: {active - registered} "
        f"(wrk counted {counted} answers; the rest were in flight when a run ended); "
        f"paper positions opened in all: {seeded}"
    )
    print(
        "server = the server's CPU time / wall time (1 core = 100 %); cpu ms = the server's CPU time per "
        "answered request; wrk = wrk's own CPU time / wall time; each pinned to its core"
    )
    missed = report(results, args.clients, rounds)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))


if __name__ == "__main__":
    main()
