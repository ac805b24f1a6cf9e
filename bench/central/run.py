"""Loopback throughput of the central server against Debian's nginx serving the same file.

Both servers serve one generated file from a temp folder; a load generator downloads it with
1 and 8 concurrent clients, each client a separate process that reads the body with
``recv_into`` into one buffer and throws it away, so the clients cost both servers the same.
The figure is aggregate MB/s (10^6 bytes/s): all bytes over the span from the first request
to the last byte. All servers run at once and are measured in interleaved rounds (a burst of load
elsewhere hits each alike); the best and the median of ``--repeat`` rounds are printed,
after one warm-up download each, and the ratio of the medians (loopback on a small VM is
noisy: a lucky round can be twice the median).

    python bench/central/run.py                 # 256 MiB
    python bench/central/run.py --size 1G       # also 1 GiB

Ours runs as users run it, ``swarm serve-central`` (uvloop when installed); ``--loop asyncio``
also measures the library on the standard asyncio loop. Every process started here is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from swarm.units import format_size, parse_size  # noqa: E402

BUF = 4 << 20


# -- load generator (runs in child processes) -----------------------------------------------


def _client(host: str, port: int, path: str, barrier: mp.Barrier, out: mp.Queue) -> None:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUF)
    buf = bytearray(BUF)
    view = memoryview(buf)
    barrier.wait()
    start = time.perf_counter()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    # Read the head, then count body bytes up to Content-Length.
    head = b""
    while b"\r\n\r\n" not in head:
        n = sock.recv_into(view)
        if not n:
            raise SystemExit("connection closed during the response head")
        head += bytes(view[:n])
    header, _, rest = head.partition(b"\r\n\r\n")
    status = header.split(b" ", 2)[1]
    match = re.search(rb"(?im)^content-length:\s*(\d+)", header)
    if status != b"200" or not match:
        raise SystemExit(f"bad response: {header[:200]!r}")
    want = int(match.group(1))
    got = len(rest)
    while got < want:
        n = sock.recv_into(view)
        if not n:
            break
        got += n
    end = time.perf_counter()
    sock.close()
    out.put((start, end, got, want))


def measure(url: str, clients: int) -> float:
    """Aggregate MB/s of *clients* processes downloading *url* at the same time."""
    parts = urlsplit(url)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients)
    out: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(parts.hostname, parts.port, parts.path, barrier, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    if any(got != want for *_, got, want in results):
        raise SystemExit(f"short download: {results}")
    span = max(r[1] for r in results) - min(r[0] for r in results)
    return sum(r[2] for r in results) / span / 1e6


# -- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            select.select([], [], [], 0.05)  # not yet listening: poll again shortly
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def nginx(root: Path, work: Path) -> Iterator[str]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    port = _free_port()
    conf = work / "nginx.conf"
    temp = {k: work / f"nginx_{k}" for k in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    for d in temp.values():
        d.mkdir()
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx.err warn;
user root;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {temp["client"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    if os.geteuid() != 0:  # 'user' is only allowed for a root master
        conf.write_text(conf.read_text().replace("user root;\n", ""))
    proc = subprocess.Popen(
        [exe, "-p", str(work), "-c", str(conf), "-e", str(work / "nginx.err")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


@contextmanager
def ours(root: Path, loop: str) -> Iterator[str]:
    port = _free_port()
    if loop == "cli":
        cmd = [sys.executable, "-m", "swarm", "serve-central", str(root), "--port", str(port)]
    else:
        runner = "uvloop.run" if loop == "uvloop" else "asyncio.run"
        code = (
            "import asyncio, sys, uvloop; from swarm.central.server import serve_central;"
            f"{runner}(serve_central(sys.argv[1], port=int(sys.argv[2])))"
        )
        cmd = [sys.executable, "-c", code, str(root), str(port)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


# -- main -------------------------------------------------------------------------------------


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for off in range(0, size, len(block)):
            f.write(block[: min(len(block), size - off)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="append", help="file size (repeatable); default 256M")
    ap.add_argument("--clients", default="1,8", help="comma-separated client counts")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--loop",
        action="append",
        choices=["cli", "asyncio", "uvloop"],
        help="how ours runs: the CLI (default), or the library on the asyncio or uvloop loop",
    )
    args = ap.parse_args()
    sizes = [parse_size(s) for s in (args.size or ["256M"])]
    counts = [int(c) for c in args.clients.split(",")]
    loops = args.loop or ["cli"]
    work = Path(tempfile.mkdtemp(prefix="bench-central-"))
    os.chmod(work, 0o755)
    try:
        print(
            f"{'size':>9} {'clients':>7} {'server':>16} {'best MB/s':>9} {'median':>9}"
            f" {'median/nginx':>12}"
        )
        for size in sizes:
            root = work / f"root-{size}"
            root.mkdir()
            os.chmod(root, 0o755)
            name = "data.bin"
            _make_file(root / name, size)
            (work / f"ng-{size}").mkdir()
            servers = [("nginx", nginx(root, work / f"ng-{size}"))]
            servers += [(f"swarm ({loop})", ours(root, loop)) for loop in loops]
            samples: dict[tuple[str, int], list[float]] = {}
            with ExitStack() as stack:
                bases = {label: stack.enter_context(cm) for label, cm in servers}
                for base in bases.values():
                    measure(base + name, 1)  # warm-up: page cache, code paths
                # Interleaved rounds, so that a burst of load elsewhere on the machine hits
                # every server alike.
                for _ in range(args.repeat):
                    for n in counts:
                        for label, base in bases.items():
                            samples.setdefault((label, n), []).append(measure(base + name, n))
            for n in counts:
                ref = statistics.median(samples["nginx", n])
                for label, _ in servers:
                    runs = samples[label, n]
                    print(
                        f"{format_size(size):>9} {n:>7} {label:>16} {max(runs):>9.0f} "
                        f"{statistics.median(runs):>9.0f} {statistics.median(runs) / ref:>11.2f}x"
                    )
            (root / name).unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
