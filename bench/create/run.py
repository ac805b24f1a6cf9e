"""`swarm create` on a 1 GiB file against `mktorrent -t 2` and the machine's SHA-1 limit.

    python bench/create/run.py [--size 1G] [--runs 3] [--keep]

All three are measured in this run on the same file, warm in the page cache. The limit is
hashlib SHA-1 over the same bytes in memory on 2 threads (hashlib releases the GIL).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def best(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def hash_limit(path: Path, piece: int, runs: int) -> float:
    data = memoryview(path.read_bytes())
    half = (len(data) // piece // 2) * piece

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi, piece):
            hashlib.sha1(data[i : i + piece]).digest()

    times = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(runs):
            t0 = time.perf_counter()
            list(pool.map(lambda r: work(*r), [(0, half), (half, len(data))]))
            times.append(time.perf_counter() - t0)
    return min(times)


def info_hash(torrent: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "swarm", "info", "--json", str(torrent)],
        check=True,
        capture_output=True,
        text=True,
    )
    import json

    return json.loads(out.stdout)["info_hash"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from swarm.units import parse_size

    mktorrent = shutil.which("mktorrent")
    if mktorrent is None:
        raise SystemExit("mktorrent is not installed (Debian package mktorrent)")
    size = parse_size(args.size)
    work = Path(tempfile.gettempdir()) / "swarm-bench-create"
    work.mkdir(exist_ok=True)
    data = work / f"data-{size}.bin"
    try:
        if not data.exists() or data.stat().st_size != size:
            with open(data, "wb") as f:
                block = os.urandom(1 << 20)
                for i in range(size >> 20):
                    f.write(block[i % 997 :] + block[: i % 997])
        subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        ours_t = work / "swarm.torrent"
        theirs_t = work / "mktorrent.torrent"
        ours = best(
            [
                sys.executable,
                "-m",
                "swarm",
                "-q",
                "create",
                str(data),
                "-o",
                str(ours_t),
                "--force",
                "--piece-length",
                "1M",
            ],
            args.runs,
        )
        theirs_t.unlink(missing_ok=True)

        def mk() -> list[str]:
            theirs_t.unlink(missing_ok=True)
            return [mktorrent, "-t", "2", "-l", "20", "-o", str(theirs_t), str(data)]

        times = []
        for _ in range(args.runs):
            cmd = mk()
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        theirs = min(times)
        limit = hash_limit(data, 1 << 20, args.runs)
        same = info_hash(ours_t) == info_hash(theirs_t)
        print(f"file: {size} bytes, piece length 1 MiB, best of {args.runs}")
        print(f"swarm create:        {ours:6.3f} s  ({size / ours / 2**20:7.1f} MiB/s)")
        print(f"mktorrent -t 2:      {theirs:6.3f} s  ({size / theirs / 2**20:7.1f} MiB/s)")
        print(f"SHA-1 on 2 threads:  {limit:6.3f} s  ({size / limit / 2**20:7.1f} MiB/s)")
        print(f"swarm / mktorrent:   {ours / theirs:.2f}x (target <= 1.10x)")
        print(f"swarm / SHA-1 limit: {ours / limit:.2f}x (target <= 1.25x)")
        print(f"same info-hash as mktorrent: {'yes' if same else 'NO'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
