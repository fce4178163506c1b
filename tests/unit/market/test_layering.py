"""The market layer imports only dtms.domain (and itself), and no numpy: per-bar work is pure Python."""

from __future__ import annotations

import ast
from pathlib import Path

import dtms.market

ALLOWED = ("dtms.domain", "dtms.market")


def test_market_imports_only_domain_and_no_numpy() -> None:
    root = Path(dtms.market.__file__).parent
    offending = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if (name.startswith("dtms") and not name.startswith(ALLOWED)) or name.split(".")[
                    0
                ] == "numpy":
                    offending.append(f"{path.name}: {name}")
    assert offending == []
