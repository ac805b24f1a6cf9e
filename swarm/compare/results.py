"""What ``swarm compare`` measures (the times of one mode, one run per N) and the minimum
distribution times to hold them against (Kurose and Ross)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from swarm.compare.churn import Applied, delay
from swarm.compare.faults import Outcome
from swarm.units import format_rate, format_size


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


def hybrid_bound(
    file_size: int, n: int, server_rate: float, peer_rate: float, d_min: float | None = None
) -> float:
    """The hybrid mode's minimum distribution time: the central server (upload u_s) is the
    only source outside the peers, so u_s_total = u_s and the swarm's bound holds:
    D = max(F / u_s_total, F / d_min, N F / (u_s_total + N u))."""
    return bounds(file_size, n, server_rate, peer_rate, d_min)[1]


@dataclass(frozen=True, slots=True)
class Cutoff:
    """A phase stopped at a stated time before its end (the central phase of ``--scenario``,
    which would take hours): the bytes that had come by then, of the N copies' bytes in all,
    and the end that rate would give, *extrapolated*: it was not measured."""

    at: float  # seconds from 'go'
    received: int  # bytes in all the downloaders' files by then
    needed: int  # N x F
    finished: int  # copies complete by then

    @property
    def rate(self) -> float:
        return self.received / self.at if self.at > 0 else 0.0

    @property
    def extrapolated(self) -> float:
        """Seconds from 'go' to the last copy at the measured rate (inf with none)."""
        return self.needed / self.rate if self.rate > 0 else math.inf

    def note(self) -> str:
        return (
            f"{format_size(self.received)} of {format_size(self.needed)} came in "
            f"{self.at:.1f} s ({format_rate(self.rate)} in all); at that rate the last copy "
            f"would be complete at {self.extrapolated:.0f} s (extrapolated, not measured)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "stopped_at": round(self.at, 3),
            "received": self.received,
            "needed": self.needed,
            "finished": self.finished,
            "measured_rate": round(self.rate, 1),
            "extrapolated_total": round(self.extrapolated, 1),
        }


@dataclass(slots=True)
class ModeResult:
    """Each downloader's time (seconds from 'go' to its verified copy) in one mode, and what
    the downloaders' processes cost: how many there were, their CPU seconds in all and the sum
    of their peak RSS (None where /proc cannot tell). With ``--fail``, *outcome* says what
    was killed and, if not every downloader finished, why the mode failed; *times* are then
    the finished downloaders' only."""

    times: list[float] = field(default_factory=list)
    processes: int = 0
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    outcome: Outcome | None = None
    cutoff: Cutoff | None = None  # stopped at a stated time: *times* are the copies done by then
    churn: Applied | None = None  # --churn: the absences that happened
    samples: list[tuple[float, int]] = field(default_factory=list)  # (s, bytes delivered)
    webseed_bytes: int | None = None  # hybrid: bytes the downloaders had from the web seed
    ran: bool = True  # False: the mode was not run (--modes left it out)

    def webseed_share(self, file_size: int) -> float | None:
        """The web seed's share of the N copies' bytes (None when the downloaders did not
        say how much came from it)."""
        if self.webseed_bytes is None or not self.times:
            return None
        return self.webseed_bytes / (file_size * len(self.times))

    @property
    def failed(self) -> str | None:
        """Why the mode failed (some downloader never finished), or None."""
        return None if self.outcome is None else self.outcome.failed()

    @property
    def total(self) -> float:
        """Seconds to the last copy; NaN when the mode failed or was stopped at a cutoff
        (there was no last copy)."""
        if not self.times or self.failed or self.cutoff is not None or not self.ran:
            return math.nan
        return max(self.times)

    def figures(self) -> dict[str, float]:
        """total, min, median and max, in seconds to the millisecond."""
        return {
            "total": round(self.total, 3),
            "min": round(min(self.times), 3),
            "median": round(statistics.median(self.times), 3),
            "max": round(max(self.times), 3),
        }

    def as_dict(self) -> dict[str, object]:
        if self.times:
            figures: dict[str, float | None] = {**self.figures()}
        else:
            figures = dict.fromkeys(("total", "min", "median", "max"))
        out: dict[str, object] = {"times": [round(t, 3) for t in self.times], **figures}
        if self.cutoff is not None:
            out["total"] = None
            out["cutoff"] = self.cutoff.as_dict()
        if self.churn is not None:
            out["departures"] = self.churn.as_list()
            out["seed_left"] = (
                None if self.churn.seed_left is None else round(self.churn.seed_left, 3)
            )
        if self.webseed_bytes is not None:
            out["webseed_bytes"] = self.webseed_bytes
        if self.samples:
            out["delivered"] = [[round(t, 2), b] for t, b in self.samples]
        if self.outcome is not None:
            # A failed mode has no total; its min, median and max are of those that finished.
            out["total"] = None if self.failed else figures["total"]
            out["failed"] = self.failed
            out["finished"] = self.outcome.finished
            kills = [{"part": f.part, "at": round(t, 3)} for f, t in self.outcome.killed]
            out["killed"] = kills
        return out | {
            "processes": self.processes,
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "peak_rss": self.peak_rss,
        }


@dataclass(slots=True)
class Run:
    """The modes at one N, with their bounds. *hybrid*: the central server as the web seed of
    the peers, no seed (None when not run: *hybrid_skipped* says why, if it was asked for);
    its bound is the swarm's (the same u_s: see :func:`hybrid_bound`). *central_server* and
    *webseed_server*: which program served the central mode and the web seed."""

    peers: int
    central: ModeResult
    swarm: ModeResult
    bound_central: float
    bound_swarm: float
    per_process: int = 1  # downloaders in one process (--peers-per-process)
    churned: ModeResult | None = None  # --churn: the swarm phase again, leechers churning
    hybrid: ModeResult | None = None
    bound_hybrid: float | None = None
    hybrid_skipped: str | None = None
    central_server: str = "swarm"
    webseed_server: str | None = None

    @property
    def churn_delay(self) -> dict[str, float] | None:
        """Median and last completion with churn minus without (s); None without churn or
        when either phase did not finish."""
        c, s = self.churned, self.swarm
        if c is None or math.isnan(c.total) or math.isnan(s.total):
            return None
        return delay(c.times, s.times)

    @property
    def speedup(self) -> float:
        return self.central.total / self.swarm.total

    def as_dict(self) -> dict[str, object]:
        speedup = None if math.isnan(self.speedup) else round(self.speedup, 3)
        return (
            {
                "peers": self.peers,
                "central": self.central.as_dict() if self.central.ran else None,
                "swarm": self.swarm.as_dict() if self.swarm.ran else None,
                "bounds": {
                    "central": round(self.bound_central, 3),
                    "swarm": round(self.bound_swarm, 3),
                }
                | ({} if self.bound_hybrid is None else {"hybrid": round(self.bound_hybrid, 3)}),
                "speedup": speedup,
                "peers_per_process": self.per_process,
            }
            | (
                {}
                if self.churned is None
                else {"swarm_churn": self.churned.as_dict(), "churn_delay": self.churn_delay}
            )
            | self._hybrid_dict()
        )

    def _hybrid_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"central_server": self.central_server}
        if self.hybrid is not None and self.bound_hybrid is not None:
            out["hybrid"] = self.hybrid.as_dict() | {"webseed_server": self.webseed_server}
            speedup = self.central.total / self.hybrid.total
            out["hybrid_speedup"] = None if math.isnan(speedup) else round(speedup, 3)
        if self.hybrid_skipped is not None:
            out["hybrid_skipped"] = self.hybrid_skipped
        return out
