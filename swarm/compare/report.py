"""The table of ``swarm compare`` and the lines under it, built here and printed by the CLI:
each N's central and swarm rows (and the swarm with churn, with ``--churn``), the bounds, what
F, u_s, u and d_min were, the spread of repeated N, and what failed, was cut off or churned."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from swarm import native
from swarm.compare.results import ModeResult, Run
from swarm.units import format_rate, format_size

if TYPE_CHECKING:
    from rich.table import Table

    from swarm.compare.churn import Churn
    from swarm.compare.scenario import Scenario


def table(
    runs: list[Run],
    name: str,
    file_size: int,
    u_s: int,
    u: int,
    d_min: int | None,
    churn: Churn | None = None,
) -> tuple[Table, list[str]]:
    """The table and the lines to print under it."""
    from rich.table import Table

    t = Table(
        title=f"{name}: {format_size(file_size)} to N downloaders; server and seed upload "
        f"{format_rate(u_s)}, each peer {format_rate(u)}",
    )
    noted = any(
        m.outcome or m.cutoff or m.churn
        for r in runs
        for m in (r.central, r.swarm, r.churned, r.hybrid)
        if m
    )
    cols = ["N", "mode", "min", "median", "max", "total", "bound", "vs bound", "speedup"]
    for col in cols + (["what happened"] if noted else []):
        t.add_column(col, justify="right" if col in cols[2:] else "left")
    for r in runs:
        for label, mode, res, bound in _rows(r, file_size):
            t.add_row(str(r.peers), label, *_cells(r, mode, res, bound, noted))
    away = " (time away included)" if any(r.churned is not None for r in runs) else ""
    t.caption = f"times in seconds, from 'go' to each verified copy{away}"
    lines = [
        f"F = {format_size(file_size)} (the file), u_s = {format_rate(u_s)} (the central "
        f"server's and the seed's upload), u = {format_rate(u)} (each peer's upload), "
        f"d_min = {format_rate(d_min) if d_min else 'no cap'} (each downloader's download)",
        "bounds (Kurose & Ross): D_cs = max(N*F/u_s, F/d_min); "
        "D_p2p = max(F/u_s, F/d_min, N*F/(u_s + N*u)); speedup = central total / swarm total "
        "(hybrid's: central total / hybrid total)",
        _download_cap(d_min),
        *_server_lines(runs, u_s),
    ]
    if any(r.per_process > 1 for r in runs):
        ks = ", ".join(f"N={r.peers}: {r.per_process}" for r in runs if r.per_process > 1)
        lines.append(f"downloaders per process (each its own peer, timed alone): {ks}")
    lines += _spread_lines(runs)
    if churn is not None:
        lines.append(churn.describe())
        lines += churn_lines(runs)
    for r in runs:
        modes = [
            ("central", r.central),
            ("swarm", r.swarm),
            ("swarm + churn", r.churned),
            ("hybrid", r.hybrid),
        ]
        for mode, m in modes:
            if m is not None and m.failed:
                lines.append(f"N={r.peers} {mode}: failed: {m.failed}")
            if m is not None and m.cutoff is not None:
                lines.append(f"N={r.peers} {mode}: stopped: {m.cutoff.note()}")
    return t, lines


def result_json(
    runs: list[Run], info: dict[str, Any], lab: bool, churn: Churn | None, preset: Scenario | None
) -> dict[str, Any]:
    """What ``--json`` prints (and ``--web``'s page links to); *info*: the file's name and
    size and the rates u_s, u and d."""
    obj: dict[str, Any] = {
        "file": info["file"],  # the synthetic file's own name with --size
        "file_size": info["size"],
        "upload_rate": info["upload_rate"],
        "peer_upload_rate": info["peer_upload_rate"],
        "download_rate": info["download_rate"],
        "caps": "kernel (netns lab, tc tbf)" if lab else "swarm",
        # the swarm's peers: TCP, like the central mode's HTTP, unless --utp (uTP first)
        "transport": "utp" if info.get("utp") else "tcp",
        "runs": [r.as_dict() for r in runs],
        # the hot path compiled (swarm build-native) or pure Python, in this process and
        # so in its children, which import the same package
        "core": native.loaded_state(),
    }
    if churn is not None:
        obj["churn"] = churn.as_dict()
    if preset is not None:
        from swarm.compare.scenario import scenario_json

        obj["scenario"] = scenario_json(preset, runs[0], info["size"])
    return obj


def _rows(r: Run, file_size: int) -> list[tuple[str, str, ModeResult, float]]:
    """(label, mode, result, bound) of each mode run at this N, in the table's order."""
    central = "central" if r.central_server == "swarm" else f"central ({r.central_server})"
    rows = [
        (central, "central", r.central, r.bound_central),
        ("swarm", "swarm", r.swarm, r.bound_swarm),
    ]
    rows = [row for row in rows if row[2].ran]
    if r.churned is not None:
        rows.append(("swarm + churn", "swarm + churn", r.churned, r.bound_swarm))
    if r.hybrid is not None and r.bound_hybrid is not None:
        share = r.hybrid.webseed_share(file_size)
        label = "hybrid" if share is None else f"hybrid (web seed {100 * share:.0f}%)"
        rows.append((label, "hybrid", r.hybrid, r.bound_hybrid))
    return rows


def _server_lines(runs: list[Run], u_s: int) -> list[str]:
    """Which program served the central mode and the hybrid's web seed, how each was capped,
    and why hybrid did not run where it was skipped."""
    lines = []
    r = runs[0]
    if r.central_server == "nginx":
        lines.append(
            "central server: nginx (--central nginx); its limit_rate is per request, so each of "
            "the N downloads (one request each, all at once) gets F*u_s/(N*F + u_s), about "
            "u_s/N (nginx sends a second ahead of its rate): u_s in all; under --lab netns "
            "nginx is uncapped and the kernel caps its link at u_s"
        )
    if r.webseed_server is not None:
        lines.append(
            f"hybrid: the central server ({r.webseed_server}, {format_rate(u_s)} in all) is the "
            "only web seed (BEP 19) of the N peers, no seed; bound = D_p2p (u_s_total = u_s): "
            "max(F/u_s, F/d_min, N*F/(u_s + N*u)); 'web seed X%': its share of the bytes"
        )
    if r.hybrid_skipped is not None:
        lines.append(f"hybrid: not run: {r.hybrid_skipped}")
    return lines


def _cells(r: Run, mode: str, res: ModeResult, bound: float, noted: bool) -> list[str]:
    note = [_note(res, r.peers)] if noted else []
    if res.cutoff is not None:
        c = res.cutoff
        return [
            *_finished_figures(res.times),
            f"~{c.extrapolated:.0f} extrapolated",
            f"{bound:.2f}",
            f"~{c.extrapolated / bound:.2f}x",
            "",
            *note,
        ]
    if res.failed:
        return [*_finished_figures(res.times), "failed", f"{bound:.2f}", "", "", *note]
    d = res.figures()
    against = mode in ("swarm", "hybrid") and r.central.ran
    if against and r.central.cutoff is not None:
        speedup = f"~{r.central.cutoff.extrapolated / d['total']:.0f}x extrapolated"
    elif against and not r.central.failed:
        speedup = f"{r.central.total / d['total']:.2f}x"
    else:
        speedup = ""
    return [
        f"{d['min']:.2f}",
        f"{d['median']:.2f}",
        f"{d['max']:.2f}",
        f"{d['total']:.2f}",
        f"{bound:.2f}",
        f"{d['total'] / bound:.2f}x",
        speedup,
        *note,
    ]


def _note(res: ModeResult, n: int) -> str:
    parts = []
    if res.outcome is not None:
        parts.append(res.outcome.note())
    if res.cutoff is not None:
        done = f"{res.cutoff.finished} of {n} done"
        parts.append(f"stopped at {res.cutoff.at:.0f} s (cutoff), {done}")
    if res.churn is not None:
        parts.append(res.churn.note(n))
    return "; ".join(parts)


def churn_lines(runs: list[Run]) -> list[str]:
    """'N=8: churn delayed the median copy by +1.23 s and the last by +2.10 s'."""
    lines = []
    for r in runs:
        if r.churned is None:
            continue
        d = r.churn_delay
        if d is None:
            lines.append(f"N={r.peers}: churn delay unknown (a swarm phase did not finish)")
            continue
        lines.append(
            f"N={r.peers}: churn delayed the median copy by {d['median']:+.2f} s and the last "
            f"by {d['total']:+.2f} s (with churn minus without, the same run)"
        )
    return lines


def _spread_lines(runs: list[Run]) -> list[str]:
    """For each N run more than once, how far each mode's totals spread (the runs where that
    mode finished: one cut off or failed has no total)."""
    lines = []
    for n in sorted({r.peers for r in runs}):
        same = [r for r in runs if r.peers == n]
        if len(same) < 2:
            continue
        parts = []
        modes: list[tuple[str, list[ModeResult | None]]] = [
            ("central", [r.central for r in same]),
            ("swarm", [r.swarm for r in same]),
            ("swarm + churn", [r.churned for r in same]),
            ("hybrid", [r.hybrid for r in same]),
        ]
        for mode, results in modes:
            totals = [t for m in results if m is not None and not math.isnan(t := m.total)]
            if len(totals) < 2:
                continue
            lo, hi, mid = min(totals), max(totals), statistics.median(totals)
            parts.append(f"{mode} {lo:.2f} to {hi:.2f} s (spread {100 * (hi - lo) / mid:.0f}%)")
        if parts:
            lines.append(f"N={n}, {len(same)} runs: total " + "; ".join(parts))
    return lines


def _finished_figures(times: list[float]) -> list[str]:
    """min, median and max of the downloaders that finished in a failed mode ('-' if none)."""
    if not times:
        return ["-", "-", "-"]
    return [f"{min(times):.2f}", f"{statistics.median(times):.2f}", f"{max(times):.2f}"]


def _download_cap(d: int | None) -> str:
    """What ``--download-rate`` came to, in words (0 and none mean no cap)."""
    if d is None:
        return "d_min: no download cap (--download-rate not given, 0 or none), so F/d_min = 0"
    return f"d_min: each downloader downloads at most {format_rate(d)} (--download-rate)"


def out_of_time(runs: list[Run]) -> str | None:
    """The error line for a phase that ran out of ``--timeout`` (its mode failed and the table
    says how far it came; the comparison went on), or None."""
    for r in runs:
        modes = {"central": r.central, "swarm": r.swarm, "hybrid": r.hybrid, "churn": r.churned}
        for mode, m in modes.items():
            if m is not None and m.outcome is not None and not m.outcome.faults:
                return f"error: N={r.peers} {mode}: {m.outcome.failed()}"
    return None
