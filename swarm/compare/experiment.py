"""The experiment: the same file to N downloaders from one central server and from a swarm.

Every part runs as its own process through the same ``swarm`` commands a user would run: a
tracker, a central server and a seed, both capped at the same upload rate u_s, then N central
downloaders at once, then N swarm downloaders at once (each capped at upload rate u). Each
downloader is timed from the moment all are told to go until its copy is complete, and
every copy is checked (SHA-256 against the original) before its time counts.

With K peers per process (:func:`default_per_process`), downloaders run K to a
``swarm fetch-group`` process instead of one to a ``swarm fetch``: each is still a peer of its
own (own session, port, peer id, caps and folder), timed by its own ``done`` line. Both phases
group alike, so the two modes stay comparable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles

from swarm.compare.children import Child
from swarm.compare.faults import Fault, Outcome, phase_faults, supervise
from swarm.compare.netlab import TCP_PAYLOAD_SHARE, Host, NetLab
from swarm.compare.results import ModeResult, Run, bounds
from swarm.create import create_torrent
from swarm.errors import CompareError, UsageError
from swarm.status import Event
from swarm.units import counted

START_TIMEOUT = 30.0  # seconds a child may take to listen, or to be ready
MAX_PEERS = 200  # N: beyond this, one machine's 2 cores and ports are the experiment
ALONE_UP_TO = 8  # per core: up to this many downloaders each have a process of their own
PROCESSES_PER_CORE = 2  # beyond it, downloaders share this many processes per core


def default_per_process(n: int, cores: int | None = None) -> int:
    """K, the downloaders one process runs, when --peers-per-process is not given: 1 (a
    process each, as ``swarm fetch`` runs) up to 8 per core (N <= 16 on 2 cores); beyond,
    N spread over 2 processes per core (N = 100 on 2 cores: 25 to a process, 4 processes).
    Measured on 2 cores, swarm phase at N = 32 and 100: 2 per core 7.1 s and 21.0 s, 4 per
    core 8.1 s and 20.9-26.8 s, 1 per core 25.3 s at N = 100 (one interpreter per downloader:
    17.1 s at N = 32): every process is an interpreter and a loop more to feed."""
    cores = max(1, cores if cores is not None else (os.cpu_count() or 1))
    if n <= ALONE_UP_TO * cores:
        return 1
    return math.ceil(n / (PROCESSES_PER_CORE * cores))


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
    per_process: int | None = None  # K; None: default_per_process(N)
    lab: bool = False  # each process in a network namespace, its links capped by the kernel
    faults: list[Fault] = field(default_factory=list)  # --fail: parts killed in each phase

    def k_for(self, n: int) -> int:
        if self.lab:
            return 1  # a kernel cap is a namespace's: one downloader to a namespace
        return min(n, self.per_process or default_per_process(n))

    def say(self, text: str) -> None:
        if self.on_event:
            self.on_event(text)


class _Net:
    """Where the children run and what caps them: all on 127.0.0.1, capped by swarm's own
    token buckets (``--max-upload-rate``), or each in a host of a :class:`NetLab`, its links
    capped by the kernel (tc tbf) and swarm's own caps left off."""

    def __init__(self, lab: NetLab | None) -> None:
        self.lab = lab
        self._hosts: dict[str, Host] = {}

    async def host(self, name: str, up: int | None = None, down: int | None = None) -> Host | None:
        """The lab's host *name* (made the first time, with these caps); None without a lab."""
        if self.lab is None:
            return None
        if name not in self._hosts:
            self._hosts[name] = await self.lab.add_host(name, up=_link(up), down=_link(down))
        return self._hosts[name]

    @staticmethod
    def address(host: Host | None) -> str:
        return "127.0.0.1" if host is None else host.address

    def caps(self, up: int | None, down: int | None) -> list[str]:
        """swarm's own cap options, or none when the kernel caps the links."""
        if self.lab is not None:
            return []
        out = [] if up is None else ["--max-upload-rate", str(up)]
        return out + ([] if down is None else ["--max-download-rate", str(down)])


def _link(rate: int | None) -> int | None:
    """A link's cap for TCP data to flow at *rate*: tbf counts whole frames, headers too."""
    return None if rate is None else round(rate / TCP_PAYLOAD_SHARE)


async def run_experiment(exp: Experiment) -> list[Run]:
    """Run the experiment for each N; stops everything it started, whatever happens (with
    ``exp.lab``, inside a network lab that is taken down after the children are stopped)."""
    async with contextlib.AsyncExitStack() as stack:
        lab = await stack.enter_async_context(NetLab()) if exp.lab else None
        if lab is not None:
            exp.say(f"network lab: hosts in {lab.subnet}, links capped by the kernel (tc tbf)")
        return await _run(exp, _Net(lab))


async def _run(exp: Experiment, net: _Net) -> list[Run]:
    work = Path(tempfile.mkdtemp(prefix="swarm-compare-"))
    children: list[Child] = []
    try:
        size = exp.path.stat().st_size
        original = await asyncio.to_thread(sha256_file, exp.path)
        parts = await _start_parts(exp, net, work, children)
        what = f"{exp.path.name}, {counted(size, 'byte')}"
        exp.say(f"tracker, central server and seed are up; file {what}")
        runs = []
        for k, n in enumerate(exp.peer_counts):
            if k > 0 and exp.faults:
                # --fail killed parts in the last N: every part anew, each N the same faults.
                await asyncio.gather(*(p.stop() for p in parts.values()), return_exceptions=True)
                for p in parts.values():
                    children.remove(p)
                parts = await _start_parts(exp, net, work, children)
                exp.say("tracker, central server and seed started anew (--fail)")
            d_cs, d_p2p = bounds(size, n, exp.server_rate, exp.peer_rate, exp.d_min)
            exp.say(
                f"N={n}: {counted(n, 'downloader')} from the central server (bound {d_cs:.1f} s)"
            )
            folder = work / f"run-{k}-n{n}"  # one folder per run: an N may be repeated
            listening = (s for s in parts["central"].statuses if s.event is Event.LISTENING)
            file_url = next(listening).urls[0]
            c = await _phase(exp, net, folder / "central", n, original, [file_url], parts, children)
            exp.say(f"N={n}: {counted(n, 'downloader')} in the swarm (bound {d_p2p:.1f} s)")
            swarm_fetch = [str(work / (exp.path.name + ".torrent")), "--seed"]
            s = await _phase(exp, net, folder / "swarm", n, original, swarm_fetch, parts, children)
            runs.append(Run(n, c, s, d_cs, d_p2p, exp.k_for(n)))
        return runs
    finally:
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)


async def _start_parts(
    exp: Experiment, net: _Net, work: Path, children: list[Child]
) -> dict[str, Child]:
    """Start the tracker, the torrent (announcing to it), the central server and the seed;
    each goes into *children* as soon as it runs (to be stopped whatever happens)."""
    parts: dict[str, Child] = {}
    where = await net.host("tracker")
    address = ["--host", net.address(where), "--port", "0"]
    tracker = await Child.start("tracker", "tracker", *address, "--no-udp", host=where)
    children.append(tracker)
    parts["tracker"] = tracker
    announce_url = (await tracker.wait_for(Event.LISTENING, START_TIMEOUT)).urls[0]
    torrent_file = work / (exp.path.name + ".torrent")
    data = await asyncio.to_thread(create_torrent, exp.path, trackers=[[announce_url]])
    await _write(torrent_file, data)
    where = await net.host("central", up=exp.server_rate)
    central = await Child.start(
        "central server",
        "serve-central",
        str(exp.path),
        "--host",
        net.address(where),
        "--port",
        "0",
        *net.caps(exp.server_rate, None),
        host=where,
    )
    children.append(central)
    parts["central"] = central
    await central.wait_for(Event.LISTENING, START_TIMEOUT)
    where = await net.host("seed", up=exp.server_rate)
    seed = await Child.start(
        "seed",
        "seed",
        str(exp.path),
        "--torrent",
        str(torrent_file),
        "--host",
        net.address(where),
        "--port",
        "0",
        *net.caps(exp.server_rate, None),
        "--no-verify",
        "--no-dht",
        host=where,
    )
    children.append(seed)
    parts["seed"] = seed
    await seed.wait_for(Event.LISTENING, START_TIMEOUT)
    return parts


async def _phase(
    exp: Experiment,
    net: _Net,
    folder: Path,
    n: int,
    original: str,
    args: list[str],
    parts: dict[str, Child],
    children: list[Child],
) -> ModeResult:
    """Start N downloaders (K to a process), let them go at once, time each to its verified
    copy. *args*: the source and options, the same for ``fetch`` and ``fetch-group``."""
    k = exp.k_for(n)
    swarm = not args[0].startswith(("http://", "https://"))  # a torrent, not the server's URL
    # Each downloader's caps: its upload at u (only a peer uploads), its download at d_min.
    extra = net.caps(exp.peer_rate if swarm else None, exp.d_min)
    mine: list[Child] = []
    members: list[tuple[Child, int | None]] = []  # for downloader i: its process, its index
    try:
        for first in range(0, n, k):
            count = min(k, n - first)
            for i in range(first, first + count):
                (folder / str(i)).mkdir(parents=True)
            if k == 1:
                out = str(folder / str(first))
                where = await net.host(f"d{first}", up=exp.peer_rate, down=exp.d_min)
                peer = ["--host", net.address(where), "--no-dht"] if swarm else []
                child = await Child.start(
                    f"downloader {first}",
                    *["fetch", *args, *peer, "--port", "0"],  # the port: a torrent's peer's
                    *["-o", out, "--start-on-stdin", *extra],
                    stdin=True,
                    host=where,
                )
                members.append((child, None))
            else:
                peer = ["--host", "127.0.0.1"] if swarm else []
                child = await Child.start(
                    f"downloaders {first}-{first + count - 1}",
                    *["fetch-group", *args, *peer, "-o", str(folder)],
                    *["--first", str(first), "--count", str(count), *extra],
                    stdin=True,
                )
                members += [(child, i) for i in range(first, first + count)]
            mine.append(child)
            children.append(child)
        for child in mine:
            await child.wait_for(Event.READY, START_TIMEOUT)
        t0 = time.monotonic()
        for child in mine:
            child.go()
        times: list[float] = [0.0] * n

        async def one(i: int, child: Child, index: int | None) -> float:
            await child.wait_for(Event.DONE, exp.timeout, index)
            times[i] = time.monotonic() - t0
            got = await asyncio.to_thread(sha256_file, folder / str(i) / exp.path.name)
            if got != original:
                raise CompareError(f"downloader {i}'s copy does not match the original")
            return times[i]

        jobs = [one(i, c, index) for i, (c, index) in enumerate(members)]
        faults = phase_faults(exp.faults, swarm)
        if faults:
            kills = [(f, parts[f.part].proc) for f in faults]
            outcome = await supervise(jobs, kills, folder, t0, exp.timeout, exp.say)
            exp.say(f"  {outcome.note() if outcome.failed() is None else outcome.failed()}")
            return _result([t for t in outcome.times if t is not None], mine, outcome)
        await asyncio.gather(*jobs)
        if n == 1:
            exp.say(f"  the copy verified in {times[0]:.2f} s")
        else:
            exp.say(f"  all {n} copies verified; slowest {max(times):.2f} s")
        return _result(times, mine)
    finally:
        await asyncio.gather(*(child.stop() for child in mine), return_exceptions=True)
        for child in mine:
            children.remove(child)
        # The copies are checked: free their space before the next phase needs as much.
        await asyncio.to_thread(shutil.rmtree, folder, True)


def _result(
    times: list[float], processes: list[Child], outcome: Outcome | None = None
) -> ModeResult:
    """The times, with what the processes cost up to now (before they are stopped), and
    what the phase's faults came to (if it had any)."""
    usage = [u for c in processes if (u := c.usage()) is not None]
    known = len(usage) == len(processes)
    return ModeResult(
        times,
        processes=len(processes),
        cpu_seconds=sum(cpu for cpu, _ in usage) if known else None,
        peak_rss=sum(rss for _, rss in usage) if known else None,
        outcome=outcome,
    )


async def _write(path: Path, data: bytes) -> None:
    """Write a file of the experiment's own (off the event loop)."""
    try:
        async with aiofiles.open(path, "wb") as f:
            await f.write(data)
    except OSError as exc:
        raise CompareError(f"cannot write {path}: {exc.strerror or exc}") from None


def synthetic_file(folder: Path, size: int) -> Path:
    """A file of *size* deterministic pseudo-random bytes."""
    path = folder / f"synthetic-{size}.bin"
    rng = random.Random(size)
    try:
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
    except OSError as exc:
        raise CompareError(f"cannot write the synthetic file {path}: {exc.strerror}") from None
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def space_needed(file_size: int, peer_counts: list[int], synthetic: bool) -> int:
    """Bytes of temporary space a comparison takes at its peak: one phase's N copies at once
    (each phase's copies are removed once checked), and the synthetic file if there is one."""
    return file_size * (max(peer_counts) + (1 if synthetic else 0))


def default_sample() -> Path | None:
    """The bundled sample file (in a source checkout)."""
    here = Path(__file__).resolve().parents[2] / "sample_files" / "ocean-waves.wav"
    return here if here.is_file() else None


def prepare_path(path: Path | None, size: int | None, folder: Path) -> Path:
    """The file to share: a synthetic one of *size*, *path*, or the bundled sample."""
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
