"""The package's shape (docs/architecture.md): imports point down, never in a circle; the
tracker stands on its own; modules stay small. Read from the source with ast, so an import
inside a function or under TYPE_CHECKING counts as much as one at the top."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("swarm", "tracker")
MAX_MODULE_LINES = 400
MAX_CONTROLLER_LINES = 250


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules *name* imports (``from a import b`` counts a.b if it is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)  # a module importing its own package's face is no arrow
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_tracker_imports_nothing_from_swarm() -> None:
    graph = _graph()
    wrong = {m: sorted(t for t in ts if t.split(".")[0] == "swarm") for m, ts in graph.items()}
    assert {m: ts for m, ts in wrong.items() if m.startswith("tracker") and ts} == {}


def test_the_engine_layers_point_down() -> None:
    """The pure core (codecs, peer state, policy) never imports the asyncio shells."""
    graph = _graph()
    shells = {"swarm.peer", "swarm.session", "swarm.torrent", "swarm.cli", "swarm.compare"}
    pure = [
        "swarm.peer_state",
        "swarm.requests",
        "swarm.picker",
        "swarm.choker",
        "swarm.peer_directory",
        "swarm.initial_seeding",
        "swarm.wire",
        "swarm.bencoding",
        "swarm.metainfo",
    ]
    for name in pure:
        reach: set[str] = set()
        todo = [name]
        while todo:
            for nxt in graph.get(todo.pop(), set()):
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        assert not {r for r in reach if r.split(".")[:2] in [s.split(".") for s in shells]}, name


def test_modules_stay_small() -> None:
    big = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}


def test_the_torrent_controller_is_short() -> None:
    tree = ast.parse((ROOT / "swarm" / "torrent.py").read_text())
    cls = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TorrentController"
    )
    assert cls.end_lineno is not None
    assert cls.end_lineno - cls.lineno + 1 < MAX_CONTROLLER_LINES


def test_the_peer_engine_starts_without_aiohttp() -> None:
    """``swarm fetch`` and ``swarm seed`` start in a fraction of a second less without aiohttp
    (issue 14): only the central server and its client import it."""
    code = (
        "import sys\n"
        "import swarm.session, swarm.storage, swarm.metainfo, swarm.cli.peer\n"
        "from swarm.cli import main\n"
        "for argv in (['fetch', '--help'], ['seed', '--help']):\n"
        "    assert main(argv) == 0\n"
        "heavy = ('aiohttp', 'yarl', 'multidict')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == "[]"
