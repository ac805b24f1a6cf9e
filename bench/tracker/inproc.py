"""CPU cost of one announce inside the tracker, no sockets: the hot paths alone.

    python bench/tracker/inproc.py [--rounds 20]

Times ``UDPTracker.handle`` (a BEP 15 announce packet in, the answer out) and
``HTTPTracker.announce`` (a raw query in, the bencoded answer out) over 64 torrents of 200
peers that re-announce (numwant 50, so each answer carries 50 peers), and the two bencoders on
such an answer. Each figure is the best of --rounds passes, in CPU microseconds, so other load
on the machine disturbs it less than it does the socket benchmarks (run.py, udp.py).
"""

from __future__ import annotations

import argparse
import random
import time
import timeit
import urllib.parse
from collections.abc import Callable

import bencodepy
import fastbencode

from tracker import codec
from tracker.http import HTTPTracker
from tracker.state import TrackerState
from tracker.udp import UDPTracker

TORRENTS, PEERS = 64, 200


def info_hash(i: int) -> bytes:
    return bytes((i * 31 + k * 7 + 13) % 256 for k in range(20))


def best_of(rounds: int, items: list[bytes], call: Callable[[bytes], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            call(item)
        best = min(best, (time.process_time() - start) / len(items))
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    rounds = ap.parse_args().rounds
    rng = random.Random(1)
    hashes = [info_hash(i) for i in range(TORRENTS)]
    peer_ids = [b"-BN0001-" + rng.randbytes(12) for _ in range(TORRENTS * PEERS)]

    udp = UDPTracker(TrackerState(interval=1800, rng=random.Random(2)), 1800, time.monotonic)
    addr = ("127.0.0.1", 40000)
    conn_id = udp.connection_id(addr)
    packets = [
        codec.announce_request(
            conn_id,
            i,
            info_hash=hashes[i % TORRENTS],
            peer_id=pid,
            port=1024 + i,
            left=1000,
            numwant=50,
        )
        for i, pid in enumerate(peer_ids)
    ]
    for p in packets:  # every peer known: from here on, re-announces
        udp.handle(p, addr)
    udp_us = best_of(rounds, packets, lambda p: udp.handle(p, addr))

    http = HTTPTracker(TrackerState(interval=1800, rng=random.Random(3)), 1800, 60)
    q = urllib.parse.quote_from_bytes
    queries = [
        f"info_hash={q(hashes[i % TORRENTS], safe='')}&peer_id={q(pid, safe='')}"
        f"&port={1024 + i}&uploaded=0&downloaded=0&left=1000&compact=1&numwant=50".encode()
        for i, pid in enumerate(peer_ids)
    ]
    for query in queries:
        http.announce(query, "127.0.0.1")
    http_us = best_of(rounds, queries, lambda query: http.announce(query, "127.0.0.1"))

    answer = {b"interval": 1800, b"min interval": 60, b"complete": 9, b"incomplete": 41}
    answer[b"peers"] = rng.randbytes(50 * 6)
    n = 20_000
    enc = {}
    for name, encode in (("bencode.py", bencodepy.encode), ("fastbencode", fastbencode.bencode)):
        runs = timeit.repeat(lambda encode=encode: encode(answer), number=n, repeat=5)
        enc[name] = min(runs) / n * 1e6
    print(f"UDP announce (handle):                {udp_us:6.2f} us")
    print(f"HTTP announce (parse, state, answer): {http_us:6.2f} us")
    for name, us in enc.items():
        print(f"bencode a 50-peer answer, {name:11}: {us:6.2f} us")


if __name__ == "__main__":
    main()
