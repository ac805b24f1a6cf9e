"""Torrents made by other tools read the same in swarm, and ours load in libtorrent."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop


def swarm_info(torrent: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "swarm", "info", "--json", str(torrent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def lt_info(libtorrent: list[str], torrent: Path) -> dict:
    out = subprocess.run(
        [*libtorrent, "info", str(torrent)], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "Album é"
    rng = random.Random(3)
    for rel, size in [("a.bin", 300_001), ("sub/b.bin", 65_536), ("sub/deeper/c.txt", 17)]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
    return root


def same(a: dict, b: dict) -> None:
    assert a["info_hash"] == b["info_hash"]
    assert a["length"] == b["length"]
    assert a["pieces"] == b["pieces"]


def test_transmission_create_single_and_multi(
    tmp_path: Path, tree: Path, transmission_create: str, libtorrent: list[str]
) -> None:
    for src in (tree / "a.bin", tree):
        out = tmp_path / f"{src.name}.tr.torrent"
        subprocess.run(
            [transmission_create, "-o", str(out), "-t", "http://127.0.0.1:6969/announce", str(src)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        same(swarm_info(out), lt_info(libtorrent, out))


def test_libtorrent_created_single_and_multi(
    tmp_path: Path, tree: Path, libtorrent: list[str]
) -> None:
    for src in (tree / "a.bin", tree):
        out = tmp_path / f"{src.name}.lt.torrent"
        subprocess.run(
            [*libtorrent, "create", str(src), str(out), "http://127.0.0.1:1/announce"],
            check=True,
            timeout=120,
        )
        ours = swarm_info(out)
        theirs = lt_info(libtorrent, out)
        same(ours, theirs)
        assert sorted(f["path"] for f in ours["files"]) == sorted(
            f["path"] for f in theirs["files"] if not f["path"].split("/")[-1].startswith(".pad")
        )


def test_swarm_created_loads_in_libtorrent(
    tmp_path: Path, tree: Path, libtorrent: list[str]
) -> None:
    for src in (tree / "a.bin", tree):
        out = tmp_path / f"{src.name}.sw.torrent"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "swarm",
                "create",
                str(src),
                "-o",
                str(out),
                "-t",
                "http://127.0.0.1:1/announce",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        ours = swarm_info(out)
        theirs = lt_info(libtorrent, out)
        same(ours, theirs)
        assert [f["length"] for f in ours["files"]] == [f["length"] for f in theirs["files"]]
