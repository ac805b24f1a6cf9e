"""``swarm tracker``: run the tracker (the top-level :mod:`tracker` package, which knows
nothing of swarm) until SIGINT or SIGTERM; read an allow list of .torrent files for it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import report, status_option
from swarm.cli.running import run_until_signal
from swarm.errors import TrackerStartError, UsageError
from swarm.status import Event, Status
from tracker.errors import StartError, TorrentFileError

if TYPE_CHECKING:
    from tracker.server import Tracker


def load_allow_list(path: Path) -> set[bytes]:
    """The info-hashes of a folder of .torrent files, or of a text file of 40-hex info-hashes
    one per line (blank lines and ``#`` comments skipped)."""
    return load_allow(path)[0]


def load_allow(path: Path) -> tuple[set[bytes], dict[bytes, str]]:
    """:func:`load_allow_list`'s info-hashes, and the name of each torrent the list names
    (a folder of .torrent files names them all; a file of info-hashes none)."""
    from swarm import metainfo

    if path.is_dir():
        names = {}
        for p in sorted(path.glob("*.torrent")):
            t = metainfo.load(p)
            names[t.info_hash] = t.name
        return set(names), names
    allow: set[bytes] = set()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            value = bytes.fromhex(text)
        except ValueError:
            value = b""
        if len(value) != 20:
            raise UsageError(f"{path}:{n}: not a 40-hex info-hash")
        allow.add(value)
    return allow, {}


def load_names(paths: tuple[Path, ...]) -> dict[bytes, str]:
    """The name of each torrent in the .torrent files *paths*, by info-hash, read by the
    tracker's own reader (which takes any name: it is only shown, never a path)."""
    from tracker import torrent_file

    names = {}
    for p in paths:
        try:
            info_hash, name = torrent_file.load(p)
        except TorrentFileError as exc:
            raise UsageError(str(exc)) from None
        names[info_hash] = name
    return names


async def start_tracker(tracker: Tracker) -> None:
    """Start *tracker*; a port it cannot listen on is :class:`TrackerStartError` (exit 1)."""
    try:
        await tracker.start()
    except StartError as exc:
        raise TrackerStartError(str(exc)) from None


@click.command("tracker")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=6969,
    show_default=True,
    help="HTTP port (0: any free port).",
)
@click.option(
    "--udp-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="UDP port (default: the HTTP port's number).",
)
@click.option("--no-udp", is_flag=True, help="Serve HTTP only.")
@click.option(
    "--interval",
    type=click.IntRange(1, 86400),
    default=1800,
    show_default=True,
    help="Seconds between announces.",
)
@click.option(
    "--min-interval",
    type=click.IntRange(0, 86400),
    default=60,
    show_default=True,
    help="Least seconds between announces.",
)
@click.option(
    "--allow",
    type=click.Path(path_type=Path, exists=True),
    help="Allow only these torrents: a folder of .torrent files (the page at / shows their "
    "names) or a file of hex info-hashes.",
)
@click.option(
    "--torrent",
    "torrents",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    multiple=True,
    help="A .torrent whose name the page at / shows (repeatable; it does not restrict what "
    "the tracker tracks, as --allow does).",
)
@click.option("--max-torrents", type=click.IntRange(1), default=100_000, show_default=True)
@click.option(
    "--max-peers",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Peers per torrent.",
)
@click.option(
    "--allow-ip-param",
    is_flag=True,
    help="Trust the announce's 'ip' parameter (only behind a proxy you run).",
)
@status_option
def tracker_command(
    host: str,
    port: int,
    udp_port: int | None,
    no_udp: bool,
    interval: int,
    min_interval: int,
    allow: Path | None,
    torrents: tuple[Path, ...],
    max_torrents: int,
    max_peers: int,
    allow_ip_param: bool,
) -> None:
    """Run a BitTorrent tracker (HTTP and UDP) until Ctrl-C."""
    from tracker.server import Tracker, TrackerConfig

    if no_udp and udp_port is not None:
        raise UsageError("--udp-port and --no-udp cannot be used together")
    allowed, names = load_allow(allow) if allow else (None, {})
    names.update(load_names(torrents))
    config = TrackerConfig(
        host=host,
        port=port,
        udp_port=udp_port,
        udp=not no_udp,
        interval=interval,
        min_interval=min(min_interval, interval),
        max_torrents=max_torrents,
        max_peers=max_peers,
        allow=allowed,
        allow_ip_param=allow_ip_param,
        names=names,  # shown on the tracker's page
    )

    async def main(stop: asyncio.Event) -> int:
        tracker = Tracker(config)
        await start_tracker(tracker)
        try:
            for url in tracker.announce_urls:
                click.echo(url)
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"stats: http://{shown}:{tracker.port}/stats")
            click.echo(f"page: http://{shown}:{tracker.port}/")
            sys.stdout.flush()
            report(Status(Event.LISTENING, port=tracker.port, urls=tuple(tracker.announce_urls)))
            await stop.wait()
        finally:
            await tracker.stop()
        return 0

    raise SystemExit(run_until_signal(main, fast_loop=True))
