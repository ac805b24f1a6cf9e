"""The uTP rows of the throughput bench (issue 20): one seed to one leecher on 127.0.0.1 over
uTP (BEP 29), swarm against libtorrent, in the same run (TCP rows beside them with --tcp).

    python bench/throughput/utp.py                 # 256 MiB on tmpfs, 3 runs of each row
    python bench/throughput/utp.py --size 64M --runs 2 --tcp

Rows:
  swarm uTP         swarm seed --utp -> swarm fetch --utp --peer SEED (uTP dialled first). The
                    run is kept only if both processes' logs (-v) show every peer connection was
                    uTP: the fetch's "connected to ... over uTP", no "over TCP" on either side
                    (the seed's TCP port stays open, as it does for users; it is never used)
  libtorrent uTP    lt_pair.py seed -> leech with LT_TRANSPORT=utp: uTP on and TCP off on both
                    sides (lt_helper's settings otherwise, libtorrent's uTP settings at their
                    defaults), so its peers can only speak uTP
  swarm TCP         (--tcp) swarm seed/fetch --no-utp, as run.py
  libtorrent TCP    (--tcp) lt_pair.py with lt_helper's settings, as run.py

Both implementations send packets of at most an Ethernet MTU (swarm 1400 bytes of UDP payload,
libtorrent's MTU discovery is capped at 1500), though loopback's MTU is 64 KiB. Timing and CPU
as in run.py (leecher start to exit; leecher CPU from wait4, the seed's while the clock runs),
on tmpfs; the leechers are told the seed's address and the tracker's. Figures are medians of
--runs with the range; rows interleaved, every other run in reverse. The target of issue 20:
swarm's uTP at least 0.8x libtorrent's uTP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the bench's helpers: Child, make_file, measure's parts)

UTP_ROWS = [("swarm", "utp"), ("libtorrent", "utp")]
TCP_ROWS = [("swarm", "tcp"), ("libtorrent", "tcp")]


def _swarm_transport(transport: str) -> list[str]:
    return ["--utp"] if transport == "utp" else ["--no-utp"]


def _over(log: str, name: str) -> int:
    return sum(1 for line in log.splitlines() if line.endswith(f" over {name}"))


def measure(
    kind: str, transport: str, root: Path, torrent: Path, url: str, size: int
) -> run.Measurement:
    data = root / "src" / run.NAME
    out = root / "out0"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run.wait_tracker(url, (0, 0), 15)
    env = dict(os.environ)
    if kind == "swarm":
        seed = run.Child(
            [sys.executable, "-m", "swarm", "-v", "seed", str(data), "--torrent", str(torrent),
             "--host", "127.0.0.1", "--port", "0", *_swarm_transport(transport)]
        )  # fmt: skip
        port = int(seed.wait_line("seeding on port", 300).split()[3].rstrip(";"))
    else:
        if transport == "utp":
            env["LT_TRANSPORT"] = "utp"
        os.environ.update(env)  # run.Child passes the environment on
        try:
            seed = run.Child(
                [run.SYSTEM_PYTHON, str(run.LT_PAIR), "seed", str(torrent), str(root / "src")]
            )
        finally:
            os.environ.pop("LT_TRANSPORT", None)
        port = int(seed.wait_line("seeding ", 300).split()[1])
    log_path = root / "leecher.log"
    try:
        if not run.wait_tracker(url, (1, 0), 15):
            raise SystemExit(f"the {kind} seed did not announce")
        if kind == "swarm":
            argv = [sys.executable, "-m", "swarm", "-v", "fetch", str(torrent), "-o", str(out),
                    "--no-seed", "--host", "127.0.0.1", "--port", "0",
                    *_swarm_transport(transport), "--peer", f"127.0.0.1:{port}"]  # fmt: skip
        else:
            argv = run.leecher_argv(kind, torrent, out, port, 300)
        cpu0 = run.proc_cpu(seed.popen.pid)
        t0 = time.monotonic()
        with open(log_path, "w") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            _pid, status, usage = os.wait4(p.pid, 0)
        seconds = time.monotonic() - t0
        seed_cpu = run.proc_cpu(seed.popen.pid) - cpu0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{kind} {transport}: the leecher exited with {status}")
        if not run.same_data(data, out / run.NAME, size):
            raise SystemExit(f"{kind} {transport}: the download differs from the data")
        if kind == "swarm" and transport == "utp":
            leech_log = log_path.read_text()
            seed_log = "\n".join(seed.log + list(seed.lines.queue))
            if _over(leech_log, "uTP") < 1 or _over(leech_log + seed_log, "TCP"):
                raise SystemExit(f"swarm uTP: a connection was not uTP:\n{leech_log}")
        return run.Measurement(
            storage="tmpfs",
            leechers=1,
            seed=f"{kind}-{transport}",
            leecher=f"{kind}-{transport}",
            seconds=seconds,
            leech_seconds=[seconds],
            leech_cpu=usage.ru_utime + usage.ru_stime,
            seed_cpu=seed_cpu,
            leech_rss_mib=usage.ru_maxrss / 1024,
        )
    finally:
        seed.stop()
        shutil.rmtree(out, ignore_errors=True)


def report(results: dict[tuple[str, str], list[run.Measurement]], size: int) -> None:
    gib = size / run.GIB

    def fig(key: tuple[str, str], what: str) -> tuple[float, str]:
        ms = results[key]
        if what == "MiB/s":
            vals = [size / m.seconds / run.MIB for m in ms]
            return statistics.median(vals), run.spread(vals, ".1f")
        get = {
            "leech": lambda m: m.leech_cpu,
            "seed": lambda m: m.seed_cpu,
            "all": lambda m: m.leech_cpu + m.seed_cpu,
        }[what]
        vals = [get(m) / gib for m in ms]
        return statistics.median(vals), run.spread(vals, ".1f")

    figures = [
        ("MiB/s", "MiB/s"),
        ("leech", "leecher CPU s/GiB"),
        ("seed", "seed CPU s/GiB"),
        ("all", "seed+leecher CPU s/GiB"),
    ]
    for transport in ("utp", "tcp"):
        if ("swarm", transport) not in results:
            continue
        name = "uTP" if transport == "utp" else "TCP"
        print(f"\n{name + ' (median, range)':26} {'swarm':>20} {'libtorrent':>20}  swarm/lt")
        for what, label in figures:
            a, ta = fig(("swarm", transport), what)
            b, tb = fig(("libtorrent", transport), what)
            print(f"{label:26} {ta:>20} {tb:>20}  {a / b:.2f}x")
    if ("swarm", "tcp") in results:
        print("\nuTP against TCP, each implementation (speed: uTP/TCP; CPU: uTP's over TCP's):")
        for kind in ("swarm", "libtorrent"):
            parts = []
            for what, label in figures:
                a, _ = fig((kind, "utp"), what)
                b, _ = fig((kind, "tcp"), what)
                parts.append(f"{label} {a / b:.2f}x")
            print(f"  {kind:10} " + ", ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="256M", help="file size (default 256M, as run.py's)")
    ap.add_argument("--runs", type=int, default=3, help="runs of every row (default 3)")
    ap.add_argument("--tcp", action="store_true", help="TCP rows of both, in the same run")
    args = ap.parse_args()
    from swarm.units import parse_size

    size = parse_size(args.size)
    if not os.path.exists(run.SYSTEM_PYTHON):
        raise SystemExit("needs /usr/bin/python3 with python3-libtorrent")
    if not 1 <= args.runs <= 20 or size < run.MIB:
        ap.error("--runs: 1 to 20; --size: at least 1M")
    rows = UTP_ROWS + (TCP_ROWS if args.tcp else [])
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "swarm-bench-pyc")
    subprocess.run([sys.executable, "-m", "swarm", "fetch", "--help"], capture_output=True)
    subprocess.run([sys.executable, "-c", "import swarm.session"], capture_output=True)
    root = Path("/dev/shm") / "swarm-bench-utp"
    tracker = run.Child(
        [sys.executable, "-m", "swarm", "tracker", "--host", "127.0.0.1", "--port", "0",
         "--no-udp", "--interval", "5", "--min-interval", "1"]
    )  # fmt: skip
    results: dict[tuple[str, str], list[run.Measurement]] = {}
    started = time.monotonic()
    try:
        url = tracker.wait_line("http://", 30)
        data = root / "src" / run.NAME
        run.make_file(data, size)
        torrent = root / f"{run.NAME}.torrent"
        subprocess.run(
            [sys.executable, "-m", "swarm", "-q", "create", str(data), "-o", str(torrent),
             "-t", url, "--force"],
            check=True, stdout=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
        print(f"{size / run.MIB:.0f} MiB on tmpfs, {args.runs} runs of {len(rows)} rows")
        for i in range(args.runs):
            for kind, transport in rows if i % 2 == 0 else rows[::-1]:
                m = measure(kind, transport, root, torrent, url, size)
                results.setdefault((kind, transport), []).append(m)
                print(
                    f"  run {i + 1}: {kind:10} {transport:3} {m.seconds:6.2f} s"
                    f" ({size / m.seconds / run.MIB:6.1f} MiB/s)"
                    f"  leecher {m.leech_cpu:5.2f} CPU s, seed {m.seed_cpu:5.2f}",
                    flush=True,
                )
        report(results, size)
        print(f"\n(whole run: {time.monotonic() - started:.0f} s)")
    finally:
        tracker.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
