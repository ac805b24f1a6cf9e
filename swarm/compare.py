"""The experiment: the same file to N downloaders from one central server and from a swarm.

Every part runs as its own process through the same ``swarm`` commands a user would run: a
tracker, a central server and a seed, both capped at the same upload rate u_s, then N central
downloaders at once, then N swarm downloaders at once (each capped at upload rate u). Each
downloader is timed from the moment all are told to go until its copy is complete, and
every copy is checked (SHA-256 against the original) before its time counts.

:func:`bounds` gives the Kurose and Ross minimum distribution times to compare with.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.create import create_torrent
from swarm.errors import CompareError, UsageError

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


def bounds(
    file_size: int, n: int, server_rate: float, peer_rate: float, d_min: float | None = None
) -> tuple[float, float]:
    """Minimum distribution times (seconds) of F bytes to N peers (Kurose and Ross):
    D_cs = max(N F / u_s, F / d_min), D_p2p = max(F / u_s, F / d_min, N F / (u_s + N u))."""
    f = float(file_size)
    dl = f / d_min if d_min else 0.0
    d_cs = max(n * f / server_rate, dl)
    d_p2p = max(f / server_rate, dl, n * f / (server_rate + n * peer_rate))
    return d_cs, d_p2p


@dataclass(slots=True)
class ModeResult:
    times: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return max(self.times) if self.times else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "times": [round(t, 3) for t in self.times],
            "total": round(self.total, 3),
            "min": round(min(self.times), 3),
            "median": round(statistics.median(self.times), 3),
            "max": round(max(self.times), 3),
        }


@dataclass(slots=True)
class Run:
    peers: int
    central: ModeResult
    swarm: ModeResult
    bound_central: float
    bound_swarm: float

    @property
    def speedup(self) -> float:
        return self.central.total / self.swarm.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "peers": self.peers,
            "central": self.central.as_dict(),
            "swarm": self.swarm.as_dict(),
            "bounds": {
                "central": round(self.bound_central, 3),
                "swarm": round(self.bound_swarm, 3),
            },
            "speedup": round(self.speedup, 3),
        }


def synthetic_file(folder: Path, size: int) -> Path:
    """A file of *size* deterministic pseudo-random bytes."""
    path = folder / f"synthetic-{size}.bin"
    rng = random.Random(size)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Process:
    """One ``python -m swarm`` child, its output read line by line."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.lines: list[str] = []
        self._line_event = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())
        self._stderr = asyncio.ensure_future(self._read_err())
        self.errors: list[str] = []

    @classmethod
    async def start(cls, name: str, *args: str, stdin: bool = False) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "swarm",
            "-q",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in the terminal reaches compare only
        )
        return cls(name, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._line_event.set()
        self._line_event.set()

    async def _read_err(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            if line and len(self.errors) < 20:
                self.errors.append(line)

    async def wait_line(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first output line that satisfies *predicate*; fails if the process dies."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self._reader.done():
                    await self._stderr
                    why = self.errors[-1] if self.errors else f"exit code {self.proc.returncode}"
                    raise CompareError(f"{self.name} stopped: {why}")
                self._line_event.clear()
                await self._line_event.wait()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for task in (self._reader, self._stderr):
            task.cancel()


@dataclass(slots=True)
class Experiment:
    """Settings of one comparison."""

    path: Path
    peer_counts: list[int]
    server_rate: int
    peer_rate: int
    d_min: int | None = None
    timeout: float = 600.0
    on_event: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        if self.on_event:
            self.on_event(text)


async def run_experiment(exp: Experiment) -> list[Run]:
    """Run the experiment for each N; stops everything it started, whatever happens."""
    work = Path(tempfile.mkdtemp(prefix="swarm-compare-"))
    procs: list[Process] = []
    try:
        size = exp.path.stat().st_size
        original = await asyncio.to_thread(sha256_file, exp.path)
        tracker = await Process.start(
            "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-udp"
        )
        procs.append(tracker)
        line = await tracker.wait_line(lambda s: s.startswith("http://"), START_TIMEOUT)
        announce_url = line.split()[0]
        torrent_file = work / (exp.path.name + ".torrent")
        data = await asyncio.to_thread(create_torrent, exp.path, trackers=[[announce_url]])
        torrent_file.write_bytes(data)
        rate = str(exp.server_rate)
        central = await Process.start(
            "central server",
            "serve-central",
            str(exp.path),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-upload-rate",
            rate,
        )
        procs.append(central)
        line = await central.wait_line(lambda s: s.startswith("  http://"), START_TIMEOUT)
        file_url = line.strip()
        seed = await Process.start(
            "seed",
            "seed",
            str(exp.path),
            "--torrent",
            str(torrent_file),
            "--host",
            "127.0.0.1",
            "--max-upload-rate",
            rate,
            "--no-verify",
        )
        procs.append(seed)
        await seed.wait_line(lambda s: s.startswith("seeding on port"), START_TIMEOUT)
        exp.say(f"tracker, central server and seed are up; file {exp.path.name}, {size} bytes")
        runs = []
        for n in exp.peer_counts:
            d_cs, d_p2p = bounds(size, n, exp.server_rate, exp.peer_rate, exp.d_min)
            exp.say(f"N={n}: {n} downloaders from the central server (bound {d_cs:.1f} s)")
            c = await _phase(
                exp, work / f"central-{n}", n, original, exp.path.name, ["fetch", file_url], procs
            )
            exp.say(f"N={n}: {n} downloaders in the swarm (bound {d_p2p:.1f} s)")
            s = await _phase(
                exp,
                work / f"swarm-{n}",
                n,
                original,
                exp.path.name,
                [
                    "fetch",
                    str(torrent_file),
                    "--host",
                    "127.0.0.1",
                    "--max-upload-rate",
                    str(exp.peer_rate),
                    "--seed",
                ],
                procs,
            )
            runs.append(Run(n, c, s, d_cs, d_p2p))
        return runs
    finally:
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)


async def _phase(
    exp: Experiment,
    folder: Path,
    n: int,
    original: str,
    name: str,
    args: list[str],
    procs: list[Process],
) -> ModeResult:
    """Start N downloaders, let them go at once, time each to its verified copy."""
    mine: list[Process] = []
    try:
        for i in range(n):
            out = folder / str(i)
            out.mkdir(parents=True)
            extra = [] if exp.d_min is None else ["--max-download-rate", str(exp.d_min)]
            p = await Process.start(
                f"downloader {i}", *args, "-o", str(out), "--start-on-stdin", *extra, stdin=True
            )
            mine.append(p)
            procs.append(p)
        for p in mine:
            await p.wait_line(lambda s: s == "ready", START_TIMEOUT)
        t0 = time.monotonic()
        for p in mine:
            p.go()
        times: list[float] = [0.0] * n

        async def one(i: int, p: Process) -> None:
            await p.wait_line(lambda s: s.startswith("done:"), exp.timeout)
            times[i] = time.monotonic() - t0
            got = await asyncio.to_thread(sha256_file, folder / str(i) / name)
            if got != original:
                raise CompareError(f"downloader {i}'s copy does not match the original")

        await asyncio.gather(*(one(i, p) for i, p in enumerate(mine)))
        exp.say(f"  all {n} copies verified; slowest {max(times):.2f} s")
        return ModeResult(times)
    finally:
        await asyncio.gather(*(p.stop() for p in mine), return_exceptions=True)
        for p in mine:
            procs.remove(p)


def default_sample() -> Path | None:
    """The bundled sample file (in a source checkout)."""
    here = Path(__file__).resolve().parent.parent / "sample_files" / "ocean-waves.wav"
    return here if here.is_file() else None


def prepare_path(path: Path | None, size: int | None, folder: Path) -> Path:
    if size is not None:
        if size <= 0:
            raise UsageError("--size must be positive")
        return synthetic_file(folder, size)
    if path is None:
        sample = default_sample()
        if sample is None:
            raise UsageError("no sample file found: give a PATH or --size")
        return sample
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: the file is empty")
    return path


def plot(runs: list[Run], out: Path, file_size: int, server_rate: int) -> None:
    """Time against N for both modes and both bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r.peers for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(
        ns,
        [r.central.total for r in runs],
        "o-",
        color="tab:red",
        label="central server (measured)",
    )
    ax.plot(
        ns,
        [r.bound_central for r in runs],
        "x--",
        color="tab:red",
        alpha=0.6,
        label="central bound D_cs",
    )
    ax.plot(ns, [r.swarm.total for r in runs], "o-", color="tab:blue", label="swarm (measured)")
    ax.plot(
        ns,
        [r.bound_swarm for r in runs],
        "x--",
        color="tab:blue",
        alpha=0.6,
        label="swarm bound D_p2p",
    )
    ax.set_xlabel("downloaders N")
    ax.set_ylabel("time until the last copy is complete (s)")
    mib = file_size / 2**20
    ax.set_title(f"{mib:.1f} MiB to N peers, server upload {server_rate / 2**20:.2f} MiB/s")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_xticks(ns)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


__all__ = ["Experiment", "Run", "bounds", "plot", "prepare_path", "run_experiment", "os"]
