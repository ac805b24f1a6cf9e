"""Time to a magnet's metadata: `swarm fetch magnet:` against libtorrent, from 1 and from 4
seeds, in the same run.

    python bench/magnet/run.py                       # libtorrent and swarm seeds, 1 and 4, 5 runs
    python bench/magnet/run.py --seed-kind libtorrent --seeds 1 --runs 3
    python bench/magnet/run.py --files 4000 --json out.json

The torrent is a folder of --files small files (1-200 bytes each, names about 90 characters),
made by `swarm create`, so that its info dictionary is about 1 MiB (9,400 files: 1,048,984
bytes, 65 metadata pieces of 16 KiB) while its data is under 1 MiB: what is timed is the
metadata exchange (BEP 9), not the download. The seeds (--seed-kind) are started once, each its
own process on 127.0.0.1, and serve both downloaders:

  libtorrent  tests/interop/lt_helper.py seed (high_performance_seed, uTP off, 127.0.0.1)
  swarm       `swarm seed DATA --torrent T --host 127.0.0.1 --port 0`

The downloaders are given the info-hash and the seeds' addresses, nothing else:

  swarm       `swarm -v fetch 'magnet:?xt=urn:btih:HASH&x.pe=127.0.0.1:P1&...' --no-seed
              --host 127.0.0.1 --port 0`, from a bytecode cache as an installed program; it
              prints `metadata: NAME, N bytes, from K peers in T s` once the info dictionary is
              verified (and is then stopped by its PID: the download is not timed)
  libtorrent  lt_magnet.py beside this file, under /usr/bin/python3: lt.default_settings() with
              what loopback needs, add_torrent_params with only the info-hash, the peers and a
              save path; it exits at metadata_received_alert

The figures, all from the same run:

  wall    from the start of the process to the moment its metadata line reaches this script:
          Python's start-up and imports for swarm; the interpreter, the import of libtorrent and
          the session's start for libtorrent
  ready   from the moment the client is ready to dial to its metadata line: for swarm, from
          its log line `listening for peers on ...` (the session is up; the magnet's peers are
          dialled next); for libtorrent, from just before add_torrent to the alert (its clock)
  stated  the time swarm's `metadata:` line states (its metadata fetcher's own clock: from the
          fetcher's start to the SHA-1 check, before the info dictionary is parsed), against
          libtorrent's ready figure

Each run times both downloaders once for each seed count, alternating which goes first (the
first run of all is an untimed warm-up of each); figures are medians over --runs with the
range, and the ratio swarm / libtorrent (target in issue 15: at most 1.5x). A seed kind that
does not serve the metadata (a fetch that times out or fails) is reported as failed and the
bench goes on with the others; the exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LT_MAGNET = HERE / "lt_magnet.py"
LT_HELPER = ROOT / "tests" / "interop" / "lt_helper.py"
SYSTEM_PYTHON = "/usr/bin/python3"
NAME = "many-small-files"
KINDS = ("libtorrent", "swarm")
METADATA_LINE = re.compile(
    r"metadata: (?P<name>.+), (?P<size>\d+) bytes, from (?P<peers>\d+) peers? in (?P<secs>[\d.]+) s"
)


class BenchError(Exception):
    """A contender or a seed did not do its part; the message says which and where to look."""


class Child:
    """A process whose stdout and stderr lines are collected, each with its arrival time."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        self.port = 0  # a seed's listening port, once it says it
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with self.log.open("w") as out:
            for raw in self.popen.stdout:
                now = time.monotonic()
                line = raw.decode(errors="replace").rstrip("\r\n")
                out.write(f"{now - self.started:9.4f} {line}\n")
                with self._cond:
                    self.lines.append((now, line))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, match: Callable[[str], object], timeout: float) -> tuple[float, str]:
        """The first line for which *match* is true, and when it came; BenchError if the
        process exits or *timeout* passes first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for when, line in self.lines[seen:]:
                    if match(line):
                        return when, line
                seen = len(self.lines)
                if not self._reader.is_alive():
                    code = self.popen.wait()
                    raise BenchError(f"{self.args[1]} exited {code}; see {self.log}")
                left = deadline - time.monotonic()
                if left <= 0:
                    what = f"{self.args[1]}: timed out after {timeout:.0f} s"
                    raise BenchError(f"{what}; see {self.log}")
                self._cond.wait(min(left, 0.5))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; only this process, by its PID."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._reader.join(timeout=5)


@dataclass
class Timing:
    kind: str  # seed kind
    seeds: int
    client: str  # swarm or libtorrent
    run: int
    wall: float
    ready: float
    stated: float  # swarm: the time its metadata line states; libtorrent: = ready


def make_data(root: Path, files: int) -> None:
    """*files* files of 1-200 pseudo-random bytes in sections of 250, with long names (as a
    photo or source archive has), the same for the same count."""
    rng = random.Random(files)
    for i in range(files):
        folder = root / f"section-{i // 250:03d}"
        if i % 250 == 0:
            folder.mkdir(parents=True)
        name = f"file-{i:05d}-{rng.getrandbits(128):032x}-{rng.getrandbits(96):024x}.dat"
        (folder / name).write_bytes(rng.randbytes(rng.randrange(1, 201)))


def info_of(torrent: Path) -> tuple[str, int]:
    """The info-hash (hex) and the size of the info dictionary of *torrent*."""
    sys.path.insert(0, str(ROOT))
    from swarm import metainfo

    t = metainfo.load(torrent)
    return t.info_hash.hex(), len(t.raw_info)


def start_seeds(kind: str, count: int, torrent: Path, data: Path, work: Path) -> list[Child]:
    """*count* seeds of *kind*, each seeding (data checked) before this returns; their ports
    are in .port."""
    seeds: list[Child] = []
    try:
        for i in range(count):
            log = work / f"seed-{kind}-{i}.log"
            if kind == "libtorrent":
                args = [SYSTEM_PYTHON, str(LT_HELPER), "seed", str(torrent), str(data.parent)]
                seed = Child(args, log)
                _, line = seed.wait_line(lambda s: s.startswith("seeding "), 120)
                seed.port = int(line.split()[1])
            else:
                args = [sys.executable, "-m", "swarm", "seed", str(data), "--torrent",
                        str(torrent), "--host", "127.0.0.1", "--port", "0", "--no-utp"]  # fmt: skip
                seed = Child(args, log)
                _, line = seed.wait_line(lambda s: s.startswith("seeding on port"), 120)
                seed.port = int(line.split()[3].rstrip(";"))
            seeds.append(seed)
    except BaseException:
        for s in seeds:
            s.stop()
        raise
    return seeds


def time_swarm(
    info_hash: str, ports: list[int], out: Path, log: Path, timeout: float, want: tuple[str, int]
) -> tuple[float, float, float]:
    """wall, ready (from its "listening for peers" log line to its metadata line) and the
    time its metadata line states."""
    magnet = f"magnet:?xt=urn:btih:{info_hash}" + "".join(f"&x.pe=127.0.0.1:{p}" for p in ports)
    args = [sys.executable, "-m", "swarm", "-v", "fetch", magnet, "-o", str(out), "--no-seed",
            "--host", "127.0.0.1", "--port", "0", "--no-utp"]  # fmt: skip
    # Unbuffered: the metadata line must reach the pipe when it is printed, not at exit.
    child = Child(args, log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        listening, _ = child.wait_line(lambda s: "listening for peers on" in s, timeout)
        when, line = child.wait_line(METADATA_LINE.search, timeout)
    finally:
        child.stop()
    m = METADATA_LINE.search(line)
    assert m is not None
    if (m["name"], int(m["size"])) != want:
        raise BenchError(f"swarm reported {m['name']}, {m['size']} bytes; want {want}")
    if int(m["peers"]) > len(ports):
        raise BenchError(f"swarm says it got the metadata from {m['peers']} peers of {len(ports)}")
    return when - child.started, when - listening, float(m["secs"])


def time_libtorrent(
    info_hash: str, ports: list[int], out: Path, log: Path, timeout: float, want: tuple[str, int]
) -> tuple[float, float, float]:
    peers = [f"127.0.0.1:{p}" for p in ports]
    args = [SYSTEM_PYTHON, str(LT_MAGNET), info_hash, str(out), str(timeout), *peers]
    child = Child(args, log)
    try:
        _, ready = child.wait_line(lambda s: s.startswith("ready "), timeout)
        when, line = child.wait_line(lambda s: s.startswith("metadata "), timeout)
        child.popen.wait(timeout=30)
    finally:
        child.stop()
    _, t1, name, size = line.split()
    if (name, int(size)) != want:
        raise BenchError(f"libtorrent got {name}, {size} bytes; want {want}")
    took = float(t1) - float(ready.split()[1])
    return when - child.started, took, took


CLIENTS = {"swarm": time_swarm, "libtorrent": time_libtorrent}


def measure_kind(
    kind: str, counts: list[int], runs: int, timeout: float, torrent: Path, data: Path,
    work: Path, want: tuple[str, int], info_hash: str,
) -> list[Timing]:  # fmt: skip
    """Every run of both clients against seeds of *kind* (started once, max(counts) of them)."""
    seeds = start_seeds(kind, max(counts), torrent, data, work)
    timings: list[Timing] = []
    try:
        ports = [s.port for s in seeds]
        print(f"{kind} seeds on ports {', '.join(map(str, ports))}", flush=True)
        for run in range(runs + 1):  # run 0: untimed warm-up
            for n in counts if run % 2 else reversed(counts):
                order = list(CLIENTS) if run % 2 == 0 else list(reversed(CLIENTS))
                for client in order:
                    tag = f"{kind}-{n}-{client}-{run}"
                    out = work / tag
                    out.mkdir()
                    wall, ready, stated = CLIENTS[client](
                        info_hash, ports[:n], out, work / f"{tag}.log", timeout, want
                    )
                    shutil.rmtree(out, ignore_errors=True)
                    if run == 0:
                        continue
                    timings.append(Timing(kind, n, client, run, wall, ready, stated))
                    print(
                        f"run {run}: {kind} seeds x{n}: {client:<10} wall {wall:6.3f} s"
                        f"  ready {ready:6.3f} s  stated {stated:6.3f} s",
                        flush=True,
                    )
    finally:
        for s in seeds:
            s.stop()
    return timings


def table(timings: list[Timing], kinds: list[str], counts: list[int]) -> list[str]:
    def med(kind: str, n: int, client: str, what: str) -> tuple[float, str]:
        xs = [getattr(t, what) for t in timings if (t.kind, t.seeds, t.client) == (kind, n, client)]
        return statistics.median(xs), f"{min(xs):.3f}-{max(xs):.3f}"

    rows = [
        "| seeds | figure | swarm, s | libtorrent, s | swarm / libtorrent |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        for n in counts:
            if not any((t.kind, t.seeds) == (kind, n) for t in timings):
                continue
            for what in ("wall", "ready", "stated"):
                s, s_range = med(kind, n, "swarm", what)
                lt, lt_range = med(kind, n, "libtorrent", what)
                rows.append(
                    f"| {n} {kind} | {what} | {s:.3f} ({s_range}) | {lt:.3f} ({lt_range}) "
                    f"| {s / lt:.2f}x |"
                )
    return rows


def cpu_pressure_us() -> int | None:
    """Linux PSI: microseconds in which some task waited for a CPU, since boot (None: no PSI)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first.rsplit("total=", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=9400, help="files in the torrent (default 9400)")
    ap.add_argument("--seeds", default="1,4", help="seed counts (default 1,4)")
    ap.add_argument(
        "--seed-kind", default="libtorrent,swarm", help="libtorrent, swarm or both (the default)"
    )
    ap.add_argument("--runs", type=int, default=5, help="timed runs; medians (default 5)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per fetch")
    ap.add_argument("--json", type=Path, help="write every measurement to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    args = ap.parse_args()
    try:
        counts = sorted({int(x) for x in args.seeds.split(",")})
    except ValueError:
        ap.error("--seeds takes counts such as 1,4")
    kinds = [k.strip() for k in args.seed_kind.split(",")]
    if not counts or min(counts) < 1 or max(counts) > 16:
        ap.error("--seeds: counts from 1 to 16")
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error("--seed-kind takes libtorrent, swarm or libtorrent,swarm")
    if not 1 <= args.runs <= 50 or not 10 <= args.files <= 100_000:
        ap.error("--runs: 1 to 50; --files: 10 to 100000")
    if not os.path.exists(SYSTEM_PYTHON):
        raise SystemExit("error: needs /usr/bin/python3 with python3-libtorrent")

    # swarm runs from a bytecode cache, as an installed program does (pip compiles it at
    # install); where PYTHONDONTWRITEBYTECODE is set every start would compile its sources.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "swarm-bench-pyc")
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-magnet-", dir=base))
    failed: list[str] = []
    timings: list[Timing] = []
    began, pressure_at_start = time.monotonic(), cpu_pressure_us()
    try:
        data = work / "src" / NAME
        make_data(data, args.files)
        torrent = work / f"{NAME}.torrent"
        subprocess.run(
            [sys.executable, "-m", "swarm", "-q", "create", str(data), "-o", str(torrent)],
            check=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        info_hash, info_size = info_of(torrent)
        pieces = -(-info_size // 16384)
        print(
            f"{args.files} files, info dictionary {info_size:,} bytes ({pieces} metadata pieces),"
            f" info-hash {info_hash}; {args.runs} runs after a warm-up",
            flush=True,
        )
        for kind in kinds:
            try:
                timings += measure_kind(
                    kind, counts, args.runs, args.timeout, torrent, data, work,
                    (NAME, info_size), info_hash,
                )  # fmt: skip
            except BenchError as exc:
                failed.append(f"{kind} seeds: {exc}")
                print(f"FAILED with {kind} seeds: {exc}", flush=True)
        print(f"\nTime to the metadata ({info_size:,} bytes), median of {args.runs} (range):")
        for row in table(timings, kinds, counts):
            print(row)
        print("target: swarm / libtorrent <= 1.5x")
        pressure_at_end = cpu_pressure_us()
        if pressure_at_start is not None and pressure_at_end is not None:
            share = (pressure_at_end - pressure_at_start) / 1e6 / (time.monotonic() - began)
            print(f"CPU pressure during the run: {100 * share:.0f}% (some task waiting for a CPU)")
        for f in failed:
            print(f"failed: {f}")
        if args.json:
            doc = {"files": args.files, "info_size": info_size, "runs": args.runs}
            doc |= {"timings": [asdict(t) for t in timings], "failed": failed}
            args.json.write_text(json.dumps(doc, indent=2))
    finally:
        if args.keep or failed:
            print(f"work folder and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
