"""What the tracker benchmarks share: the 64 info-hashes, starting and stopping `swarm tracker`
and opentracker on 127.0.0.1, and the CPU time each side of a measurement used.

CPU is read from the kernel: a server's (and its child processes') user + system time from
/proc while it runs, the load generator's from ``RUSAGE_CHILDREN`` once it has been reaped.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def info_hash(i: int) -> bytes:
    """The i-th of the benchmark's torrents (announce.lua derives the same 20 bytes)."""
    return bytes((i * 31 + k * 7 + 13) % 256 for k in range(20))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of *pid* and its living descendants so far."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def children_cpu() -> float:
    """CPU seconds of every reaped child of this process so far (the load generators)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Server:
    """One tracker under test, as a process on 127.0.0.1."""

    def __init__(self, name: str, argv: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/stats")
            self.wait_announce()
        except BaseException:
            self.stop()
            raise

    @classmethod
    def swarm(cls, *extra: str, udp: bool = False) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "swarm", "-q", "tracker", "--port", str(port), *extra]
        if not udp:
            argv.append("--no-udp")
        return cls("swarm", argv, port)

    @classmethod
    def opentracker(cls, work: Path) -> Server:
        port = free_port()
        # Run as root, opentracker drops to nobody before it reads its whitelist: a 0700
        # folder (mkdtemp's) leaves it with none, and every announce then gets a failure.
        work.chmod(0o755)
        whitelist = work / "whitelist"
        whitelist.write_text("".join(info_hash(i).hex() + "\n" for i in range(64)))
        conf = work / "opentracker.conf"
        conf.write_text(f"listen.tcp_udp 127.0.0.1:{port}\naccess.whitelist {whitelist}\n")
        return cls("opentracker", ["opentracker", "-f", str(conf)], port)

    def wait_announce(self, timeout: float = 15) -> None:
        """Until an announce of one of the 64 torrents gets peers (not a failure reason)."""
        query = urllib.parse.urlencode(
            {"info_hash": info_hash(0), "peer_id": b"-PROBE-" + bytes(13), "port": 1}
        )
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/announce?{query}", timeout=2
            ) as r:
                body = r.read()
            if b"5:peers" in body and b"failure reason" not in body:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} refuses the benchmark's torrents: {body!r}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each field's median over the runs, and the range of the rate."""
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out["rps_lo"] = min(r["rps"] for r in rows)
    out["rps_hi"] = max(r["rps"] for r in rows)
    return out
