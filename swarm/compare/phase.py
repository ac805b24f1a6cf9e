"""One phase of ``swarm compare``: N downloaders (K to a process) told to go at once, each
timed to its verified copy; with the phase's faults (``--fail``), its churn (``--churn``: the
schedule of :mod:`~swarm.compare.churn` played on the downloaders), a cutoff (the central
phase of ``--scenario``: stopped at a stated time, its end extrapolated from the bytes that
came) and samples of the bytes delivered over time (the swarm's total upload rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from swarm.compare.children import Child, PhaseTimeout
from swarm.compare.churn import Absence, Applied, Churn, schedule
from swarm.compare.faults import Outcome, phase_faults, supervise, written
from swarm.compare.hosts import Net
from swarm.compare.nginx import wait_for_second
from swarm.compare.results import Cutoff, ModeResult
from swarm.errors import CompareError
from swarm.status import PROGRESS_ENV, PROGRESS_PERIOD, Event

if TYPE_CHECKING:
    from swarm.compare.settings import Experiment
    from swarm.compare.web.model import Phase as LivePhase

START_TIMEOUT = 30.0  # seconds a child may take to be ready
SAMPLE_EVERY = 1.0  # seconds between samples of the bytes delivered


@dataclass(slots=True)
class Phase:
    """Where a phase runs: the experiment, its hosts, its folder, N, the original's SHA-256,
    the tracker, central server and seed (*parts*) and every child the experiment runs."""

    exp: Experiment
    net: Net
    folder: Path
    n: int
    original: str
    parts: dict[str, Child]
    children: list[Child]
    mode: str = ""  # central, swarm, hybrid or churn: what the page calls it
    bound: float = 0.0  # its lower bound (D_cs, D_p2p or hybrid's), for the page
    early_in_second: bool = False  # let go early in a wall-clock second (nginx's limit_rate)


async def run_phase(
    phase: Phase, args: list[str], *, churn: Churn | None = None, cutoff: float | None = None
) -> ModeResult:
    """Start N downloaders, let them go at once, time each to its verified copy. *args*: the
    source and options, the same for ``fetch`` and ``fetch-group``. With ``--churn`` the swarm
    phases (with and without churn alike) run their downloaders in ``fetch-group`` processes,
    which can close one downloader and start it again (K = 1 included); so do they with
    ``--web``, whose progress lines fetch-group sends."""
    exp, net, folder, n = phase.exp, phase.net, phase.folder, phase.n
    k = exp.k_for(n)
    swarm = not args[0].startswith(("http://", "https://"))  # a torrent, not the server's URL
    grouped = k > 1 or (swarm and exp.churn is not None)
    # Each downloader's caps: its upload at u (only a peer uploads), its download at d_min.
    extra = net.caps(exp.peer_rate if swarm else None, exp.d_min)
    transport = [] if exp.utp else ["--no-utp"]  # TCP against the central mode's TCP
    live = await _live_phase(phase, args[0] if swarm else None)
    env = {PROGRESS_ENV: str(PROGRESS_PERIOD) if live is not None else ""}  # "": none
    mine: list[Child] = []
    members: list[tuple[Child, int | None]] = []  # for downloader i: its process, its index
    try:
        for first in range(0, n, k):
            count = min(k, n - first)
            for i in range(first, first + count):
                (folder / str(i)).mkdir(parents=True)
            where = await net.host(f"d{first}", up=exp.peer_rate, down=exp.d_min)
            if not grouped:
                out = str(folder / str(first))
                peer = ["--host", net.address(where), "--no-dht", *transport] if swarm else []
                child = await Child.start(
                    f"downloader {first}",
                    *["fetch", *args, *peer, "--port", "0"],  # the port: a torrent's peer's
                    *["-o", out, "--start-on-stdin", *extra],
                    stdin=True,
                    host=where,
                    env=env,
                )
                members.append((child, None))
            else:
                peer = ["--host", net.address(where), *transport] if swarm else []
                child = await Child.start(
                    f"downloaders {first}-{first + count - 1}",
                    *["fetch-group", *args, *peer, "-o", str(folder)],
                    *["--first", str(first), "--count", str(count), *extra],
                    stdin=True,
                    host=where,
                    env=env,
                )
                members += [(child, i) for i in range(first, first + count)]
            mine.append(child)
            phase.children.append(child)
            if live is not None:
                child.on_progress = partial(live.progress, first=first)
        for child in mine:
            await child.wait_for(Event.READY, START_TIMEOUT)
        if phase.early_in_second:
            await asyncio.sleep(wait_for_second(time.time()))
        t0 = time.monotonic()
        for child in mine:
            child.go()
        if live is not None and exp.live is not None:
            exp.live.go(live)
        times: list[float] = [0.0] * n
        done = [False] * n
        last_session: list[int | None] = [None] * n  # bytes its last session fetched
        from_webseed: list[int | None] = [None] * n  # of those, the web seeds' (hybrid)

        # A cutoff at --timeout (see central_cutoff) comes first: the jobs give up after it.
        limit = exp.timeout + (1.0 if cutoff is not None and cutoff >= exp.timeout else 0.0)

        async def one(i: int, child: Child, index: int | None) -> float:
            status = await child.wait_for(Event.DONE, limit, index)
            done[i] = True
            last_session[i] = status.downloaded
            from_webseed[i] = status.web_seed_downloaded
            times[i] = time.monotonic() - t0
            if live is not None:
                live.done(i, times[i])
            return times[i]  # its copy is checked once the phase is over (_check_copies)

        jobs: list[Awaitable[float]] = [one(i, c, index) for i, (c, index) in enumerate(members)]
        samples: list[tuple[float, int]] = []
        applied = Applied([]) if churn is not None else None
        background = []
        if churn is not None and applied is not None:
            plan = schedule(churn, n, exp.timeout)
            background.append(asyncio.ensure_future(_churn(plan, members, done, t0, applied)))
            if churn.seed_leaves:
                seed = phase.parts["seed"]
                background.append(asyncio.ensure_future(_seed_leaves(seed, done, t0, applied)))
        if swarm and exp.sample:
            background.append(asyncio.ensure_future(_sample(folder, t0, samples)))
        try:
            result = await _finish(phase, jobs, mine, t0, swarm, cutoff, (times, done))
        finally:
            if live is not None and exp.live is not None:
                exp.live.end(live)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        if samples:
            samples.append((time.monotonic() - t0, await asyncio.to_thread(written, folder)))
        result.samples = samples
        result.churn = applied
        if from_webseed and all(b is not None for b in from_webseed):
            result.webseed_bytes = sum(b for b in from_webseed if b is not None)
        if applied is not None:
            size = exp.path.stat().st_size
            for who in {a.who for a in applied.absences}:
                if (got := last_session[who]) is not None:
                    applied.resumed[who] = max(0, size - got)
            exp.say(f"  churn: {applied.note(n)}")
        return result
    finally:
        await asyncio.gather(*(child.stop() for child in mine), return_exceptions=True)
        for child in mine:
            phase.children.remove(child)
        # The copies are checked: free their space before the next phase needs as much.
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _live_phase(phase: Phase, torrent: str | None) -> LivePhase | None:
    """The phase as the page shows it (``--web``), None without a page."""
    exp = phase.exp
    if exp.live is None:
        return None
    size = exp.path.stat().st_size
    pieces = 0
    if torrent is not None:
        from swarm import metainfo

        pieces = (await asyncio.to_thread(metainfo.load, Path(torrent))).num_pieces
    n, d = phase.n, exp.d_min
    total = exp.server_rate + (n * exp.peer_rate if torrent is not None else 0)
    caps: dict[str, float | None] = {
        "server": exp.server_rate,
        "total": min(total, n * d) if d else total,
    }
    return exp.live.phase(phase.mode or "?", n, size, pieces, phase.bound, caps)


async def _finish(
    phase: Phase,
    jobs: list[Awaitable[float]],
    mine: list[Child],
    t0: float,
    swarm: bool,
    cutoff: float | None,
    progress: tuple[list[float], list[bool]],
) -> ModeResult:
    """Wait for the downloaders' jobs: under the phase's faults, up to the cutoff, or all;
    then check the copies of those that finished (*progress*: each one's time, and whether
    it is done)."""
    exp, n = phase.exp, phase.n
    times, done = progress
    faults = phase_faults(exp.faults, swarm)
    if faults:
        kills = [(f, phase.parts[f.part].proc) for f in faults]
        outcome = await supervise(jobs, kills, phase.folder, t0, exp.timeout, exp.say)
        result = _result([t for t in outcome.times if t is not None], mine, outcome)
        await _check_copies(phase, done)
        exp.say(f"  {outcome.note() if outcome.failed() is None else outcome.failed()}")
        return result
    tasks = [asyncio.ensure_future(job) for job in jobs]
    cut = late = None
    try:
        first = asyncio.FIRST_EXCEPTION
        _, pending = await asyncio.wait(tasks, timeout=cutoff, return_when=first)
        if pending and cutoff is not None and not _errors(tasks):
            cut = await _cut(phase, tasks, mine, t0)
        else:
            _errors(tasks)
            while pending:  # each job ends by --timeout at the latest
                _, pending = await asyncio.wait(pending, return_when=first)
                _errors(tasks)
            late = _out_of_time(tasks, exp.timeout)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # the processes' CPU and memory are read before the copies are checked
    if late is not None:
        result = _result([t for t in late.times if t is not None], mine, late)
        await _check_copies(phase, done)
        exp.say(f"  failed: {late.failed()}")
        return result
    result = cut if cut is not None else _result(times, mine)
    await _check_copies(phase, done)
    if cut is None and n == 1:
        exp.say(f"  the copy verified in {times[0]:.2f} s")
    elif cut is None:
        exp.say(f"  all {n} copies verified; slowest {max(times):.2f} s")
    return result


def _errors(tasks: Sequence[asyncio.Future[float]]) -> bool:
    """Whether a job ran out of time (--timeout); a job's other error is raised: it ends
    the comparison."""
    late = False
    for t in tasks:
        if t.done() and (exc := t.exception()) is not None:
            if not isinstance(exc, PhaseTimeout):
                t.result()
            late = True
    return late


def _out_of_time(tasks: Sequence[asyncio.Future[float]], timeout: float) -> Outcome | None:
    """None if every job finished (all are done); else the phase as failed: some ran out of
    time (the comparison goes on to its next phase)."""
    times = [t.result() if t.exception() is None else None for t in tasks]
    if all(t is not None for t in times):
        return None
    return Outcome(len(tasks), times, ended=f"no end within {timeout:g} s, --timeout", faults=False)


async def _check_copies(phase: Phase, done: list[bool]) -> None:
    """Each finished downloader's copy against the original, once the phase is over: hashing
    the copies as they came took CPU from the downloaders still at work (at N = 100 on 2
    cores the last copy came 0.3 s later, the median 0.35 s)."""
    name = phase.exp.path.name
    for i in (i for i, ok in enumerate(done) if ok):
        got = await asyncio.to_thread(sha256_file, phase.folder / str(i) / name)
        if got != phase.original:
            raise CompareError(f"downloader {i}'s copy does not match the original")


async def _cut(
    phase: Phase, tasks: Sequence[asyncio.Future[float]], mine: list[Child], t0: float
) -> ModeResult:
    """The phase stopped at its cutoff: the downloaders are stopped (an HTTP download keeps
    what came, as for a resume), and the bytes in their folders are what came by then."""
    at = time.monotonic() - t0
    finished = [t.result() for t in tasks if t.done()]
    result = _result(finished, mine)  # CPU and memory read before the processes go
    await asyncio.gather(*(child.stop() for child in mine), return_exceptions=True)
    got = await asyncio.to_thread(_sizes, phase.folder)
    size = phase.exp.path.stat().st_size
    result.cutoff = Cutoff(at, got, phase.n * size, len(finished))
    phase.exp.say(f"  stopped at {at:.1f} s (the cutoff): {result.cutoff.note()}")
    return result


def _sizes(folder: Path) -> int:
    """Bytes in the files under *folder* (an HTTP download's ``.part`` file holds exactly the
    bytes that came: it is written from the start, in order)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


async def _churn(
    plan: list[Absence],
    members: list[tuple[Child, int | None]],
    done: list[bool],
    t0: float,
    applied: Applied,
) -> None:
    """Play the schedule: at each absence's time, the leecher leaves (``leave I`` to its
    group) unless it is done by then, and comes back at its end (``back I``)."""
    events = sorted([(a.leave, 0, a) for a in plan] + [(a.back, 1, a) for a in plan])
    gone: set[Absence] = set()
    for at, kind, a in events:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        child, index = members[a.who]
        if kind == 0 and not done[a.who]:
            child.send(f"leave {index}")
            gone.add(a)
            applied.absences.append(a)
        elif kind == 1 and a in gone:
            child.send(f"back {index}")


async def _seed_leaves(seed: Child, done: list[bool], t0: float, applied: Applied) -> None:
    """Once a leecher is done (the swarm then holds every piece), the seed leaves for good:
    SIGTERM, so that it tells the tracker (the experiment starts it anew for the next N)."""
    while not any(done):
        await asyncio.sleep(0.1)
    applied.seed_left = time.monotonic() - t0
    await seed.stop()


async def _sample(folder: Path, t0: float, samples: list[tuple[float, int]]) -> None:
    """Every :data:`SAMPLE_EVERY` seconds, the bytes written in all the downloaders' folders:
    what the seed and the peers have uploaded to them (a piece lands once verified)."""
    while True:
        got = await asyncio.to_thread(written, folder)
        samples.append((time.monotonic() - t0, got))
        await asyncio.sleep(SAMPLE_EVERY)


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
