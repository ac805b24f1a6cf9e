"""Soak test: one seed, one lying seed and N leechers under random churn for a bounded time.

Every peer is its own ``python -m swarm`` process on 127.0.0.1, announcing to one
``swarm tracker``:

* the seed (``swarm seed``) over a file of deterministic pseudo-random bytes;
* a lying seed (``swarm seed --no-verify``) over a copy with one byte flipped in every
  ``--corrupt-every``-th piece, so that the leechers have real hash failures to catch;
* ``--leechers`` slots, each a ``swarm fetch -v`` into its own folder (they seed what they
  have while downloading, and go on seeding once complete).

For ``--duration`` seconds a churn loop driven by ``random.Random(--seed)`` sends SIGTERM or
SIGKILL (by PID, only to processes started here) to a random leecher and restarts it a little
later on the same folder, so that it resumes; now and then it stops the seed the same way and
restarts it. A leecher that completes is checked (SHA-256 against the original), seeds for a
few seconds, and is then recycled: stopped, its folder emptied, started again as a new
download. Then the churn stops, every stopped peer is started again, and every leecher gets up
to ``--finish-timeout`` seconds to complete; each copy is checked once more, and everything is
stopped by PID.

    python bench/soak/run.py                     # 32 MiB, 12 leechers, 60 s of churn
    python bench/soak/run.py --duration 20 --json
    python bench/soak/run.py --size 8M --leechers 4 --rate 1M --seed 7 --keep

Counted: peers stopped (TERM/KILL) and restarted, downloads completed and bytes verified,
hash failures caught and peers banned (from the leechers' ``-v`` logs: "failed its hash
check", "banning"), and crashes: a process that exits with anything but 0 or the signal it was
sent, exits on its own, will not stop within 15 s of SIGTERM, or prints a Python traceback.
Exit status 0 when there is no crash, every leecher finished and every copy matches; 1
otherwise. The work folder (with every process's log) is removed, unless ``--keep`` is given
or the run failed, in which case its path is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from swarm.units import format_rate, format_size, parse_rate, parse_size  # noqa: E402

PIECE_LENGTH = 64 * 1024
STOP_GRACE = 15.0  # seconds a process may take to exit after SIGTERM before it counts as hung
START_TIMEOUT = 30.0
MAX_DURATION = 3600.0
TICK = 0.1

HASH_FAIL = re.compile(r"piece \d+ failed its hash check")
BANNED = re.compile(r"banning .*: it sent corrupt data")
STOPPED_AT = re.compile(r"stopped at ([\d.]+)%")
SEED_PORT = re.compile(r"seeding on port (\d+)")


# -- processes ------------------------------------------------------------------------------


@dataclass
class Run:
    """One incarnation of a child process: its output as it comes, and what it said."""

    popen: subprocess.Popen[str]
    started: float
    lines: list[str] = field(default_factory=list)
    done: bool = False  # fetch printed its "done:" summary
    port: int | None = None  # seed printed its port
    hash_failures: int = 0
    bans: int = 0
    tracebacks: int = 0
    warnings: int = 0
    stopped_at: float | None = None  # fetch's "stopped at X%" after SIGTERM
    signalled: int | None = None  # the first signal we sent it
    signalled_at: float = 0.0
    killed_after_grace: bool = False
    pumps: list[threading.Thread] = field(default_factory=list)


class Child:
    """A ``python -m swarm`` process that may be stopped and started again; its output of every
    incarnation is appended to one log file."""

    def __init__(self, name: str, args: list[str], log: Path, stats: Counter[str]) -> None:
        self.name = name
        self.args = args
        self.log_path = log
        self.stats = stats
        self.run: Run | None = None
        self.starts = 0
        self.problems: list[str] = []
        self._log_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.run is not None and self.run.popen.poll() is None

    def start(self) -> Run:
        assert not self.alive
        self.starts += 1
        popen = subprocess.Popen(
            [sys.executable, "-m", "swarm", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        run = Run(popen=popen, started=time.monotonic())
        self._write(f"=== start {self.starts}: pid {popen.pid}: swarm {' '.join(self.args)}")
        for stream, tag in ((popen.stdout, "out"), (popen.stderr, "err")):
            t = threading.Thread(target=self._pump, args=(run, stream, tag), daemon=True)
            t.start()
            run.pumps.append(t)
        self.run = run
        return run

    def _write(self, text: str) -> None:
        with self._log_lock, self.log_path.open("a") as f:
            f.write(text + "\n")

    def _pump(self, run: Run, stream: object, tag: str) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            line = raw.rstrip("\n")
            run.lines.append(line)
            self._write(f"{time.monotonic() - run.started:8.2f} {tag}| {line}")
            if line.startswith("done: "):
                run.done = True
            elif HASH_FAIL.search(line):
                run.hash_failures += 1
            elif BANNED.search(line):
                run.bans += 1
            elif line.startswith("Traceback"):
                run.tracebacks += 1
            elif line.startswith("WARNING"):
                run.warnings += 1
            if m := SEED_PORT.search(line):
                run.port = int(m.group(1))
            if m := STOPPED_AT.search(line):
                run.stopped_at = float(m.group(1))

    def signal(self, sig: int) -> bool:
        """Send *sig* to the running incarnation (by its PID); False if it is not running."""
        run = self.run
        if run is None or run.popen.poll() is not None:
            return False
        os.kill(run.popen.pid, sig)
        if run.signalled is None:
            run.signalled, run.signalled_at = sig, time.monotonic()
        self._write(f"=== sent {signal.Signals(sig).name}")
        return True

    def reap(self, now: float) -> Run | None:
        """If the incarnation has exited, account for it (crash or not) and return it. A
        process that ignores SIGTERM for STOP_GRACE seconds is killed and counted."""
        run = self.run
        if run is None:
            return None
        rc = run.popen.poll()
        if rc is None:
            if (
                run.signalled == signal.SIGTERM
                and not run.killed_after_grace
                and now - run.signalled_at > STOP_GRACE
            ):
                run.killed_after_grace = True
                self.problem(f"still running {STOP_GRACE:.0f} s after SIGTERM; killed", run)
                os.kill(run.popen.pid, signal.SIGKILL)
            return None
        for t in run.pumps:
            t.join(timeout=5)
        self._write(f"=== exit {rc}")
        self.stats["hash_failures"] += run.hash_failures
        self.stats["bans"] += run.bans
        self.stats["warnings"] += run.warnings
        if run.tracebacks:
            self.problem(f"printed {run.tracebacks} traceback(s)", run)
        if run.signalled is None:
            self.problem(f"exited on its own with {rc}", run)
        elif rc not in (0, 128 + run.signalled, -run.signalled) and not run.killed_after_grace:
            self.problem(f"exited with {rc} after {signal.Signals(run.signalled).name}", run)
        self.run = None
        return run

    def problem(self, what: str, run: Run) -> None:
        tail = "\n".join("      " + line for line in run.lines[-8:])
        self.problems.append(f"{self.name} (pid {run.popen.pid}): {what}\n{tail}")
        self._write(f"=== PROBLEM: {what}")


# -- the run ---------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_data(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(rng.randbytes(n))
            left -= n


def corrupt_copy(src: Path, dst: Path, every: int) -> int:
    """Copy *src* to *dst* with one byte flipped in every *every*-th piece; how many pieces."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(src.read_bytes())
    count = 0
    for start in range(0, len(data), PIECE_LENGTH * every):
        data[start + min(7, len(data) - start - 1)] ^= 0xFF
        count += 1
    dst.write_bytes(bytes(data))
    return count


@dataclass
class Slot:
    """One leecher: its folder and where it is in its life."""

    index: int
    child: Child
    folder: Path
    restart_at: float | None = None  # stopped by churn: start again then
    recycle_at: float | None = None  # complete: stop, empty the folder, download again then
    recycling: bool = False
    counted: bool = False  # this folder's download has been counted as completed
    generation: int = 0


class Soak:
    def __init__(self, opts: argparse.Namespace, work: Path) -> None:
        self.o = opts
        self.work = work
        self.rng = random.Random(opts.seed)
        self.stats: Counter[str] = Counter()
        self.children: list[Child] = []
        self.slots: list[Slot] = []
        self.seed: Child | None = None
        self.liar: Child | None = None
        self.seed_restart_at: float | None = None
        self.corrupt_downloads: list[str] = []
        self.unfinished: list[str] = []

    def child(self, name: str, args: list[str]) -> Child:
        c = Child(name, args, self.work / "logs" / f"{name}.log", self.stats)
        self.children.append(c)
        return c

    # -- set-up --------------------------------------------------------------------------

    def prepare(self) -> None:
        o = self.o
        (self.work / "logs").mkdir(parents=True)
        self.name = "soak.bin"
        self.data = self.work / "seed" / self.name
        make_data(self.data, o.size, random.Random(o.seed))
        self.digest = sha256(self.data)
        self.corrupted = corrupt_copy(self.data, self.work / "liar" / self.name, o.corrupt_every)
        tracker = self.child(
            "tracker",
            ["tracker", "--host", "127.0.0.1", "--port", "0", "--no-udp", "--interval", "5",
             "--min-interval", "1"],
        )  # fmt: skip
        run = tracker.start()
        self.url = self._wait_line(tracker, run, lambda ln: ln.startswith("http://"))
        self.torrent = self.work / f"{self.name}.torrent"
        subprocess.run(
            [sys.executable, "-m", "swarm", "-q", "create", str(self.data), "-o",
             str(self.torrent), "-t", self.url, "--piece-length", "64K"],
            check=True, timeout=120,
        )  # fmt: skip
        rate = ["--max-upload-rate", str(o.rate)]
        self.seed = self.child(
            "seed",
            ["seed", str(self.data), "--torrent", str(self.torrent), "--host", "127.0.0.1",
             "--port", "0", *rate, "-v"],
        )  # fmt: skip
        self.liar = self.child(
            "liar",
            ["seed", str(self.work / "liar" / self.name), "--torrent", str(self.torrent),
             "--host", "127.0.0.1", "--port", "0", "--no-verify", *rate, "-v"],
        )  # fmt: skip
        for c in (self.seed, self.liar):
            run = c.start()
            self._wait_line(c, run, lambda ln: SEED_PORT.search(ln) is not None)
        for i in range(o.leechers):
            folder = self.work / "leechers" / f"{i:02d}"
            c = self.child(
                f"leecher{i:02d}",
                ["fetch", str(self.torrent), "-o", str(folder), "--host", "127.0.0.1",
                 "--port", "0", *rate, "-v"],
            )  # fmt: skip
            self.slots.append(Slot(i, c, folder))
        for s in self.slots:
            s.child.start()

    def _wait_line(self, c: Child, run: Run, pred: object) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in list(run.lines):
                if pred(line):  # type: ignore[operator]
                    return line
            if run.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"{c.name} did not start: " + " | ".join(run.lines[-5:]))

    # -- the loop ------------------------------------------------------------------------

    def tick(self, now: float, churning: bool) -> None:
        """Reap exits, notice completions, and start what is due."""
        for c in self.children:
            c.reap(now)
        for s in self.slots:
            c = s.child
            if c.run is not None and c.run.done and not s.counted:
                self._count_download(s)
                if churning:
                    s.recycle_at = now + self.rng.uniform(*self.o.seed_time)
            if s.recycle_at is not None and now >= s.recycle_at and c.alive and churning:
                s.recycle_at = None
                s.recycling = True
                c.signal(signal.SIGTERM)
            if c.run is None and s.recycling:
                s.recycling = False
                shutil.rmtree(s.folder, ignore_errors=True)
                s.generation += 1
                s.counted = False
                self.stats["recycled"] += 1
                c.start()
            elif c.run is None and s.restart_at is not None and now >= s.restart_at:
                s.restart_at = None
                self.stats["restarts"] += 1
                c.start()
            elif c.run is None and s.restart_at is None and not s.recycling:
                # It ended without being asked to (already counted as a crash): keep going.
                s.restart_at = now + 1.0
        if self.seed is not None and self.seed.run is None:
            if self.seed_restart_at is None:
                self.seed_restart_at = now + 1.0
            if now >= self.seed_restart_at:
                self.seed_restart_at = None
                self.stats["seed_restarts"] += 1
                self.seed.start()
        if self.liar is not None and self.liar.run is None and self.liar.starts < 20:
            self.liar.start()

    def _count_download(self, s: Slot) -> None:
        s.counted = True
        path = s.folder / self.name
        if path.is_file() and sha256(path) == self.digest:
            self.stats["downloads"] += 1
            self.stats["bytes_verified"] += path.stat().st_size
        else:
            self.corrupt_downloads.append(f"{s.child.name} generation {s.generation}: {path}")

    def churn(self, now: float) -> None:
        """One random event: stop a leecher (or, now and then, the seed) by TERM or KILL."""
        sig = signal.SIGKILL if self.rng.random() < self.o.kill_share else signal.SIGTERM
        kind = "kill" if sig == signal.SIGKILL else "term"
        assert self.seed is not None
        seed_free = self.seed.alive and self.seed_restart_at is None
        if self.rng.random() < self.o.seed_churn and seed_free:
            if self.seed.signal(sig):
                self.stats[f"seed_{kind}"] += 1
                self.seed_restart_at = now + self.rng.uniform(2.0, 8.0)
            return
        running = [
            s for s in self.slots if s.child.run is not None and s.child.run.signalled is None
        ]
        if not running:
            return
        s = self.rng.choice(running)
        if s.child.signal(sig):
            self.stats[kind] += 1
            s.recycle_at = None
            s.recycling = False
            s.restart_at = now + self.rng.uniform(0.5, 5.0)

    def main_phase(self) -> None:
        started = time.monotonic()
        self.churn_end = started + self.o.duration
        next_event = started + self.rng.expovariate(1 / self.o.churn_every)
        while (now := time.monotonic()) < self.churn_end:
            if now >= next_event and self.stats["events"] < self.o.max_events:
                self.stats["events"] += 1
                self.churn(now)
                next_event = now + self.rng.expovariate(1 / self.o.churn_every)
            self.tick(now, churning=True)
            time.sleep(TICK)

    def finish_phase(self) -> float:
        """Start everything that is down, then wait (bounded) until every leecher is done."""
        start = time.monotonic()
        for s in self.slots:
            s.recycle_at = None
            if s.restart_at is not None:
                s.restart_at = start
        if self.seed_restart_at is not None:
            self.seed_restart_at = start
        deadline = start + self.o.finish_timeout
        while (now := time.monotonic()) < deadline:
            self.tick(now, churning=False)
            if all(s.counted and s.child.run is not None and s.child.run.done for s in self.slots):
                break
            time.sleep(TICK)
        return time.monotonic() - start

    def shutdown(self) -> None:
        """SIGTERM every leecher (a leecher still downloading says how far it got), then the
        seeds and the tracker; count how each one exits."""
        for s in self.slots:
            if not s.counted:
                self.unfinished.append(s.child.name)
        groups = [[s.child for s in self.slots], [self.seed, self.liar], self.children[:1]]
        for group in groups:
            for c in group:
                if c is not None:
                    c.signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE + 5
            while any(c is not None and c.run is not None for c in group):
                now = time.monotonic()
                for c in group:
                    if c is not None and c.run is not None:
                        run = c.reap(now)
                        if run is not None and c.name in self.unfinished:
                            where = f"{run.stopped_at}%" if run.stopped_at is not None else "?"
                            self.unfinished[self.unfinished.index(c.name)] = f"{c.name} at {where}"
                if now > deadline:
                    break
                time.sleep(TICK)

    def final_check(self) -> int:
        ok = 0
        for s in self.slots:
            path = s.folder / self.name
            if path.is_file() and sha256(path) == self.digest:
                ok += 1
            elif s.counted:
                self.corrupt_downloads.append(f"{s.child.name} at the end: {path}")
        return ok

    def kill_all(self) -> None:
        for c in self.children:
            run = c.run
            if run is not None and run.popen.poll() is None:
                os.kill(run.popen.pid, signal.SIGKILL)
                run.popen.wait(timeout=10)


def parse_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    return float(lo), float(hi or lo)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="32M", help="size of the shared file (default 32M)")
    ap.add_argument("--leechers", type=int, default=12, help="leecher slots (default 12)")
    ap.add_argument(
        "--duration", type=float, default=60.0, help="seconds of churn (default 60, max 3600)"
    )
    ap.add_argument("--seed", type=int, default=1, help="random seed for data and churn")
    ap.add_argument(
        "--rate", default="4M", help="upload cap of every process, per second (default 4M)"
    )
    ap.add_argument(
        "--churn-every", type=float, default=2.0, help="mean seconds between churn events"
    )
    ap.add_argument("--kill-share", type=float, default=0.5, help="share of stops that are SIGKILL")
    ap.add_argument(
        "--seed-churn", type=float, default=0.1, help="share of events that stop the seed"
    )
    ap.add_argument(
        "--seed-time",
        type=parse_range,
        default=(3.0, 12.0),
        metavar="LO,HI",
        help="seconds a completed leecher seeds before it is recycled (default 3,12)",
    )
    ap.add_argument(
        "--corrupt-every",
        type=int,
        default=4,
        help="the lying seed flips a byte in every N-th piece (default 4)",
    )
    ap.add_argument(
        "--finish-timeout",
        type=float,
        default=120.0,
        help="seconds every leecher gets to finish after the churn (default 120)",
    )
    ap.add_argument("--max-events", type=int, default=2000, help="cap on churn events")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    o = ap.parse_args()
    o.size = parse_size(o.size)
    o.rate = parse_rate(o.rate)
    if not 0 < o.duration <= MAX_DURATION:
        ap.error(f"--duration must be in (0, {MAX_DURATION:.0f}]")
    if not 1 <= o.leechers <= 64 or o.size < PIECE_LENGTH or o.corrupt_every < 1:
        ap.error("--leechers 1..64, --size at least 64K, --corrupt-every at least 1")
    if not 0 < o.finish_timeout <= MAX_DURATION or o.churn_every <= 0:
        ap.error("--finish-timeout in (0, 3600], --churn-every > 0")

    work = Path(tempfile.mkdtemp(prefix="swarm-bench-soak-"))
    soak = Soak(o, work)
    t0 = time.monotonic()
    failed = True
    try:
        soak.prepare()
        soak.main_phase()
        finish_seconds = soak.finish_phase()
        soak.shutdown()
        intact = soak.final_check()
        problems = [p for c in soak.children for p in c.problems]
        st = soak.stats
        crashes = len(problems)
        failed = bool(crashes or soak.unfinished or soak.corrupt_downloads or intact < o.leechers)
        report = {
            "size": o.size,
            "leechers": o.leechers,
            "seed": o.seed,
            "rate": o.rate,
            "churn_seconds": o.duration,
            "finish_seconds": round(finish_seconds, 1),
            "total_seconds": round(time.monotonic() - t0, 1),
            "churn_events": st["events"],
            "leecher_term": st["term"],
            "leecher_kill": st["kill"],
            "leecher_restarts": st["restarts"],
            "seed_term": st["seed_term"],
            "seed_kill": st["seed_kill"],
            "seed_restarts": st["seed_restarts"],
            "recycled": st["recycled"],
            "downloads_completed": st["downloads"],
            "bytes_verified": st["bytes_verified"],
            "final_copies_intact": intact,
            "hash_failures": st["hash_failures"],
            "bans": st["bans"],
            "corrupted_pieces_offered": soak.corrupted,
            "warnings": st["warnings"],
            "crashes": crashes,
            "unfinished": soak.unfinished,
            "corrupt_downloads": soak.corrupt_downloads,
            "ok": not failed,
        }
        print_report(report, problems)
        if o.json:
            print(json.dumps(report))
    finally:
        soak.kill_all()
        if o.keep or failed:
            print(f"work folder and logs kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def print_report(r: dict[str, object], problems: list[str]) -> None:
    rows = [
        ("file", f"{format_size(r['size'])}, {r['leechers']} leechers, seed {r['seed']}, "  # type: ignore[arg-type]
         f"upload cap {format_rate(r['rate'])} per process"),  # type: ignore[arg-type]
        ("time", f"{r['churn_seconds']:.0f} s of churn + {r['finish_seconds']} s to finish "
         f"({r['total_seconds']} s in all)"),
        ("churn events", r["churn_events"]),
        ("leechers stopped", f"{r['leecher_term']} by SIGTERM, {r['leecher_kill']} by SIGKILL; "
         f"{r['leecher_restarts']} restarts (resume)"),
        ("seed stopped", f"{r['seed_term']} by SIGTERM, {r['seed_kill']} by SIGKILL; "
         f"{r['seed_restarts']} restarts"),
        ("recycled", f"{r['recycled']} (complete leechers emptied and started again)"),
        ("downloads completed", f"{r['downloads_completed']} "
         f"({r['final_copies_intact']} of {r['leechers']} copies intact at the end)"),
        ("bytes verified", f"{r['bytes_verified']} ({format_size(r['bytes_verified'])}, "  # type: ignore[arg-type]
         "SHA-256 of every completed download)"),
        ("hash failures caught", f"{r['hash_failures']} ({r['bans']} bans of the lying seed; "
         f"it flips {r['corrupted_pieces_offered']} pieces)"),
        ("warnings logged", r["warnings"]),
        ("crashes", r["crashes"]),
        ("unfinished", ", ".join(r["unfinished"]) or "none"),  # type: ignore[arg-type]
        ("corrupt downloads", ", ".join(r["corrupt_downloads"]) or "none"),  # type: ignore[arg-type]
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for p in problems:
        print("crash: " + p)
    print("result: " + ("ok" if r["ok"] else "FAILED"))


if __name__ == "__main__":
    raise SystemExit(main())
