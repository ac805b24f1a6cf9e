"""UDP announces per second (BEP 15): `swarm tracker` against opentracker, same run, same load.

    python bench/tracker/udp.py [--seconds 10] [--clients 2] [--window 32]

There is no Debian UDP-tracker load tool, so the load generator is here: --clients processes,
each with one socket that gets a connection id and then keeps --window announces in flight
(a new one goes out as each answer comes back), with a fresh peer_id every time over the same
64 info-hashes as the HTTP benchmark. It is Python, so it shares the 2 cores with the tracker
under test and may itself be the limit for a tracker in C: the ratio is a lower bound for
opentracker's lead. Lost packets are counted (a request unanswered for a second) and resent.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import free_port, info_hash, wait_http  # noqa: E402

from tracker import codec  # noqa: E402  (the packets' forms, as the tracker reads them)

CONNECT, ANNOUNCE = int(codec.Action.CONNECT), int(codec.Action.ANNOUNCE)
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
        out.put((0, 0, []))
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
    answers = lost = 0
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
        if action == ANNOUNCE:
            answers += 1
            if answers % 16 == 0:
                latencies.append((time.perf_counter() - sent) * 1000)
        send_one()
    out.put((answers, lost, latencies))


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
    return {"rps": answers / seconds, "p99_ms": p99, "lost": sum(r[1] for r in results)}


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--window", type=int, default=32)
    args = ap.parse_args()
    if shutil.which("opentracker") is None:
        raise SystemExit("opentracker is not installed (Debian package opentracker)")
    args.seconds = min(args.seconds, 120)
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-udp-"))
    try:
        port = free_port()
        ours = subprocess.Popen(
            [sys.executable, "-m", "swarm", "-q", "tracker", "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/stats")
            r_ours = load(port, args.seconds, args.clients, args.window)
        finally:
            stop(ours)
        oport = free_port()
        whitelist = work / "whitelist"
        whitelist.write_text("".join(info_hash(i).hex() + "\n" for i in range(64)))
        conf = work / "opentracker.conf"
        conf.write_text(f"listen.tcp_udp 127.0.0.1:{oport}\naccess.whitelist {whitelist}\n")
        theirs = subprocess.Popen(
            ["opentracker", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_http(f"http://127.0.0.1:{oport}/stats")
            r_theirs = load(oport, args.seconds, args.clients, args.window)
        finally:
            stop(theirs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"UDP load: {args.seconds:.0f} s, {args.clients} client processes, {args.window} in"
        f" flight each; 64 torrents, a new peer_id per announce ({os.cpu_count()} CPUs)"
    )
    print(f"{'':14} {'announces/s':>12} {'p99 ms':>8} {'lost':>6}")
    for name, r in (("swarm tracker", r_ours), ("opentracker", r_theirs)):
        print(f"{name:14} {r['rps']:12.0f} {r['p99_ms']:8.2f} {r['lost']:6d}")
    print(f"ratio swarm/opentracker: {r_ours['rps'] / r_theirs['rps']:.2f}x")


if __name__ == "__main__":
    main()
