"""``swarm fetch-group`` (hidden, for ``swarm compare``): K downloaders in one process.

Each downloader is a peer of its own, as K ``swarm fetch`` processes would be: for a torrent,
its own :class:`~swarm.session.Session` (its own listening port, peer id and upload and
download limiters) and its own output folder; for a central server's URL, its own HTTP
download with its own download limiter. What they share is the process: one interpreter, one
event loop, one copy of the code in memory, which is what lets a 2-core machine hold 100 or
200 of them.

The downloaders write into ``BASE/FIRST``, ``BASE/FIRST+1``, ... ``BASE/FIRST+K-1``. The group
says ``ready`` (a status line) once everything a download needs is loaded, starts all K on one
line of stdin, and sends one ``done`` status line per downloader with its number (``index``) as
each completes. Torrent downloaders then seed (``--seed``), and the group stays until SIGTERM
(so that ``swarm compare`` can read its CPU time in /proc before it stops it).

Churn (``swarm compare --churn``): after the start line, ``leave I`` on stdin closes torrent
downloader I's session (its port, its connections; the tracker hears ``stopped``) as if its
user had quit, and ``back I`` starts a new session on the same folder, which resumes from the
pieces there. A downloader that is done (seeding) ignores both: only leechers churn.

Each downloader dials at most :data:`GROUP_DIALS` peers and keeps at most :data:`GROUP_PEERS`
connections (``swarm fetch``: 15 and 30). A peer's work grows with its connections (a ``have``
from each peer for each piece, our haves to each, their requests and timers) and here K peers
share a core: at N = 100 (K = 25) 15 connections a downloader instead of 30 cut the
downloaders' CPU time by a fifth (the seed keeps its 30). Room for more than twice what it
dials: the whole swarm starts at once, and the peers that announced first are in every later
tracker reply and are dialled by everyone; with room for 15 they were full at once and refused
the rest, and the last to announce, whom nobody dials, were left with a peer or none for
seconds (N = 100: last copy 7.7-8.6 s against 6.5-6.6 s with room for 25, median 6.4 against
6.2 s, no more CPU). Those last ones, still with only their own 7, dial on from 5 s while they
hold fewer than :data:`GROUP_DIAL_UNDER`: in the texts' scenario (100 s) their peers with 25
each left them choked for tens of seconds (last copy 132-135 s against 115-116 s). The swarm
stays well knit: tens of random neighbours of 100, as Transmission's and libtorrent's clients
each hold tens of a large swarm's peers, not all.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import report, status_option
from swarm.cli.running import INTERRUPTED, run_until_signal, unless_stopped
from swarm.errors import UsageError
from swarm.status import Event, ProgressReporter, Status, watch_progress

if TYPE_CHECKING:
    from swarm.metainfo import Torrent

GROUP_PEERS = 25  # connections per downloader in a group, at most (see the module's docstring)
GROUP_DIALS = 7  # of them dialled by the downloader, at most; the rest dial it ...
GROUP_DIAL_UNDER = 14  # ... unless it holds fewer than this: it dials on (see the docstring)


@click.command("fetch-group", hidden=True)
@click.argument("source")
@click.option(
    "-o",
    "--output",
    "base",
    type=click.Path(path_type=Path),
    required=True,
    help="Base folder: downloader I writes into BASE/I.",
)
@click.option("--first", type=click.IntRange(0), default=0, show_default=True)
@click.option("--count", type=click.IntRange(1, 1000), required=True, help="K downloaders.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--max-download-rate", default=None, metavar="RATE", help="Each one's cap.")
@click.option("--max-upload-rate", default=None, metavar="RATE", help="Each one's cap.")
@click.option("--seed/--no-seed", default=True, show_default=True)
@click.option(
    "--utp/--no-utp",
    default=True,
    help="Dial uTP first, then TCP (--no-utp: TCP only).  [default: on]",
)
@status_option
def fetch_group_command(
    source: str,
    base: Path,
    first: int,
    count: int,
    host: str,
    max_download_rate: str | None,
    max_upload_rate: str | None,
    seed: bool,
    utp: bool,
) -> None:
    """Download SOURCE (a .torrent or a central server's http:// URL) with K peers of their own
    in one process; start on a line from stdin (for swarm compare)."""
    from swarm.units import parse_rate

    down, up = parse_rate(max_download_rate), parse_rate(max_upload_rate)
    folders = [(first + j, base / str(first + j)) for j in range(count)]
    for _, folder in folders:
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
    http = source.startswith(("http://", "https://"))
    torrent: Torrent | None = None
    if http:
        import swarm.central.client  # noqa: F401 - loaded before 'ready', as fetch does
    else:
        from swarm import metainfo

        torrent = metainfo.load(Path(source))
        import swarm.session  # noqa: F401
    report(Status(Event.READY))
    _read_start_line()

    async def main(stop: asyncio.Event) -> int:
        started = time.monotonic()
        reported.clear()
        presence = {i: _Presence() for i, _ in folders}
        async with watch_progress(report) as progress:  # with swarm compare --web only
            if torrent is None:
                jobs = [
                    _http_one(source, i, folder, down, stop, started, progress)
                    for i, folder in folders
                ]
            else:
                jobs = [
                    _torrent_one(
                        torrent,
                        i,
                        folder,
                        (host, utp),
                        (down, up),
                        seed,
                        stop,
                        started,
                        presence[i],
                        progress,
                    )
                    for i, folder in folders
                ]
            commands = asyncio.ensure_future(_commands(presence))
            try:
                task = await unless_stopped(asyncio.gather(*jobs), stop)
            finally:
                commands.cancel()
                await asyncio.gather(commands, return_exceptions=True)
        if task is None:
            # Stopped once every download was done (while seeding): the normal end.
            return 0 if len(reported) == count else INTERRUPTED
        task.result()  # a downloader's failure is the group's
        return 0

    raise SystemExit(run_until_signal(main, fast_loop=True))


reported: set[int] = set()  # the downloaders that have sent their done line


def _read_start_line() -> None:
    """Wait for the start line, reading stdin a byte at a time: a buffered read could swallow
    the churn commands behind it, which :func:`_commands` reads from the same pipe."""
    while os.read(0, 1) not in (b"\n", b""):
        pass


class _Presence:
    """Whether a downloader is in the swarm (``leave I`` / ``back I`` on stdin)."""

    def __init__(self) -> None:
        self.away = asyncio.Event()
        self.back = asyncio.Event()
        self.back.set()

    def leave(self) -> None:
        self.back.clear()
        self.away.set()

    def come_back(self) -> None:
        self.away.clear()
        self.back.set()


async def _commands(presence: dict[int, _Presence]) -> None:
    """Read ``leave I`` and ``back I`` lines from stdin until it ends; others are ignored."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0, closefd=False)
    )
    try:
        async for line in reader:
            match line.decode(errors="replace").split():
                case ["leave", i] if i.isdigit() and int(i) in presence:
                    presence[int(i)].leave()
                case ["back", i] if i.isdigit() and int(i) in presence:
                    presence[int(i)].come_back()
    finally:
        transport.close()


def _done(index: int, name: str, nbytes: int, started: float, web_seeds: int | None = None) -> None:
    """*web_seeds*: of *nbytes*, those from web seeds (a torrent that has some), as ``swarm
    fetch`` reports them: compare's hybrid row reads it in grouped runs too."""
    reported.add(index)
    seconds = round(time.monotonic() - started, 3)
    report(
        Status(
            Event.DONE,
            name=name,
            downloaded=nbytes,
            seconds=seconds,
            index=index,
            web_seed_downloaded=web_seeds,
        )
    )


async def _http_one(
    url: str,
    index: int,
    folder: Path,
    down: int | None,
    stop: asyncio.Event,
    started: float,
    progress: ProgressReporter | None,
) -> None:
    from swarm.central.client import http_download

    on_progress = progress.http(index) if progress is not None else None
    result = await http_download(url, folder, max_download_rate=down, on_progress=on_progress)
    _done(index, result.path.name, result.bytes, started)
    await stop.wait()  # until SIGTERM, as the torrent downloaders seed: compare reads our CPU


async def _torrent_one(
    torrent: Torrent,
    index: int,
    folder: Path,
    net: tuple[str, bool],
    caps: tuple[int | None, int | None],
    seed: bool,
    stop: asyncio.Event,
    started: float,
    presence: _Presence,
    progress: ProgressReporter | None,
) -> None:
    """One peer: its own session (port, peer id, limiters), its own folder; done, then seed.
    Told to leave before it is done, it closes its session, and when told to come back it
    opens a new one on the folder, resuming from the pieces there. *net*: its host and whether
    it dials uTP first; *caps*: its download and upload; *progress*: the group's progress
    lines (``swarm compare --web``), if any."""
    from swarm.cli.running import first_of, wait_stop
    from swarm.session import Session

    (host, utp), (down, up) = net, caps
    while True:
        await presence.back.wait()
        async with Session(
            host=host, port=0, max_upload_rate=up, max_download_rate=down, utp=utp
        ) as session:
            t = await session.add(
                torrent,
                folder,
                max_peers=GROUP_PEERS,
                max_outgoing=GROUP_DIALS,
                dial_under=GROUP_DIAL_UNDER,
            )
            if progress is not None:
                progress.torrent(t, index)
            await first_of(t.complete.wait(), t.stopped.wait(), presence.away.wait())
            if t.failed is not None:
                raise t.failed
            if t.complete.is_set():
                st = t.stats()
                fetched = st.downloaded - st.wasted
                web = min(st.web_seed_downloaded, fetched) if t.web_seeds.sources else None
                _done(index, torrent.name, fetched, started, web)
                if seed:
                    await wait_stop(stop, t)
                return
        # Away: the session is closed; the next one resumes from the folder.


__all__ = ["fetch_group_command"]
