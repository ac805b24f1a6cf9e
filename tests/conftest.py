"""Shared fixtures: real ``swarm`` processes on 127.0.0.1 (stopped by PID), a tracker."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procutil import Proc


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
