"""Real ``swarm`` processes for end-to-end tests: output collected line by line, every wait
bounded by a deadline, stopped by PID."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A port the OS says is free now (for programs that cannot be told to use port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll *predicate* until true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Proc:
    """A ``python -m swarm`` child whose output lines are collected as they come."""

    def __init__(
        self, args: list[str], cwd: Path | None = None, stdin: bool = False, raw: bool = False
    ) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            args if raw else [sys.executable, "-m", "swarm", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            cwd=cwd,
            text=True,
            bufsize=1,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Poll the output (with a deadline) for a line that satisfies *predicate*."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                if predicate(line):
                    return line
            if self.popen.poll() is not None:
                for t in self._threads:
                    t.join(timeout=2)
                for line in list(self.out):
                    if predicate(line):
                        return line
                raise AssertionError(
                    f"swarm {' '.join(self.args)} exited {self.popen.returncode}: "
                    + "\n".join(self.err[-10:])
                )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for output of swarm {' '.join(self.args)}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        rc = self.popen.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=2)
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)
            try:
                return self.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                return self.wait_exit(timeout)
        return self.popen.returncode


def swarm_run(*args: object, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m swarm ARGS`` to its end (bounded by *timeout*), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "swarm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def digest(path: Path) -> str:
    """SHA-256 of a file's bytes, to compare a copy with its original."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_movie(tmp_path: Path, tracker: str, size: int, piece: str = "32K") -> tuple[Path, Path]:
    """``src/movie.bin`` of *size* pseudo-random bytes under *tmp_path* and its .torrent for
    *tracker* (pieces of *piece*), made by ``swarm create``."""
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(random.Random(size).randbytes(size))
    torrent = tmp_path / "movie.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "-t", tracker, "--piece-length", piece)
    assert r.returncode == 0, r.stderr
    return src, torrent


def seed_port(seed: Proc) -> int:
    """The port a ``swarm seed`` process listens on, from its ``seeding on port N`` line."""
    line = seed.wait_line(lambda s: s.startswith("seeding on port"))
    return int(line.split()[3].rstrip(";"))


def start_seed(procs: Callable[..., Proc], src: Path, torrent: Path, rate: str = "0") -> Proc:
    """A ``swarm seed`` of *src* on an OS-chosen port (upload capped at *rate*), once it
    seeds; :func:`seed_port` gives its port."""
    seed = procs(
        "seed",
        src,
        "--torrent",
        torrent,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--max-upload-rate",
        rate,
    )
    seed_port(seed)
    return seed


def transmission_argv(
    exe: str, torrent: Path, out: Path, home: Path, encryption: int = 0
) -> list[str | Path]:
    """transmission-cli as the interop tests run it, its settings written into *home*: no DHT,
    LPD, PEX, uTP or port forwarding, bound to 127.0.0.1, a free port; *encryption* 0
    (preferred, -et), 2 (required, -er); its status lines unbuffered (stdbuf)."""
    import json

    home.mkdir(parents=True, exist_ok=True)
    settings = {
        "dht-enabled": False,
        "lpd-enabled": False,
        "pex-enabled": False,
        "utp-enabled": False,
        "port-forwarding-enabled": False,
        "encryption": encryption,
        "rename-partial-files": True,
        "bind-address-ipv4": "127.0.0.1",
    }
    (home / "settings.json").write_text(json.dumps(settings))
    flag = "-er" if encryption == 2 else "-et"
    return ["stdbuf", "-o0", exe, "-g", home, "-w", out, "-p", free_port(), flag, "-M", torrent]


def aria2_argv(aria2c: str, source: str | Path, out: Path, *extra: str) -> list[str | Path]:
    """aria2c fetching *source* (a .torrent or a magnet) into *out* as the interop tests run
    it: exit when complete, no DHT, LPD or PEX (peers only from the tracker or the torrent),
    a free listening port, a 1 s tracker interval, quiet; *extra* options go before *source*."""
    return [
        aria2c,
        "--dir",
        out,
        "--seed-time=0",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        f"--listen-port={free_port()}",
        "--bt-tracker-interval=1",
        "--summary-interval=0",
        "--console-log-level=warn",
        *extra,
        source,
    ]
