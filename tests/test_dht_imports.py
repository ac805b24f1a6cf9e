"""swarm.dht is pure and stands apart: it imports nothing from the engine but swarm.bencoding
and swarm.errors, and nothing that does I/O or keeps its own time or chance."""

from __future__ import annotations

import ast
from pathlib import Path

DHT = Path(__file__).resolve().parent.parent / "swarm" / "dht"
ALLOWED_SWARM = {"swarm", "swarm.bencoding", "swarm.errors"}
FORBIDDEN = {"asyncio", "socket", "time", "threading", "selectors", "os"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_swarm_dht_imports_only_bencoding_and_errors_from_the_engine() -> None:
    modules = sorted(DHT.glob("*.py"))
    assert {p.stem for p in modules} >= {"krpc", "routing", "tokens", "store", "lookup", "node"}
    for path in modules:
        names = _imports(path)
        engine = {
            n
            for n in names
            if n.split(".")[0] == "swarm"
            and not n.startswith("swarm.dht")
            and n not in ALLOWED_SWARM
            and n.rpartition(".")[0] not in ALLOWED_SWARM - {"swarm"}
        }
        assert engine == set(), path.name
        assert {n.split(".")[0] for n in names} & FORBIDDEN == set(), path.name


def test_no_module_draws_on_the_global_random_source() -> None:
    for path in DHT.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = [
            n.func.attr
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "random"
            and n.func.attr != "Random"
        ]
        assert calls == [], path.name
