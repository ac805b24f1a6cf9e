"""One downloader from a web seed alone (BEP 19): `swarm fetch` against curl and libtorrent,
all three from the same `swarm serve-central`, in one run.

    python bench/webseed/run.py                    # 1 GiB, 3 runs of each
    python bench/webseed/run.py --size 64M         # a quick look
    python bench/webseed/run.py --runs 5 --json out.json
    python bench/webseed/run.py --clients swarm --swarm-ref /tmp/old   # before/after, alternated

`swarm serve-central` (unthrottled, 127.0.0.1) serves a folder holding the file (--size bytes
of pseudo-random data) and a 4 MiB warm-up file; the torrent (`swarm create --webseed URL`, no
tracker) names the server's `web seed URL` in its url-list. Its data sits in the page cache
before the clock starts (written just now, then read once). Each downloader writes into a
fresh folder beside the data, on the same file system, and its file is on the disk when it is
done:

  curl        Debian's curl: one range-less GET of the file's URL to a file (`curl -sS --fail
              -o`), then the bench fsyncs the file (curl does not) and counts that in its time
  libtorrent  Debian's python3-libtorrent (lt_webseed.py): the torrent added to a session with
              libtorrent's default settings, only loopback needs set (listen on 127.0.0.1, no
              DHT, LSD, UPnP, NAT-PMP or uTP); its cache flushed and the file fsync'ed at the end
  swarm       `swarm fetch T -o OUT --no-seed --no-dht --host 127.0.0.1 --port 0`, defaults
              otherwise, from a bytecode cache of its own (as an installed program); it fsyncs
              its file when the last piece is verified

Each is timed from its process's start to its exit (start-up included for all three), and its
CPU taken from the kernel (wait4); the server's CPU is counted over the same time. The runs are
interleaved (every run goes through the three, in reverse order every other run), each one
after an untimed warm-up on the small file; figures are medians over --runs with the range, and
rates are MiB/s of the file. Targets (issue 18): swarm >= 0.8x curl's rate and >= 1.0x
libtorrent's. Until `swarm fetch` can use a web seed (its --help names --no-webseed), the swarm
column says it is unavailable. The machine is shared: the CPU pressure (Linux PSI) over the
run is printed, and only quiet runs count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LT_WEBSEED = HERE / "lt_webseed.py"
SYSTEM_PYTHON = "/usr/bin/python3"
MIB = 1 << 20
NAME = "data.bin"
WARM = "warm.bin"
CLIENTS = ("curl", "libtorrent", "swarm")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_file(path: Path, size: int, seed: int) -> None:
    """*size* bytes of pseudo-random data whose 1 MiB blocks all differ."""
    base = random.Random(seed).randbytes(MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            k = (i * 7919) % MIB
            f.write(base[k:] + base[:k])
        f.write(base[: size % MIB])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a running process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pressure() -> float | None:
    """Seconds any task has waited for a CPU since boot (Linux PSI), or None without PSI."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split()
    except OSError:
        return None
    return int(some[4].split("=")[1]) / 1e6


def swarm_has_webseeds(env: dict[str, str]) -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "fetch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    return "--no-webseed" in r.stdout


class Server:
    """`swarm serve-central FOLDER` on a free port; its web seed URL."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        args = [sys.executable, "-m", "swarm", "serve-central", str(folder)]
        args += ["--host", "127.0.0.1", "--port", "0"]
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
        )
        self.url: str | None = None
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("web seed URL:"):
                self.url = line.split()[-1]
                self._found.set()

    def wait_url(self, timeout: float) -> str:
        if not self._found.wait(timeout) or self.url is None:
            raise SystemExit("error: serve-central did not print its web seed URL")
        return self.url

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def command(
    client: str, torrent: Path, url: str, out: Path, timeout: float, lt_set: list[str]
) -> list[str]:
    if client == "curl":
        return ["curl", "-sS", "--fail", "-o", str(out), url]
    if client == "libtorrent":
        argv = [SYSTEM_PYTHON, str(LT_WEBSEED), str(torrent), str(out.parent)]
        return argv + ["--timeout", str(timeout)] + [f"--set={kv}" for kv in lt_set]
    return [  # swarm, or swarm-ref (another checkout's, on PYTHONPATH)
        sys.executable, "-m", "swarm", "-q", "fetch", str(torrent), "-o", str(out.parent),
        "--no-seed", "--no-dht", "--host", "127.0.0.1", "--port", "0",
    ]  # fmt: skip


def timed(
    args: list[str], out: Path, env: dict[str, str], timeout: float, log: Path, cwd: Path = ROOT
) -> dict:
    """Run *args* to its exit (then fsync *out*, which curl leaves to the page cache); its wall
    time and CPU (SystemExit on a failure)."""
    with log.open("wb") as sink:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        exited = time.monotonic()
        if proc.returncode == 0 and out.exists():
            fsync_file(out)
        seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: exit code {proc.returncode} from {args[0]}; see {log}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu": cpu, "fsync_after": seconds - (exited - start)}


def measure(
    client: str,
    torrents: dict[str, Path],
    url: str,
    name: str,
    work: Path,
    env: dict[str, str],
    timeout: float,
    lt_set: list[str],
) -> dict:
    out_dir = work / f"out-{client}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    out = out_dir / name
    args = command(client, torrents[name], url + name, out, timeout, lt_set)
    log = work / f"{client}.log"
    cwd = ROOT
    if client == "swarm-ref":  # run from there: python -m puts the folder it runs in first
        cwd = Path(env["SWARM_REF"])
        env = {**env, "PYTHONPATH": str(cwd), "PYTHONPYCACHEPREFIX": str(work / "pyc-ref")}
    result = timed(args, out, env, timeout, log, cwd)
    if client == "libtorrent":  # its own clock: adding the torrent to the file on the disk
        result["inner"] = json.loads(log.read_text().splitlines()[-1])["seconds"]
    result["file"] = out
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1G", help="file size (default 1G)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each; medians (default 3)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per download")
    ap.add_argument("--dir", type=Path, help="where the temporary folder goes ($TMPDIR)")
    ap.add_argument("--json", type=Path, help="write every measurement to this file")
    ap.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help="which to run, of curl,libtorrent,swarm (default all; ratios need all three)",
    )
    ap.add_argument(
        "--lt-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a libtorrent setting (an experiment: the reference is its defaults)",
    )
    ap.add_argument(
        "--swarm-ref",
        type=Path,
        metavar="DIR",
        help="also run the swarm of another checkout (say `git worktree add DIR COMMIT`), "
        "as client swarm-ref, alternated with the others: a before/after in the same minutes",
    )
    args = ap.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("error: curl is not installed (Debian package curl)")
    lt_ok = subprocess.run([SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True)
    if lt_ok.returncode != 0:
        raise SystemExit("error: python3-libtorrent is not installed for /usr/bin/python3")
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="swarm-bench-webseed-", dir=args.dir))
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: pip compiles it at install
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    server: Server | None = None
    try:
        data = work / "data"
        data.mkdir()
        make_file(data / NAME, size, 18)
        make_file(data / WARM, 4 * MIB, 19)
        want = sha256(data / NAME)  # also reads it into the page cache
        server = Server(data, env)
        url = server.wait_url(60)
        torrents = {}
        for name in (NAME, WARM):
            torrents[name] = work / f"{name}.torrent"
            subprocess.run(
                [sys.executable, "-m", "swarm", "-q", "create", str(data / name),
                 "-o", str(torrents[name]), "--webseed", url],
                check=True, timeout=600, env=env, cwd=ROOT,
            )  # fmt: skip
        clients = [c for c in CLIENTS if c in args.clients.split(",")]
        if args.swarm_ref is not None:
            env["SWARM_REF"] = str(args.swarm_ref.resolve())
            clients.append("swarm-ref")
        if "swarm" in clients and not swarm_has_webseeds(env):
            clients.remove("swarm")
            print("swarm: unavailable (swarm fetch does not use web seeds yet: no --no-webseed)")
        times: dict[str, list[dict]] = {c: [] for c in clients}
        pressure0, clock0 = cpu_pressure(), time.monotonic()
        for run in range(args.runs):
            order = clients if run % 2 == 0 else list(reversed(clients))
            for client in order:
                # untimed warm-up
                measure(client, torrents, url, WARM, work, env, 120, args.lt_set)
                cpu0 = proc_cpu(server.popen.pid)
                m = measure(client, torrents, url, NAME, work, env, args.timeout, args.lt_set)
                m["server_cpu"] = proc_cpu(server.popen.pid) - cpu0
                if sha256(m.pop("file")) != want:
                    raise SystemExit(f"error: {client}'s file differs from the source")
                shutil.rmtree(work / f"out-{client}")
                times[client].append(m)
                mib_s = size / MIB / m["seconds"]
                note = (
                    f", of which fsync {m['fsync_after']:.2f} s" if client == "curl" else
                    f", of which torrent added to done {m['inner']:.2f} s"
                    if client == "libtorrent" else ""
                )  # fmt: skip
                print(
                    f"run {run + 1}: {client:<10} {m['seconds']:7.2f} s {mib_s:8.1f} MiB/s  "
                    f"CPU {m['cpu']:5.2f} s, server {m['server_cpu']:5.2f} s{note}",
                    flush=True,
                )
        report(times, size, args.runs, pressure0, clock0)
        changed = ", ".join(args.lt_set) or "none"
        print(f"libtorrent: its defaults and loopback's needs (lt_webseed.py); changed: {changed}")
        if args.json:
            args.json.write_text(json.dumps({"size": size, "runs": times}, indent=2))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(
    times: dict[str, list[dict]], size: int, runs: int, pressure0: float | None, clock0: float
) -> None:
    mib = size / MIB
    med = {c: statistics.median(m["seconds"] for m in ms) for c, ms in times.items()}
    print(f"\nweb seed (swarm serve-central, unthrottled) -> one downloader, {mib:g} MiB, "
          f"median of {runs}:")  # fmt: skip
    for client, ms in times.items():
        secs = [m["seconds"] for m in ms]
        cpu = statistics.median(m["cpu"] for m in ms)
        server = statistics.median(m["server_cpu"] for m in ms)
        print(
            f"  {client:<10} {med[client]:7.2f} s ({min(secs):.2f}-{max(secs):.2f})"
            f" {mib / med[client]:8.1f} MiB/s   CPU {cpu:5.2f} s, server {server:5.2f} s"
        )
    for ours, ref, target in (
        ("libtorrent", "curl", ""),
        ("swarm", "curl", " (target >= 0.8x)"),
        ("swarm", "libtorrent", " (target >= 1.0x)"),
        ("swarm", "swarm-ref", ""),
    ):
        if ours in med and ref in med:
            print(f"  {ours} / {ref} rate: {med[ref] / med[ours]:.2f}x{target}")
    if "swarm" not in med:
        print("  swarm: unavailable")
    if pressure0 is not None:
        waited = (cpu_pressure() or 0) - pressure0
        share = 100 * waited / max(time.monotonic() - clock0, 1e-9)
        print(f"CPU pressure: some task waited for a CPU {share:.0f}% of the time")


if __name__ == "__main__":
    main()
