"""Shared fixtures: the sample files, a temp-file factory, real ``swarm`` processes on
127.0.0.1 (stopped by PID), a tracker."""

from __future__ import annotations

import fcntl
import os
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from procutil import Proc

# No per-example time limit: hypothesis's default (200 ms) fails a correct example whenever the
# 2 shared cores are busy (an end-to-end test's processes, CI's other work); the examples
# themselves are bounded by their sizes, and pytest's own timeouts bound each test.
settings.register_profile("swarm", deadline=None)
settings.load_profile("swarm")

# No test dials a public DHT router: swarm seed/fetch (in process or as children, which inherit
# this) run the DHT only with a loopback --dht-bootstrap or a torrent's loopback nodes.
os.environ["SWARM_NO_PUBLIC_DHT"] = "1"

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_files"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Tests marked ``timing`` (they hold a measured time or rate to a bound) run alone when
    pytest-xdist runs tests in parallel: each test holds a lock on one file for the run, shared
    for the others, exclusive for these, through its setup, call and teardown. Without xdist
    there is nothing to share and no lock."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield
        return
    alone = item.get_closest_marker("timing") is not None
    # the workers' temp folders are popen-gwN inside one folder of this run's
    lock = item.config._tmp_path_factory.getbasetemp().parent / f"timing-{run}.lock"  # type: ignore[attr-defined]
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The project's ``sample_files/`` folder (ocean-waves.wav, photos/)."""
    assert SAMPLE_DIR.is_dir(), f"{SAMPLE_DIR} is missing"
    return SAMPLE_DIR


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a file under the test's temp folder and return its path: ``make_file("a/b.bin",
    data)`` writes *data*; ``make_file("c.bin", 1000)`` writes 1000 pseudo-random bytes, the
    same for the same name. Parent folders are created."""

    def make(rel: str, content: bytes | int = b"") -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            content = random.Random(rel).randbytes(content)
        path.write_bytes(content)
        return path

    return make


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    """Start processes (``swarm`` commands, or any program with raw=True); every one is
    stopped by its PID at the end of the test."""
    started: list[Proc] = []

    def start(*args: str, cwd: Path | None = None, stdin: bool = False, raw: bool = False) -> Proc:
        p = Proc([str(a) for a in args], cwd=cwd, stdin=stdin, raw=raw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop(signal.SIGKILL if p.popen.poll() is None else signal.SIGTERM)


@pytest.fixture
def tracker(procs: Callable[..., Proc]) -> str:
    """A running ``swarm tracker`` (OS-chosen port, 5 s interval); its HTTP announce URL."""
    p = procs(
        "tracker", "--host", "127.0.0.1", "--port", "0", "--interval", "5", "--min-interval", "1"
    )
    return p.wait_line(lambda s: s.startswith("http://")).split()[0]


@pytest.fixture
def tracker_urls(procs: Callable[..., Proc]) -> tuple[str, str]:
    """A running ``swarm tracker``: its HTTP and UDP announce URLs."""
    p = procs(
        "tracker", "--host", "127.0.0.1", "--port", "0", "--interval", "5", "--min-interval", "1"
    )
    http = p.wait_line(lambda s: s.startswith("http://")).split()[0]
    udp = p.wait_line(lambda s: s.startswith("udp://")).split()[0]
    return http, udp
