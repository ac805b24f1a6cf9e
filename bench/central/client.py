"""Loopback download time of the HTTP client (``swarm fetch http://...``) from the central server.

One ``swarm serve-central`` process serves a generated file on 127.0.0.1; this process
downloads it with :func:`http_download` on asyncio's loop (as ``swarm fetch`` runs it) into a
fresh folder, ``--repeat`` times after one warm-up, and prints each run, the best and the
median in seconds and MB/s (10^6 bytes/s). ``--module`` names other modules with an
``http_download`` (a copy of an older client, say) to time in interleaved rounds beside it.

    python bench/central/client.py                  # 256 MiB, 3 runs
    python bench/central/client.py --size 1G --repeat 5
    python bench/central/client.py --module swarm.central.client --module client_old
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

from run import _make_file, ours  # noqa: E402

from swarm.units import format_size, parse_size  # noqa: E402


def _time_download(module: str, url: str, out: Path) -> float:
    http_download = importlib.import_module(module).http_download
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    asyncio.run(http_download(url, out))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--module", action="append", help="default: swarm.central.client")
    args = ap.parse_args()
    size = parse_size(args.size)
    modules = args.module or ["swarm.central.client"]
    work = Path(tempfile.mkdtemp(prefix="bench-central-client-"))
    try:
        root = work / "root"
        root.mkdir()
        _make_file(root / "data.bin", size)
        samples: dict[str, list[float]] = {m: [] for m in modules}
        with ours(root, "cli") as base:
            url = base + "data.bin"
            for m in modules:
                _time_download(m, url, work / "out")  # warm-up: page cache, imports
            for _ in range(args.repeat):
                for m in modules:
                    samples[m].append(_time_download(m, url, work / "out"))
        print(f"{format_size(size)} over 127.0.0.1, {args.repeat} runs each")
        for m, runs in samples.items():
            med = statistics.median(runs)
            shown = " ".join(f"{t:.3f}" for t in runs)
            print(
                f"{m:>24}: runs {shown} s; best {min(runs):.3f} s, median {med:.3f} s"
                f" ({size / med / 1e6:.0f} MB/s)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
