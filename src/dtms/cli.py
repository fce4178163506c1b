"""The `dtms` command: serve, status, trade enable|show|disable, actions, pause, resume, doctor, calibrate.

The commands that ask the running service go through dtms.client.DTMSClient, print rich tables (or the
service's answer with --json), exit 2 on bad input (naming the parameter) and 1 when the service refuses
or does not answer."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from dtms.client import DTMSClient, DTMSError
from dtms.client.settings import KEY_FILE
from dtms.config import AppConfig, ConfigError, load_config
from dtms.domain.enums import Direction, JournalStatus, TradeType

app = typer.Typer(help="DTMS: one guardian per trading account.", no_args_is_help=True)
trade_app = typer.Typer(help="One trade.", no_args_is_help=True)
app.add_typer(trade_app, name="trade")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _config() -> AppConfig:
    try:
        return load_config()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _base_url(config: AppConfig) -> str:
    host = config.settings.api_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.settings.api_port}"


SYMBOL_RE = re.compile(r"^[A-Za-z0-9._#-]{1,32}$")
JsonFlag = Annotated[bool, typer.Option("--json", help="print the service's answer as JSON")]


def _reason(value: str) -> str:
    if len(value) > 500:
        raise typer.BadParameter(f"{len(value)} characters; at most 500")
    return value


Reason = Annotated[str, typer.Option(help="why, for the journal (at most 500 characters)", callback=_reason)]
TicketArg = Annotated[int, typer.Argument(min=1, max=2**63 - 1, help="the broker's position ticket")]


def _client() -> DTMSClient:
    """A dtms.client.DTMSClient for the running service: DTMS_URLS, else DTMS_API_HOST:DTMS_API_PORT as the
    service reads them (environment over the config file). The client reads the key itself (DTMS_API_KEY,
    else the key `dtms serve` generated in DTMS_HOME). No outbox, and no retries unless DTMS_RETRY_COUNT
    asks for them: a command answers at once."""
    config = _config()
    overrides: dict[str, Any] = {"outbox_path": None}
    if not os.environ.get("DTMS_RETRY_COUNT"):
        overrides["retry_count"] = 0
    try:
        return DTMSClient(
            os.environ.get("DTMS_URLS") or _base_url(config), home=config.settings.home, **overrides
        )
    except ValueError as exc:  # DTMS_URLS, DTMS_TIMEOUT, DTMS_RETRY_COUNT
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _ask(call: Callable[[DTMSClient], dict[str, Any]], as_json: bool) -> dict[str, Any]:
    """One call through the client; on failure a message on stderr (and the error as JSON with --json)
    and exit code 1."""
    client = _client()
    try:
        return call(client)
    except DTMSError as exc:
        _fail(client, exc, as_json)
    finally:
        client.close()


def _fail(client: DTMSClient, exc: DTMSError, as_json: bool) -> NoReturn:
    where = ", ".join(client.settings.urls)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "success": False,
                    "status": exc.status,
                    "error": exc.code,
                    "message": exc.message,
                    "details": exc.details,
                    "url": where if exc.status is None else exc.url,
                },
                indent=2,
            )
        )
    if exc.status is None:  # no answer: refused, timed out, the breaker open
        err.print(f"[red]DTMS does not answer at {where}:[/red] {exc.message}")
        err.print("is `dtms serve` running there? (DTMS_API_HOST, DTMS_API_PORT or DTMS_URLS say where)")
        raise typer.Exit(1)
    err.print(f"[red]{exc.status} {exc.code}:[/red] {exc.message}")
    field = exc.details.get("field")
    if field and str(field) not in exc.message:
        err.print(f"field: {field}")
    if exc.status == 401:
        home = _config().settings.home
        if os.environ.get("DTMS_API_KEY"):
            err.print("the key was read from DTMS_API_KEY")
        elif client.settings.api_key:
            err.print(f"the key was read from {home / KEY_FILE}")
        else:
            err.print(
                f"no key: DTMS_API_KEY is not set and {home / KEY_FILE} does not exist; set DTMS_API_KEY, "
                "or DTMS_HOME to the service's data directory"
            )
    elif exc.status == 403:
        err.print("this key lacks the scope; use a key with it (DTMS_API_KEY)")
    raise typer.Exit(1)


def _print_json(body: dict[str, Any]) -> None:
    typer.echo(json.dumps(body, indent=2))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items() if v not in (None, "", 0, {})) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _fields(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in values.items():
        table.add_row(name, _cell(value))
    return table


def _symbol(value: str) -> str:
    if not SYMBOL_RE.match(value):
        raise typer.BadParameter(f"{value!r} is not a symbol: 1 to 32 of A-Z a-z 0-9 . _ # -")
    return value


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _positive(value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise typer.BadParameter(f"{value} is not a finite number > 0")
    return value


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (DTMS_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (DTMS_API_PORT)")] = None,
    home: Annotated[str | None, typer.Option(help="data directory (DTMS_HOME)")] = None,
    broker: Annotated[str | None, typer.Option(help="paper | mt5 (DTMS_BROKER)")] = None,
    feed: Annotated[str | None, typer.Option(help="synthetic | manual (DTMS_PAPER_FEED)")] = None,
) -> None:
    """Run the service: take the account's lease (or stand by) and guard every position."""
    for key, value in (
        ("API_HOST", host),
        ("API_PORT", port),
        ("HOME", home),
        ("BROKER", broker),
        ("PAPER_FEED", feed),
    ):
        if value is not None:
            os.environ[f"DTMS_{key}"] = str(value)
    config = _config()
    from dtms.runner import run_server

    try:
        code = run_server(config)
    except ConfigError as exc:  # the keys file, read when the app is built
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """The running service's status."""
    body = _ask(lambda c: c.status(), as_json)
    if as_json:
        _print_json(body)
        return
    state = dict(body.get("dtms_status") or {})
    by_state = state.pop("trades_by_state", None) or {}
    state["trades_by_state"] = {k: v for k, v in by_state.items() if v} or "-"
    console.print(body.get("summary", ""))
    console.print(_fields("DTMS status", state))


def _who() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "cli"


def _switched(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
        return
    console.print(body.get("summary", ""))
    shown = {k: body.get(k) for k in ("paused", "changed", "since", "requested_by", "reason", "action_id")}
    shown["held requests decided again"] = len(body.get("settled") or [])
    if "in_flight_answered" in body:
        shown["in flight answered"] = _cell(body["in_flight_answered"])
    console.print(_fields("DTMS", shown))


@app.command()
def pause(reason: Reason = "", as_json: JsonFlag = False) -> None:
    """Stop every broker request of the running service (stops at the broker stay), until `dtms resume`."""
    body = _ask(
        lambda c: c.request("POST", "/dtms/pause", json={"reason": reason, "requested_by": _who()}), as_json
    )
    _switched(body, as_json)


@app.command()
def resume(reason: Reason = "", as_json: JsonFlag = False) -> None:
    """Let the running service send again; what was held while paused is decided again."""
    body = _ask(
        lambda c: c.request("POST", "/dtms/resume", json={"reason": reason, "requested_by": _who()}), as_json
    )
    _switched(body, as_json)


def _trade(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
        return
    console.print(body.get("summary", ""))
    info = body.get("trade_info")
    if isinstance(info, dict):
        console.print(_fields(f"trade #{info.get('ticket', '')}", info))
    differences = body.get("differences")
    if differences:
        console.print(_fields("differs from the stored trade", differences))


@trade_app.command("enable")
def trade_enable(
    ticket: TicketArg,
    symbol: Annotated[str, typer.Option(help="the position's symbol, e.g. EURUSD", callback=_symbol)],
    direction: Annotated[Direction, typer.Option(help="BUY or SELL (any case)", case_sensitive=False)],
    entry: Annotated[
        float | None,
        typer.Option(help="entry price (default: the broker's)", callback=_positive),
    ] = None,
    volume: Annotated[
        float | None,
        typer.Option(help="lots (default: the broker's)", callback=_positive),
    ] = None,
    stop_loss: Annotated[
        float | None, typer.Option("--stop-loss", "--sl", help="0: none", min=0, callback=_finite)
    ] = None,
    take_profit: Annotated[
        float | None, typer.Option("--take-profit", "--tp", help="0: none", min=0, callback=_finite)
    ] = None,
    initial_stop_loss: Annotated[float | None, typer.Option(min=0, callback=_finite)] = None,
    strategy_type: Annotated[
        str | None, typer.Option(help="the strategy that manages it (hands it to the strategy manager)")
    ] = None,
    trade_type: Annotated[TradeType, typer.Option(case_sensitive=False)] = TradeType.INTRADAY,
    as_json: JsonFlag = False,
) -> None:
    """Register an open position for protection (POST /dtms/trade/enable)."""
    from dtms.client.models import registration_body

    try:
        body = registration_body(
            ticket, symbol, direction.value, entry=entry, volume=volume, stop_loss=stop_loss,
            take_profit=take_profit, initial_stop_loss=initial_stop_loss, strategy_type=strategy_type,
            trade_type=trade_type.value,
        )  # fmt: skip
    except ValueError as exc:  # what Typer's checks let through (strategy_type's length)
        raise typer.BadParameter(str(exc)) from exc
    _trade(_ask(lambda c: c.request("POST", "/dtms/trade/enable", json=body), as_json), as_json)


@trade_app.command("disable")
def trade_disable(ticket: TicketArg, reason: Reason = "", as_json: JsonFlag = False) -> None:
    """Stop protecting a trade: the position stays open at the broker and is not adopted again."""
    params = {"reason": reason, "requested_by": _who()}
    _trade(_ask(lambda c: c.request("DELETE", f"/dtms/trade/{ticket}", params=params), as_json), as_json)


@trade_app.command("show")
def trade_show(ticket: TicketArg, as_json: JsonFlag = False) -> None:
    """One trade as the service sees it."""
    _trade(_ask(lambda c: c.get_trade(ticket), as_json), as_json)


@app.command()
def actions(
    ticket: Annotated[int | None, typer.Option(help="one trade's actions only", min=1, max=2**63 - 1)] = None,
    status: Annotated[JournalStatus | None, typer.Option(help="actions in this status only")] = None,
    limit: Annotated[int, typer.Option(help="the newest this many", min=1, max=1000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The action journal, newest first: what DTMS sent (or held) and how it ended."""
    wanted = status.value if status is not None else None
    body = _ask(lambda c: c.actions(ticket=ticket, status=wanted, limit=limit), as_json)
    if as_json:
        _print_json(body)
        return
    table = Table(title=body.get("summary", ""), title_justify="left")
    for column in ("id", "time (UTC)", "ticket", "symbol", "kind", "reason", "status", "by", "error"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "time (UTC)", "ticket", "status"))
    for a in body.get("action_history") or []:
        when = str(a.get("timestamp") or "").replace("T", " ")[:19]
        keys = ("symbol", "kind", "reason", "status", "requested_by", "error")
        table.add_row(
            _cell(a.get("id")), when, _cell(a.get("ticket") or None), *(_cell(a.get(k)) for k in keys)
        )
    console.print(table)


@app.command()
def doctor() -> None:
    """Check config, store, broker, port, lease and key, and say in plain words what is wrong."""
    from dtms.doctor import run_checks

    try:
        config = load_config()
    except ConfigError as exc:
        console.print(f"[red]✗ config[/red]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]✓ config[/green]: {config.config_path} and the DTMS_* environment are valid")
    ok = True
    for name, good, message in run_checks(config):
        ok = ok and good
        mark = "[green]✓" if good else "[red]✗"
        console.print(f"{mark} {name}[/]: {message}")
    raise typer.Exit(0 if ok else 1)


@app.command()
def calibrate(
    quick: Annotated[bool, typer.Option(help="the first 2 months of the data only")] = False,
    until: Annotated[
        str | None, typer.Option(help="replay the data before this day only (YYYY-MM-DD)")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="H1 bars CSV (default: the shipped 2017 year)")] = None,
    overlay: Annotated[
        Path | None, typer.Option(help="replay overlay (default: config/replay_h1.json)")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the report as JSON here")
    ] = None,
) -> None:
    """Replay the EURUSD H1 year with trades every 4 hours, with and without DTMS, and print the report
    (docs/calibration.md); exit code 1 when a target is not met."""
    from dtms.calibrate import run_cli

    raise typer.Exit(run_cli(csv, overlay, quick=quick, until=until, json_out=json_out))


@app.command("openapi")
def openapi_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="the file to write")] = Path("docs/openapi.json"),
    server: Annotated[
        str, typer.Option(help="the URL the GPT Action (or any client) calls: the service or its tunnel")
    ] = "http://127.0.0.1:8001",
    paper: Annotated[bool, typer.Option(help="include the paper broker's /paper routes")] = False,
    check: Annotated[
        bool, typer.Option(help="write nothing; exit 1 when the file is not up to date")
    ] = False,
) -> None:
    """Write the OpenAPI document (sorted, stable) to paste into a GPT Action: docs/openapi.json."""
    from dtms.api.openapi import build_document, render, write_document

    document = build_document(_config(), server_url=server, paper=paper)
    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != render(document):
            err.print(f"[red]{out} is not up to date:[/red] run `dtms openapi`")
            raise typer.Exit(1)
        console.print(f"{out} is up to date")
        return
    changed = write_document(out, document)
    operations = sum(len(ops) for ops in document["paths"].values())
    console.print(f"{'wrote' if changed else 'unchanged:'} {out} ({operations} operations)")


if __name__ == "__main__":
    app()
