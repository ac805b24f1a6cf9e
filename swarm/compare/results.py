"""What ``swarm compare`` measures (the times of one mode, one run per N) and the minimum
distribution times to hold them against (Kurose and Ross)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


def bounds(
    file_size: int, n: int, server_rate: float, peer_rate: float, d_min: float | None = None
) -> tuple[float, float]:
    """Minimum distribution times (seconds) of F bytes to N peers (Kurose and Ross):
    D_cs = max(N F / u_s, F / d_min), D_p2p = max(F / u_s, F / d_min, N F / (u_s + N u))."""
    f = float(file_size)
    dl = f / d_min if d_min else 0.0
    d_cs = max(n * f / server_rate, dl)
    d_p2p = max(f / server_rate, dl, n * f / (server_rate + n * peer_rate))
    return d_cs, d_p2p


@dataclass(slots=True)
class ModeResult:
    """Each downloader's time (seconds from 'go' to its verified copy) in one mode, and what
    the downloaders' processes cost: how many there were, their CPU seconds in all and the sum
    of their peak RSS (None where /proc cannot tell)."""

    times: list[float] = field(default_factory=list)
    processes: int = 0
    cpu_seconds: float | None = None
    peak_rss: int | None = None

    @property
    def total(self) -> float:
        return max(self.times) if self.times else math.nan

    def figures(self) -> dict[str, float]:
        """total, min, median and max, in seconds to the millisecond."""
        return {
            "total": round(self.total, 3),
            "min": round(min(self.times), 3),
            "median": round(statistics.median(self.times), 3),
            "max": round(max(self.times), 3),
        }

    def as_dict(self) -> dict[str, float | list[float] | None]:
        return {
            "times": [round(t, 3) for t in self.times],
            **self.figures(),
            "processes": self.processes,
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "peak_rss": self.peak_rss,
        }


@dataclass(slots=True)
class Run:
    """Both modes at one N, with their bounds."""

    peers: int
    central: ModeResult
    swarm: ModeResult
    bound_central: float
    bound_swarm: float
    per_process: int = 1  # downloaders in one process (--peers-per-process)

    @property
    def speedup(self) -> float:
        return self.central.total / self.swarm.total

    def as_dict(self) -> dict[str, object]:
        return {
            "peers": self.peers,
            "central": self.central.as_dict(),
            "swarm": self.swarm.as_dict(),
            "bounds": {
                "central": round(self.bound_central, 3),
                "swarm": round(self.bound_swarm, 3),
            },
            "speedup": round(self.speedup, 3),
            "peers_per_process": self.per_process,
        }
