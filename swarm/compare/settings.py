"""The settings of one ``swarm compare`` (:class:`Experiment`) and the rule for how many
downloaders share a process; apart from :mod:`swarm.compare.experiment` so that the phase
runner can take them without importing the experiment that runs it."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from swarm.compare.churn import Churn
from swarm.compare.faults import Fault

if TYPE_CHECKING:
    from swarm.compare.web.model import LiveRun

MODES = ("central", "swarm", "hybrid")
"""``--modes``: the central server alone; a seed and the peers; the central server as the web
seed of the peers (no seed), with the same upload u_s."""
SERVERS = ("swarm", "nginx")  # --central: which program serves the central mode

MAX_PEERS = 200  # N: beyond this, one machine's 2 cores and ports are the experiment
ALONE_UP_TO = 8  # per core: up to this many downloaders each have a process of their own
PROCESSES_PER_CORE = 1.5  # beyond it, downloaders share this many processes per core


def default_per_process(n: int, cores: int | None = None) -> int:
    """K, the downloaders one process runs, when --peers-per-process is not given: 1 (a
    process each, as ``swarm fetch`` runs) up to 8 per core (N <= 16 on 2 cores); beyond,
    N spread over 3 processes per 2 cores (N = 100 on 2 cores: 34 to a process, 3 processes).
    Every process is an interpreter and a loop more to feed, yet each must keep a core busy
    while another waits. On 2 cores, swarm phase, pairs of runs against 4 processes: N = 100
    (8 pairs) last copy 5.66 -> 5.48 s, median copy 5.22 -> 5.07 s, CPU 10.7 -> 9.8 s; N = 64
    and 200 the same times, CPU -11% and -5%; 2 processes (N = 100) cut CPU by a sixth but
    left the last copy later (5.71 against 5.44 s, 7 pairs)."""
    cores = _cores(cores)
    if n <= ALONE_UP_TO * cores:
        return 1
    return math.ceil(n / max(2, round(PROCESSES_PER_CORE * cores)))


def lab_busy(n: int, cores: int | None = None) -> str | None:
    """The lab runs a process per downloader (a kernel cap is a namespace's): past the
    processes of their own that :func:`default_per_process` allows, the note that the cores
    set the time."""
    cores = _cores(cores)
    if default_per_process(n, cores) == 1:
        return None
    return (
        f"network lab: {n} downloaders, a process each, on {cores} cores: past "
        f"{ALONE_UP_TO * cores} the cores more than the protocol set the times (without "
        "--lab they share a few processes)"
    )


def _cores(cores: int | None) -> int:
    return max(1, cores if cores is not None else (os.cpu_count() or 1))


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
    churn: Churn | None = None  # --churn: the swarm phase runs again with leechers churning
    central_cutoff: float | None = None  # stop the central phase here, extrapolate its end
    sample: bool = False  # sample the bytes delivered in the swarm phases (the rate chart)
    modes: tuple[str, ...] = MODES  # --modes, in MODES' order
    server: str = "swarm"  # --central: swarm's serve-central or nginx
    live: LiveRun | None = None  # --web: what the page shows (the children send progress)
    utp: bool = False  # --utp: peers dial uTP first; TCP only by default, like central's HTTP

    def k_for(self, n: int) -> int:
        if self.lab:
            return 1  # a kernel cap is a namespace's: one downloader to a namespace
        return min(n, self.per_process or default_per_process(n))

    def hybrid_skipped(self) -> str | None:
        """Why the hybrid mode does not run although asked for (None: it runs)."""
        if self.faults:
            return "--fail kills the tracker and seed of the swarm phase, which hybrid has not"
        return None

    def say(self, text: str) -> None:
        if self.on_event:
            self.on_event(text)
