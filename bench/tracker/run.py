"""HTTP announces per second: `swarm tracker` against opentracker, same run, same load.

    python bench/tracker/run.py [--seconds 10] [--runs 3] [--connections 64] [--threads 1]

The load generator is wrk (Debian package) with announce.lua: a new peer_id on every request
over 64 torrents, numwant=50, every answer checked (status 200, a bencoded dictionary with
``peers``, no ``failure reason``). Rows, each tracker a fresh process on 127.0.0.1:

- close: every request says ``Connection: close``, so each announce is one TCP connection.
  This is opentracker's only regime: it closes every connection after its answer (its
  answer does not say so, so wrk finds out on its next read and counts a read error; those
  are expected for opentracker, and listed apart);
- keep-alive, ours only: the same load over 64 kept connections.

Each row is measured --runs times, the runs interleaved (every other one in reverse order)
because the machine's 2 cores are shared by wrk, the tracker and anything else running; the
figures are medians. For each row the CPU the tracker used (from /proc) and the CPU wrk used
(from the kernel's accounting of reaped children) are shown, in cores (CPU s / wall s) and in
CPU microseconds per announce; the last line compares the trackers' CPU per announce, which
depends less than the rate on the share of the machine the scheduler gave each run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import Server, children_cpu, median_row  # noqa: E402


def wrk(
    server: Server, seconds: int, connections: int, threads: int, close: bool
) -> dict[str, float]:
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    argv += ["-s", str(HERE / "announce.lua"), f"http://127.0.0.1:{server.port}"]
    if close:
        argv += ["--", "close"]
    cpu0, gen0 = server.cpu(), children_cpu()
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    cpu1, gen1 = server.cpu(), children_cpu()
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, reqs, dur_us, rps, p99, errors, read_errors, status_errors, bad = line.split()
    wall = int(dur_us) / 1e6
    return {
        "rps": float(rps),
        "p99_ms": float(p99),
        "errors": int(errors) + int(status_errors),
        "read_errors": int(read_errors),
        "bad": int(bad),
        "server_cores": (cpu1 - cpu0) / wall,
        "wrk_cores": (gen1 - gen0) / wall,
        "server_us": (cpu1 - cpu0) / max(int(reqs), 1) * 1e6,
        "wrk_us": (gen1 - gen0) / max(int(reqs), 1) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for exe in ("wrk", "opentracker"):
        if shutil.which(exe) is None:
            raise SystemExit(f"{exe} is not installed (Debian package {exe})")
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-tracker-"))
    rows: dict[str, tuple[Callable[[], Server], bool]] = {
        "swarm, close": (Server.swarm, True),
        "swarm, keep-alive": (Server.swarm, False),
        "opentracker, close": (lambda: Server.opentracker(work), True),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    try:
        for run in range(args.runs):
            order = list(rows) if run % 2 == 0 else list(reversed(rows))
            for name in order:
                start, close = rows[name]
                server = start()
                try:
                    r = wrk(server, args.seconds, args.connections, args.threads, close)
                finally:
                    server.stop()
                results[name].append(r)
                print(
                    f"run {run + 1} {name:20} {r['rps']:8.0f}/s p99 {r['p99_ms']:6.2f} ms"
                    f" bad {r['bad']} errors {r['errors']}"
                    f" cores: tracker {r['server_cores']:.2f} wrk {r['wrk_cores']:.2f};"
                    f" CPU us/announce: tracker {r['server_us']:.0f} wrk {r['wrk_us']:.0f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nwrk: {args.seconds} s x {args.runs} runs (medians), {args.connections} connections,"
        f" {args.threads} thread(s); 64 torrents, a new peer_id per request, numwant=50"
    )
    print(
        f"{'':20} {'announces/s':>12} {'(range)':>15} {'p99 ms':>7} {'bad':>5} {'errors':>6}"
        f" {'read err':>8} {'tracker cores':>13} {'wrk cores':>9} {'tracker us/ann':>14}"
        f" {'wrk us/ann':>10}"
    )
    med = {name: median_row(rs) for name, rs in results.items()}
    for name, m in med.items():
        rng = f"{m['rps_lo']:.0f}-{m['rps_hi']:.0f}"
        print(
            f"{name:20} {m['rps']:12.0f} {rng:>15} {m['p99_ms']:7.2f} {m['bad']:5.0f}"
            f" {m['errors']:6.0f} {m['read_errors']:8.0f} {m['server_cores']:13.2f}"
            f" {m['wrk_cores']:9.2f} {m['server_us']:14.1f} {m['wrk_us']:10.1f}"
        )
    ot, ours, keep = med["opentracker, close"], med["swarm, close"], med["swarm, keep-alive"]
    print(
        f"ratio swarm/opentracker, both closing: {ours['rps'] / ot['rps']:.2f}x"
        f" (target >= 0.8x); swarm keep-alive / opentracker: {keep['rps'] / ot['rps']:.2f}x"
    )
    # What each tracker does with one core's worth of CPU, whatever share of the machine
    # the scheduler gave it (on a shared machine that share varies from run to run).
    print(
        "ratio by tracker CPU per announce, both closing:"
        f" {ot['server_us'] / ours['server_us']:.2f}x; keep-alive / opentracker:"
        f" {ot['server_us'] / keep['server_us']:.2f}x"
    )


if __name__ == "__main__":
    main()
