"""The `dtms` command: serve, status, pause, resume, trade show|disable, doctor, calibrate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from dtms.config import AppConfig, ConfigError, load_config

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
    return f"http://{config.settings.api_host}:{config.settings.api_port}"


def _get(path: str) -> dict[str, Any]:
    return _call("GET", path)


def _call(method: str, path: str, **kw: Any) -> dict[str, Any]:
    """Call the running service with the local key (DTMS_API_KEY, else the key generated in DTMS_HOME)."""
    from dtms.keys import HEADER, key_file, local_key

    config = _config()
    url = _base_url(config) + path
    key = local_key(config.settings)
    headers = {HEADER: key} if key else {}
    try:
        response = httpx.request(method, url, timeout=config.settings.timeout, headers=headers, **kw)
    except httpx.HTTPError as exc:
        err.print(f"[red]DTMS does not answer at {_base_url(config)}:[/red] {exc}")
        raise typer.Exit(1) from exc
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        err.print(f"[red]{response.status_code} {body.get('error')}:[/red] {body.get('message')}")
        if response.status_code == 401:
            where = "DTMS_API_KEY" if config.settings.api_key else f"{key_file(config.settings.home)}"
            hint = "set DTMS_API_KEY, or DTMS_HOME to the service's data directory"
            err.print(f"the key was read from {where}" if key else f"no key: {where} does not exist; {hint}")
        raise typer.Exit(1)
    return body


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
def status() -> None:
    """The running service's status."""
    body = _get("/dtms/status")
    console.print(body["summary"])
    console.print_json(json.dumps(body["dtms_status"]))


def _who() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "cli"


@app.command()
def pause(reason: Annotated[str, typer.Option(help="why, for the journal")] = "") -> None:
    """Stop every broker request of the running service (stops at the broker stay), until `dtms resume`."""
    body = _call("POST", "/dtms/pause", json={"reason": reason, "requested_by": _who()})
    console.print(f"{body['summary']} since {body['since']} (requested by {body['requested_by']})")


@app.command()
def resume(reason: Annotated[str, typer.Option(help="why, for the journal")] = "") -> None:
    """Let the running service send again; what was held while paused is decided again."""
    body = _call("POST", "/dtms/resume", json={"reason": reason, "requested_by": _who()})
    held = len(body["settled"])
    console.print(f"{body['summary']}" + (f": {held} held requests will be decided again" if held else ""))


@trade_app.command("disable")
def trade_disable(
    ticket: int, reason: Annotated[str, typer.Option(help="why, for the journal")] = ""
) -> None:
    """Stop protecting a trade: the position stays open at the broker and is not adopted again."""
    if ticket <= 0:
        err.print("[red]ticket:[/red] must be a positive integer")
        raise typer.Exit(2)
    body = _call("DELETE", f"/dtms/trade/{ticket}", params={"reason": reason, "requested_by": _who()})
    console.print(body["summary"])


@trade_app.command("show")
def trade_show(ticket: int) -> None:
    """One trade as the service sees it."""
    if ticket <= 0:
        err.print("[red]ticket:[/red] must be a positive integer")
        raise typer.Exit(2)
    body = _get(f"/dtms/trade/{ticket}")
    console.print(body["summary"])
    console.print_json(json.dumps(body["trade_info"]))


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
