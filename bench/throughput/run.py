"""One seed to one leecher on loopback, unthrottled: swarm against libtorrent, same run.

    python bench/throughput/run.py [--size 1G] [--rss-sizes 1G,4G] [--keep]

Reports MB/s, CPU seconds per GiB for each side, and the swarm leecher's peak RSS. The
reference is Debian's python3-libtorrent, driven by lt_pair.py under /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB = 1 << 30


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(size >> 20):
            f.write(block[i % 251 :] + block[: i % 251])  # distinct pieces, cheap to make


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def swarm_pair(data: Path, torrent: Path, out: Path) -> dict[str, float]:
    """swarm seed -> swarm fetch --no-seed; time from start of fetch to its exit."""
    py = sys.executable
    seed = subprocess.Popen(
        [
            py,
            "-m",
            "swarm",
            "seed",
            str(data),
            "--torrent",
            str(torrent),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-verify",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        for line in seed.stdout:  # type: ignore[union-attr]
            if line.startswith("seeding on port"):
                port = int(line.split()[3].rstrip(";"))
                break
        assert port, "the seed did not start"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            py,
            "-m",
            "swarm",
            "-q",
            "fetch",
            str(torrent),
            "-o",
            str(out),
            "--no-seed",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--peer",
            f"127.0.0.1:{port}",
        ]
        t0 = time.monotonic()
        leech = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(leech.pid, 0)  # this child's own usage and peak RSS
        seconds = time.monotonic() - t0
        leech.returncode = os.waitstatus_to_exitcode(status)
        if leech.returncode:
            raise SystemExit(f"swarm fetch failed with exit code {leech.returncode}")
        return {
            "seconds": seconds,
            "leech_cpu": usage.ru_utime + usage.ru_stime,
            "seed_cpu": proc_cpu(seed.pid),
            "leech_rss_mib": usage.ru_maxrss / 1024,
        }
    finally:
        seed.terminate()
        seed.wait(timeout=10)


def lt_pair(data: Path, torrent: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    res = subprocess.run(
        ["/usr/bin/python3", str(HERE / "lt_pair.py"), str(torrent), str(data.parent), str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def peak_rss(data: Path, torrent: Path, out: Path) -> float:
    """The swarm leecher's peak RSS (MiB) for a download of *data*."""
    return swarm_pair(data, torrent, out)["leech_rss_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rss-sizes", default="1G,4G")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from swarm.units import parse_size

    work = Path(tempfile.gettempdir()) / "swarm-bench-throughput"
    work.mkdir(exist_ok=True)
    try:
        size = parse_size(args.size)
        data = work / "src" / f"data-{size}.bin"
        data.parent.mkdir(exist_ok=True)
        make_file(data, size)
        torrent = work / f"data-{size}.torrent"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "swarm",
                "-q",
                "create",
                str(data),
                "-o",
                str(torrent),
                "--force",
            ],
            check=True,
        )
        subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # page cache
        best_s: dict[str, float] | None = None
        best_l: dict[str, float] | None = None
        for _ in range(args.runs):
            s = swarm_pair(data, torrent, work / "out-swarm")
            lt = lt_pair(data, torrent, work / "out-lt")
            if best_s is None or s["seconds"] < best_s["seconds"]:
                best_s = s
            if best_l is None or lt["seconds"] < best_l["seconds"]:
                best_l = lt
        assert best_s and best_l
        gib = size / GIB
        mbs = lambda r: size / r["seconds"] / 1e6  # noqa: E731
        print(
            f"file: {size} bytes ({gib:.2f} GiB), best of {args.runs},"
            " one seed -> one leecher, loopback"
        )
        print(f"{'':12} {'MB/s':>8} {'seed cpu s/GiB':>15} {'leech cpu s/GiB':>16}")
        for name, r in (("swarm", best_s), ("libtorrent", best_l)):
            print(
                f"{name:12} {mbs(r):8.1f} {r['seed_cpu'] / gib:15.2f} {r['leech_cpu'] / gib:16.2f}"
            )
        print(
            f"throughput ratio swarm/libtorrent: {mbs(best_s) / mbs(best_l):.2f}x (target >= 1.0x)"
        )
        for text in [x for x in args.rss_sizes.split(",") if x]:
            n = parse_size(text)
            d = work / "src" / f"data-{n}.bin"
            make_file(d, n)
            t = work / f"data-{n}.torrent"
            subprocess.run(
                [sys.executable, "-m", "swarm", "-q", "create", str(d), "-o", str(t), "--force"],
                check=True,
            )
            rss = peak_rss(d, t, work / "out-rss")
            print(f"swarm leecher peak RSS for {text}: {rss:.1f} MiB (target <= 100 MiB)")
            shutil.rmtree(work / "out-rss", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
