"""Issue 6 item 1's done-when: schemathesis against the real server (`dtms serve` on the paper broker, with
the harness's API key), every operation of its OpenAPI document but /paper/faults (fault injection would
make the broker's failures the subject), with a bounded number of examples per operation: no 500, and
every answer as documented (the schema of its status, a documented status, the documented content type).

The positive examples mix generated data, the document's own examples and, for an operation with a
{ticket}, a real guarded trade, so the 200 answers of the trade views, the intents and the registry are
checked too, not only their 404s (DELETE /dtms/trade gets a trade of its own; it and the pause run last).
The figures (operations, cases, statuses, time) are printed."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.server import Server

# A deeper hunt by hand: DTMS_SCHEMATHESIS_EXAMPLES=300 DTMS_SCHEMATHESIS_SEED=1 pytest -s this file.
POSITIVE_EXAMPLES = int(os.environ.get("DTMS_SCHEMATHESIS_EXAMPLES", "25"))
NEGATIVE_EXAMPLES = max(1, POSITIVE_EXAMPLES // 2)
SEED = os.environ.get("DTMS_SCHEMATHESIS_SEED")  # unset: derandomized, the same cases every run


def not_an_internal_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 500 (`internal_error`, never expected). Other 5xx are answers the document declares where they can
    happen (502 `broker_error`, 503 `not_ready`/`not_leader`): status_code_conformance checks that."""
    if response.status_code == 500:
        raise AssertionError(f"500 from {case.operation.label}: {response.text[:500]}")
    return None


CHECKS = [
    not_an_internal_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXCLUDED = "/paper/faults"
T0 = 1_767_605_400_000  # Monday 2026-01-05 09:30 UTC: markets open


def _open_trade(server: Server, key: str) -> int:
    r = server.post(
        "/mt5/execute",
        headers={**server.headers, "Idempotency-Key": key},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.095, "take_profit": 1.11},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["ticket"])


def _last(operation: Any) -> bool:
    """DELETE /dtms/trade and POST /dtms/pause change what the others answer: run them last."""
    return (operation.method.upper(), operation.path) in {
        ("DELETE", "/dtms/trade/{ticket}"),
        ("POST", "/dtms/pause"),
    }


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    spawn: Callable[..., Server],
) -> None:
    server = spawn(DTMS_ADOPT_UNREGISTERED="none")
    server.wait_ready()
    tick = server.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0})
    assert tick.status_code == 200, tick.text
    guarded, disposable = _open_trade(server, "schemathesis-a"), _open_trade(server, "schemathesis-b")

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=server.headers)
    schema = schema.exclude(path=EXCLUDED)
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()), key=lambda op: (_last(op), op.label)
    )
    assert operations and all(op.path != EXCLUDED for op in operations)

    session = requests.Session()
    session.headers.update(server.headers)
    statuses: Counter[int] = Counter()
    cases_by_operation: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()

    def exercise(label: str, strategy: Any, count: int) -> None:
        @settings(
            max_examples=count,
            deadline=None,
            derandomize=SEED is None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @seed(int(SEED or 0))
        @given(case=strategy)
        def run(case: Case) -> None:
            response = case.call(base_url=server.url, session=session, timeout=15)
            statuses[response.status_code] += 1
            cases_by_operation[label] += 1
            case.validate_response(response, checks=CHECKS)

        run()

    for operation in operations:
        ticket = disposable if operation.method.upper() == "DELETE" else guarded
        takes_input = bool(
            operation.path_parameters or operation.query or operation.headers or operation.body
        )
        for mode, count in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES if takes_input else 0),  # nothing to make invalid
        ):
            if not count:
                continue
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE:  # with the document's own examples, and a real trade
                documented = operation.get_strategies_from_examples()
                real = (
                    [operation.as_strategy(generation_mode=mode, path_parameters={"ticket": ticket})]
                    if "{ticket}" in operation.path
                    else []
                )
                strategy = st.one_of(strategy, *documented, *real)
            try:
                exercise(operation.label, strategy, count)
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, fail once
                failures.append(f"{operation.label} ({mode.value}): {exc}")

    elapsed = time.monotonic() - started
    cases = sum(cases_by_operation.values())
    print(
        f"\nschemathesis: {len(operations)} operations (all but {EXCLUDED}), {cases} cases "
        f"in {elapsed:.1f} s "
        f"(≤ {POSITIVE_EXAMPLES} positive + {NEGATIVE_EXAMPLES} negative examples per operation); "
        f"statuses {dict(sorted(statuses.items()))}; failures: {len(failures)}"
    )
    assert not failures, "\n\n".join(failures) + f"\n\nserver log:\n{server.log()}"
    assert statuses[500] == 0
    assert cases >= len(operations) * 5  # every operation really ran
    assert statuses[200] > 0 and statuses[404] > 0 and statuses[422] > 0
