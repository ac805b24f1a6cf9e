"""``swarm compare``: central server against swarm, measured side by side."""

from __future__ import annotations

import asyncio
import json
import math
import random
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from swarm.cli.common import SETTINGS
from swarm.cli.running import INTERRUPTED, run_until_signal, unless_stopped
from swarm.errors import StorageError, UsageError
from swarm.units import parse_rate, parse_size

if TYPE_CHECKING:
    from swarm.compare import Run
    from swarm.compare.churn import Churn
    from swarm.compare.web.server import WebPage

DEFAULT_RATE = "1M"
DEFAULT_PEERS = "8"
DEFAULT_MODES = "central,swarm,hybrid"
MAX_PEERS = 200  # the same as swarm.compare.settings.MAX_PEERS (not imported: start-up time)


@click.command("compare")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--peers",
    default=None,
    help=f"N downloaders (default {DEFAULT_PEERS}), or a list such as 1,2,4,8,16; N at most "
    f"{MAX_PEERS}: every downloader is a real peer on one machine (its port, its copy of the "
    "file, its share of the cores), and beyond that the machine, not the protocol, is what "
    "gets measured.",
)
@click.option(
    "--peers-per-process",
    "per_process",
    type=click.IntRange(1, MAX_PEERS),
    default=None,
    metavar="K",
    help="Run K downloaders in one process, in both phases (each still its own peer: own "
    "port, peer id, caps, folder and time). Default: 1 while N <= 8 per core (16 on 2 "
    "cores), beyond that N spread over 3 processes per 2 cores (N = 100 on 2 cores: 34).",
)
@click.option(
    "--upload-rate",
    default=None,
    help=f"u_s: upload cap of the central server and of the seed (default {DEFAULT_RATE}).",
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
    help="Seconds a phase may take (one that runs out fails; the rest run; exit 1).",
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
    help="netns: every process in a network namespace of its own, its links capped by the "
    "kernel (tc tbf), not by swarm; a process per downloader (root; past 8 a core the cores "
    "set the times).",
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
@click.option(
    "--churn",
    "churn_rate",
    default=None,
    metavar="RATE",
    help="Run the swarm phase twice, without and then with churn, and report both and the "
    "delay: each leecher leaves RATE times a minute on average while downloading (6 or "
    "6/min; 0.1/s is the same), stays away --churn-away seconds, then resumes from the "
    "pieces it has; its time runs from the first 'go', the time away included. The seed stays "
    "unless --churn-seed-leaves.",
)
@click.option(
    "--churn-away",
    type=click.FloatRange(0),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a leecher that leaves stays away (the texts' '2 s').",
)
@click.option(
    "--churn-seed",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="The random seed of the churn schedule; the same seed, N and rate give the same "
    "departures (default: a random one, printed so that the run can be repeated).",
)
@click.option(
    "--churn-seed-leaves",
    is_flag=True,
    help="With --churn: the seed leaves for good once a leecher is done (the swarm then holds "
    "every piece); without it the seed stays.",
)
@click.option(
    "--scenario",
    type=click.Choice(["texts"]),
    default=None,
    help="texts: the texts' '100 peers share a 1 GB file at 10 MB/s each', every byte "
    "divided by 100 and every second kept: N = 100, a 10 MB synthetic file, 100 kB/s upload "
    "for the server, the seed and each peer, no download cap; the central phase (10,000 s) "
    "stops at 30 s and its end is extrapolated (said so); the table adds the swarm's total "
    "upload rate beside N x u, the chart its curve. --peers, --size and --central-cutoff "
    "replace N, F and the 30 s (the output says so).",
)
@click.option(
    "--central-cutoff",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop the central phase after SECONDS and extrapolate its end from the bytes that "
    "came (labelled extrapolated); default 30 with --scenario, else --timeout if D_cs is past it.",
)
@click.option(
    "--modes",
    default=None,
    metavar="LIST",
    help="Which modes to run, a list of central, swarm and hybrid (default all three; "
    "central,swarm with --scenario). hybrid: the central server, capped at u_s as in the "
    "central mode, is the web seed (BEP 19) of N peers and there is no seed: the same server "
    "budget u_s, two kinds of source; its bound is D_p2p (u_s the only upload beside the "
    "peers'). Not run with --fail (it has no seed or tracker of the swarm's to kill).",
)
@click.option(
    "--central",
    type=click.Choice(["swarm", "nginx"]),
    default="swarm",
    show_default=True,
    help="Which server runs the central mode: swarm's serve-central, or Debian's nginx "
    "(started in a temporary prefix of its own). nginx caps a request, not a server "
    "(limit_rate), so at each N it gets about u_s / N (F*u_s/(N*F + u_s): nginx sends a "
    "second ahead of its rate): the N downloaders start together, one request each, u_s in "
    "all. With --lab netns the kernel caps its link at u_s and nginx runs uncapped, and "
    "serves hybrid's web seed too; without it the web seed "
    "stays swarm's own server (a per-request cap cannot share u_s between peers that come "
    "and go). The table says which ran.",
)
@click.option(
    "--web",
    metavar="[HOST:]PORT",
    help="Serve a live page of the run at http://HOST:PORT/ (HOST 127.0.0.1 if left out, PORT 0 "
    "any; the URL is printed): progress, piece map, rates, then table, chart and JSON; compare "
    "exits at the end as ever (the page keeps what it has) unless --web-stay.",
)
@click.option("--web-stay", is_flag=True, help="With --web: serve the page on after the run.")
@click.option("--utp", is_flag=True, help="Peers dial uTP first, as clients do (default: TCP).")
def compare_command(
    path: Path | None,
    peers: str | None,
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
    churn_rate: str | None,
    churn_away: float,
    churn_seed: int | None,
    churn_seed_leaves: bool,
    scenario: str | None,
    central_cutoff: float | None,
    modes: str | None,
    central: str,
    web: str | None,
    web_stay: bool,
    utp: bool,
) -> None:
    """Share one file to N downloaders from a central server, from a swarm, and from both
    (the server as the swarm's web seed); compare."""
    from swarm.compare import Experiment, options, plot, prepare_path, run_experiment
    from swarm.compare.chart import DEFAULT_CHART
    from swarm.compare.churn import Churn
    from swarm.compare.churn import parse_rate as parse_churn
    from swarm.compare.faults import parse_faults
    from swarm.compare.options import check_central, check_space, check_web, parse_modes
    from swarm.compare.scenario import SCENARIOS

    preset = SCENARIOS[scenario] if scenario else None
    if preset is not None:
        given = (upload_rate, peer_upload_rate, download_rate)
        if path is not None or any(x is not None for x in given):
            raise UsageError(
                f"--scenario {scenario} sets the file and the rates: no PATH, --upload-rate, "
                "--peer-upload-rate or --download-rate (--peers and --size may replace N and F)"
            )
        peers = peers if peers is not None else str(preset.real_peers)
        size = size if size is not None else str(preset.size)
        upload_rate = str(preset.rate)
        central_cutoff = central_cutoff if central_cutoff is not None else preset.cutoff
    counts = options.peer_counts(peers if peers is not None else DEFAULT_PEERS)
    chosen = parse_modes(modes if modes is not None else DEFAULT_MODES)
    if preset is not None and modes is None:
        chosen = ("central", "swarm")  # hybrid at N = 100 would add minutes: ask for it
    if (preset is not None or churn_rate is not None) and not {"central", "swarm"} <= set(chosen):
        raise UsageError(
            "--scenario and --churn set the swarm beside the central server: "
            "--modes must include central and swarm"
        )
    if preset is not None and len(counts) > 1:
        raise UsageError(f"--scenario {scenario} runs one N: give --peers a single number")
    faults = parse_faults(fail)
    churn = None
    if churn_rate is not None:
        seed = churn_seed if churn_seed is not None else random.SystemRandom().randrange(10**6)
        churn = Churn(parse_churn(churn_rate), churn_away, seed, churn_seed_leaves)
    elif churn_seed is not None or churn_seed_leaves:
        raise UsageError("--churn-seed and --churn-seed-leaves are for --churn")
    if not math.isfinite(timeout):
        raise UsageError(f"--timeout must be a number of seconds, not {timeout}")
    u_s = parse_rate(upload_rate if upload_rate is not None else DEFAULT_RATE)
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
    check_central(central, chosen, bool(faults), lab == "netns")
    if no_plot and plot_path is not None:
        raise UsageError("give --plot or --no-plot, not both")
    plot_path = None if no_plot else (plot_path or DEFAULT_CHART)
    if plot_path and not plot_path.parent.is_dir():
        raise UsageError(f"--plot {plot_path}: no such folder {plot_path.parent}")
    check_web(web, web_stay)
    quiet = SETTINGS.quiet or as_json

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    # Until the event loop takes the signals, SIGTERM raises as SIGINT does: the temp files go.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    check_space(path, nbytes, counts)
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
            churn=churn,
            central_cutoff=central_cutoff,
            sample=preset is not None,
            modes=chosen,
            server=central,
            utp=utp,
        )
        file_size = file.stat().st_size
        churn_line = [churn.describe()] if churn is not None else []
        for line in churn_line + (preset.header(counts[0], file_size) if preset else []):
            say(line)
        info = {"file": file.name, "size": file_size, "upload_rate": u_s, "peer_upload_rate": u}
        info |= {"download_rate": d, "modes": chosen, "peers": counts, "utp": utp}  # page, JSON

        async def main(stop: asyncio.Event) -> int:
            from swarm.compare.web import open_page

            page = await open_page(web, exp, info) if web is not None else None
            try:
                if page is not None:
                    click.echo(f"page: {page.url}", err=True)  # asked for: said even with -q
                code = await run(stop, page)
                if page is not None and web_stay and code == 0:
                    click.echo(f"page served at {page.url} until Ctrl-C", err=True)
                    await stop.wait()
                return code
            finally:
                if page is not None:
                    await page.close(ended=page.live.final is not None)

        async def run(stop: asyncio.Event, page: WebPage | None) -> int:
            task = await unless_stopped(run_experiment(exp), stop)
            if task is None:
                click.echo("error: interrupted; everything started was stopped", err=True)
                return INTERRUPTED  # 130 for SIGINT, 143 for SIGTERM
            from swarm.compare.report import out_of_time, result_json

            runs = task.result()
            obj = result_json(runs, info, lab == "netns", churn, preset)
            if as_json:
                click.echo(json.dumps(obj))
            else:
                _table(runs, info, churn)
                if lab == "netns":
                    click.echo("caps: enforced by the kernel (tc tbf) on each host's links")
                if preset is not None:
                    from swarm.compare.scenario import scenario_lines

                    for line in preset.header(counts[0], file_size):
                        click.echo(line)
                    for line in scenario_lines(preset, runs[0], file_size):
                        click.echo(line)
            if plot_path:
                try:
                    plot(runs, plot_path, file_size, u_s, u if preset is not None else None)
                except OSError as exc:
                    raise StorageError(f"cannot write {plot_path}: {exc.strerror or exc}") from None
                click.echo(f"chart: {plot_path}", err=as_json)
            if page is not None:
                from swarm.compare.web import show_end

                await show_end(page, runs, info, churn, plot_path, obj)
            if (late := out_of_time(runs)) is not None:  # the table says how far it came
                click.echo(late, err=True)
            return 0 if late is None else 1

        raise SystemExit(run_until_signal(main))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _table(runs: list[Run], info: dict[str, Any], churn: Churn | None) -> None:
    from rich.console import Console

    from swarm.compare.report import table

    rates = (info["upload_rate"], info["peer_upload_rate"], info["download_rate"])
    t, lines = table(runs, info["file"], info["size"], *rates, churn)
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    console.print(t)
    for line in lines:
        click.echo(line)
