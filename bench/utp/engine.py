"""swarm seed -> swarm fetch on 127.0.0.1 over uTP (``--utp`` on both, whatever the default)
and over TCP (``--no-utp``): the fetch's wall time and both processes' CPU seconds, runs
alternated.

    python bench/utp/engine.py [--size MiB] [--runs N]

Each run: a fresh ``swarm seed`` of a SIZE MiB file (its data checked first, not timed), a
``swarm fetch --peer`` of it into a fresh folder (timed from its start to its exit), the copy
checked, then the seed ended by its PID; CPU is user + system of each process (os.wait4).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCAL = ["--host", "127.0.0.1", "--port", "0", "--no-dht"]


def swarm(*args: object, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "swarm", *map(str, args)],
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def cpu(pid: int) -> float:
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_utime + usage.ru_stime


def run(tmp: Path, src: Path, torrent: Path, utp: bool, n: int) -> tuple[float, float, float]:
    transport = "--utp" if utp else "--no-utp"
    seed = swarm("seed", src, "--torrent", torrent, *LOCAL, "--no-verify", transport,
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert seed.stdout is not None
    deadline = time.monotonic() + 60
    port = 0
    while time.monotonic() < deadline and not port:
        line = seed.stdout.readline()
        if line.startswith("seeding on port"):
            port = int(line.split()[3].rstrip(";"))
    assert port, "the seed did not start"
    out = tmp / f"out{n}"
    started = time.monotonic()
    fetch = swarm("-q", "fetch", torrent, "-o", out, "--no-seed", *LOCAL,
                  "--peer", f"127.0.0.1:{port}", transport,
                  stdout=subprocess.DEVNULL)  # fmt: skip
    fetch_cpu = cpu(fetch.pid)
    wall = time.monotonic() - started
    os.kill(seed.pid, signal.SIGTERM)
    seed_cpu = cpu(seed.pid)
    got = hashlib.sha256((out / src.name).read_bytes()).hexdigest()
    assert got == hashlib.sha256(src.read_bytes()).hexdigest(), "the copy differs"
    return wall, fetch_cpu, seed_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="MiB")
    parser.add_argument("--runs", type=int, default=2, help="runs of each transport")
    parser.add_argument("--only", choices=("utp", "tcp"), help="runs of one transport only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        src = tmp / "src" / "payload.bin"
        src.parent.mkdir()
        src.write_bytes(random.Random(1).randbytes(args.size << 20))
        torrent = tmp / "t.torrent"
        subprocess.run([sys.executable, "-m", "swarm", "-q", "create", src, "-o", torrent],
                       check=True)  # fmt: skip
        print("transport  wall s  MiB/s  fetch CPU s  seed CPU s")
        for n in range(args.runs * (1 if args.only else 2)):
            utp = args.only == "utp" if args.only else n % 2 == 0
            wall, fcpu, scpu = run(tmp, src, torrent, utp, n)
            name = "uTP" if utp else "TCP"
            print(f"{name:9}  {wall:6.2f}  {args.size / wall:5.1f}  {fcpu:11.2f}  {scpu:10.2f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
