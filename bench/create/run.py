"""`swarm create` on a 1 GiB file against `mktorrent -t 2` and the machine's SHA-1 limit.

    python bench/create/run.py [--size 1G] [--runs 5] [--keep] [--wait 1800] [--no-pyc-cache]

One run measures all of them on the same file of deterministic pseudo-random bytes, warm in the
page cache. They take turns (swarm, mktorrent, start-up, limit, swarm, ...), so each round meets
the same page cache and the same load; each row is the MEDIAN of --runs (default 5), with the
spread (fastest-slowest):

  swarm      python -m swarm create FILE -o X --force   (a real process, wall time; the piece
             length is swarm's own choice: 1 MiB for 1 GiB)
  mktorrent  mktorrent -t 2 -l 20 -o Y FILE              (Debian package mktorrent; 2^20 = 1 MiB)
  start-up   python -m swarm create --help               (interpreter and imports, inside swarm)
  limit      hashlib SHA-1 of the same bytes, held in memory, 1 MiB pieces on 2 threads
             (hashlib releases the GIL, so this is what 2 cores can hash at best)

swarm runs as an installed program does, from compiled bytecode: pip compiles it at install
time, and a plain `python` caches it on first use. Where PYTHONDONTWRITEBYTECODE is set (as in
some containers) every run would compile swarm's sources again; the bench gives swarm a
bytecode cache of its own in the work folder (PYTHONPYCACHEPREFIX) and runs each contender once
untimed first. --no-pyc-cache measures without it.

It prints the medians, swarm/mktorrent (target <= 1.10) and swarm/limit (target <= 1.25), both
from medians of the same run, and checks that both tools give the same info-hash: same piece
length, same info keys; mktorrent's 'created by' and 'creation date' sit outside 'info' and do
not count. The data file is kept for the next run only with --keep. Exit status 1 if a target
is missed or the hashes differ, 2 if mktorrent is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from swarm import metainfo  # noqa: E402
from swarm.units import parse_size  # noqa: E402

PIECE = 1 << 20
SEED = 20240601
APT_LOG = Path("/tmp/apt.log")


def make_data(path: Path, size: int) -> None:
    """Write *size* pseudo-random bytes, the same every time, unless the file is there."""
    if path.exists() and path.stat().st_size == size:
        print(f"reusing {path}")
        return
    print(f"writing {size} bytes to {path} ...", flush=True)
    rng = random.Random(SEED)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
    tmp.replace(path)


def warm(path: Path) -> None:
    """Read the file once so every contender starts from the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def apt_busy() -> bool:
    """True while an apt or dpkg process runs (read from /proc; nothing is started)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("apt", "apt-get", "dpkg"):
                return True
        except OSError:
            continue
    return False


def find_mktorrent(wait: float) -> str | None:
    """mktorrent's path, waiting up to *wait* seconds while apt may still be installing it."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        found = shutil.which("mktorrent")
        if found:
            return found
        log_quiet = not APT_LOG.exists() or time.time() - APT_LOG.stat().st_mtime > 30
        if (log_quiet and not apt_busy()) or time.monotonic() > deadline:
            return None
        if not said:
            print(f"mktorrent not installed yet; waiting for apt (see {APT_LOG}) ...", flush=True)
            said = True
        time.sleep(5)


class Timed:
    """One contender: a command run as a process, its wall times (seconds) one run at a time."""

    def __init__(
        self,
        label: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        before: Path | None = None,
    ) -> None:
        self.label, self.cmd, self.env, self.before = label, cmd, env, before
        self.times: list[float] = []

    def run(self, timed: bool = True) -> None:
        """Run once (*before* is deleted first, untimed); keep the wall time if *timed*."""
        if self.before is not None:
            self.before.unlink(missing_ok=True)
        t0 = time.perf_counter()
        subprocess.run(
            self.cmd,
            check=True,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if timed:
            self.times.append(time.perf_counter() - t0)


class HashLimit:
    """hashlib SHA-1 of the file's bytes, held in memory, in pieces on *threads* threads: what
    the machine can hash at best. One :meth:`run` per round, like the processes."""

    label = "SHA-1 limit, 2 threads"

    def __init__(self, path: Path, threads: int = 2) -> None:
        self.data = memoryview(path.read_bytes())
        count = -(-len(self.data) // PIECE)
        self.bounds = [count * k // threads * PIECE for k in range(threads + 1)]
        self.pool = ThreadPoolExecutor(threads)
        self.times: list[float] = []

    def _work(self, k: int) -> None:
        for i in range(self.bounds[k], min(self.bounds[k + 1], len(self.data)), PIECE):
            hashlib.sha1(self.data[i : i + PIECE]).digest()

    def run(self, timed: bool = True) -> None:
        t0 = time.perf_counter()
        list(self.pool.map(self._work, range(len(self.bounds) - 1)))
        if timed:
            self.times.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.pool.shutdown()
        self.data.release()


def swarm_env(work: Path, pyc_cache: bool) -> dict[str, str]:
    """The environment for swarm's runs: with a bytecode cache of its own unless told not."""
    env = dict(os.environ)
    if pyc_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def cpu_pressure() -> float | None:
    """Seconds any task has waited for a CPU since boot (Linux PSI), or None without PSI."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split()
    except OSError:
        return None
    return int(some[4].split("=")[1]) / 1e6


def spread(times: list[float]) -> str:
    return f"{min(times):.3f}-{max(times):.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G", help="size of the test file (default 1G)")
    ap.add_argument("--runs", type=int, default=5, help="median of this many runs (default 5)")
    ap.add_argument("--keep", action="store_true", help="keep the data file for the next run")
    ap.add_argument(
        "--wait", type=float, default=1800, help="seconds to wait for apt to install mktorrent"
    )
    ap.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="run swarm without a bytecode cache when PYTHONDONTWRITEBYTECODE is set",
    )
    args = ap.parse_args()
    size = parse_size(args.size)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    mktorrent = find_mktorrent(args.wait)
    if mktorrent is None:
        print("mktorrent is not installed (Debian package mktorrent)", file=sys.stderr)
        return 2
    work = Path(tempfile.gettempdir()) / "swarm-bench-create"
    work.mkdir(exist_ok=True)
    data = work / f"data-{size}-{SEED}.bin"
    ours_t, theirs_t = work / "swarm.torrent", work / "mktorrent.torrent"
    env = swarm_env(work, not args.no_pyc_cache)
    swarm = [sys.executable, "-m", "swarm", "create"]
    ours = Timed("swarm create", [*swarm, str(data), "-o", str(ours_t), "--force"], env=env)
    # mktorrent will not overwrite its output: it is deleted before each run, untimed.
    mk_cmd = [mktorrent, "-t", "2", "-l", "20", "-o", str(theirs_t), str(data)]
    theirs = Timed("mktorrent -t 2 -l 20", mk_cmd, before=theirs_t)
    startup = Timed("  of which start-up", [*swarm, "--help"], env=env)
    limit: HashLimit | None = None
    try:
        make_data(data, size)
        warm(data)
        limit = HashLimit(data)
        contenders = (ours, theirs, startup, limit)
        for c in contenders:
            c.run(timed=False)  # fills swarm's bytecode cache; the same warm-up for all
        waited = cpu_pressure()
        t0 = time.perf_counter()
        for _ in range(args.runs):
            for c in contenders:
                c.run()
        elapsed = time.perf_counter() - t0
        if waited is not None:
            waited = (cpu_pressure() or 0) - waited
        a, b = metainfo.load(ours_t), metainfo.load(theirs_t)
    finally:
        if limit is not None:
            limit.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    mib = size / 2**20
    med = {c.label: statistics.median(c.times) for c in (ours, theirs, startup)}
    r_mk = med[ours.label] / med[theirs.label]
    r_limit = med[ours.label] / statistics.median(limit.times)
    same = a.info_hash == b.info_hash
    print()
    print(
        f"file: {size} bytes ({mib:.0f} MiB), median of {args.runs} interleaved runs, "
        f"{os.cpu_count()} CPUs, swarm {'without' if args.no_pyc_cache else 'with'} "
        "a bytecode cache"
    )
    if waited is not None:
        # Other processes on the machine stretch every row; this says how much there were.
        print(f"CPU pressure: some task waited for a CPU {100 * waited / elapsed:.0f}% of the time")
    print(f"{'':24}{'median s':>9}{'MiB/s':>9}   spread (s)")
    for c in (ours, theirs, limit):
        m = statistics.median(c.times)
        print(f"{c.label:24}{m:9.3f}{mib / m:9.1f}   {spread(c.times)}")
    # Start-up (interpreter and imports) is inside swarm's time; no hashing wins it back.
    print(
        f"{startup.label:24}{med[startup.label]:9.3f}{'':9}   {spread(startup.times)}"
        "  (python -m swarm create --help)"
    )
    print(f"swarm / mktorrent   {r_mk:5.2f}  (target <= 1.10) {'ok' if r_mk <= 1.10 else 'MISSED'}")
    print(
        f"swarm / SHA-1 limit {r_limit:5.2f}  (target <= 1.25) "
        f"{'ok' if r_limit <= 1.25 else 'MISSED'}"
    )
    print(
        f"piece length: swarm {a.piece_length}, mktorrent {b.piece_length}; info-hash "
        f"{'the same' if same else 'DIFFERENT'}: {a.info_hash_hex}"
        + ("" if same else f" vs {b.info_hash_hex}")
    )
    return 0 if same and r_mk <= 1.10 and r_limit <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
