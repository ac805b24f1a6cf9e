"""``swarm compare`` at growing N on this machine, with libtorrent's swarm as the reference.

    python bench/scale/run.py                       # N = 8,16,32,64,100; lt at 8,16
    python bench/scale/run.py --peers 8,16,32,64,100,200 --json out.json
    python bench/scale/run.py --peers 100 --no-lt --size 1M

For each N, one ``swarm compare --peers N --json --no-plot`` (the default 4 MiB sample, u_s = u
= 1 MiB/s, --peers-per-process by its default rule unless --per-process) as a process of its
own, its whole process tree's RSS sampled every 0.2 s from /proc: swarm time / D_p2p, central
time / D_cs, the peak RSS of the tree, the processes each phase ran and the downloaders' CPU
seconds per downloader (from compare's JSON: each phase's processes, read just before they stop).

The reference, in the same run (N = 8 and 16 by default): the same swarm with libtorrent
downloaders, one libtorrent session (one process, lt_peer.py) per downloader, each capped at u
up like swarm's, no download cap, the same swarm seed (u_s) and swarm tracker, the same torrent
(made as compare makes it), timed the same way (from one 'go' to each 'done', every copy checked
by SHA-256): libtorrent time / D_p2p. Targets (issue 16): swarm <= 1.3x D_p2p up to N = 100,
<= 1.5x at 200, and ahead of libtorrent's ratio at N = 8 and 16.

There libtorrent is capped by its own limiter, which is not swarm's: it hands out upload quota
once a tick and every write waits for it, its requests to the seed too, which queue behind the
piece data it uploads, so the seed idles; swarm's token bucket counts piece payload only.
``--lab netns`` (root; N = 8,16 unless --peers) caps everyone alike, by the kernel:

    python bench/scale/run.py --lab netns --peers 8,16 --lt 8,16 --central-cutoff 2

the swarm side is ``swarm compare --peers N --lab netns`` (every process in a network namespace
of its own on one bridge, its links shaped by tc tbf, swarm's own caps off); the reference runs
in a NetLab of its own: the swarm tracker and the swarm seed each in a host (the seed's capped
at u_s up), and each libtorrent downloader in a host capped at u up, with no libtorrent rate
limit at all, listening on its host's address. The caps are compare's (swarm.compare.hosts.link:
tbf counts whole frames, so a link gets u / TCP_PAYLOAD_SHARE for TCP data to flow at u).
Its libtorrent line also gives the copies of the file the seed sent (the kernel's count of the
seed's frames): the seed sends all the time there, so libtorrent's time / D_p2p follows it.

Each row also gives the machine's pace just before and just after its compare (``pace``: the
seconds one core takes for a fixed piece of Python and SHA-1 work, :func:`machine_pace`). Past
N = 64 the swarm is CPU-bound, and this 2-core VM's speed is not constant: back to back the
same work took 0.39-0.78 s, and compare at N = 200 spent 11.7-16.9 CPU s on the same work
(bytes, messages, connections counted alike), its last copy 5.9-8.4 s. Read a row's ratio
with its pace; compare rows (or trees) only at like paces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from swarm.compare.experiment import sha256_file

ROOT = Path(__file__).resolve().parents[2]
LT_PEER = Path(__file__).resolve().with_name("lt_peer.py")
SYSTEM_PYTHON = "/usr/bin/python3"
RATE = 1 << 20
LOOPBACK_NOTE = (
    "loopback: libtorrent is capped by its own upload_rate_limit, which hands out quota once a "
    "tick and makes every write wait for it, its requests to the seed too, so they queue "
    "behind the data it uploads and the seed idles (swarm's limiter counts piece payload "
    "only): a penalty swarm does not pay; --lab netns caps both alike, by the kernel"
)
LAB_NOTE = (
    "lab netns: every process in a namespace of its own, links capped by the kernel (tc tbf) "
    "at u_s = u = 1 MiB/s of TCP data up; no rate limit of swarm's or libtorrent's own"
)


def tree_rss(root: int) -> tuple[int, int]:
    """(bytes of RSS, processes) of *root* and every descendant now."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(entry))
    total, count, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        count += 1
        except OSError:
            pass
    return total, count


def machine_pace() -> float:
    """Seconds for a fixed single-core workload like the swarm's (Python-level bookkeeping
    and SHA-1 over 40 MiB): a gauge of the machine's speed at this moment."""
    import hashlib

    block = bytes(1 << 20)
    started = time.perf_counter()
    table: dict[int, int] = {}
    for i in range(1_000_000):
        table[i & 1023] = table.get(i & 1023, 0) + i
    for _ in range(40):
        hashlib.sha1(block).digest()
    return time.perf_counter() - started


def run_compare(
    n: int,
    size: str | None,
    per_process: int | None,
    cutoff: float | None = None,
    lab: bool = False,
) -> dict:
    cmd = [sys.executable, "-m", "swarm", "compare", "--peers", str(n), "--json", "--no-plot"]
    cmd += ["--modes", "central,swarm"]  # the table's two; hybrid has a bench of its own
    if lab:
        cmd += ["--lab", "netns"]
    if size:
        cmd += ["--size", size]
    if cutoff:
        cmd += ["--central-cutoff", str(cutoff)]
    if per_process:
        cmd += ["--peers-per-process", str(per_process)]
    pace_before = machine_pace()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            rss, count = tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], count)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"compare --peers {n} failed ({proc.returncode}): {err[-2000:]}")
    result = json.loads(out)
    (run,) = result["runs"]
    run["core"] = result.get("core", "?")  # compiled (swarm build-native) or pure Python
    run["tree_peak_rss"], run["tree_processes"] = peak
    run["pace"] = (pace_before, machine_pace())
    return run


# -- the libtorrent reference --------------------------------------------------------------


async def lt_swarm(
    n: int, path: Path, lab: bool = False, down: int | None = None
) -> tuple[float, float | None]:
    """Seconds until the last of N libtorrent downloaders has the file, from one 'go', and
    (in the lab) how many copies of the file the seed sent meanwhile: on 127.0.0.1 under
    libtorrent's own cap, or (*lab*) each part in a host of a NetLab of its own, the links
    capped by the kernel (*down*: each downloader's download cap, bytes/s of TCP data; None:
    none). The lab is closed whatever happens, after every process ended."""
    sys.path.insert(0, str(ROOT))
    from swarm.compare.hosts import Net
    from swarm.compare.netlab import NetLab

    if not lab:
        return await _lt_swarm(n, path, Net(None), None)
    async with NetLab() as netlab:
        return await _lt_swarm(n, path, Net(netlab), down)


async def _lt_swarm(n: int, path: Path, net, down: int | None) -> tuple[float, float | None]:
    from swarm.compare.children import Child
    from swarm.compare.experiment import piece_length
    from swarm.compare.netlab import TCP_PAYLOAD_SHARE
    from swarm.compare.settings import Experiment
    from swarm.create import create_torrent
    from swarm.status import Event

    work = Path(tempfile.mkdtemp(prefix="swarm-bench-scale-"))
    children: list[Child] = []
    peers: list[asyncio.subprocess.Process] = []
    try:
        where = await net.host("tracker")
        tracker = await Child.start(
            "tracker", "tracker", "--host", net.address(where), "--port", "0", "--no-udp",
            host=where,
        )  # fmt: skip
        children.append(tracker)
        url = (await tracker.wait_for(Event.LISTENING, 30)).urls[0]
        torrent = work / (path.name + ".torrent")
        # The torrent compare makes for this N: the same piece length.
        k = Experiment(path, [n], RATE, RATE, lab=net.lab is not None).k_for(n)
        length = piece_length(path.stat().st_size, k, n * RATE)
        torrent.write_bytes(create_torrent(path, trackers=[[url]], piece_length=length))
        # In the lab the kernel caps the seed's link (net.caps gives no option then).
        where = await net.host("seed", up=RATE)
        seed = await Child.start(
            "seed", "seed", str(path), "--torrent", str(torrent), "--host", net.address(where),
            "--port", "0", *net.caps(RATE, None), "--no-verify", "--no-dht", "--no-utp", host=where,
        )  # fmt: skip
        children.append(seed)
        await seed.wait_for(Event.LISTENING, 30)
        # libtorrent's own caps on loopback; none in the lab, where the kernel caps the links.
        up_cap, down_cap = ("0", "0") if net.lab is not None else (str(RATE), "0")
        for i in range(n):
            out = work / str(i)
            out.mkdir()
            where = await net.host(f"d{i}", up=RATE, down=down)
            argv = [SYSTEM_PYTHON, str(LT_PEER), str(torrent), str(out), up_cap, down_cap]
            argv.append(net.address(where))
            if where is not None:
                argv = where.argv(*argv)  # ip netns exec execs it: the PID is lt_peer's
            peers.append(
                await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        for p in peers:
            assert p.stdout is not None
            async with asyncio.timeout(60):
                line = await p.stdout.readline()
            if line.strip() != b"ready":
                raise SystemExit(f"a libtorrent peer did not start: {line!r}")
        t0 = time.monotonic()
        for p in peers:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
        times = [0.0] * n

        async def one(i: int, p: asyncio.subprocess.Process) -> None:
            assert p.stdout is not None
            async with asyncio.timeout(600):
                line = await p.stdout.readline()
            times[i] = time.monotonic() - t0
            if not line.startswith(b"done"):
                raise SystemExit(f"libtorrent peer {i} failed: {line!r}")

        await asyncio.gather(*(one(i, p) for i, p in enumerate(peers)))
        copies = None
        if net.lab is not None:
            # the kernel's count of the frames the seed's host sent (headers and the odd
            # message besides piece data included: a little over the piece data it sent)
            sent = (await net.lab.link_bytes())["seed"][0] * TCP_PAYLOAD_SHARE
            copies = sent / path.stat().st_size
        original = sha256_file(path)
        for i in range(n):
            if sha256_file(work / str(i) / path.name) != original:
                raise SystemExit(f"libtorrent peer {i}'s copy does not match")
        return max(times), copies
    finally:
        for p in peers:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await p.wait()
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)


def central_ratio(r: dict) -> str:
    """The central phase's time over D_cs; '~' marks a time extrapolated from a cut-off
    phase (--central-cutoff), never measured."""
    c = r["central"]
    if c.get("total") is not None:
        return f"{c['total'] / r['bounds']['central']:.2f}x"
    cut = c.get("cutoff") or {}
    end = cut.get("extrapolated_total")
    return "-" if end is None else f"~{end / r['bounds']['central']:.2f}x"


def per(mode: dict, n: int) -> str:
    """CPU seconds per downloader, or '-' where compare could not read them (a ``swarm fetch``
    of a central server's file exits when done, before compare reads its /proc)."""
    cpu = mode.get("cpu_seconds")
    return "-" if cpu is None else f"{cpu / n:.3f}"


def pace(r: dict) -> str:
    before, after = r["pace"]
    return f"{before:.2f}/{after:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--peers", default=None, help="the N to run (default 8,16,32,64,100; 8,16 with --lab)"
    )
    ap.add_argument("--lt", default="8,16", help="N for the libtorrent reference (%(default)s)")
    ap.add_argument("--no-lt", action="store_true", help="skip the libtorrent reference")
    ap.add_argument("--size", default=None, help="a synthetic file of this size, not the sample")
    ap.add_argument("--per-process", type=int, default=None, help="K (default: compare's rule)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--central-cutoff",
        type=float,
        default=None,
        help="stop each central phase after this many seconds (compare extrapolates its end)",
    )
    ap.add_argument(
        "--lab",
        choices=["none", "netns"],
        default="none",
        help="netns: everyone capped by the kernel, each process in a network namespace of its "
        "own (compare --lab netns; libtorrent without a limit of its own; needs root)",
    )
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    # Python programs run from a bytecode cache, as an installed program does (pip compiles it
    # at install): where PYTHONDONTWRITEBYTECODE is set (this machine), every one of compare's
    # children would compile swarm's sources again, 0.3-0.9 CPU s each, counted in the CPU
    # per downloader. The cache is warmed before the first run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "swarm-bench-pyc")
    warm = (
        "import importlib, pkgutil, swarm, tracker\n"
        "for pkg in (swarm, tracker):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
    )
    subprocess.run([sys.executable, "-c", warm], cwd=ROOT, capture_output=True)
    from swarm.compare.experiment import default_sample
    from swarm.compare.results import bounds

    lab = args.lab == "netns"
    if lab:
        from swarm.compare.netlab import lab_problem

        if problem := lab_problem():
            raise SystemExit(problem)
        if args.per_process:
            raise SystemExit("--lab netns runs one downloader to a process: no --per-process")
    counts = [int(x) for x in (args.peers or ("8,16" if lab else "8,16,32,64,100")).split(",")]
    lt_counts = [] if args.no_lt else [int(x) for x in args.lt.split(",")]
    rows = []
    for n in counts:
        r = run_compare(n, args.size, args.per_process, args.central_cutoff, lab)
        rows.append(r)
        s, c = r["swarm"], r["central"]
        print(
            f"N={n}: swarm {s['total']:.2f} s / D_p2p {r['bounds']['swarm']:.2f} s = "
            f"{s['total'] / r['bounds']['swarm']:.2f}x; "
            f"central {central_ratio(r)}"
            f"; peak tree RSS {r['tree_peak_rss'] / 2**20:.0f} MiB; CPU s per downloader: "
            f"swarm {per(s, n)}, central {per(c, n)}; processes {s['processes']}; "
            f"pace {pace(r)} s",
            file=sys.stderr,
            flush=True,
        )
    refs = {}
    seed_copies: dict[int, float | None] = {}
    if lt_counts:
        if args.size:
            src = Path(tempfile.mkdtemp(prefix="swarm-bench-scale-src-")) / "synthetic.bin"
            from swarm.units import parse_size

            src.write_bytes(os.urandom(parse_size(args.size)))
        else:
            sample = default_sample()
            assert sample is not None
            src = sample
        size = src.stat().st_size
        for n in lt_counts:
            total, copies = asyncio.run(lt_swarm(n, src, lab))
            seed_copies[n] = copies
            sent = "" if copies is None else f"; the seed sent {copies:.2f} copies of the file"
            refs[n] = (total, bounds(size, n, RATE, RATE)[1])
            where = "lab netns" if lab else "loopback"
            print(
                f"N={n}: libtorrent ({where}) {total:.2f} s = {total / refs[n][1]:.2f}x{sent}",
                file=sys.stderr,
            )
        if args.size:
            shutil.rmtree(src.parent, ignore_errors=True)
    head = (
        f"{'N':>4} {'K':>3} {'procs':>5} {'swarm/D_p2p':>11} {'lt/D_p2p':>9} {'swarm/lt':>8} "
        f"{'central/D_cs':>12} {'peak RSS':>9} {'CPU s/dl swarm':>14} {'central':>7} {'pace s':>9}"
    )
    print(f"mode: {LAB_NOTE if lab else LOOPBACK_NOTE}")
    print(f"swarm core: {rows[0]['core'] if rows else '?'}")
    print(head)
    for r in rows:
        n, s, c = r["peers"], r["swarm"], r["central"]
        ratio = s["total"] / r["bounds"]["swarm"]
        lt = f"{refs[n][0] / refs[n][1]:.2f}x" if n in refs else "-"
        vs = f"{s['total'] / refs[n][0]:.2f}" if n in refs else "-"
        print(
            f"{n:>4} {r['peers_per_process']:>3} {s['processes']:>5} {ratio:>10.2f}x {lt:>9} "
            f"{vs:>8} {central_ratio(r):>12} "
            f"{r['tree_peak_rss'] / 2**20:>5.0f} MiB {per(s, n):>14} {per(c, n):>7} {pace(r):>9}"
        )
    print("targets: swarm/D_p2p <= 1.3 up to N = 100, <= 1.5 at 200; swarm/lt < 1 at 8 and 16")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"lab": args.lab, "runs": rows, "libtorrent": refs, "lt_seed_copies": seed_copies},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
