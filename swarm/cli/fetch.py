"""What ``swarm fetch`` does once its options are read: a torrent download (then seeding, unless
--no-seed) or an HTTP download, and the lines that tell the user how it went.

How a fetch ends, and its exit code: every piece verified, 0 (and a ``done:`` line); Ctrl-C or
SIGTERM before that, 130 or 143 with ``stopped at 63.0%; run again to resume``; Ctrl-C or
SIGTERM while seeding after completion, 0 with the totals (the user's normal stop); a failure,
``error: ...`` and 1 (or 2 for bad input, such as an existing file --no-overwrite keeps).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import Display, echo, eta, report
from swarm.cli.running import INTERRUPTED, unless_stopped, wait_stop
from swarm.status import Event, Status, watch_progress
from swarm.units import counted, format_rate, format_size

if TYPE_CHECKING:
    from swarm.cli.dht import DhtArgs
    from swarm.piece_io import Existing
    from swarm.torrent import TorrentController, TorrentStats


def notice(line: str) -> None:
    """A line the user can act on (peers refused for the encryption policy), said once."""
    echo(f"notice: {line}")
    sys.stdout.flush()


def status_line(st: TorrentStats, down: float | None = None) -> str:
    """The progress bar's text: rates, peers, time left. *down*: the download rate the bar
    measured itself (default: the engine's, which reads 0 until its first 1 s tick)."""
    down = st.download_rate if down is None else down
    left = st.total_bytes - st.have_bytes
    web = f"  web seeds {format_size(st.web_seed_downloaded)}" if st.web_seed_downloaded else ""
    return (
        f"down {format_rate(down)}  up {format_rate(st.upload_rate)}  "
        f"peers {st.peers}{web}  eta {eta(left, down)}"
    )


# -- the lines ----------------------------------------------------------------------------------


def _files(paths: list[Path]) -> tuple[str, str]:
    """How to name the files found, and the verb's number: ('out/a.bin', 'exists')."""
    if len(paths) == 1:
        return str(paths[0]), "exists"
    others = len(paths) - 1
    return f"{paths[0]} and {others} other file{'s' if others > 1 else ''}", "exist"


def is_repair(existing: Existing) -> bool:
    """Files found at full size with some pieces right: a finished download that was damaged,
    not somebody else's file."""
    return existing.complete_size and existing.differ < existing.total


def existing_line(existing: Existing) -> str | None:
    """The one line said before a download writes over files it found at their real names
    (None when every piece found there is the torrent's)."""
    if not existing.differ:
        return None
    what, verb = _files(existing.paths)
    of = f"{existing.differ} of {existing.total} pieces"
    if is_repair(existing):
        return f"{what}: {of} damaged; repairing"
    it = "it" if verb == "exists" else "they"
    return f"{what} {verb} and {of} differ: {it} will be overwritten; --no-overwrite to stop"


def resuming_line(started_with: int, num_pieces: int) -> str | None:
    """``resuming: 161 of 256 pieces already here`` when some, but not all, are."""
    if 0 < started_with < num_pieces:
        return f"resuming: {started_with} of {num_pieces} pieces already here"
    return None


def summary(
    name: str,
    fetched: int,
    seconds: float,
    *,
    uploaded: int | None = None,
    wasted: int = 0,
    repaired: int = 0,
    overwritten: int = 0,
    hash_failures: int = 0,
    banned: int = 0,
    web_seeds: int = 0,
) -> str:
    """The ``done:`` line. *fetched* is the bytes of the file that came in this run (the rate
    is theirs); *wasted* are the bytes received besides those (duplicates in end-game, pieces
    that failed their hash check); *uploaded* what went to peers (None for an HTTP fetch);
    *web_seeds* the bytes received from web seeds (BEP 19), said when there were any."""
    rate = fetched / seconds if seconds > 0 else 0.0
    line = f"done: {name}: {fetched} bytes in {seconds:.2f} s ({format_rate(rate)})"
    if web_seeds:
        line += f"; {format_size(web_seeds)} of it from web seeds"
    if uploaded is not None:
        line += f"; uploaded {format_size(uploaded)}"
    if wasted:
        line += f"; {format_size(wasted)} wasted (duplicate or corrupt blocks)"
    if repaired:
        line += f"; {counted(repaired, 'damaged piece')} repaired"
    if overwritten:
        line += f"; {counted(overwritten, 'piece')} of the file that was there overwritten"
    if hash_failures or banned:
        its = "its" if hash_failures == 1 else "their"
        line += (
            f"; {counted(hash_failures, 'piece')} failed {its} hash check, "
            f"{counted(banned, 'peer')} banned"
        )
    return line


def totals_line(st: TorrentStats, seconds: float) -> str:
    """What a fetch that went on seeding did in all, said when the user stops it."""
    fetched = st.downloaded - st.wasted
    return (
        f"stopped seeding after {seconds:.0f} s: downloaded {format_size(fetched)}"
        + (f" (and {format_size(st.wasted)} wasted)" if st.wasted else "")
        + f", uploaded {format_size(st.uploaded)}"
    )


# -- a torrent ----------------------------------------------------------------------------------


def preload_engine(source: str, web_seeds: bool = True) -> None:
    """Import what a torrent download of *source* needs before it is timed (compare's 'go'):
    the engine, and the HTTP client too when *source* is a .torrent with web seeds."""
    import swarm.session  # noqa: F401

    if web_seeds and not source.lower().startswith("magnet:"):
        from swarm import metainfo
        from swarm.errors import SwarmError

        try:
            if metainfo.load(Path(source)).url_list:
                import swarm.webseed  # noqa: F401  (its own HTTP client, not aiohttp)
        except (SwarmError, OSError):
            pass  # said once the fetch reads it


def fetch_torrent(
    path: Path,
    out_dir: Path,
    *,
    host: str,
    port: int,
    port_attempts: int,
    down: int | None,
    up: int | None,
    seed: bool,
    overwrite: bool,
    direct: list[tuple[str, int]],
    dht: DhtArgs = (False, (), None),
    give_up: float | None = None,
    web_seeds: bool = True,
    encryption: str = "prefer",
    utp: bool = True,
) -> int:
    """Download the torrent at *path* into *out_dir*; the exit code. *web_seeds*: whether to
    use the torrent's web seeds (BEP 19 url-list) as well as peers."""
    from swarm import metainfo
    from swarm.cli.dht import dht_session_options
    from swarm.cli.running import run_until_signal
    from swarm.session import Session
    from swarm.storage import check_folder

    torrent = metainfo.load(path)
    check_folder(out_dir)
    dht_kw = dht_session_options(dht, host, out_dir, torrent.nodes)

    async def main(stop: asyncio.Event) -> int:
        started = time.monotonic()
        async with Session(
            host=host,
            port=port,
            port_attempts=port_attempts,
            max_upload_rate=up,
            max_download_rate=down,
            **dht_kw,
            give_up_after=give_up,
            web_seeds=web_seeds,
            encryption=encryption,
            on_notice=notice,
            utp=utp,
        ) as session:
            t = await session.add(torrent, out_dir, overwrite=overwrite)
            t.add_peers(direct)
            async with watch_progress(report, t):  # progress lines: swarm compare --web only
                return await download_and_seed(t, stop, started, seed, session.port)

    return run_until_signal(main, fast_loop=True)


async def download_and_seed(
    t: TorrentController, stop: asyncio.Event, started: float, seed: bool, port: int
) -> int:
    """The rest of a torrent fetch once the torrent is added: the download with its lines,
    then seeding on *port* until a signal with *seed*; the exit code."""
    _say_what_is_there(t)
    if not await _download(t, stop):
        return INTERRUPTED
    elapsed = time.monotonic() - started
    st = t.stats()
    name = t.torrent.name
    if t.started_with == t.num_pieces:
        click.echo(f"done: {name}: already complete")
    else:
        click.echo(_summary_of(t, st, elapsed))
    sys.stdout.flush()
    fetched = st.downloaded - st.wasted
    _report_done(
        name,
        fetched,
        elapsed,
        min(st.web_seed_downloaded, fetched) if t.web_seeds.sources else None,
    )
    if seed:
        echo(f"seeding on port {port}; Ctrl-C to stop")
        sys.stdout.flush()
        await wait_stop(stop, t)
        echo(totals_line(t.stats(), time.monotonic() - started))
    return 0


def _say_what_is_there(t: TorrentController) -> None:
    """One line about what the download starts from: files it will write over or repair, or
    the pieces a resumed download has already."""
    line = existing_line(t.existing) if t.existing is not None else None
    line = line or resuming_line(t.started_with, t.num_pieces)
    if line:
        echo(line)
        sys.stdout.flush()


async def _download(t: TorrentController, stop: asyncio.Event) -> bool:
    """Until every piece is verified (True) or a signal came first (False, said so)."""
    display = Display(t.torrent.name, t.torrent.length)
    rate = _Rate(time.monotonic(), t.stats().downloaded)
    try:
        while not t.complete.is_set():
            if stop.is_set():
                display.stop()
                st = t.stats()
                echo(f"stopped at {100 * st.have_bytes / st.total_bytes:.1f}%; run again to resume")
                return False
            if t.failed is not None:
                raise t.failed
            st = t.stats()
            down = rate.update(time.monotonic(), st.downloaded)
            display.update(st.have_bytes, info=status_line(st, down))
            try:
                async with asyncio.timeout(0.5):
                    await t.complete.wait()
            except TimeoutError:
                pass
    finally:
        display.stop()
    return True


def _summary_of(t: TorrentController, st: TorrentStats, elapsed: float) -> str:
    existing = t.existing
    replaced = existing.differ if existing is not None else 0
    repair = existing is not None and is_repair(existing)
    return summary(
        t.torrent.name,
        st.downloaded - st.wasted,
        elapsed,
        uploaded=st.uploaded,
        wasted=st.wasted,
        repaired=replaced if repair else 0,
        overwritten=0 if repair else replaced,
        hash_failures=st.hash_failures,
        banned=st.banned,
        web_seeds=st.web_seed_downloaded,
    )


# -- an HTTP server -----------------------------------------------------------------------------


def fetch_http(
    url: str, out_dir: Path, torrent_path: Path | None, down: int | None, overwrite: bool = True
) -> int:
    """Download *url* from a central server into *out_dir*; the exit code. A file already at
    the URL's name is checked against the torrent first, as for a torrent source."""
    from swarm import metainfo
    from swarm.central.client import http_download
    from swarm.cli.running import run_until_signal

    torrent = metainfo.load(torrent_path) if torrent_path else None

    async def main(stop: asyncio.Event) -> int:
        display = Display(url.rsplit("/", 1)[-1], torrent.length if torrent else 0)
        started = time.monotonic()
        rate = _Rate(started)
        on_http: Callable[[int, int], None] | None = None  # swarm compare --web's figures

        def progress(done: int, total: int) -> None:
            speed = rate.update(time.monotonic(), done)
            info = f"down {format_rate(speed)}  eta {eta(total - done, speed)}"
            display.update(done, total, info)
            if on_http is not None:
                on_http(done, total)

        download = http_download(
            url,
            out_dir,
            torrent=torrent,
            max_download_rate=down,
            on_progress=progress,
            overwrite=overwrite,
            on_existing=echo,
        )
        try:
            async with watch_progress(report) as watched:
                on_http = watched.http() if watched is not None else None
                task = await unless_stopped(download, stop)
        finally:
            display.stop()
        if task is None:
            echo("stopped; run again to resume")
            return INTERRUPTED
        result = task.result()
        elapsed = time.monotonic() - started
        if result.already_complete:
            click.echo(f"done: {result.path.name}: already complete")
        else:
            click.echo(summary(result.path.name, result.bytes, elapsed))
        sys.stdout.flush()
        _report_done(result.path.name, result.bytes, elapsed)
        return 0

    return run_until_signal(main, fast_loop=True)


class _Rate:
    """A download rate measured over half-second steps; before the first step is over, the
    rate so far (bytes can come, and a bar move, well within the first half second)."""

    def __init__(self, now: float, done: int = 0) -> None:
        self.since, self.done, self.rate = now, done, 0.0
        self.first = True

    def update(self, now: float, done: int) -> float:
        elapsed = now - self.since
        if elapsed >= 0.5:
            self.rate = (done - self.done) / elapsed
            self.since, self.done, self.first = now, done, False
        elif self.first and done > self.done and elapsed > 0:
            return (done - self.done) / elapsed
        return self.rate


def _report_done(name: str, nbytes: int, seconds: float, web_seeds: int | None = None) -> None:
    """The status line ``done``; *web_seeds*: of *nbytes*, those from web seeds (None: the
    download had none)."""
    report(
        Status(
            Event.DONE,
            name=name,
            downloaded=nbytes,
            seconds=round(seconds, 3),
            web_seed_downloaded=web_seeds,
        )
    )


__all__ = [
    "download_and_seed",
    "preload_engine",
    "existing_line",
    "fetch_http",
    "fetch_torrent",
    "is_repair",
    "resuming_line",
    "status_line",
    "summary",
    "totals_line",
]
