"""Runs the app under uvicorn and turns the runtime's verdict (init failed, fenced) into an exit code."""

from __future__ import annotations

import uvicorn
from rich.console import Console

from dtms.api.app import create_app
from dtms.config import AppConfig
from dtms.guardian.wiring import make_broker
from dtms.keys import HEADER, KeySetup
from dtms.logs import configure_logging


def _key_line(keys: KeySetup) -> str:
    """Where the key comes from; the generated key itself only at the start that made it."""
    if keys.keyring is None:
        return "authentication OFF (DTMS_AUTH=off, loopback only): no key is asked"
    if keys.generated is not None:
        return (
            f"API key (generated; stored in {keys.key_path} with mode 0600, read from there by the CLI "
            f"and the client; send it as {HEADER}): {keys.generated}"
        )
    if keys.key_path is not None:
        return f"API key: the one in {keys.key_path} (send it as {HEADER})"
    names = ", ".join(keys.keyring.names)
    return f"API keys from {' and '.join(keys.sources)}: {names} (send one as {HEADER})"


def run_server(config: AppConfig) -> int:
    settings = config.settings
    configure_logging(settings.log_format)
    codes: list[int] = []
    server: uvicorn.Server | None = None

    def on_exit(code: int) -> None:
        codes.append(code)
        if server is not None:
            server.should_exit = True

    app = create_app(config, make_broker, on_exit=on_exit)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    out = Console(stderr=True, soft_wrap=True)
    out.print(
        f"DTMS on http://{settings.api_host}:{settings.api_port}  (broker: {settings.broker}, "
        f"feed: {settings.paper_feed}, data: {settings.home.resolve()}, store: {settings.database_url})"
    )
    out.print(_key_line(app.state.gate.keys), highlight=False)
    server.run()
    if codes:
        return codes[0]
    return 0 if server.started else 1
