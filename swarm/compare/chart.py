"""The chart of ``swarm compare``: time against N for both modes beside both bounds, and the
distribution of completion times (CDF) of each mode at the largest N. A mode that failed
(``--fail``) has no point for its N, and its CDF stops below 1."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarm.compare.results import ModeResult, Run

DEFAULT_CHART = Path("swarm-compare.png")
"""Where ``swarm compare`` draws its chart unless told otherwise (the current folder)."""

LOG_X_RATIO = 8
"""With the largest N at least this many times the smallest, N goes on a log scale."""


def by_n(runs: list[Run]) -> dict[int, list[Run]]:
    """The runs grouped by N (an N may have been run several times), N ascending."""
    out: dict[int, list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.peers):
        out.setdefault(r.peers, []).append(r)
    return out


def plot(
    runs: list[Run], out: Path, file_size: int, server_rate: int, peer_rate: int | None = None
) -> None:
    """Left: the time to the last copy against N, measured (the median of repeated runs, bars
    from the fastest to the slowest) and bound, for both modes. Middle: the share of the
    downloaders done against time at the largest N, both modes (and the swarm with churn),
    with their bounds. With *peer_rate* (``--scenario``) and samples, right: the swarm's total
    upload rate over time beside N x u."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_n(runs)
    ns = list(groups)
    last = groups[ns[-1]]
    rate_panel = peer_rate is not None and any(r.swarm.samples for r in last)
    fig, axes = plt.subplots(1, 3 if rate_panel else 2, figsize=(18 if rate_panel else 12, 4.5))
    fig.set_dpi(120)
    ax, cdf = axes[0], axes[1]
    for mode, colour, bound_of in _modes(runs):
        # A failed run (--fail) has no total: its point is left out, and an N none of whose
        # runs finished is marked with an X at the foot of the axis.
        ok = {n: [t for r in groups[n] if not math.isnan(t := _of(r, mode).total)] for n in ns}
        xs = [n for n in ns if ok[n]]
        mid = [statistics.median(ok[n]) for n in xs]
        low = [m - min(ok[n]) for m, n in zip(mid, xs, strict=True)]
        high = [max(ok[n]) - m for m, n in zip(mid, xs, strict=True)]
        name = {"central": "central server", "hybrid": "hybrid (server as web seed)"}.get(
            mode, mode
        )
        if xs:
            ax.errorbar(
                *(xs, mid),
                yerr=[low, high],
                fmt="o-",
                color=colour,
                capsize=3,
                label=f"{name} (measured)",
            )
        # A phase stopped at its cutoff (--scenario): its extrapolated end, an open marker.
        ext = {n: [c.extrapolated for r in groups[n] if (c := _of(r, mode).cutoff)] for n in ns}
        if ext_ns := [n for n in ns if ext[n] and not ok[n]]:
            ax.plot(
                ext_ns,
                [statistics.median(ext[n]) for n in ext_ns],
                "o",
                mfc="none",
                color=colour,
                label=f"{name} (EXTRAPOLATED from its cutoff)",
            )
        if failed := [n for n in ns if not ok[n] and not ext[n]]:
            ax.plot(
                failed,
                [0] * len(failed),
                "X",
                color=colour,
                ms=10,
                clip_on=False,
                label=f"{name} failed (--fail)",
            )
        bound_name = "D_cs" if mode == "central" else "D_p2p"
        ax.plot(
            ns,
            [bound_of(groups[n][0]) for n in ns],
            "x--",
            color=colour,
            alpha=0.6,
            label=f"{name} bound {bound_name}",
        )
        last = groups[ns[-1]]
        # Shares of all the N: a failed mode's curve stops short of 1.
        times = sorted(t for r in last for t in _of(r, mode).times)
        share = [(i + 1) / (len(last) * ns[-1]) for i in range(len(times))]
        cut = [c for r in last if (c := _of(r, mode).cutoff)]
        if cut:
            # Hours away: its bound and end are said in the legend, not drawn.
            ends = f"~{statistics.median(c.extrapolated for c in cut):.0f} s"
            name += f" (cut off at {cut[0].at:.0f} s; last copy {ends}, EXTRAPOLATED)"
        cdf.step([0.0, *times], [0.0, *share], where="post", color=colour, label=name)
        if not cut and bound_of(last[0]) is not None:
            cdf.axvline(bound_of(last[0]), color=colour, linestyle="--", alpha=0.6)

    if ns[-1] >= LOG_X_RATIO * ns[0]:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("downloaders N")
    ax.set_ylabel("time until the last copy is complete (s)")
    mib = file_size / 2**20
    ax.set_title(f"{mib:.1f} MiB to N peers, server upload {server_rate / 2**20:.2f} MiB/s")
    ax.grid(True, alpha=0.3)
    ax.legend()
    top = ax.get_ylim()[1]
    if any(r.central.cutoff for r in runs) and top > 30 * min(r.bound_swarm for r in runs):
        ax.set_yscale("log")  # an extrapolated central end hours away beside the swarm's
    else:
        ax.set_ylim(bottom=0)
    if churn_ns := [n for n in ns if any(_churn_total(r) for r in groups[n])]:
        mids = [
            statistics.median([ct for r in groups[n] if (ct := _churn_total(r))]) for n in churn_ns
        ]
        ax.plot(churn_ns, mids, "o", color="tab:green", label="swarm + churn (measured)")
        ax.legend()
    churned = [r.churned for r in last if r.churned is not None]
    if churned:
        times = sorted(t for c in churned for t in c.times)
        share = [(i + 1) / (len(churned) * ns[-1]) for i in range(len(times))]
        cdf.step(
            [0.0, *times], [0.0, *share], where="post", color="tab:green", label="swarm + churn"
        )
    if rate_panel and peer_rate is not None:
        _rate_panel(axes[2], last, ns[-1], server_rate, peer_rate)
    cdf.set_title(f"when each of the N = {ns[-1]} downloaders finished (dashed: bounds)")
    cdf.set_xlabel("seconds from 'go'")
    cdf.set_ylabel("share of downloaders done")
    cdf.set_ylim(0, 1.02)
    cdf.set_xlim(left=0)
    cdf.grid(True, alpha=0.3)
    cdf.legend(loc="upper left")  # a CDF is 0 early, 1 late: upper left is free
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _of(r: Run, mode: str) -> ModeResult:
    """The result of *mode* in run *r* (a hybrid never run: an empty result, not run)."""
    res: ModeResult | None = getattr(r, mode)
    return ModeResult(ran=False) if res is None else res


def _modes(runs: list[Run]) -> list[tuple[str, str, Callable[[Run], Any]]]:
    """The modes that ran, their colour and their bound: central and swarm unless --modes
    left them out; hybrid where it ran (its bound is None at an N where it did not)."""
    out: list[tuple[str, str, Callable[[Run], Any]]] = []
    if any(r.central.ran for r in runs):
        out.append(("central", "tab:red", lambda r: r.bound_central))
    if any(r.swarm.ran for r in runs):
        out.append(("swarm", "tab:blue", lambda r: r.bound_swarm))
    if any(r.hybrid is not None for r in runs):
        out.append(("hybrid", "tab:purple", lambda r: r.bound_hybrid))
    return out


def _rate_panel(ax: Any, runs: list[Run], n: int, server_rate: int, peer_rate: int) -> None:
    """The swarm's total upload rate over time (bytes landing in the downloaders' folders,
    per second), beside N x u and u_s + N x u."""
    from swarm.compare.scenario import rates

    longest = max((r.swarm.samples[-1][0] for r in runs if r.swarm.samples), default=0.0)
    window = 2.0 if longest >= 20 else 1.0

    for label, colour, results in (
        ("swarm", "tab:blue", [r.swarm for r in runs]),
        ("swarm + churn", "tab:green", [r.churned for r in runs if r.churned is not None]),
    ):
        for k, res in enumerate(results):
            points = rates(res.samples, window)
            if points:
                xs, ys = zip(*points, strict=True)
                name = label if k == 0 else None
                ax.plot(xs, [y / 1e6 for y in ys], color=colour, label=name)
    ax.axhline(n * peer_rate / 1e6, color="black", linestyle="--", label="N x u")
    ax.axhline(
        (server_rate + n * peer_rate) / 1e6, color="grey", linestyle=":", label="u_s + N x u"
    )
    ax.set_title(f"the swarm's total upload rate, N = {n} ({window:g} s means)")
    ax.set_xlabel("seconds from 'go'")
    ax.set_ylabel("MB/s (decimal) delivered to the downloaders")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower center")  # the ramp is at the left, the tail at the right


def _churn_total(r: Run) -> float | None:
    """The swarm-with-churn phase's last copy (None: no churn, or it did not finish)."""
    if r.churned is None or math.isnan(r.churned.total):
        return None
    return r.churned.total
