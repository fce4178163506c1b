"""POST/GET/DELETE /paper/faults on the real app: rules added, listed, cleared, bad bodies refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    home = tmp_path / "home"
    for key, value in {
        "DTMS_HOME": str(home),
        "DTMS_LOCK_DIR": str(home / "locks"),
        "DTMS_PAPER_FEED": "manual",
        "DTMS_CONFIG": str(REPO / "config" / "dtms_config.json"),
        "DTMS_STARTUP_TIMEOUT": "5",
        "DTMS_AUTH": "off",  # not about keys (tests/integration/test_auth.py is)
    }.items():
        monkeypatch.setenv(key, value)
    with TestClient(create_app(load_config(), make_broker)) as c:
        deadline = time.monotonic() + 15
        while c.get("/dtms/health").status_code != 200:
            assert time.monotonic() < deadline, c.get("/dtms/health").json()
            time.sleep(0.05)
        yield c


def test_faults_are_added_listed_and_cleared(client):
    assert client.get("/paper/faults").json() == {"faults": []}
    added = client.post("/paper/faults", json={"kind": "requote", "rate": 0.2})
    assert added.status_code == 201
    assert added.json() == {
        "id": 1,
        "kind": "requote",
        "rate": 0.2,
        "requests": ["modify_stops", "close", "open", "close_by"],
        "seconds": None,
        "seed": 0,
    }
    lost = client.post(
        "/paper/faults",
        json={"kind": "connection_lost", "rate": 1, "requests": ["open"], "seconds": 10, "seed": 4},
    )
    assert lost.status_code == 201
    assert lost.json() | {"id": None} == {
        "id": None,
        "kind": "connection_lost",
        "rate": 1,
        "requests": ["open"],
        "seconds": 10,
        "seed": 4,
    }
    assert [f["id"] for f in client.get("/paper/faults").json()["faults"]] == [1, 2]
    assert client.delete("/paper/faults").json() == {"cleared": 2}
    assert client.get("/paper/faults").json() == {"faults": []}
    assert client.delete("/paper/faults").json() == {"cleared": 0}


def test_an_added_fault_acts_on_the_paper_broker(client):
    client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001})
    client.post("/paper/faults", json={"kind": "requote", "rate": 1, "requests": ["open"]})
    refused = client.post("/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
    assert refused.status_code >= 400 and refused.json()["details"]["retcode"] == 10004
    client.delete("/paper/faults")
    opened = client.post("/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
    assert opened.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate": 0.5}, "kind"),
        ({"kind": "meteor", "rate": 0.5}, "kind"),
        ({"kind": "requote"}, "rate"),
        ({"kind": "requote", "rate": 0}, "rate"),
        ({"kind": "requote", "rate": 1.5}, "rate"),
        ({"kind": "requote", "rate": "0.5"}, "rate"),
        ({"kind": "requote", "rate": 0.5, "requests": []}, "requests"),
        ({"kind": "requote", "rate": 0.5, "requests": ["teleport"]}, "requests.0"),
        ({"kind": "connection_lost", "rate": 0.5}, "seconds"),
        ({"kind": "connection_lost", "rate": 0.5, "seconds": 0}, "seconds"),
        ({"kind": "requote", "rate": 0.5, "seconds": 3}, "seconds"),
        ({"kind": "requote", "rate": 0.5, "seed": 1.5}, "seed"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, body, field):
    response = client.post("/paper/faults", json=body)
    assert response.status_code == 422, response.json()
    assert response.json()["error"] == "validation_error"
    assert response.json()["details"]["field"] == field
    assert client.get("/paper/faults").json() == {"faults": []}
