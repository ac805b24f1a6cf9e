"""Fifty DHT nodes on 127.0.0.1, and a third of them killed (issue 17's loopback test).

One ``swarm dht`` is the bootstrap node; 50 swarm DHT nodes (:class:`swarm.dht_shell.DhtNode`,
the library's own) join through it, run as two helper processes (``dht_many_nodes.py``: 33
nodes in one, the 17 to be killed in the other, so that 50 nodes cost two interpreter starts
and the kill is a real SIGKILL of a process, by its PID: those nodes stop answering at once,
as a crashed host's would). Each helper's nodes join one after another, as nodes join a DHT
that runs: all at once, they found the router knowing nobody, and the nodes of one helper
nearest the info-hash had empty tables when the seed announced (issue 20). A ``swarm seed`` of
a trackerless torrent joins through two of the 50 and announces there; a ``swarm fetch`` of the
bare magnet (no ``tr``, no ``x.pe``) joins through two others and finds the seed through the
DHT alone. Then the helper holding the third is killed; a second ``swarm fetch`` (joining
through a survivor and a dead node) still finds the seed, and both copies are equal to the
original (SHA-256). The seed and the fetches run on their defaults: uTP on, their DHT on the
uTP endpoint's UDP socket.

The test is made hard on purpose: the bootstrap node's id is the info-hash's complement (it
is never among the nodes that store the seed's address, so every lookup goes through the 50),
and the killed third holds every other one of the 8 nodes of the 50 nearest the info-hash
(BEP 5 stores a peer on the K = 8 nearest): after the kill, the seed is known only to
survivors, and lookups on the way to them meet dead nodes.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procutil import Proc, digest, seed_port, swarm_run, wait_for

from swarm import bencoding, metainfo

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0")
HELPER = Path(__file__).resolve().parent / "dht_many_nodes.py"
NODES, KILLED, K = 50, 17, 8


def helper(procs: Callable[..., Proc], router: str, ids: list[bytes]) -> Proc:
    return procs(sys.executable, HELPER, router, *(i.hex() for i in ids), stdin=True, raw=True)


def addresses(nodes: Proc) -> list[str]:
    return nodes.wait_line(lambda s: s.startswith("nodes "), timeout=20).split()[1:]


def stored(nodes: Proc) -> int:
    """How many peer records (torrent, peer) the nodes of one helper hold now."""
    return int(helper_stats(nodes)["peers"])


def helper_stats(nodes: Proc) -> dict[str, Any]:
    """One helper's figures: ``peers`` stored, and ``tables``, the table size of each node."""
    assert nodes.popen.stdin is not None
    seen = len(nodes.out)
    nodes.popen.stdin.write("stats\n")
    nodes.popen.stdin.flush()
    deadline = time.monotonic() + 10
    while not (answers := [s for s in nodes.out[seen:] if s.startswith("{")]):
        assert time.monotonic() < deadline and nodes.popen.poll() is None, nodes.err[-5:]
        time.sleep(0.02)
    doc: dict[str, Any] = json.loads(answers[0])
    return doc


def last_stats(dht: Proc) -> dict[str, Any]:
    lines = [s for s in list(dht.out) if s.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def fetch(magnet: str, out: Path, *bootstrap: str) -> None:
    routers = [arg for addr in bootstrap for arg in ("--dht-bootstrap", addr)]
    r = swarm_run("fetch", magnet, "-o", out, "--no-seed", *LOCAL, *routers, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("metadata: movie.bin, "), r.stdout
    assert lines[1].startswith("done: movie.bin: 600000 bytes"), r.stdout


@pytest.mark.timing  # 52 DHT nodes and their 30 s waits: alone, not beside another test
def test_fifty_nodes_find_the_seed_before_and_after_a_third_is_killed(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(600_000).randbytes(600_000))
    torrent = tmp_path / "movie.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    meta = metainfo.load(torrent)
    assert meta.trackers == [] and meta.nodes == ()
    info_hash = meta.info_hash

    # the bootstrap node, as far from the info-hash as an id can be (its id from a state file)
    far = bytes(b ^ 0xFF for b in info_hash)
    state = tmp_path / "router.state"
    state.write_bytes(bencoding.encode({b"id": far, b"nodes": b""}))
    router_args = ("--state", state, "--stats-every", "0.5", "--query-rate", "2000")
    router_proc = procs("dht", *LOCAL, *router_args)
    line = router_proc.wait_line(lambda s: s.startswith("dht node "), timeout=20)
    assert line.split()[2] == far.hex()
    router = line.split()[4]

    # the 50 ids, nearest the info-hash first; the killed third takes every other one of the
    # 8 nearest, and every third of the rest
    rng = random.Random(17)
    ids = sorted((rng.randbytes(20) for _ in range(NODES)), key=lambda i: _distance(i, info_hash))
    doomed = ids[0:K:2] + ids[K::3][: KILLED - K // 2]
    spared = [i for i in ids if i not in doomed]
    assert len(doomed) == KILLED and len(spared) == NODES - KILLED
    third, rest = helper(procs, router, doomed), helper(procs, router, spared)
    third_at, rest_at = addresses(third), addresses(rest)

    seed = procs(
        "-v", "seed", src, "--torrent", torrent, *LOCAL,
        "--dht-bootstrap", third_at[-1], "--dht-bootstrap", rest_at[-1],
    )  # fmt: skip
    seed_port(seed)
    # the seed's announce reached the nodes nearest the info-hash, on both sides of the cut:
    # within the announce's own schedule (made again after 10 s, and after 5, 15 and 35 s while
    # near nodes do not answer: swarm.dht_client), not only its first try
    try:
        wait_for(lambda: stored(third) >= 1 and stored(rest) >= 1, 60, "the seed's announce")
    except AssertionError as exc:  # what the seed reached, and the tables of the 50
        dht = [line for line in list(seed.err) if "dht:" in line]
        tables = [helper_stats(h)["tables"] for h in (third, rest)]
        raise AssertionError(f"{exc}; seed: {dht}; tables (third, rest): {tables}") from None

    magnet = f"magnet:?xt=urn:btih:{info_hash.hex()}"
    fetch(magnet, tmp_path / "first", rest_at[5], rest_at[10])
    assert digest(tmp_path / "first" / "movie.bin") == digest(src)

    assert third.stop(signal.SIGKILL) == -signal.SIGKILL  # a third of the 50, all at once
    fetch(magnet, tmp_path / "second", rest_at[20], third_at[0])
    assert digest(tmp_path / "second" / "movie.bin") == digest(src)

    assert stored(rest) >= 1  # the seed's address, kept by the survivors
    assert last_stats(router_proc)["peers"] == 0  # the lookups went through the 50
    assert seed.stop() == 0


def _distance(node_id: bytes, target: bytes) -> int:
    return int.from_bytes(node_id, "big") ^ int.from_bytes(target, "big")
