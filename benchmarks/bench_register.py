"""Registration throughput over HTTP against the real server, relative to a no-op endpoint.

Starts the real ``dtms serve`` (tests.e2e.server.make_server: SQLite store in a temp dir, paper broker,
manual feed, DTMS_ADOPT_UNREGISTERED=none), pushes one EURUSD tick, opens K paper positions (default 400;
0.01 lot each, as the paper account's 10,000 at 1:100 margins about 900 of them), then with
httpx.AsyncClient and C requests in flight (default 16) measures:

(a) GET /health, a no-op endpoint: throughput and latency p50/p99;
(b) POST /dtms/trade/enable, registering each opened ticket once (a broker check, then one trade insert
    through the store's group-commit writer, answered after its commit): throughput and p50/p99;

and prints registrations/health throughput. Health and registration bursts alternate over a few rounds so
that drift on a shared machine hits both alike. The reconciliation interval is the service's default
(10 s), not the e2e helper's 0.5 s. The load generator and the server share the machine's cores. The
helper's server has a test API key (sent with every request) and rate limits far above this load
(SPEC-api.md: a benchmark that needs more than 10/s says so in its setup).

    .venv/bin/python benchmarks/bench_register.py           # ~10 s
    .venv/bin/python benchmarks/bench_register.py --quick   # ~5 s
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.server import Server, make_server  # noqa: E402

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RECONCILE_INTERVAL = "10"  # seconds: the service's default (dtms.config), not the e2e helper's 0.5
WARMUP = 32  # requests of each kind before measuring (registrations use their own extra positions)


@dataclass
class Result:
    name: str
    requests: int
    failures: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed_s

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def measure(
    name: str,
    client: httpx.AsyncClient,
    calls: list[Call],
    concurrency: int,
    ok: Callable[[httpx.Response], bool],
) -> Result:
    """Run `calls` with `concurrency` workers; a response that fails ok() counts as a failure."""
    latencies: list[float] = []
    failures = 0
    next_call = iter(calls)

    async def worker() -> None:
        nonlocal failures
        for call in next_call:
            began = time.perf_counter()
            response = await call(client)
            latencies.append((time.perf_counter() - began) * 1000)
            if not ok(response):
                failures += 1
                if failures <= 3:
                    print(f"  {name}: unexpected answer {response.status_code}: {response.text[:200]}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return Result(name, len(calls), failures, elapsed, latencies)


def health_call(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
    return client.get("/health")


def register_call(ticket: int) -> Call:
    body = {"ticket": ticket, "symbol": "EURUSD", "direction": "BUY"}
    return lambda client: client.post("/dtms/trade/enable", json=body)


def health_ok(response: httpx.Response) -> bool:
    return response.status_code == 200


def registered_ok(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json().get("already_registered") is False


def combine(name: str, parts: list[Result]) -> Result:
    return Result(
        name,
        sum(p.requests for p in parts),
        sum(p.failures for p in parts),
        sum(p.elapsed_s for p in parts),
        [ms for p in parts for ms in p.latencies_ms],
    )


async def run_load(
    server: Server, tickets: list[int], health_requests: int, concurrency: int, rounds: int
) -> tuple[Result, Result, list[float]]:
    """Alternate health and registration bursts `rounds` times (so drift hits both alike).

    Returns the combined health and registration results and each round's registrations/health ratio.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, limits=limits, headers=server.headers
    ) as client:
        warm, measured = tickets[:WARMUP], tickets[WARMUP:]
        await measure("warm-up", client, [health_call] * WARMUP, concurrency, health_ok)
        await measure("warm-up", client, [register_call(t) for t in warm], concurrency, registered_ok)
        healths: list[Result] = []
        registers: list[Result] = []
        for n in range(rounds):
            chunk = measured[n * len(measured) // rounds : (n + 1) * len(measured) // rounds]
            health_calls = [health_call] * (health_requests // rounds)
            healths.append(await measure("health", client, health_calls, concurrency, health_ok))
            register_calls = [register_call(t) for t in chunk]
            registers.append(await measure("register", client, register_calls, concurrency, registered_ok))
    ratios = [r.throughput / h.throughput for h, r in zip(healths, registers, strict=True)]
    return combine("health", healths), combine("register", registers), ratios


def open_positions(server: Server, count: int) -> list[int]:
    tickets = []
    with server.client(timeout=30) as client:
        tick = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
        answer = client.post("/paper/ticks", json=tick)
        answer.raise_for_status()
        for _ in range(count):
            answer = client.post(
                "/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.01}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"opening a paper position failed: {answer.status_code} {answer.text}")
            tickets.append(int(answer.json()["ticket"]))
    return tickets


def report(results: list[Result], ratios: list[float], concurrency: int, active: int) -> None:
    print(f"\n{concurrency} requests in flight, {len(ratios)} rounds; trades registered at the end: {active}")
    header = f"{'endpoint':<24} {'requests':>8} {'failed':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    labels = {"health": "GET /health", "register": "POST /dtms/trade/enable"}
    for r in results:
        print(
            f"{labels[r.name]:<24} {r.requests:>8} {r.failures:>6} {r.throughput:>8.0f} "
            f"{r.percentile(0.50):>8.2f} {r.percentile(0.99):>8.2f}"
        )
    health, register = results
    print(f"registrations/health throughput: {register.throughput / health.throughput:.0%}")
    print("per round: " + " ".join(f"{r:.0%}" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--positions", type=int, help="registrations measured (default 400; 150 with --quick)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument(
        "--health-requests", type=int, help="GET /health requests (default 2000; 500 --quick)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating health/register bursts (4)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (~5 s)")
    args = parser.parse_args()
    positions = args.positions or (150 if args.quick else 400)
    health_requests = args.health_requests or (500 if args.quick else 2000)

    with tempfile.TemporaryDirectory(prefix="dtms-bench-register-") as tmp:
        # The e2e helper reconciles every 0.5 s; benchmark the service's default interval instead.
        server = make_server(
            Path(tmp) / "home", DTMS_ADOPT_UNREGISTERED="none", DTMS_RECONCILE_INTERVAL=RECONCILE_INTERVAL
        ).start()
        try:
            server.wait_ready()
            began = time.perf_counter()
            tickets = open_positions(server, positions + WARMUP)
            print(f"opened {len(tickets)} paper positions in {time.perf_counter() - began:.1f} s", flush=True)
            health, register, ratios = asyncio.run(
                run_load(server, tickets, health_requests, args.concurrency, args.rounds)
            )
            active = int(server.get("/dtms/status").json()["dtms_status"]["active_trades"])
        finally:
            server.kill()
    report([health, register], ratios, args.concurrency, active)


if __name__ == "__main__":
    main()
