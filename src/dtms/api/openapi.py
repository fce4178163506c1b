"""The OpenAPI document as a file (`dtms openapi` → docs/openapi.json), ready to paste into a GPT Action.

The document is the one the running service serves at /openapi.json (behind a key), built from the same
app without starting it: no store is opened, no key is generated, no broker is asked. It is stable for a
given code base: the same routes, models and options give the same bytes (sorted keys, fixed indent), so
a test can keep the committed file in sync. It names one server (the URL the Action calls) and leaves out
the paper broker's /paper routes unless asked (they exist only with DTMS_BROKER=paper)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from dtms.config import AppConfig
from dtms.guardian.runtime import BrokerFactory

DEFAULT_SERVER = "http://127.0.0.1:8001"
DOCUMENT_PATH = Path("docs/openapi.json")
_PLACEHOLDER_KEY = "dtms_openapi-document-placeholder-key"  # only builds the keyring; never served

_DESCRIPTION = (
    "DTMS guards every open MetaTrader 5 position of one trading account. Send the API key in the "
    "X-API-Key header (or as `Authorization: Bearer <key>`); every operation needs one except /health, "
    "/dtms/health and /dtms/metrics. `x-dtms-scope` says which scope (read, trade, admin) an operation "
    "needs. Every non-2xx answer is the error envelope {error, message, details, correlation_id}; "
    "every answer carries X-Correlation-ID."
)


def _no_broker(*_: Any) -> Any:
    raise RuntimeError("the OpenAPI document is built without a broker")


def build_document(
    config: AppConfig, *, server_url: str = DEFAULT_SERVER, paper: bool = False
) -> dict[str, Any]:
    """The service's OpenAPI document, with `servers` set to `server_url`; the /paper routes only when
    `paper`. Settings that change which routes exist are fixed here, so the document does not depend on
    the environment it is made in."""
    from dtms.api.app import create_app  # the app imports the routes; keep `dtms openapi`'s import light

    with tempfile.TemporaryDirectory(prefix="dtms-openapi-") as home:
        settings = config.settings.model_copy(
            update={
                "home": Path(home),
                "db_url": None,
                "broker": "paper" if paper else "mt5",
                "auth": "on",
                "api_key": _PLACEHOLDER_KEY,
                "api_keys_file": None,
                "enable_metrics": True,
                "cors_origins": "",
            }
        )
        broker_factory: BrokerFactory = _no_broker
        app = create_app(config.model_copy(update={"settings": settings}), broker_factory)
        document: dict[str, Any] = app.openapi()
        app.state.runtime.db.engine.dispose()
    document = json.loads(json.dumps(document))  # a deep copy of plain JSON values
    document["servers"] = [{"url": server_url, "description": "the DTMS service (DTMS_API_HOST:PORT)"}]
    document["info"]["description"] = _DESCRIPTION
    return document


def render(document: dict[str, Any]) -> str:
    """The file's text: sorted keys, two-space indent, UTF-8, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_document(path: Path, document: dict[str, Any]) -> bool:
    """Write the document; False when the file already held exactly this text (nothing written)."""
    text = render(document)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True
