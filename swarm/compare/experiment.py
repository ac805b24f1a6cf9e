"""The experiment: the same file to N downloaders from one central server and from a swarm.

Every part runs as its own process through the same ``swarm`` commands a user would run: a
tracker, a central server and a seed, both capped at the same upload rate u_s, then N central
downloaders at once, then N swarm downloaders at once (each capped at upload rate u). Each
downloader is timed from the moment all are told to go until its copy is complete, and
every copy is checked (SHA-256 against the original) before its time counts.

With K peers per process (:func:`~swarm.compare.settings.default_per_process`), downloaders
run K to a ``swarm fetch-group`` process instead of one to a ``swarm fetch``: each is still a
peer of its own (own session, port, peer id, caps and folder), timed by its own ``done`` line.
Both phases group alike, so the two modes stay comparable.

The torrent's pieces are ``swarm create``'s choice (16 KiB for the 4 MiB sample) while every
downloader has a process of its own; once they share processes (:func:`piece_length`), the
smallest power of two from that at which the peers' whole upload (N x u) is at most
:data:`PIECES_PER_SECOND` pieces a second, up to :data:`LONGEST_SHARED_PIECE`. Every piece
costs each downloader a hash, a write, a ``have`` to each of its peers and one from each,
whatever its size, and there the cores are the limit; but a piece is passed on only once
whole, so each hop of a new piece through the swarm takes its length at u, and shorter pieces
spread faster. The 4 MiB sample at 1 MiB/s gets 16 KiB pieces at N = 32, 32 KiB at 64, 64 KiB
at 100 and 200 (pairs of runs against 64 KiB, the rule before, 4 at each N: N = 32 16 KiB median
copy 4.77 against 5.15 s, last 5.25 against 5.60 s, CPU 7.7 s against 5.3; N = 64 32 KiB
median 4.98 against 5.37 s, last 5.50 against 5.84 s, CPU +13%; N = 100 32 KiB, 3200 a second,
no faster for 13% more CPU, though at a quarter of the rates, where the cores are idle, it took
1.29-1.32x of the bound against 1.38-1.40x with 64 KiB (2 runs each); N = 200 128 KiB, 1600 a
second, 8.37 against 7.21 s, 4 of 4, CPU the same: a longer piece saves the cores less than
its hops cost). At N = 8, where CPU is plenty, 16 KiB 4.64-4.72 s, 32 KiB 5.00-5.12 s (each last
piece takes twice as long to pass on). The texts' scenario (N x u = 10 MB/s, 610 pieces of 16
KiB a second) keeps create's length: with 64 KiB pieces it took 132 s for a 100 s bound, each
piece 3 s a hop at a peer's 20 kB/s a slot, with 16 KiB 126 s.

The hybrid mode (``--modes``, on by default) is the central server, capped at u_s as in the
central mode, as the only web seed (BEP 19) of N peers with no seed: a CDN origin that seeds a
swarm. Its torrent is the same file's with a ``url-list`` and announces to a tracker of its own,
so that the swarm phase's seed (same info-hash) is never found; its bound is the swarm's, the
server's u_s being the only upload outside the peers (:func:`~swarm.compare.results.hybrid_bound`).
With ``--central nginx`` the central mode is served by nginx (:mod:`~swarm.compare.nginx`).

With ``--churn`` the swarm phase runs a second time with leechers leaving and coming back
(:mod:`~swarm.compare.churn`); with ``--scenario`` the central phase may stop at a cutoff and
the swarm's delivered bytes are sampled (:mod:`~swarm.compare.scenario`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import aiofiles

from swarm.compare.children import Child
from swarm.compare.faults import SWARM_PARTS
from swarm.compare.hosts import Net
from swarm.compare.netlab import NetLab
from swarm.compare.nginx import Nginx, request_rate
from swarm.compare.phase import Phase, run_phase, sha256_file
from swarm.compare.results import ModeResult, Run, bounds, hybrid_bound
from swarm.compare.settings import Experiment, lab_busy
from swarm.create import auto_piece_length, create_torrent
from swarm.errors import CompareError, UsageError
from swarm.status import Event
from swarm.units import counted

PIECES_PER_SECOND = 2048  # at most, in the peers' whole upload, once they share processes
LONGEST_SHARED_PIECE = 64 * 1024  # but no longer than this for it (unless create's is longer)
START_TIMEOUT = 30.0  # seconds a child may take to listen, or to be ready


async def run_experiment(exp: Experiment) -> list[Run]:
    """Run the experiment for each N; stops everything it started, whatever happens (with
    ``exp.lab``, inside a network lab that is taken down after the children are stopped)."""
    async with contextlib.AsyncExitStack() as stack:
        lab = await stack.enter_async_context(NetLab()) if exp.lab else None
        if lab is not None:
            exp.say(f"network lab: hosts in {lab.subnet}, links capped by the kernel (tc tbf)")
            if (busy := lab_busy(max(exp.peer_counts))) is not None:
                exp.say(busy)
        return await _run(exp, Net(lab))


async def _run(exp: Experiment, net: Net) -> list[Run]:
    size = exp.path.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="swarm-compare-", dir=work_root(size, exp.peer_counts)))
    children: list[Child] = []
    nginx: Nginx | None = None
    try:
        original = await asyncio.to_thread(sha256_file, exp.path)
        parts = await _start_parts(exp, net, work, children)
        what = f"{exp.path.name}, {counted(size, 'byte')}"
        exp.say(f"tracker, central server and seed are up; file {what}")
        hybrid_skipped = exp.hybrid_skipped() if "hybrid" in exp.modes else None
        hybrid = "hybrid" in exp.modes and hybrid_skipped is None
        if hybrid_skipped:
            exp.say(f"hybrid mode skipped: {hybrid_skipped}")
        if exp.server == "nginx":
            where = await net.host("central", up=exp.server_rate)
            rates = {n: request_rate(size, n, exp.server_rate) for n in exp.peer_counts}
            rates = {} if net.lab else rates
            address = net.address(where)
            nginx = await Nginx.start(exp.path, work / "nginx", rates, address, where)
            exp.say(f"nginx serves the central mode at {nginx.url()}")
        # nginx is the web seed only where the kernel caps its link for all connections at
        # once (see swarm.compare.nginx); else swarm's own server, capped at u_s in all.
        webseed_server = "nginx" if nginx is not None and net.lab else "swarm"

        async def start_hybrid() -> None:
            url = nginx.url() if nginx is not None and net.lab else _webseed(parts)
            await _start_hybrid(exp, net, work, children, parts, url)

        if hybrid:
            await start_hybrid()
        runs = []

        async def renew() -> None:
            # --fail killed parts in the last phase (or the seed left, --churn-seed-leaves): every
            # part anew, so that each phase meets the same faults.
            await asyncio.gather(*(p.stop() for p in parts.values()), return_exceptions=True)
            for p in parts.values():
                children.remove(p)
            parts.clear()
            parts.update(await _start_parts(exp, net, work, children))
            if hybrid:
                await start_hybrid()  # the central server, its web seed, has a new port
            exp.say("tracker, central server and seed started anew")

        for k, n in enumerate(exp.peer_counts):
            if k > 0 and (exp.faults or (exp.churn and exp.churn.seed_leaves)):
                await renew()
            d_cs, d_p2p = bounds(size, n, exp.server_rate, exp.peer_rate, exp.d_min)
            folder = work / f"run-{k}-n{n}"  # one folder per run: an N may be repeated
            listening = (s for s in parts["central"].statuses if s.event is Event.LISTENING)
            file_url = next(listening).urls[0]
            if nginx is not None:
                file_url = nginx.url(None if net.lab else n)
            c = s = ModeResult(ran=False)
            if "central" in exp.modes:
                who = f"{counted(n, 'downloader')} from the central server"
                exp.say(f"N={n}: {who} ({exp.server}, bound {d_cs:.1f} s)")
                phase = Phase(
                    exp, net, folder / "central", n, original, parts, children, "central", d_cs
                )
                phase.early_in_second = nginx is not None and not net.lab  # limit_rate's clock
                c = await run_phase(phase, [file_url], cutoff=central_cutoff(exp, d_cs))
            swarm_fetch = [str(work / (exp.path.name + ".torrent")), "--seed"]
            if "swarm" in exp.modes:
                exp.say(f"N={n}: {counted(n, 'downloader')} in the swarm (bound {d_p2p:.1f} s)")
                phase = Phase(
                    exp, net, folder / "swarm", n, original, parts, children, "swarm", d_p2p
                )
                s = await run_phase(phase, swarm_fetch)
            h = d_h = None
            if hybrid:
                d_h = hybrid_bound(size, n, exp.server_rate, exp.peer_rate, exp.d_min)
                exp.say(f"N={n}: hybrid, the central server as web seed (bound {d_h:.1f} s)")
                phase = Phase(
                    exp, net, folder / "hybrid", n, original, parts, children, "hybrid", d_h
                )
                h = await run_phase(phase, [str(work / HYBRID_TORRENT), "--seed"])
            churned = None
            if exp.churn is not None:
                if any(f.part in SWARM_PARTS for f in exp.faults):
                    await renew()
                exp.say(f"N={n}: the swarm again, with churn ({exp.churn.rate:g}/min per leecher)")
                phase = Phase(
                    exp, net, folder / "churn", n, original, parts, children, "churn", d_p2p
                )
                churned = await run_phase(phase, swarm_fetch, churn=exp.churn)
            run = Run(n, c, s, d_cs, d_p2p, exp.k_for(n), churned=churned)
            run.hybrid, run.bound_hybrid, run.hybrid_skipped = h, d_h, hybrid_skipped
            run.central_server = "nginx" if nginx is not None else "swarm"
            run.webseed_server = webseed_server if hybrid else None
            runs.append(run)
        return runs
    finally:
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
        if nginx is not None:
            await nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


def central_cutoff(exp: Experiment, bound: float) -> float | None:
    """When to stop the central phase and extrapolate its end: ``--central-cutoff``, and at
    ``--timeout`` when its bound lies past it (``--peers 200``: 800 s against 600 s), so that
    it ends with its measured rate and extrapolated end rather than as a failure."""
    cutoff = exp.central_cutoff
    if bound >= exp.timeout and (cutoff is None or cutoff > exp.timeout):
        exp.say(f"  bound past --timeout: it stops at {exp.timeout:g} s, its end extrapolated")
        return exp.timeout
    return cutoff


async def _start_parts(
    exp: Experiment, net: Net, work: Path, children: list[Child]
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
    length = _piece_length(exp)
    data = await asyncio.to_thread(
        create_torrent, exp.path, trackers=[[announce_url]], piece_length=length
    )
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
        *([] if exp.utp else ["--no-utp"]),
        host=where,
    )
    children.append(seed)
    parts["seed"] = seed
    await seed.wait_for(Event.LISTENING, START_TIMEOUT)
    return parts


HYBRID_TORRENT = "hybrid.torrent"


def _webseed(parts: dict[str, Child]) -> str:
    """swarm's central server's web seed URL, from its listening line (its file's URL when
    it is too old to say: a single-file torrent takes the file's own URL as well)."""
    line = next(s for s in parts["central"].statuses if s.event is Event.LISTENING)
    return line.webseed or line.urls[0]


async def _start_hybrid(
    exp: Experiment,
    net: Net,
    work: Path,
    children: list[Child],
    parts: dict[str, Child],
    webseed: str,
) -> None:
    """The hybrid mode's tracker (its own, so that the swarm's seed is never among its peers)
    and its torrent: the same file and pieces, the central server as its web seed."""
    where = await net.host("hybrid-tracker")
    address = ["--host", net.address(where), "--port", "0"]
    tracker = await Child.start("hybrid tracker", "tracker", *address, "--no-udp", host=where)
    children.append(tracker)
    parts["hybrid-tracker"] = tracker
    announce_url = (await tracker.wait_for(Event.LISTENING, START_TIMEOUT)).urls[0]
    length = _piece_length(exp)
    data = await asyncio.to_thread(
        create_torrent, exp.path, trackers=[[announce_url]], piece_length=length, webseeds=[webseed]
    )
    await _write(work / HYBRID_TORRENT, data)


async def _write(path: Path, data: bytes) -> None:
    """Write a file of the experiment's own (off the event loop)."""
    try:
        async with aiofiles.open(path, "wb") as f:
            await f.write(data)
    except OSError as exc:
        raise CompareError(f"cannot write {path}: {exc.strerror or exc}") from None


def piece_length(size: int, k: int, swarm_rate: int) -> int:
    """The torrent's piece length for a file of *size* bytes with up to *k* downloaders to a
    process whose peers upload *swarm_rate* bytes/s in all at most (N x u; see the module's
    docstring)."""
    length = auto_piece_length(size)
    if k <= 1:
        return length
    while swarm_rate > PIECES_PER_SECOND * length and length < LONGEST_SHARED_PIECE:
        length *= 2
    return length


def _piece_length(exp: Experiment) -> int:
    k = max(exp.k_for(n) for n in exp.peer_counts)
    return piece_length(exp.path.stat().st_size, k, max(exp.peer_counts) * exp.peer_rate)


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


SHM = Path("/dev/shm")


def work_root(file_size: int, peer_counts: list[int]) -> str | None:
    """Where a run's folder goes: tmpfs (/dev/shm) when the copies of a phase take at most half
    of its free space, so that a downloader's last fsync times no disk the other processes of
    the machine are writing to (in the netns lab at N = 2 one such fsync once took 2 s of a 4 s
    run); else the temporary folder (None)."""
    need = space_needed(file_size, peer_counts, synthetic=False) + file_size  # + the seed's
    try:
        usable = SHM.is_dir() and shutil.disk_usage(SHM).free >= 2 * need
    except OSError:
        return None
    return str(SHM) if usable and os.access(SHM, os.W_OK) else None


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
