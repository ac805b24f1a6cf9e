"""``swarm seed`` and ``swarm fetch``: thin commands over :class:`swarm.session.Session` (what a
fetch does once its options are read is in :mod:`swarm.cli.fetch`).

Both listen for peers on port 6881 by default, or the next free one up to 6890, as
BitTorrent clients do, so that an address given to a peer stays good from one run to the
next; ``--port N`` is exactly N (exit 1 if it is taken), ``--port 0`` any free port.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from swarm.cli.common import (
    DEFAULT_PORT,
    PORT_ATTEMPTS,
    echo,
    encryption_option,
    listen_port,
    port_option,
    report,
    status_option,
    tracker_tiers,
)
from swarm.cli.dht import DhtArgs, dht_options, dht_session_options
from swarm.cli.fetch import fetch_http, fetch_torrent, preload_engine
from swarm.cli.magnet_fetch import fetch_magnet
from swarm.cli.running import run_until_signal, wait_stop
from swarm.errors import StorageError, UsageError
from swarm.magnet import without_web_seeds
from swarm.status import Event, Status
from swarm.units import format_size

if TYPE_CHECKING:
    from swarm.metainfo import Torrent


def resolve_data_root(path: Path, torrent: Torrent) -> Path:
    """The folder that holds the torrent's data named torrent.name, given the data's path."""
    if path.name == torrent.name and path.exists():
        return path.parent
    if path.is_dir() and (path / torrent.name).exists():
        return path
    raise UsageError(f"{path} does not hold the torrent's data ({torrent.name!r})")


# -- seed ---------------------------------------------------------------------------------------


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
    "--webseed",
    "webseeds",
    multiple=True,
    metavar="URL",
    help="Web seed URL (BEP 19) for a torrent made here, e.g. serve-central's; repeatable.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Make the .torrent again from PATH even if it exists (as create --force does).",
)
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="Address to listen on for peers."
)
@port_option
@click.option(
    "--max-upload-rate",
    default=None,
    metavar="RATE",
    help="Upload cap (e.g. 1M, 500KiB/s); unlimited by default.",
)
@click.option(
    "--unchoke-slots",
    type=click.IntRange(1, 100),
    default=None,
    help="Peers unchoked by tit-for-tat at once (plus one optimistic) [default: 8, or 4 "
    "with --max-upload-rate].",
)
@click.option("--no-verify", is_flag=True, help="Trust the data without hashing it first.")
@encryption_option
@dht_options
@status_option
def seed_command(
    path: Path,
    torrent_path: Path | None,
    trackers: tuple[str, ...],
    webseeds: tuple[str, ...],
    force: bool,
    host: str,
    port: int | None,
    max_upload_rate: str | None,
    unchoke_slots: int | None,
    no_verify: bool,
    encryption: str,
    utp: bool,
    dht: bool | None,
    dht_bootstrap: tuple[str, ...],
    dht_port: int | None,
) -> None:
    """Serve the file or folder PATH to peers until Ctrl-C (or SIGTERM): both end it with exit
    code 0. A torrent made here without -t is trackerless: peers find it through the DHT."""
    from swarm import metainfo
    from swarm.session import Session
    from swarm.units import parse_rate

    rate = parse_rate(max_upload_rate)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    torrent_file, made_here = seed_torrent_file(path, torrent_path, trackers, force, webseeds)
    torrent = metainfo.load(torrent_file)
    root = resolve_data_root(path, torrent)
    dht_args: DhtArgs = (dht, dht_bootstrap, dht_port)
    dht_kw = dht_session_options(dht_args, host, torrent_file.parent, torrent.nodes)
    if not torrent.announce_tiers and not (dht_kw["dht"] and not torrent.private):
        click.echo(
            "warning: the torrent names no tracker; peers must find this seed themselves", err=True
        )
    port, attempts = listen_port(port)

    async def main(stop: asyncio.Event) -> int:
        async with Session(
            host=host,
            port=port,
            port_attempts=attempts,
            max_upload_rate=rate,
            encryption=encryption,
            utp=utp,
            **dht_kw,
        ) as session:
            try:
                t = await session.add(
                    torrent,
                    root,
                    seed=True,
                    verify=not (made_here or no_verify),
                    unchoke_slots=unchoke_slots,
                )
            except StorageError as exc:
                if made_here or torrent_path is not None or "do not match" not in str(exc):
                    raise
                # PATH.torrent was there already, made from other bytes than PATH holds now.
                raise StorageError(f"{exc}; --force makes {torrent_file} again") from None
            click.echo(f"torrent:   {torrent_file}")
            click.echo(f"info-hash: {torrent.info_hash_hex}")
            click.echo(f"magnet:    {torrent.magnet()}")
            if session.dht is not None and not torrent.private:
                click.echo(f"dht:       UDP port {session.dht.node.address[1]}")
            click.echo(f"seeding on port {session.port}; Ctrl-C to stop")
            sys.stdout.flush()
            report(Status(Event.LISTENING, port=session.port))
            await wait_stop(stop, t)
            echo(f"seeded {format_size(t.stats().uploaded)} to peers")
        return 0

    raise SystemExit(run_until_signal(main, fast_loop=True))


def seed_torrent_file(
    path: Path,
    torrent_path: Path | None,
    trackers: tuple[str, ...],
    force: bool,
    webseeds: tuple[str, ...] = (),
) -> tuple[Path, bool]:
    """The .torrent to seed PATH with, and whether it was made just now.

    As ``create`` does, an existing .torrent is rewritten only with ``--force``: one that the
    options contradict (other trackers with ``-t``, other web seeds with ``--webseed``; for
    PATH.torrent, other files than PATH has) is a usage error; one they agree with is used
    as it is.
    """
    from swarm import metainfo
    from swarm.cli.common import write_file
    from swarm.create import create_torrent

    target = torrent_path or path.with_name(path.name + ".torrent")
    tiers = tracker_tiers(trackers)
    seeds = [metainfo.check_web_seed_url(u) for u in dict.fromkeys(webseeds)]
    if target.exists() and not force:
        existing = metainfo.load(target)
        if tiers and [list(t) for t in existing.announce_tiers] != tiers:
            raise UsageError(
                f"{target} exists and names other trackers than -t: --force to make it again "
                "with these, or leave out -t to use it as it is"
            )
        if seeds and list(existing.url_list) != seeds:
            raise UsageError(
                f"{target} exists and names other web seeds than --webseed: --force to make it "
                "again with these, or leave out --webseed to use it as it is"
            )
        if torrent_path is None and not _same_files(existing, path):
            raise UsageError(
                f"{target} exists and was made for other files than {path} holds now: "
                "--force to make it again"
            )
        return target, False
    if torrent_path is not None and not target.exists() and not force:
        metainfo.load(target)  # the user's file is missing: say so (exit 2)
    write_file(target, create_torrent(path, trackers=tiers, webseeds=seeds))
    return target, True


def _same_files(torrent: Torrent, path: Path) -> bool:
    """Whether the files in *path* have the torrent's names and sizes (hashing comes later)."""
    from swarm.create import collect_files

    if torrent.name != path.resolve().name:
        return False
    try:
        found = [(f.path, f.length) for f in collect_files(path)]
    except UsageError:
        return False
    if not torrent.multi_file:
        return len(found) == 1 and found[0][1] == torrent.length and path.is_file()
    # A multi-file torrent's paths start with its name (the folder); the folder's do not.
    wanted = [(f.path[1:], f.length) for f in torrent.files if f.on_disk]
    return path.is_dir() and found == wanted


# -- fetch --------------------------------------------------------------------------------------


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
    "--no-overwrite",
    is_flag=True,
    help="Stop (exit 2) rather than write over a file found in the output folder under the "
    "download's name that is not the torrent's (by default it is checked against the torrent, "
    "what matches is kept and the rest overwritten, after one line that says so).",
)
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="Address to listen on for peers."
)
@port_option
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
@click.option(
    "--give-up-after",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Give up (exit 1) after this long with no peer and no usable tracker; "
    "default 30, or 300 with the DHT on.",
)
@click.option("--no-webseed", is_flag=True, help="Do not use the torrent's web seeds (BEP 19).")
@encryption_option
@dht_options
@status_option
def fetch_command(
    source: str,
    out_dir: Path,
    torrent_path: Path | None,
    no_overwrite: bool,
    host: str,
    port: int | None,
    max_download_rate: str | None,
    max_upload_rate: str | None,
    seed: bool,
    peers: tuple[str, ...],
    start_on_stdin: bool,
    dht: bool | None,
    dht_bootstrap: tuple[str, ...],
    dht_port: int | None,
    give_up_after: float | None,
    no_webseed: bool,
    encryption: str,
    utp: bool,
) -> None:
    """Download SOURCE (a .torrent file, a magnet: URI, or an http:// URL of a central
    server) into a folder.

    A magnet's metadata is fetched first, from its peers (x.pe and --peer), its trackers
    (tr) and the DHT, and written to the folder as NAME.torrent, which the next run uses.
    Exit code 0 once every piece is verified (and after seeding, when Ctrl-C ends it); 130
    (Ctrl-C) or 143 (SIGTERM) when stopped before that: run it again to resume."""
    from swarm.units import parse_rate

    down, up = parse_rate(max_download_rate), parse_rate(max_upload_rate)
    if start_on_stdin:
        # What the download needs is loaded before 'ready', so that timing starts at 'go'
        # (the central client, and aiohttp with it, only for a central server's URL).
        if source.startswith(("http://", "https://")):
            import swarm.central.client  # noqa: F401
        else:
            preload_engine(source, web_seeds=not no_webseed)

        click.echo("ready")
        sys.stdout.flush()
        report(Status(Event.READY))
        sys.stdin.readline()
    if source.startswith(("http://", "https://")):
        raise SystemExit(fetch_http(source, out_dir, torrent_path, down, not no_overwrite))
    direct = [parse_peer(p) for p in peers]
    dht_args: DhtArgs = (dht, dht_bootstrap, dht_port)
    port, attempts = listen_port(port)
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        port_attempts=attempts,
        down=down,
        up=up,
        seed=seed,
        overwrite=not no_overwrite,
        direct=direct,
        dht=dht_args,
        give_up=give_up_after,
        encryption=encryption,
        utp=utp,
    )
    if source.lower().startswith("magnet:"):
        if no_webseed:  # its ws= left out, so the torrent made from its metadata has none
            source = without_web_seeds(source)
        raise SystemExit(fetch_magnet(source, out_dir, **options, web_seeds=not no_webseed))
    raise SystemExit(fetch_torrent(Path(source), out_dir, **options, web_seeds=not no_webseed))


def parse_peer(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--peer takes HOST:PORT, not {text!r}")
    return host, int(port)


__all__ = [
    "DEFAULT_PORT",
    "PORT_ATTEMPTS",
    "fetch_command",
    "listen_port",
    "parse_peer",
    "resolve_data_root",
    "seed_command",
    "seed_torrent_file",
]
