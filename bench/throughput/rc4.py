"""The RC4 rows of the throughput bench (issue 20): one seed to one leecher on 127.0.0.1, MSE/PE
with RC4 against plain, swarm against libtorrent, every row in the same run.

    python bench/throughput/rc4.py                  # 512 MiB on tmpfs, 3 runs: about 2 min
    python bench/throughput/rc4.py --size 1G --runs 2

Rows:
  swarm plain       swarm seed -> swarm fetch, --encryption prefer (plain: both dial plain first)
  swarm RC4         the same with --encryption require on both (MSE, RC4 the only method)
  libtorrent plain  lt_pair.py seed -> leech, lt_helper's settings
  libtorrent RC4    the same with both encryption policies forced, RC4 only (LT_ENCRYPTION=rc4)

Timing and CPU as in run.py (leecher start to exit; leecher CPU from wait4, seed CPU while the
clock runs), on tmpfs, the leechers told the seed's address and the tracker's. Figures are
medians of --runs with the range; rows interleaved, every other run in reverse. The target of
issue 20: swarm's CPU per GiB with RC4 within 1.3x of its plain CPU per GiB.
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

ROWS = [
    ("swarm", "plain"),
    ("swarm", "rc4"),
    ("libtorrent", "plain"),
    ("libtorrent", "rc4"),
]


def _env(kind: str, enc: str) -> dict[str, str]:
    env = dict(os.environ)
    if kind == "libtorrent" and enc == "rc4":
        env["LT_ENCRYPTION"] = "rc4"
    return env


def _swarm_enc(enc: str) -> list[str]:
    return ["--encryption", "require" if enc == "rc4" else "prefer"]


def measure(kind: str, enc: str, root: Path, torrent: Path, url: str, size: int) -> run.Measurement:
    data = root / "src" / run.NAME
    out = root / "out0"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run.wait_tracker(url, (0, 0), 15)
    if kind == "swarm":
        seed = run.Child(
            [sys.executable, "-m", "swarm", "seed", str(data), "--torrent", str(torrent),
             "--host", "127.0.0.1", "--port", "0", "--no-utp", *_swarm_enc(enc)]
        )  # fmt: skip
        port = int(seed.wait_line("seeding on port", 300).split()[3].rstrip(";"))
    else:
        os.environ.update(_env(kind, enc))  # run.Child passes the environment on
        try:
            seed = run.Child(
                [run.SYSTEM_PYTHON, str(run.LT_PAIR), "seed", str(torrent), str(root / "src")]
            )
        finally:
            os.environ.pop("LT_ENCRYPTION", None)
        port = int(seed.wait_line("seeding ", 300).split()[1])
    try:
        if not run.wait_tracker(url, (1, 0), 15):
            raise SystemExit(f"the {kind} seed did not announce")
        argv = run.leecher_argv(kind, torrent, out, port, 300)
        if kind == "swarm":
            argv += _swarm_enc(enc)
        cpu0 = run.proc_cpu(seed.popen.pid)
        t0 = time.monotonic()
        p = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(kind, enc)
        )
        _pid, status, usage = os.wait4(p.pid, 0)
        seconds = time.monotonic() - t0
        seed_cpu = run.proc_cpu(seed.popen.pid) - cpu0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{kind} {enc}: the leecher exited with {status}")
        if not run.same_data(data, out / run.NAME, size):
            raise SystemExit(f"{kind} {enc}: the download differs from the data")
        return run.Measurement(
            storage="tmpfs",
            leechers=1,
            seed=f"{kind}-{enc}",
            leecher=f"{kind}-{enc}",
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
        if what == "MB/s":
            vals = [size / m.seconds / 1e6 for m in ms]
            return statistics.median(vals), run.spread(vals, ".0f")
        get = {
            "leech": lambda m: m.leech_cpu,
            "seed": lambda m: m.seed_cpu,
            "all": lambda m: m.leech_cpu + m.seed_cpu,
        }[what]
        vals = [get(m) / gib for m in ms]
        return statistics.median(vals), run.spread(vals, ".2f")

    print(f"\n{'figure (median, range)':28} {'plain':>18} {'RC4':>18}  RC4/plain")
    for kind in ("swarm", "libtorrent"):
        for what, label in [
            ("MB/s", "MB/s"),
            ("leech", "leecher CPU s/GiB"),
            ("seed", "seed CPU s/GiB"),
            ("all", "seed+leecher CPU s/GiB"),
        ]:
            a, ta = fig((kind, "plain"), what)
            b, tb = fig((kind, "rc4"), what)
            ratio = a / b if what == "MB/s" else b / a
            print(f"{kind + ' ' + label:28} {ta:>18} {tb:>18}  {ratio:.2f}x")
    print("\nswarm RC4 against libtorrent RC4 (speed: swarm/libtorrent; CPU: swarm's over its):")
    for what, label in [("MB/s", "MB/s"), ("leech", "leecher CPU"), ("seed", "seed CPU"),
                        ("all", "seed+leecher CPU")]:  # fmt: skip
        a, _ = fig(("swarm", "rc4"), what)
        b, _ = fig(("libtorrent", "rc4"), what)
        print(f"  {label:20} {a / b:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="512M", help="file size (default 512M)")
    ap.add_argument("--runs", type=int, default=3, help="runs of every row (default 3)")
    args = ap.parse_args()
    from swarm.units import parse_size

    size = parse_size(args.size)
    if not os.path.exists(run.SYSTEM_PYTHON):
        raise SystemExit("needs /usr/bin/python3 with python3-libtorrent")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "swarm-bench-pyc")
    subprocess.run([sys.executable, "-m", "swarm", "fetch", "--help"], capture_output=True)
    subprocess.run([sys.executable, "-c", "import swarm.session"], capture_output=True)
    root = Path("/dev/shm") / "swarm-bench-rc4"
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
        print(f"{size / run.MIB:.0f} MiB on tmpfs, {args.runs} runs of {len(ROWS)} rows")
        for i in range(args.runs):
            for kind, enc in ROWS if i % 2 == 0 else ROWS[::-1]:
                m = measure(kind, enc, root, torrent, url, size)
                results.setdefault((kind, enc), []).append(m)
                print(
                    f"  run {i + 1}: {kind:10} {enc:5} {m.seconds:6.2f} s  "
                    f"leecher {m.leech_cpu:5.2f} CPU s, seed {m.seed_cpu:5.2f}",
                    flush=True,
                )
        report(results, size)
        print(f"\n(whole run: {time.monotonic() - started:.0f} s)")
    finally:
        tracker.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
