"""``swarm seed`` and ``swarm fetch``: thin commands over :class:`swarm.session.Session`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import (
    Display,
    echo,
    eta,
    report,
    run_until_signal,
    status_option,
    tracker_tiers,
    write_file,
)
from swarm.errors import UsageError
from swarm.status import Event, Status
from swarm.units import format_rate, format_size

if TYPE_CHECKING:
    from swarm.metainfo import Torrent
    from swarm.torrent import TorrentController, TorrentStats


def resolve_data_root(path: Path, torrent: Torrent) -> Path:
    """The folder that holds the torrent's data named torrent.name, given the data's path."""
    if path.name == torrent.name and path.exists():
        return path.parent
    if path.is_dir() and (path / torrent.name).exists():
        return path
    raise UsageError(f"{path} does not hold the torrent's data ({torrent.name!r})")


def status_line(st: TorrentStats) -> str:
    """The progress bar's text: rates, peers, time left."""
    left = st.total_bytes - st.have_bytes
    return (
        f"down {format_rate(st.download_rate)}  up {format_rate(st.upload_rate)}  "
        f"peers {st.peers}  eta {eta(left, st.download_rate)}"
    )


@click.command("seed")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--torrent",
    "torrent_path",
    type=click.Path(path_type=Path),
    help="The .torrent of PATH (made as PATH.torrent when not given).",
)
@click.option(
    "-t",
    "--tracker",
    "trackers",
    multiple=True,
    metavar="URL",
    help="Tracker URL for a torrent made here; repeatable.",
)
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="Address to listen on for peers."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (0: any free port)."
)
@click.option(
    "--max-upload-rate",
    default=None,
    metavar="RATE",
    help="Upload cap (e.g. 1M, 500KiB/s); unlimited by default.",
)
@click.option(
    "--unchoke-slots",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Peers unchoked by tit-for-tat at once (plus one optimistic).",
)
@click.option("--no-verify", is_flag=True, help="Trust the data without hashing it first.")
@status_option
def seed_command(
    path: Path,
    torrent_path: Path | None,
    trackers: tuple[str, ...],
    host: str,
    port: int,
    max_upload_rate: str | None,
    unchoke_slots: int,
    no_verify: bool,
) -> None:
    """Serve the file or folder PATH to peers until Ctrl-C."""
    from swarm import metainfo
    from swarm.create import create_torrent
    from swarm.session import Session
    from swarm.units import parse_rate

    rate = parse_rate(max_upload_rate)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    made_here = False
    if torrent_path is None:
        torrent_path = path.with_name(path.name + ".torrent")
        if not torrent_path.exists() or trackers:
            data = create_torrent(path, trackers=tracker_tiers(trackers))
            write_file(torrent_path, data)
            made_here = True
    torrent = metainfo.load(torrent_path)
    root = resolve_data_root(path, torrent)
    if not torrent.announce_tiers:
        click.echo(
            "warning: the torrent names no tracker; peers must find this seed themselves", err=True
        )

    async def main(stop: asyncio.Event) -> int:
        async with Session(host=host, port=port, max_upload_rate=rate) as session:
            t = await session.add(
                torrent,
                root,
                seed=True,
                verify=not (made_here or no_verify),
                unchoke_slots=unchoke_slots,
            )
            click.echo(f"torrent:   {torrent_path}")
            click.echo(f"info-hash: {torrent.info_hash_hex}")
            click.echo(f"magnet:    {torrent.magnet()}")
            click.echo(f"seeding on port {session.port}; Ctrl-C to stop")
            sys.stdout.flush()
            report(Status(Event.LISTENING, port=session.port))
            await _wait_stop(stop, t)
            st = t.stats()
            echo(f"seeded {format_size(st.uploaded)} to peers")
        return 0

    raise SystemExit(run_until_signal(main))


async def _wait_stop(stop: asyncio.Event, t: TorrentController) -> None:
    """Until Ctrl-C (or SIGTERM), or until the torrent stops by itself (raising why)."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(t.stopped.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    if t.failed is not None:
        raise t.failed


@click.command("fetch")
@click.argument("source")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Output folder.",
)
@click.option(
    "--torrent",
    "torrent_path",
    type=click.Path(path_type=Path),
    help="With an http:// SOURCE: verify the download against this torrent.",
)
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="Address to listen on for peers."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (0: any free port)."
)
@click.option(
    "--max-download-rate", default=None, metavar="RATE", help="Download cap; unlimited by default."
)
@click.option(
    "--max-upload-rate", default=None, metavar="RATE", help="Upload cap; unlimited by default."
)
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="Go on seeding after the download (until Ctrl-C).",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="HOST:PORT",
    help="Connect to this peer as well as those the trackers give; repeatable.",
)
@click.option(
    "--start-on-stdin",
    is_flag=True,
    hidden=True,
    help="Print 'ready', then start on a line from stdin (for swarm compare).",
)
@status_option
def fetch_command(
    source: str,
    out_dir: Path,
    torrent_path: Path | None,
    host: str,
    port: int,
    max_download_rate: str | None,
    max_upload_rate: str | None,
    seed: bool,
    peers: tuple[str, ...],
    start_on_stdin: bool,
) -> None:
    """Download SOURCE (a .torrent file, or an http:// URL of a central server) into a folder."""
    from swarm.units import parse_rate

    down, up = parse_rate(max_download_rate), parse_rate(max_upload_rate)
    if start_on_stdin:
        # Everything slow to load is loaded before 'ready', so that timing starts at 'go'.
        import swarm.central.client  # noqa: F401
        import swarm.session  # noqa: F401

        click.echo("ready")
        sys.stdout.flush()
        report(Status(Event.READY))
        sys.stdin.readline()
    if source.startswith(("http://", "https://")):
        raise SystemExit(_fetch_http(source, out_dir, torrent_path, down))
    direct = [parse_peer(p) for p in peers]
    raise SystemExit(_fetch_torrent(Path(source), out_dir, host, port, down, up, seed, direct))


def parse_peer(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--peer takes HOST:PORT, not {text!r}")
    return host, int(port)


def _summary(
    name: str, nbytes: int, seconds: float, hash_failures: int = 0, banned: int = 0
) -> str:
    rate = nbytes / seconds if seconds > 0 else 0.0
    line = f"done: {name}: {nbytes} bytes in {seconds:.2f} s ({format_rate(rate)})"
    if hash_failures or banned:
        line += f"; {hash_failures} pieces failed their hash check, {banned} peers banned"
    return line


def _fetch_torrent(
    path: Path,
    out_dir: Path,
    host: str,
    port: int,
    down: int | None,
    up: int | None,
    seed: bool,
    direct: list[tuple[str, int]],
) -> int:
    from swarm import metainfo
    from swarm.session import Session

    torrent = metainfo.load(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder")

    async def main(stop: asyncio.Event) -> int:
        started = time.monotonic()
        async with Session(
            host=host, port=port, max_upload_rate=up, max_download_rate=down
        ) as session:
            t = await session.add(torrent, out_dir)
            t.add_peers(direct)
            display = Display(torrent.name, torrent.length)
            try:
                while not t.complete.is_set():
                    if stop.is_set():
                        display.stop()
                        st = t.stats()
                        echo(
                            f"stopped at {100 * st.have_bytes / st.total_bytes:.1f}%;"
                            " run again to resume"
                        )
                        return 0
                    if t.failed is not None:
                        raise t.failed
                    st = t.stats()
                    display.update(st.have_bytes, info=status_line(st))
                    try:
                        async with asyncio.timeout(0.5):
                            await t.complete.wait()
                    except TimeoutError:
                        pass
            finally:
                display.stop()
            elapsed = time.monotonic() - started
            click.echo(
                _summary(torrent.name, t.downloaded, elapsed, t.hash_failures, len(t.banned_ids))
            )
            sys.stdout.flush()
            _report_done(torrent.name, t.downloaded, elapsed)
            if seed:
                echo("seeding; Ctrl-C to stop")
                sys.stdout.flush()
                await _wait_stop(stop, t)
        return 0

    return run_until_signal(main)


def _fetch_http(url: str, out_dir: Path, torrent_path: Path | None, down: int | None) -> int:
    from swarm import metainfo
    from swarm.central.client import http_download

    torrent = metainfo.load(torrent_path) if torrent_path else None

    async def main(stop: asyncio.Event) -> int:
        display = Display(url.rsplit("/", 1)[-1], torrent.length if torrent else 0)
        started = time.monotonic()
        rate = _Rate(started)

        def progress(done: int, total: int) -> None:
            speed = rate.update(time.monotonic(), done)
            info = f"down {format_rate(speed)}  eta {eta(total - done, speed)}"
            display.update(done, total, info)

        task = asyncio.ensure_future(
            http_download(
                url, out_dir, torrent=torrent, max_download_rate=down, on_progress=progress
            )
        )
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            display.stop()
            stopper.cancel()
        if not task.done():
            task.cancel()
            echo("stopped; run again to resume")
            return 0
        result = task.result()
        elapsed = time.monotonic() - started
        click.echo(_summary(result.path.name, result.bytes, elapsed))
        sys.stdout.flush()
        _report_done(result.path.name, result.bytes, elapsed)
        return 0

    return run_until_signal(main)


class _Rate:
    """A download rate measured over half-second steps."""

    def __init__(self, now: float) -> None:
        self.since, self.done, self.rate = now, 0, 0.0

    def update(self, now: float, done: int) -> float:
        if now - self.since >= 0.5:
            self.rate = (done - self.done) / (now - self.since)
            self.since, self.done = now, done
        return self.rate


def _report_done(name: str, nbytes: int, seconds: float) -> None:
    report(Status(Event.DONE, name=name, downloaded=nbytes, seconds=round(seconds, 3)))


__all__ = ["fetch_command", "parse_peer", "resolve_data_root", "seed_command"]
