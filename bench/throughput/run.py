"""Loopback throughput, unthrottled: one seed to 1, 4 and 8 leechers, on tmpfs and on disk;
swarm against libtorrent (and aria2 as a second leecher), every reference in the same run.

    python bench/throughput/run.py                       # 256 MiB, 3 runs: 7-8 min on 2 cores
    python bench/throughput/run.py --size 1G --leechers 1 --storage tmpfs
    python bench/throughput/run.py --runs 5 --json out.json

Every seed and leecher is its own process on 127.0.0.1, and all of them announce to one
`swarm tracker` (leechers find each other there; aria2c finds its seed only there). For each
row the seed starts, its data is checked, and it has announced before the clock starts; the
clock runs from the start of the leecher processes to the exit of the last one, so it counts a
leecher's start-up and its flush to disk. Leecher CPU comes from the kernel (wait4); the seed's
CPU is counted from the clock's start to its stop only. Rows, for each storage:

  1 leecher   swarm seed -> swarm fetch   against   libtorrent seed -> libtorrent leecher
              libtorrent seed -> swarm fetch  against  the libtorrent and aria2c leechers
                                                     (the same, fast seed for all three)
              swarm seed -> libtorrent leecher  against  libtorrent seed -> libtorrent leecher
  N leechers  swarm seed + N swarm fetch  against  libtorrent seed + N libtorrent leechers

Storage: `tmpfs` is /dev/shm; `disk` is the default temporary folder ($TMPDIR or /tmp); the
seed's data and the leechers' files are on the same one. Both seeds read their data from the
page cache; on disk the leechers write to the disk and fsync before they exit: swarm fetch does,
the libtorrent leecher does (lt_pair.py), and the bench fsyncs aria2c's file as soon as it
exits (aria2c does not) and counts that in its time.

The setup of each program:
  swarm       `swarm seed` (checks its data first) and `swarm fetch --no-seed`, defaults,
              from a bytecode cache as an installed program (PYTHONDONTWRITEBYTECODE unset)
  libtorrent  Debian's python3-libtorrent under /usr/bin/python3 (lt_pair.py), set up as its
              users set it up for speed (see tests/interop/lt_helper.py): high_performance_seed,
              uTP off both ways, 2 disk and 2 hashing threads, 16 MiB disk queue, no DHT/LSD/
              UPnP/NAT-PMP, several connections per IP, 127.0.0.1 only, no rate limits
  aria2c      --file-allocation=falloc (its manual's advice for ext4, xfs and btrfs),
              --seed-time=0 (exit when done), no DHT, LPD or PEX; its default 16 MiB disk cache

The machine is shared: rows are interleaved (each run goes through every row, in reverse order
on every other run) and the figures are medians over --runs, with the range beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LT_PAIR = HERE / "lt_pair.py"
SYSTEM_PYTHON = "/usr/bin/python3"
GIB = 1 << 30
MIB = 1 << 20
NAME = "data.bin"

# (seed, leecher) pairs measured for one leecher and for N leechers.
PAIR_ROWS = [
    ("swarm", "swarm"),
    ("libtorrent", "libtorrent"),
    ("libtorrent", "swarm"),
    ("libtorrent", "aria2c"),
    ("swarm", "libtorrent"),
]
SWARM_ROWS = [("swarm", "swarm"), ("libtorrent", "libtorrent")]


@dataclass
class Measurement:
    storage: str
    leechers: int
    seed: str
    leecher: str
    seconds: float  # leechers' start to the last one's exit
    leech_seconds: list[float] = field(default_factory=list)
    leech_cpu: float = 0.0  # all leechers together
    seed_cpu: float = 0.0  # while the clock ran
    leech_rss_mib: float = 0.0  # the largest of the leechers'


# -- helpers ----------------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    """*size* bytes of pseudo-random data whose 1 MiB blocks all differ."""
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            f.write(block[i % 251 :] + block[: i % 251])
        f.write(block[: size % MIB])


def fs_type(path: Path) -> str:
    """The file system type that holds *path* (from /proc/mounts)."""
    best, kind = "", "?"
    p = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mnt, typ = line.split()[:3]
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a running process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_data(a: Path, b: Path, size: int) -> bool:
    """Same size and the same bytes in 16 sampled 1 MiB blocks (every client checks each piece's
    SHA-1 itself; this guards against the bench reading the wrong file)."""
    if not b.exists() or b.stat().st_size != size:
        return False
    blocks = max(1, size // MIB)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for i in sorted({0, blocks - 1, *range(0, blocks, max(1, blocks // 14))}):
            fa.seek(i * MIB)
            fb.seek(i * MIB)
            if fa.read(MIB) != fb.read(MIB):
                return False
    return True


class Child:
    """A process this bench started: its stdout read by a thread, stopped by its PID."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.popen.poll() is not None and self.lines.empty():
                raise SystemExit(f"no {prefix!r} from {self.popen.args}: {self.log[-5:]}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.log.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def tracker_counts(url: str) -> tuple[int, int]:
    with urllib.request.urlopen(url.replace("/announce", "/stats"), timeout=5) as resp:
        s = json.load(resp)
    return s["seeders"], s["leechers"]


def wait_tracker(url: str, want: tuple[int, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tracker_counts(url) == want:
            return True
        time.sleep(0.05)
    return False


# -- one measurement --------------------------------------------------------------------


def start_seed(kind: str, data: Path, torrent: Path) -> tuple[Child, int]:
    if kind == "swarm":
        seed = Child(
            [sys.executable, "-m", "swarm", "seed", str(data), "--torrent", str(torrent),
             "--host", "127.0.0.1", "--port", "0", "--no-utp"]
        )  # fmt: skip
        line = seed.wait_line("seeding on port", 300)
        return seed, int(line.split()[3].rstrip(";"))
    seed = Child([SYSTEM_PYTHON, str(LT_PAIR), "seed", str(torrent), str(data.parent)])
    line = seed.wait_line("seeding ", 300)
    return seed, int(line.split()[1])


def leecher_argv(kind: str, torrent: Path, out: Path, seed_port: int, timeout: float) -> list[str]:
    peer = f"127.0.0.1:{seed_port}"
    if kind == "swarm":
        return [sys.executable, "-m", "swarm", "-q", "fetch", str(torrent), "-o", str(out),
                "--no-seed", "--host", "127.0.0.1", "--port", "0", "--no-utp",
                "--peer", peer]  # fmt: skip
    if kind == "libtorrent":
        return [SYSTEM_PYTHON, str(LT_PAIR), "leech", str(torrent), str(out), peer, str(timeout)]
    return [
        "aria2c", "--dir", str(out), "--seed-time=0", "--file-allocation=falloc",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
        "--enable-peer-exchange=false", "--disable-ipv6=true", "--summary-interval=0",
        "--console-log-level=warn", "--listen-port=6900-6999", str(torrent),
    ]  # fmt: skip


def measure(
    storage: str,
    root: Path,
    seed_kind: str,
    leech_kind: str,
    n: int,
    torrent: Path,
    url: str,
    size: int,
    timeout: float,
) -> Measurement:
    data = root / "src" / NAME
    outs = [root / f"out{i}" for i in range(n)]
    for o in outs:
        shutil.rmtree(o, ignore_errors=True)
        if leech_kind == "libtorrent":
            o.mkdir(parents=True)
    if not wait_tracker(url, (0, 0), 15):
        print(f"  (the tracker still lists peers of the last row: {tracker_counts(url)})")
    seed, port = start_seed(seed_kind, data, torrent)
    leechers: list[subprocess.Popen[bytes]] = []
    try:
        if not wait_tracker(url, (1, 0), 15):
            raise SystemExit(f"the {seed_kind} seed did not announce")
        ends: dict[int, tuple[float, int, resource.struct_rusage]] = {}

        def reap(i: int, p: subprocess.Popen[bytes]) -> None:
            _pid, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if leech_kind == "aria2c" and p.returncode == 0:
                fsync_file(outs[i] / NAME)  # aria2c leaves its file in the page cache
            ends[i] = (time.monotonic(), p.returncode, usage)

        cpu0 = proc_cpu(seed.popen.pid)
        t0 = time.monotonic()
        for o in outs:
            leechers.append(
                subprocess.Popen(
                    leecher_argv(leech_kind, torrent, o, port, timeout),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        reapers = [threading.Thread(target=reap, args=(i, p)) for i, p in enumerate(leechers)]
        for r in reapers:
            r.start()
        for r in reapers:
            r.join(max(0.0, t0 + timeout - time.monotonic()))
        seed_cpu = proc_cpu(seed.popen.pid) - cpu0
        if len(ends) < n:
            for p in leechers:
                if p.returncode is None:
                    p.kill()
            for r in reapers:
                r.join(10)
            raise SystemExit(f"{seed_kind} -> {leech_kind} x{n}: timed out after {timeout:.0f} s")
        bad = [rc for _t, rc, _u in ends.values() if rc != 0]
        if bad:
            raise SystemExit(f"{seed_kind} -> {leech_kind} x{n}: a leecher exited with {bad}")
        for o in outs:
            if not same_data(data, o / NAME, size):
                raise SystemExit(f"{seed_kind} -> {leech_kind}: {o / NAME} differs from the data")
        times = [ends[i][0] - t0 for i in range(n)]
        usages = [ends[i][2] for i in range(n)]
        return Measurement(
            storage=storage,
            leechers=n,
            seed=seed_kind,
            leecher=leech_kind,
            seconds=max(times),
            leech_seconds=times,
            leech_cpu=sum(u.ru_utime + u.ru_stime for u in usages),
            seed_cpu=seed_cpu,
            leech_rss_mib=max(u.ru_maxrss for u in usages) / 1024,
        )
    finally:
        for p in leechers:
            if p.returncode is None and p.poll() is None:
                p.kill()
        seed.stop()
        for o in outs:
            shutil.rmtree(o, ignore_errors=True)


# -- the report -------------------------------------------------------------------------


def med(ms: list[Measurement], key: str) -> float:
    return statistics.median(getattr(m, key) for m in ms)


def spread(values: list[float], fmt: str) -> str:
    mid = statistics.median(values)
    if len(values) < 2:
        return format(mid, fmt)
    return f"{mid:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(results: dict[tuple[str, int, str, str], list[Measurement]], size: int) -> None:
    """One line per figure: swarm's median, the reference's from the same runs, and the ratio.

    For speed the ratio is swarm's speed over the reference's (> 1: swarm is faster); for CPU
    and memory it is swarm's amount over the reference's (> 1: swarm uses more)."""
    gib = size / GIB

    def cell(key: tuple[str, int, str, str], what: str) -> tuple[float, str]:
        ms = results[key]
        n = key[1]
        if what in ("MB/s", "s"):
            vals = [size / m.seconds / 1e6 if what == "MB/s" else m.seconds for m in ms]
            return statistics.median(vals), spread(vals, ".0f" if what == "MB/s" else ".2f")
        if what == "rss":
            v = med(ms, "leech_rss_mib")
            return v, f"{v:.0f}"
        cpu = {
            "leech": lambda m: m.leech_cpu,
            "seed": lambda m: m.seed_cpu,
            "all": lambda m: m.leech_cpu + m.seed_cpu,
        }[what]
        v = statistics.median(cpu(m) for m in ms) / (gib * n)
        return v, f"{v:.2f}"

    w = 30
    print(f"\n{'figure (median of runs, range)':46} {'swarm':>{w}} {'reference':>{w}}  ratio")
    for st in sorted({k[0] for k in results}, key=["tmpfs", "disk"].index):
        print(f"-- {st} --")
        for n in sorted({k[1] for k in results if k[0] == st}):
            ss, ll = (st, n, "swarm", "swarm"), (st, n, "libtorrent", "libtorrent")
            ls, la = (st, 1, "libtorrent", "swarm"), (st, 1, "libtorrent", "aria2c")
            sl = (st, 1, "swarm", "libtorrent")
            lt, ar = "libtorrent", "aria2c"
            rss = "  leecher peak RSS MiB (lt: + its mapped file)"
            if n == 1:
                lines = [
                    ("1 seed -> 1 leecher, each its own: MB/s", ss, ll, lt, "MB/s"),
                    ("  leecher CPU s/GiB", ss, ll, lt, "leech"),
                    ("  seed CPU s/GiB", ss, ll, lt, "seed"),
                    (rss, ss, ll, lt, "rss"),
                    ("leecher from a libtorrent seed: MB/s", ls, ll, lt, "MB/s"),
                    ("  the same, against aria2c", ls, la, ar, "MB/s"),
                    ("  leecher CPU s/GiB", ls, ll, lt, "leech"),
                    ("  the same, against aria2c", ls, la, ar, "leech"),
                    ("seed to a libtorrent leecher: MB/s", sl, ll, lt, "MB/s"),
                    ("  seed CPU s/GiB", sl, ll, lt, "seed"),
                ]
            else:
                lines = [
                    (f"1 seed + {n} leechers: s to the last exit", ss, ll, lt, "s"),
                    ("  CPU s/GiB delivered, seed and leechers", ss, ll, lt, "all"),
                    ("  leechers' CPU s/GiB delivered", ss, ll, lt, "leech"),
                    (rss, ss, ll, lt, "rss"),
                ]
            for label, ours, ref, ref_name, what in lines:
                if ours not in results or ref not in results:
                    continue
                a, ta = cell(ours, what)
                b, tb = cell(ref, what)
                if what == "MB/s":
                    tail = f"{a / b:.2f}x"
                elif what == "s":
                    tail = f"{b / a:.2f}x"  # the reference's time over ours: > 1, swarm is faster
                else:
                    tail = f"{a / b:.2f}x as much"
                print(f"{label:46} {ta:>{w}} {ref_name + ' ' + tb:>{w}}  {tail}")


# -- main -------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="256M", help="file size (default 256M)")
    ap.add_argument("--runs", type=int, default=3, help="runs of every row; medians (default 3)")
    ap.add_argument("--leechers", default="1,4,8", help="leecher counts (default 1,4,8)")
    ap.add_argument("--storage", default="tmpfs,disk", help="tmpfs, disk or both (default)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per row")
    ap.add_argument("--json", metavar="FILE", help="write every measurement to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the data files")
    args = ap.parse_args()
    from swarm.units import parse_size

    size = parse_size(args.size)
    try:
        counts = sorted({int(x) for x in args.leechers.split(",")})
    except ValueError:
        ap.error("--leechers takes counts such as 1,4,8")
    storages = [s.strip() for s in args.storage.split(",")]
    if not counts or min(counts) < 1 or max(counts) > 16:
        ap.error("--leechers: counts from 1 to 16")
    if not storages or any(s not in ("tmpfs", "disk") for s in storages):
        ap.error("--storage takes tmpfs, disk or tmpfs,disk")
    if not 1 <= args.runs <= 20:
        ap.error("--runs: 1 to 20")
    if size < MIB:
        ap.error("--size: at least 1M")
    for prog in (SYSTEM_PYTHON, shutil.which("aria2c")):
        if not prog or not os.path.exists(prog):
            raise SystemExit("needs /usr/bin/python3 with python3-libtorrent, and aria2c")

    # Python programs run from a bytecode cache, as an installed program does (pip compiles
    # it at install): where PYTHONDONTWRITEBYTECODE is set, every start would compile swarm's
    # sources again. The cache is warmed before the clock by the tracker's start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "swarm-bench-pyc")
    subprocess.run([sys.executable, "-m", "swarm", "fetch", "--help"], capture_output=True)
    subprocess.run([sys.executable, "-m", "swarm", "seed", "--help"], capture_output=True)
    subprocess.run([sys.executable, "-c", "import swarm.session"], capture_output=True)
    roots = {
        "tmpfs": Path("/dev/shm") / "swarm-bench-throughput",
        "disk": Path(tempfile.gettempdir()) / "swarm-bench-throughput",
    }
    tracker = Child(
        [sys.executable, "-m", "swarm", "tracker", "--host", "127.0.0.1", "--port", "0",
         "--no-udp", "--interval", "5", "--min-interval", "1"]
    )  # fmt: skip
    started = time.monotonic()
    results: dict[tuple[str, int, str, str], list[Measurement]] = {}
    try:
        url = tracker.wait_line("http://", 30)
        first = roots[storages[0]] / "src" / NAME
        make_file(first, size)
        for st in storages:
            data = roots[st] / "src" / NAME
            if not same_data(first, data, size):  # the same bytes on every storage
                data.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first, data)
            subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # cached
            print(f"{st}: {roots[st]} ({fs_type(roots[st])})")
        torrent = roots[storages[0]] / f"{NAME}.torrent"
        subprocess.run(
            [sys.executable, "-m", "swarm", "-q", "create", str(first),
             "-o", str(torrent), "-t", url, "--force"],
            check=True, stdout=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
        rows = [(st, n, s, lch) for st in storages for n in counts
                for s, lch in (PAIR_ROWS if n == 1 else SWARM_ROWS)]  # fmt: skip
        print(
            f"{size} bytes ({size / MIB:.0f} MiB), {args.runs} runs of {len(rows)} rows,"
            f" interleaved; one seed, leechers {','.join(map(str, counts))}, loopback, no caps"
        )
        for run in range(args.runs):
            for st, n, s, lch in rows if run % 2 == 0 else rows[::-1]:
                m = measure(st, roots[st], s, lch, n, torrent, url, size, args.timeout)
                results.setdefault((st, n, s, lch), []).append(m)
                print(
                    f"  run {run + 1}: {st:5} {s:>10} -> {n} x {lch:10} {m.seconds:6.2f} s"
                    f"  ({size * n / m.seconds / 1e6:6.0f} MB/s delivered)",
                    flush=True,
                )
        report(results, size)
        print(f"\n(whole run: {time.monotonic() - started:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump([asdict(m) for ms in results.values() for m in ms], f, indent=1)
    finally:
        tracker.stop()
        for st in storages:
            if args.keep:
                for o in roots[st].glob("out*"):
                    shutil.rmtree(o, ignore_errors=True)
            else:
                shutil.rmtree(roots[st], ignore_errors=True)


if __name__ == "__main__":
    main()
