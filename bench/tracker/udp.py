"""UDP announces per second (BEP 15): `swarm tracker` against opentracker, same run, same load.

    python bench/tracker/udp.py [--seconds 10] [--runs 3] [--clients 2] [--window 32]

There is no Debian UDP-tracker load tool, so the load generator is here: --clients processes,
each with one socket that gets a connection id and then keeps --window announces in flight
(a new one goes out as each answer comes back), with a fresh peer_id every time over the same
64 info-hashes as the HTTP benchmark. It is Python, so it shares the 2 cores with the tracker
under test and may itself be the limit for a tracker in C: the ratio is a lower bound for
opentracker's lead. Lost packets are counted (a request unanswered for a second) and resent.
Only whole announce answers count; error packets and short ones are counted as bad (run as
root, opentracker could not read a whitelist in a 0700 folder and answered every announce
with 8 bytes, which this script once counted). The runs are interleaved and the figures are
medians; the CPU each side used is shown (the tracker's from /proc, the generator's from
the kernel's accounting of its reaped processes), in cores and in CPU microseconds per
announce; the last line compares the trackers' CPU per announce, which depends less than
the rate on the share of the machine the scheduler gave each run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import Server, children_cpu, info_hash, median_row  # noqa: E402

from tracker import codec  # noqa: E402  (the packets' forms, as the tracker reads them)

CONNECT, ANNOUNCE = int(codec.Action.CONNECT), int(codec.Action.ANNOUNCE)
REPLY_HEAD = codec.ANNOUNCE_REPLY.size
TIMEOUT = 1.0


def client(port: int, seconds: float, window: int, seed: int, out: mp.Queue) -> None:
    """One load process: returns (answers, lost, latencies in ms) through *out*."""
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(TIMEOUT)
    conn_id = None
    for _ in range(10):
        tid = rng.getrandbits(32)
        sock.send(codec.connect_request(tid))
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        action, got_tid = codec.reply_header(data)
        if action == CONNECT and got_tid == tid:
            conn_id = codec.parse_connect_reply(data)
            break
    if conn_id is None:
        out.put((0, 0, [], 0))
        return
    hashes = [info_hash(i) for i in range(64)]
    pending: dict[int, float] = {}
    pack = codec.ANNOUNCE_REQUEST.pack  # the generator is Python too: no per-packet keywords
    reply_header = codec.REPLY_HEADER.unpack_from

    def send_one() -> None:
        tid = rng.getrandbits(32)
        peer_id = b"-UD0001-" + rng.getrandbits(96).to_bytes(12, "big")
        packet = pack(
            conn_id,
            ANNOUNCE,
            tid,
            hashes[tid % 64],
            peer_id,
            0,
            1000,
            0,
            0,
            0,
            0,
            50,
            1024 + tid % 60000,
        )
        pending[tid] = time.perf_counter()
        sock.send(packet)

    for _ in range(window):
        send_one()
    answers = lost = bad = 0
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            lost += len(pending)
            pending.clear()
            for _ in range(window):
                send_one()
            continue
        if len(data) < 8:
            continue
        action, tid = reply_header(data)
        sent = pending.pop(tid, None)
        if sent is None:
            continue
        # a whole announce answer: the 20-byte head and whole 6-byte peers (opentracker
        # without a whitelist it can read answers 8 bytes: action and transaction id only)
        if action == ANNOUNCE and len(data) >= REPLY_HEAD and (len(data) - REPLY_HEAD) % 6 == 0:
            answers += 1
            if answers % 16 == 0:
                latencies.append((time.perf_counter() - sent) * 1000)
        else:
            bad += 1
        send_one()
    out.put((answers, lost, latencies, bad))


def load(port: int, seconds: float, clients: int, window: int) -> dict[str, float]:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(port, seconds, window, i, out)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    answers = sum(r[0] for r in results)
    lats = sorted(x for r in results for x in r[2])
    p99 = lats[int(0.99 * (len(lats) - 1))] if lats else float("nan")
    return {
        "rps": answers / seconds,
        "p99_ms": p99,
        "lost": sum(r[1] for r in results),
        "bad": sum(r[3] for r in results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--window", type=int, default=32)
    args = ap.parse_args()
    if shutil.which("opentracker") is None:
        raise SystemExit("opentracker is not installed (Debian package opentracker)")
    args.seconds = min(args.seconds, 120)
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-udp-"))
    rows: dict[str, Callable[[], Server]] = {
        "swarm": lambda: Server.swarm(udp=True),
        "opentracker": lambda: Server.opentracker(work),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    try:
        for run in range(args.runs):
            order = list(rows) if run % 2 == 0 else list(reversed(rows))
            for name in order:
                server = rows[name]()
                try:
                    cpu0, gen0 = server.cpu(), children_cpu()
                    r = load(server.port, args.seconds, args.clients, args.window)
                    cpu1, gen1 = server.cpu(), children_cpu()
                finally:
                    server.stop()
                r["server_cores"] = (cpu1 - cpu0) / args.seconds
                r["gen_cores"] = (gen1 - gen0) / args.seconds
                answered = max(r["rps"] * args.seconds, 1)
                r["server_us"] = (cpu1 - cpu0) / answered * 1e6
                r["gen_us"] = (gen1 - gen0) / answered * 1e6
                results[name].append(r)
                print(
                    f"run {run + 1} {name:12} {r['rps']:8.0f}/s p99 {r['p99_ms']:6.2f} ms"
                    f" lost {r['lost']:.0f} bad {r['bad']:.0f}"
                    f" cores: tracker {r['server_cores']:.2f}"
                    f" generator {r['gen_cores']:.2f}; CPU us/announce: tracker"
                    f" {r['server_us']:.0f} generator {r['gen_us']:.0f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nUDP load: {args.seconds:.0f} s x {args.runs} runs (medians), {args.clients} client"
        f" processes, {args.window} in flight each; 64 torrents, a new peer_id per announce,"
        f" numwant=50 ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'':12} {'announces/s':>12} {'(range)':>15} {'p99 ms':>7} {'lost':>6} {'bad':>5}"
        f" {'tracker cores':>13} {'generator cores':>15} {'tracker us/ann':>14}"
        f" {'generator us/ann':>16}"
    )
    med = {name: median_row(rs) for name, rs in results.items()}
    for name, m in med.items():
        rng = f"{m['rps_lo']:.0f}-{m['rps_hi']:.0f}"
        print(
            f"{name:12} {m['rps']:12.0f} {rng:>15} {m['p99_ms']:7.2f} {m['lost']:6.0f}"
            f" {m['bad']:5.0f}"
            f" {m['server_cores']:13.2f} {m['gen_cores']:15.2f} {m['server_us']:14.1f}"
            f" {m['gen_us']:16.1f}"
        )
    ours, ot = med["swarm"], med["opentracker"]
    print(f"ratio swarm/opentracker: {ours['rps'] / ot['rps']:.2f}x (target >= 0.6x)")
    print(f"ratio by tracker CPU per announce: {ot['server_us'] / ours['server_us']:.2f}x")


if __name__ == "__main__":
    main()
