"""swarm's Mainline DHT (BEP 5) with libtorrent's, in a lab of network namespaces
(swarm/compare/netlab.py): libtorrent runs no DHT on a loopback address, so each program gets
a namespace of its own with an address in the lab's 198.18.K.0/24, all on one bridge.

- a ``swarm dht`` node is everybody's bootstrap node; a ``swarm seed`` of a trackerless
  torrent announces there; libtorrent, given only a bare magnet (``xt``: no ``tr``, no
  ``x.pe``) and the swarm node as its only router, finds the seed through the DHT and
  downloads the file;
- the other way round: a libtorrent seed announces into the DHT (with ``implied_port``), and
  ``swarm fetch`` of the bare magnet, with ``--dht-bootstrap`` alone, finds it and downloads.

Along the way each test asks the nodes directly, one KRPC query at a time from the root
namespace (swarm.dht.krpc's codec): the swarm node stored each announce with the right port,
and libtorrent's node answers swarm's ``get_peers`` with a token that its ``announce_peer``
accepts.

No public address is ever dialled: the namespaces have no route out (checked), the swarm
processes get ``SWARM_NO_PUBLIC_DHT=1`` and a ``--dht-bootstrap`` (so no public router), and
libtorrent's ``dht_bootstrap_nodes`` is the swarm node alone (tests/interop/lt_dht_peer.py).
The lab needs root; where :func:`~swarm.compare.netlab.lab_problem` says it cannot run, the
tests are skipped with its reason, except under CI (CI=true), which runs as root and must run
them. Every wait is bounded; every process is ended by its PID before the lab is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from procutil import Proc, digest, swarm_run, wait_for

from swarm import metainfo
from swarm.compare.netlab import Host, NetLab, lab_problem
from swarm.dht import krpc

pytestmark = pytest.mark.interop

LT_DHT_PEER = Path(__file__).with_name("lt_dht_peer.py")
ROUTER_PORT = 6881
SIZE = 1_500_000
WAIT = 25.0  # seconds any one step may take
ASK_WAIT = 2.0  # seconds one KRPC query may wait for its answer


@pytest.fixture
def lab() -> None:
    problem = lab_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}, and CI must run the DHT interop tests")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def no_public_dht(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every swarm child (seed, fetch, dht) inherits it: no public router, whatever else."""
    monkeypatch.setenv("SWARM_NO_PUBLIC_DHT", "1")


@contextmanager
def processes() -> Iterator[Callable[..., Proc]]:
    """Start programs (argv as given); each one is ended by its PID on the way out."""
    started: list[Proc] = []

    def start(*argv: object) -> Proc:
        proc = Proc([str(a) for a in argv], raw=True)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop(timeout=5.0)


def in_lab(body: Callable[[str, list[Host]], None], names: list[str]) -> None:
    """Run *body* (blocking, in a thread) with the lab's gateway address (the root namespace
    as the hosts see it) and one unshaped host per name, none of which has a route out of the
    lab; the lab is removed afterwards whatever happened."""

    async def main() -> None:
        async with NetLab() as netlab:
            hosts = [await netlab.add_host(name, up=None, down=None) for name in names]
            for host in hosts:
                routes = await asyncio.to_thread(
                    subprocess.run,
                    ["ip", "-n", host.netns, "route", "show", "default"],
                    capture_output=True,
                    text=True,
                    timeout=WAIT,
                )
                assert routes.returncode == 0 and routes.stdout == "", routes
            await asyncio.to_thread(body, netlab.gateway, hosts)

    asyncio.run(main())


def swarm_argv(host: Host, *args: object) -> list[str]:
    return host.argv(sys.executable, "-m", "swarm", *map(str, args))


def lt_argv(libtorrent: list[str], host: Host, *args: object) -> list[str]:
    return host.argv(libtorrent[0], str(LT_DHT_PEER), *map(str, args))


def start_router(start: Callable[..., Proc], host: Host) -> tuple[Proc, str]:
    """``swarm dht`` on *host*, its figures printed 5 times a second; it and its HOST:PORT."""
    dht = start(*swarm_argv(host, "dht", "--host", host.address, "--port", ROUTER_PORT,
                            "--stats-every", "0.2"))  # fmt: skip
    line = dht.wait_line(lambda s: s.startswith("dht node "), timeout=WAIT)
    assert line.split()[3:] == ["on", f"{host.address}:{ROUTER_PORT}"], line
    return dht, f"{host.address}:{ROUTER_PORT}"


def stats(dht: Proc) -> dict[str, Any]:
    lines = [s for s in list(dht.out) if s.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def trackerless(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    """A file of SIZE pseudo-random bytes and its trackerless .torrent; and its info-hash."""
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(random.Random(name).randbytes(SIZE))
    torrent = tmp_path / f"{name}.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    meta = metainfo.load(torrent)
    assert meta.trackers == [] and meta.nodes == ()
    return src, torrent, meta.info_hash


def ask(gateway: str, node: tuple[str, int], query: krpc.Query) -> krpc.Message:
    """One KRPC query from the root namespace (at the lab's *gateway* address) to *node*, and
    its answer (bounded by ASK_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((gateway, 0))
        sock.settimeout(ASK_WAIT)
        sock.sendto(krpc.encode(query), node)
        while True:
            data, source = sock.recvfrom(krpc.MAX_PACKET)
            if source == node:
                return krpc.decode(data)


def stored(gateway: str, router: str, info_hash: bytes) -> set[tuple[str, int]]:
    """The peers the swarm node at *router* has stored for *info_hash*."""
    host, port = router.split(":")
    answer = ask(gateway, (host, int(port)), krpc.GetPeers(b"sp", os.urandom(20), info_hash))
    assert isinstance(answer, krpc.Response), answer
    return set(answer.values or ())


def show(*procs: Proc) -> None:
    """The last lines of each process, for a failure's report."""
    for proc in procs:
        print(" ".join(proc.args[3:8]), *proc.out[-15:], *proc.err[-15:], sep="\n  ")


def test_libtorrent_finds_a_swarm_seed_through_the_dht(
    tmp_path: Path, libtorrent: list[str], lab: None
) -> None:
    src, torrent, info_hash = trackerless(tmp_path, "lt-gets.bin")
    out = tmp_path / "lt"
    out.mkdir()

    def body(gateway: str, hosts: list[Host]) -> None:
        router_host, seed_host, lt_host = hosts
        with processes() as start:
            t0 = time.monotonic()
            dht, router = start_router(start, router_host)
            seed = start(*swarm_argv(seed_host, "seed", src, "--torrent", torrent,
                                     "--host", seed_host.address, "--port", "0",
                                     "--dht-bootstrap", router))  # fmt: skip
            fetch: Proc | None = None
            try:
                line = seed.wait_line(lambda s: s.startswith("seeding on port"), timeout=WAIT)
                seed_at = (seed_host.address, int(line.split()[3].rstrip(";")))
                wait_for(lambda: stats(dht).get("peers") == 1, WAIT, "the seed's announce")
                assert stored(gateway, router, info_hash) == {seed_at}
                t1 = time.monotonic()
                fetch = start(*lt_argv(libtorrent, lt_host, "fetch", info_hash.hex(), out,
                                       lt_host.address, router, WAIT))  # fmt: skip
                lt_at = (lt_host.address, int(fetch.wait_line(lambda s: s.startswith(
                    "listening "), timeout=WAIT).split()[1]))  # fmt: skip
                fetch.wait_line(lambda s: s == "metadata lt-gets.bin", timeout=WAIT)
                fetch.wait_line(lambda s: s == "done", timeout=WAIT)
                t2 = time.monotonic()
                # libtorrent took the seed's DHT node (on its peer port) into its table; the
                # router it never takes: libtorrent keeps its routers out of the table
                nodes = fetch.wait_line(lambda s: s.startswith("dht nodes"), timeout=WAIT)
                assert f"{seed_at[0]}:{seed_at[1]}" in nodes.split()[2:], nodes
                assert fetch.wait_exit(timeout=10) == 0
                # libtorrent announced itself too (its listen port, no implied_port)
                wait_for(lambda: stats(dht).get("peers") == 2, WAIT, "libtorrent's announce")
                assert stored(gateway, router, info_hash) == {seed_at, lt_at}
            except (AssertionError, OSError):
                show(dht, seed, *([fetch] if fetch else []))
                raise
            print(f"\nswarm seed announced {t1 - t0:.1f} s after start; libtorrent had the file "
                  f"{t2 - t1:.1f} s later")  # fmt: skip

    in_lab(body, ["router", "swarm seed", "libtorrent"])
    assert digest(out / src.name) == digest(src)


def test_swarm_finds_a_libtorrent_seed_through_the_dht(
    tmp_path: Path, libtorrent: list[str], lab: None
) -> None:
    src, torrent, info_hash = trackerless(tmp_path, "swarm-gets.bin")
    out = tmp_path / "swarm"
    magnet = f"magnet:?xt=urn:btih:{info_hash.hex()}"  # no tr, no x.pe

    def body(gateway: str, hosts: list[Host]) -> None:
        router_host, seed_host, fetch_host = hosts
        with processes() as start:
            t0 = time.monotonic()
            dht, router = start_router(start, router_host)
            # incoming uTP on: libtorrent then announces with implied_port=1 (its UDP port,
            # which is its TCP port too); swarm dials it by TCP all the same
            seed = start(*lt_argv(libtorrent, seed_host, "seed", torrent, src.parent,
                                  seed_host.address, router, 4 * WAIT,
                                  "enable_incoming_utp=true"))  # fmt: skip
            fetch: Proc | None = None
            try:
                line = seed.wait_line(lambda s: s.startswith("seeding "), timeout=WAIT)
                seed_at = (seed_host.address, int(line.split()[1]))
                wait_for(lambda: stats(dht).get("peers") == 1, WAIT, "libtorrent's announce")
                assert stored(gateway, router, info_hash) == {seed_at}

                # swarm's codec against libtorrent's node: get_peers, then announce_peer
                # with the token it gave
                me = os.urandom(20)
                answer = ask(gateway, seed_at, krpc.GetPeers(b"gp", me, info_hash))
                assert isinstance(answer, krpc.Response) and answer.token, answer
                announce = krpc.AnnouncePeer(b"ap", me, info_hash, 7, answer.token)
                assert isinstance(ask(gateway, seed_at, announce), krpc.Response)
                seed.wait_line(lambda s: s == f"dht announce {gateway} 7", timeout=WAIT)

                t1 = time.monotonic()
                fetch = start(*swarm_argv(fetch_host, "fetch", magnet, "-o", out, "--no-seed",
                                          "--host", fetch_host.address, "--port", "0",
                                          "--dht-bootstrap", router))  # fmt: skip
                assert fetch.wait_exit(timeout=WAIT) == 0
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                show(dht, seed, *([fetch] if fetch else []))
                raise
            lines = fetch.out
            assert lines[0].startswith("metadata: swarm-gets.bin, "), lines
            assert lines[1].startswith(f"done: swarm-gets.bin: {SIZE} bytes"), lines
            print(f"\nlibtorrent seed announced {t1 - t0:.1f} s after start; swarm had the "
                  f"file {time.monotonic() - t1:.1f} s later")  # fmt: skip

    in_lab(body, ["router", "libtorrent seed", "swarm"])
    assert digest(out / src.name) == digest(src)
