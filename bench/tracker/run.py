"""HTTP announces per second: `swarm tracker` against opentracker, same run, same load.

    python bench/tracker/run.py [--seconds 10] [--connections 64] [--threads 2]

The load generator is wrk (Debian package) with announce.lua, which varies info_hash and
peer_id on every request. Both trackers run on 127.0.0.1. opentracker (Debian's build has a
whitelist) gets a config that lists the benchmark's info-hashes.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))


def info_hash(i: int) -> bytes:
    return bytes((i * 31 + k * 7 + 13) % 256 for k in range(20))


def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answered: it is up (opentracker keeps /stats to itself)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wrk(port: int, seconds: int, connections: int, threads: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(HERE / "announce.lua"),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, reqs, _dur, rps, p99, errors, status_errors = line.split()
    return {
        "rps": float(rps),
        "p99_ms": float(p99),
        "errors": int(errors) + int(status_errors),
        "requests": int(reqs),
    }


def free_port() -> int:
    from procutil import free_port as fp

    return fp()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for exe in ("wrk", "opentracker"):
        if shutil.which(exe) is None:
            raise SystemExit(f"{exe} is not installed (Debian package {exe})")
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-tracker-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        ours = subprocess.Popen(
            [sys.executable, "-m", "swarm", "-q", "tracker", "--port", str(port), "--no-udp"],
            stdout=subprocess.DEVNULL,
        )
        procs.append(ours)
        wait_http(f"http://127.0.0.1:{port}/stats")
        r_ours = wrk(port, args.seconds, args.connections, args.threads)
        ours.send_signal(signal.SIGTERM)
        ours.wait(timeout=10)

        oport = free_port()
        whitelist = work / "whitelist"
        whitelist.write_text("".join(info_hash(i).hex() + "\n" for i in range(64)))
        conf = work / "opentracker.conf"
        conf.write_text(f"listen.tcp_udp 127.0.0.1:{oport}\naccess.whitelist {whitelist}\n")
        theirs = subprocess.Popen(
            ["opentracker", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(theirs)
        wait_http(f"http://127.0.0.1:{oport}/stats")
        r_theirs = wrk(oport, args.seconds, args.connections, args.threads)
        print(
            f"wrk: {args.seconds} s, {args.connections} connections, {args.threads} thread(s);"
            " 64 torrents, a new peer_id per request"
        )
        print(f"{'':14} {'announces/s':>12} {'p99 ms':>8} {'errors':>7}")
        for name, r in (("swarm tracker", r_ours), ("opentracker", r_theirs)):
            print(f"{name:14} {r['rps']:12.0f} {r['p99_ms']:8.2f} {r['errors']:7d}")
        print(
            f"ratio swarm/opentracker: {r_ours['rps'] / r_theirs['rps']:.2f}x"
            " (target >= 0.5x, >= 10,000/s, p99 < 20 ms)"
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
