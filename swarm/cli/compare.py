"""``swarm compare``: central server against swarm, measured side by side."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import INTERRUPTED, SETTINGS, run_until_signal, unless_stopped
from swarm.errors import StorageError, UsageError
from swarm.units import format_rate, format_size, parse_rate, parse_size

if TYPE_CHECKING:
    from swarm.compare import Run

DEFAULT_RATE = "1M"
DEFAULT_PEERS = "8"
MAX_PEERS = 200  # the same as swarm.compare.experiment.MAX_PEERS (not imported: start-up time)


def _peer_counts(text: str) -> list[int]:
    """``--peers``: one N or a comma-separated list, every item a whole number (an empty item,
    as in ``1,,2`` or ``1,2,``, is a mistake, not something to skip)."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--peers takes a number or a list like 1,2,4,8, not {text!r}") from None
    if any(n < 1 or n > MAX_PEERS for n in counts):
        raise UsageError(f"--peers: each N must be between 1 and {MAX_PEERS}")
    return counts


@click.command("compare")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--peers",
    default=DEFAULT_PEERS,
    show_default=True,
    help=f"N downloaders, or a list such as 1,2,4,8,16; N at most {MAX_PEERS}: every "
    "downloader is a real peer on one machine (its port, its copy of the file, its share of the "
    "cores), and beyond that the machine, not the protocol, is what gets measured.",
)
@click.option(
    "--peers-per-process",
    "per_process",
    type=click.IntRange(1, MAX_PEERS),
    default=None,
    metavar="K",
    help="Run K downloaders in one process, in both phases (each still its own peer: own "
    "port, peer id, caps, folder and time). Default: 1 while N <= 8 per core (16 on 2 "
    "cores), beyond that N spread over 2 processes per core (N = 100 on 2 cores: 25).",
)
@click.option(
    "--upload-rate",
    default=DEFAULT_RATE,
    show_default=True,
    help="u_s: upload cap of the central server and of the seed.",
)
@click.option(
    "--peer-upload-rate",
    default=None,
    help="u: upload cap of each swarm downloader (default: the same as u_s).",
)
@click.option(
    "--download-rate",
    default=None,
    metavar="RATE",
    help="d: download cap of every downloader; 0 or none (the default) means no cap, and the "
    "output says 'no download cap'.",
)
@click.option(
    "--size", default=None, help="Use a synthetic file of this size (e.g. 16M) instead of PATH."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds a phase may take.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object instead of the table (rates in bytes/s; null: no cap).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to draw the chart (time against N beside the bounds, and when each downloader "
    "finished), a PNG; by default swarm-compare.png in the current folder.",
)
@click.option("--no-plot", is_flag=True, help="Draw no chart.")
@click.option(
    "--lab",
    type=click.Choice(["none", "netns"]),
    default="none",
    show_default=True,
    help="netns: run every process in a network namespace of its own on one bridge, its "
    "links capped by the kernel (tc tbf) rather than by swarm's own rate limits, one "
    "downloader to a process (needs root).",
)
@click.option(
    "--fail",
    "fail",
    multiple=True,
    metavar="PART@TIME",
    help="Kill (SIGKILL) a part TIME seconds after 'go' of each phase where it matters: "
    "central (the central server, in the central phase), tracker or seed (in the swarm "
    "phase); e.g. central@5s, seed@2.5s; repeat it or give a list (tracker@1s,seed@3s). A "
    "phase that can no longer finish (no progress for 5 s after the kill) ends and the mode "
    "is reported failed, with how many finished. The parts are started again before the next "
    "N, so each N meets the same faults.",
)
def compare_command(
    path: Path | None,
    peers: str,
    per_process: int | None,
    upload_rate: str,
    peer_upload_rate: str | None,
    download_rate: str | None,
    size: str | None,
    timeout: float,
    as_json: bool,
    plot_path: Path | None,
    no_plot: bool,
    lab: str,
    fail: tuple[str, ...],
) -> None:
    """Share one file to N downloaders from a central server and from a swarm; compare."""
    from swarm.compare import Experiment, plot, prepare_path, run_experiment
    from swarm.compare.chart import DEFAULT_CHART
    from swarm.compare.faults import parse_faults

    counts = _peer_counts(peers)
    faults = parse_faults(fail)
    if not math.isfinite(timeout):
        raise UsageError(f"--timeout must be a number of seconds, not {timeout}")
    u_s = parse_rate(upload_rate)
    if u_s is None:
        raise UsageError("--upload-rate must be a finite rate: the comparison needs a cap")
    u = parse_rate(peer_upload_rate) if peer_upload_rate else u_s
    if u is None:
        raise UsageError("--peer-upload-rate must be a finite rate: 0 or none would mean no cap")
    d = parse_rate(download_rate) if download_rate else None
    nbytes = parse_size(size) if size else None
    if path is not None and size is not None:
        raise UsageError("give PATH or --size, not both")
    if lab == "netns":
        from swarm.compare.netlab import lab_problem

        problem = lab_problem()
        if problem:
            raise UsageError(problem)
        if per_process not in (None, 1):
            raise UsageError("--lab netns runs one downloader to a process: no --peers-per-process")
    if no_plot and plot_path is not None:
        raise UsageError("give --plot or --no-plot, not both")
    plot_path = None if no_plot else (plot_path or DEFAULT_CHART)
    if plot_path and not plot_path.parent.is_dir():
        raise UsageError(f"--plot {plot_path}: no such folder {plot_path.parent}")
    quiet = SETTINGS.quiet or as_json

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    # Until the event loop takes the signals over, SIGTERM ends the command as SIGINT does:
    # by an exception, so that the temporary folder (and a half-built --size file) goes.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _check_space(path, nbytes, counts)
    with tempfile.TemporaryDirectory(prefix="swarm-compare-src-") as tmp:
        file = prepare_path(path, nbytes, Path(tmp))
        exp = Experiment(
            file,
            counts,
            u_s,
            u,
            d,
            timeout,
            on_event=say,
            per_process=per_process,
            lab=lab == "netns",
            faults=faults,
        )

        async def main(stop: asyncio.Event) -> int:
            task = await unless_stopped(run_experiment(exp), stop)
            if task is None:
                click.echo("error: interrupted; everything started was stopped", err=True)
                return INTERRUPTED  # 130 for SIGINT, 143 for SIGTERM
            runs = task.result()
            file_size = file.stat().st_size
            if as_json:
                obj = {
                    "file": file.name,  # the synthetic file's own name with --size
                    "file_size": file_size,
                    "upload_rate": u_s,
                    "peer_upload_rate": u,
                    "download_rate": d,
                    "caps": "kernel (netns lab, tc tbf)" if lab == "netns" else "swarm",
                    "runs": [r.as_dict() for r in runs],
                }
                click.echo(json.dumps(obj))
            else:
                _table(runs, file.name, file_size, u_s, u, d)
                if lab == "netns":
                    click.echo("caps: enforced by the kernel (tc tbf) on each host's links")
            if plot_path:
                try:
                    plot(runs, plot_path, file_size, u_s)
                except OSError as exc:
                    raise StorageError(f"cannot write {plot_path}: {exc.strerror or exc}") from None
                click.echo(f"chart: {plot_path}", err=as_json)
            return 0

        raise SystemExit(run_until_signal(main))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _check_space(path: Path | None, nbytes: int | None, counts: list[int]) -> None:
    """Refuse, before anything is written, a comparison the temporary folder has no room for."""
    from swarm.compare import space_needed
    from swarm.compare.experiment import default_sample

    source = path if path is not None else default_sample()
    if nbytes is None and (source is None or not source.is_file()):
        return  # prepare_path says what is wrong
    size = nbytes if nbytes is not None else source.stat().st_size  # type: ignore[union-attr]
    need = space_needed(size, counts, synthetic=nbytes is not None)
    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free
    if need > free:
        what = f"--size {format_size(nbytes)}" if nbytes is not None else str(source)
        raise UsageError(
            f"{what} with N up to {max(counts)} needs {format_size(need)} in {tmp} "
            f"(the copies of one phase at once), and only {format_size(free)} is free"
        )


def _spread_lines(runs: list[Run]) -> list[str]:
    """For each N run more than once, how far its measurements spread."""
    lines = []
    for n in sorted({r.peers for r in runs}):
        same = [r for r in runs if r.peers == n and not (r.central.failed or r.swarm.failed)]
        if len(same) < 2:
            continue
        parts = []
        for mode in ("central", "swarm"):
            totals = [getattr(r, mode).total for r in same]
            lo, hi, mid = min(totals), max(totals), statistics.median(totals)
            parts.append(f"{mode} {lo:.2f} to {hi:.2f} s (spread {100 * (hi - lo) / mid:.0f}%)")
        lines.append(f"N={n}, {len(same)} runs: total " + "; ".join(parts))
    return lines


def _table(runs: list[Run], name: str, file_size: int, u_s: int, u: int, d_min: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{name}: {format_size(file_size)} to N downloaders; server and seed upload "
        f"{format_rate(u_s)}, each peer {format_rate(u)}",
    )
    faulted = any(r.central.outcome or r.swarm.outcome for r in runs)
    cols = ["N", "mode", "min", "median", "max", "total", "bound", "vs bound", "speedup"]
    for col in cols + (["what happened (--fail)"] if faulted else []):
        table.add_column(col, justify="right" if col in cols[2:] else "left")
    for r in runs:
        for mode, res, bound in (
            ("central", r.central, r.bound_central),
            ("swarm", r.swarm, r.bound_swarm),
        ):
            note = [res.outcome.note() if res.outcome else ""] if faulted else []
            if res.failed:
                figures = _finished_figures(res.times)
                table.add_row(str(r.peers), mode, *figures, "failed", f"{bound:.2f}", "", "", *note)
                continue
            d = res.figures()
            table.add_row(
                str(r.peers),
                mode,
                f"{d['min']:.2f}",
                f"{d['median']:.2f}",
                f"{d['max']:.2f}",
                f"{d['total']:.2f}",
                f"{bound:.2f}",
                f"{d['total'] / bound:.2f}x",
                f"{r.speedup:.2f}x" if mode == "swarm" and not r.central.failed else "",
                *note,
            )
    table.caption = "times in seconds, from 'go' to each verified copy"
    grouped = sorted({r.per_process for r in runs if r.per_process > 1})
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)
    console.print(table)
    click.echo(
        f"F = {format_size(file_size)} (the file), u_s = {format_rate(u_s)} (the central "
        f"server's and the seed's upload), u = {format_rate(u)} (each peer's upload), "
        f"d_min = {format_rate(d_min) if d_min else 'no cap'} (each downloader's download)"
    )
    click.echo(
        "bounds (Kurose & Ross): D_cs = max(N*F/u_s, F/d_min); "
        "D_p2p = max(F/u_s, F/d_min, N*F/(u_s + N*u)); speedup = central total / swarm total"
    )
    click.echo(_download_cap(d_min))
    if grouped:
        ks = ", ".join(f"N={r.peers}: {r.per_process}" for r in runs if r.per_process > 1)
        click.echo(f"downloaders per process (each its own peer, timed alone): {ks}")
    for line in _spread_lines(runs):
        click.echo(line)
    for r in runs:
        for mode, res in (("central", r.central), ("swarm", r.swarm)):
            if res.failed:
                click.echo(f"N={r.peers} {mode}: failed: {res.failed}")


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
