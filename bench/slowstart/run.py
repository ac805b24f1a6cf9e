"""Fetching from a Transmission seed: swarm against libtorrent, in the same run.

    python bench/slowstart/run.py                  # 32 MiB, 3 runs of each: about 2 min
    python bench/slowstart/run.py --size 64M --runs 5 --json out.json

Why: Transmission answers requests in bursts (its peers are served from a pulse, so requests
that find its queue empty wait for the next one), and a downloader that keeps only a few
requests out sees a long round trip, a low rate and so, if its queue follows its rate, a
queue that never grows (issue 14, item 5: 32 MiB took swarm 265 s and libtorrent 14.7 s).

A Transmission seed (transmission-cli 3.00, its defaults except what it needs headless on
loopback: no DHT, LPD, PEX, uTP or port mapping, plain connections tolerated, bound to
127.0.0.1) serves a file of --size random bytes from the data folder; a fresh one for each
fetch, seeding before the clock starts (Transmission 3.00 keeps one record per IP address,
and once a downloader from 127.0.0.1 has finished it refuses every later one as a seed).
Transmission never dials 127.x peers, so both downloaders dial it: `swarm fetch --peer
127.0.0.1:PORT --no-seed` (defaults otherwise), and libtorrent set up as
tests/interop/lt_helper.py sets it up (lt_fetch.py beside this file; it flushes and fsyncs
before it exits, as swarm does). Each is timed from its start to its exit, and its file is
checked against the source. Runs alternate which one goes first; the figures are medians,
with the ratio swarm / libtorrent (the target: at most 1.5).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LT_FETCH = Path(__file__).resolve().with_name("lt_fetch.py")
SYSTEM_PYTHON = "/usr/bin/python3"
TR_SETTINGS = {
    "dht-enabled": False,
    "lpd-enabled": False,
    "pex-enabled": False,
    "utp-enabled": False,
    "port-forwarding-enabled": False,
    "encryption": 0,
    "bind-address-ipv4": "127.0.0.1",
}


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class TransmissionSeed:
    """transmission-cli seeding *torrent* from *data*; started() waits for 'Seeding'."""

    def __init__(self, torrent: Path, data: Path, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "settings.json").write_text(json.dumps(TR_SETTINGS))
        self.port = free_port()
        # stdbuf: its status line ("Seeding, ...", ended by \r) is written to a pipe unbuffered.
        args = ["stdbuf", "-o0", "transmission-cli", "-g", str(home), "-w", str(data)]
        args += ["-p", str(self.port), "-et", "-M", str(torrent)]
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        self._seeding = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        buf = b""
        while chunk := self.popen.stdout.read1(4096):
            buf = (buf + chunk)[-4096:]
            if b"Seeding" in buf:
                self._seeding.set()

    def wait_seeding(self, timeout: float) -> None:
        if not self._seeding.wait(timeout):
            raise SystemExit("error: transmission-cli did not start seeding in time")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def timed(args: list[str], timeout: float, log: Path) -> float:
    """Run *args* to its exit; seconds from start to exit (SystemExit on failure)."""
    with log.open("wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise SystemExit(f"error: {args[0]} {args[1]} timed out; see {log}") from None
        took = time.monotonic() - start
    if rc != 0:
        raise SystemExit(f"error: exit code {rc} from {' '.join(args[:3])}; see {log}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="32M", help="file size (default 32M)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each; medians (default 3)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per fetch")
    ap.add_argument("--json", type=Path, help="write every measurement to this file")
    args = ap.parse_args()
    for exe in ("transmission-cli", "stdbuf"):
        if shutil.which(exe) is None:
            raise SystemExit(f"error: {exe} is not installed")
    size = parse_size(args.size)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="slowstart-", dir=base))
    try:
        data = work / "data"
        data.mkdir()
        src = data / "payload.bin"
        src.write_bytes(random.Random(5).randbytes(size))
        want = sha256(src)
        torrent = work / "t.torrent"
        subprocess.run(
            [sys.executable, "-m", "swarm", "-q", "create", str(src), "-o", str(torrent)],
            check=True,
            timeout=120,
            cwd=ROOT,
        )
        commands = {
            "swarm": lambda out, peer: [
                sys.executable, "-m", "swarm", "-q", "fetch", str(torrent), "-o", str(out),
                "--no-seed", "--host", "127.0.0.1", "--port", "0", "--no-utp", "--peer", peer,
            ],
            "libtorrent": lambda out, peer: [
                SYSTEM_PYTHON, str(LT_FETCH), str(torrent), str(out), peer, str(args.timeout)
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(args.runs):
            order = list(commands) if run % 2 == 0 else list(reversed(commands))
            for name in order:
                out = work / f"{name}-{run}"
                out.mkdir()
                seed = TransmissionSeed(torrent, data, work / f"trhome-{name}-{run}")
                try:
                    seed.wait_seeding(120)
                    command = commands[name](out, f"127.0.0.1:{seed.port}")
                    took = timed(command, args.timeout, work / f"{name}-{run}.log")
                finally:
                    seed.stop()
                if sha256(out / src.name) != want:
                    raise SystemExit(f"error: {name}'s file differs from the source")
                shutil.rmtree(out)
                times[name].append(took)
                print(f"run {run + 1}: {name:<10} {took:6.1f} s", flush=True)
        med = {name: statistics.median(t) for name, t in times.items()}
        ratio = med["swarm"] / med["libtorrent"]
        mib = size / (1 << 20)
        print(f"\nTransmission seed -> {mib:g} MiB, median of {args.runs}:")
        for name, t in times.items():
            rng = f"{min(t):.1f}-{max(t):.1f}"
            print(f"  {name:<10} {med[name]:6.1f} s  ({rng})  {mib / med[name]:6.2f} MiB/s")
        print(f"  swarm / libtorrent: {ratio:.2f}x (target <= 1.5x)")
        if args.json:
            result = {"size": size, "runs": args.runs, "times": times, "medians": med}
            args.json.write_text(json.dumps({**result, "ratio": ratio}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
