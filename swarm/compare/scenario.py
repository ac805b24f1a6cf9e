"""``swarm compare --scenario texts``: the texts' own scenario, scaled to one machine.

The texts say "100 peers share a 1 GB file at 10 MB/s each, totaling 1 GB/s". Here every byte
is divided by :attr:`Scenario.scale` (100) and no second is: a 10 MB file (decimal, as the
texts count), 100 kB/s of upload for the central server, the seed and each peer, 100
downloaders; one copy from the server takes F/u_s = 100 s, as in the real thing, and N x u =
10 MB/s stands for the texts' 1 GB/s. The central phase would take N F / u_s = 10,000 s (2.8
hours), so it stops at :attr:`Scenario.cutoff` seconds and its end is extrapolated from the
bytes that came by then, and said to be.

The swarm's total upload rate over time is measured as the bytes landing in the downloaders'
folders (what the seed and the peers uploaded to them, less waste), sampled every second:
:func:`rates` turns the samples into a rate, :func:`scenario_lines` sets it beside the claim.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from swarm.compare.results import Run

RATE_WINDOW = 5.0  # seconds: the peak rate is the best mean over this long


@dataclass(frozen=True, slots=True)
class Scenario:
    """A preset: the texts' N, F and u, and the factor every byte is divided by."""

    name: str
    claim: str
    real_peers: int
    real_size: int  # bytes
    real_rate: int  # bytes/s, the server's and each peer's upload
    scale: int
    cutoff: float  # seconds the central phase runs before it is stopped

    @property
    def size(self) -> int:
        return self.real_size // self.scale

    @property
    def rate(self) -> int:
        return self.real_rate // self.scale

    def header(self, n: int, size: int) -> list[str]:
        """What the preset runs, and where N or F differ from it (--peers, --size)."""
        lines = [
            f"the texts: {self.claim}",
            f"here: every byte divided by {self.scale}, every second kept: F = "
            f"{si(size)}, u_s = u = {si(self.rate, '/s')}"
            f", N = {n}; N x u = {si(n * self.rate, '/s')} stands for the "
            f"texts' {si(n * self.real_rate, '/s')}",
        ]
        if n != self.real_peers:
            lines.append(f"N = {n}, NOT the texts' {self.real_peers} (--peers)")
        if size != self.size:
            lines.append(f"F = {si(size)}, NOT the preset's {si(self.size)} (--size)")
        return lines


TEXTS = Scenario(
    name="texts",
    claim="100 peers share a 1 GB file at 10 MB/s each, totaling 1 GB/s",
    real_peers=100,
    real_size=10**9,
    real_rate=10**7,
    scale=100,
    cutoff=30.0,
)
SCENARIOS = {"texts": TEXTS}


def si(n: float, per: str = "") -> str:
    """Bytes in decimal units, as the texts count them: '10 MB', '100 kB/s', '1 GB/s'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}{per}"
    return f"{n:.0f} B{per}"


def rates(samples: list[tuple[float, int]], window: float = 1.0) -> list[tuple[float, float]]:
    """(t, bytes/s over the *window* seconds up to t) for each sample at least *window*
    seconds after the first (from the first sample before t - window to t)."""
    out = []
    j = 0
    for t, b in samples:
        while j + 1 < len(samples) and samples[j + 1][0] <= t - window:
            j += 1
        t0, b0 = samples[j]
        if t - t0 >= window * 0.999:
            out.append((t, (b - b0) / (t - t0)))
    return out


def peak_rate(samples: list[tuple[float, int]]) -> tuple[float, float]:
    """(window, the best mean rate over it): over :data:`RATE_WINDOW` seconds, or over 1 s in
    a run shorter than four windows."""
    window = RATE_WINDOW if samples and samples[-1][0] >= 4 * RATE_WINDOW else 1.0
    return window, max((r for _, r in rates(samples, window)), default=0.0)


def scenario_lines(sc: Scenario, run: Run, size: int) -> list[str]:
    """The claim beside what was measured: the swarm's total upload rate against N x u,
    its completion times, and the central server's time at the same N."""
    n = run.peers
    nu = n * sc.rate
    lines = []
    modes = [("swarm", run.swarm)] + ([("swarm + churn", run.churned)] if run.churned else [])
    for name, swarm in modes:
        if swarm.samples:
            window, peak = peak_rate(swarm.samples)
            lines.append(
                f"{name}: total upload rate: peak {si(peak, '/s')} over "
                f"{window:g} s = {100 * peak / nu:.0f}% of N x u "
                f"({si(nu, '/s')}; u_s + N x u = "
                f"{si(nu + sc.rate, '/s')})"
            )
        if swarm.times and not swarm.failed:
            mean = n * size / max(swarm.times)
            lines.append(
                f"{name}: first copy {min(swarm.times):.1f} s, median "
                f"{statistics.median(swarm.times):.1f} s, last {max(swarm.times):.1f} s "
                f"(bound D_p2p {run.bound_swarm:.1f} s); N x F over the last: "
                f"{si(mean, '/s')} = {100 * mean / nu:.0f}% of N x u"
            )
    c = run.central.cutoff
    if c is not None:
        lines.append(
            f"central server at N = {n}: stopped at {c.at:.0f} s with {c.finished} of {n} "
            f"copies done, {si(c.rate, '/s')} measured; the last copy at "
            f"~{c.extrapolated:.0f} s EXTRAPOLATED (bound N F / u_s = "
            f"{run.bound_central:.0f} s)"
        )
    elif run.central.times and not run.central.failed:
        lines.append(f"central server at N = {n}: last copy {run.central.total:.1f} s (measured)")
    return lines


def scenario_json(preset: Scenario, run: Run, file_size: int) -> dict[str, object]:
    """The preset and what it came to beside the claim, for ``--json``."""
    window, peak = peak_rate(run.swarm.samples)
    return {
        "name": preset.name,
        "claim": preset.claim,
        "scale": preset.scale,
        "real": {"peers": preset.real_peers, "size": preset.real_size, "rate": preset.real_rate},
        "header": preset.header(run.peers, file_size),
        "n_times_u": run.peers * preset.rate,
        "peak_upload_rate": round(peak, 1),
        "peak_window": window,
        "lines": scenario_lines(preset, run, file_size),
    }


__all__ = [
    "RATE_WINDOW",
    "SCENARIOS",
    "TEXTS",
    "Scenario",
    "peak_rate",
    "rates",
    "scenario_json",
    "scenario_lines",
    "si",
]
