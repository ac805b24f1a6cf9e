"""``swarm create`` and ``swarm info``: make a .torrent, show what is inside one.

No asyncio here: these start fast (``bench/create`` times ``swarm create --help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import Display, echo, size_option, tracker_tiers, write_file
from swarm.units import format_size

if TYPE_CHECKING:
    from swarm.magnet import Magnet

BIG_FILE = 64 * 1024 * 1024  # hashing shows a progress bar from this size on (or for a folder)


@click.command("create")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the .torrent (default: NAME.torrent here).",
)
@click.option(
    "-t",
    "--tracker",
    "trackers",
    multiple=True,
    metavar="URL",
    help="Tracker URL; repeat for more tiers, commas for several URLs in one tier.",
)
@click.option(
    "--piece-length",
    callback=size_option,
    metavar="SIZE",
    help="Piece length (power of two, >= 16K); automatic by default.",
)
@click.option(
    "--webseed",
    "webseeds",
    multiple=True,
    metavar="URL",
    help="Web seed URL (BEP 19): http:// or https://, a host, no #fragment; ending in / it is "
    "a folder the torrent's name (and a multi-file torrent's paths) are appended to, as "
    "`swarm serve-central` prints it ('web seed URL: ...'). Repeatable.",
)
@click.option("--private", is_flag=True, help="Mark the torrent private (BEP 27).")
@click.option(
    "--align",
    is_flag=True,
    help="Start every file of a folder on a piece boundary, with BEP 47 pad files (.pad/N, "
    "zeros no client writes to disk) between them, as libtorrent lays them out (executable "
    "files marked x): the same files give libtorrent's info-hash.",
)
@click.option("--comment", help="A comment stored in the torrent.")
@click.option(
    "--dht-node",
    "dht_nodes",
    multiple=True,
    metavar="HOST:PORT",
    help="A DHT node to bootstrap from, written as BEP 5 'nodes' (for a trackerless "
    "torrent); repeatable.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def create_command(
    path: Path,
    output: Path | None,
    trackers: tuple[str, ...],
    piece_length: int | None,
    webseeds: tuple[str, ...],
    private: bool,
    align: bool,
    comment: str | None,
    dht_nodes: tuple[str, ...],
    force: bool,
) -> None:
    """Make a .torrent for the file or folder PATH. Without -t it is trackerless: peers
    find each other through the DHT (BEP 5)."""
    from swarm.create import check_urls, create_torrent
    from swarm.dht_nodes import parse_node_address

    tiers = tracker_tiers(trackers)
    nodes = [parse_node_address(n, "--dht-node") for n in dht_nodes]
    check_urls(tiers, list(webseeds))  # before the output file and the hashing
    out = output or Path(Path(path).resolve().name + ".torrent")
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists already (use --force to overwrite)")
    with Display("hashing", transfer=True, enabled=_is_big(path)) as progress:
        data = create_torrent(
            path,
            trackers=tiers,
            piece_length=piece_length,
            webseeds=list(webseeds),
            private=private,
            comment=comment,
            on_progress=progress.update if progress.shown else None,
            dht_nodes=nodes,
            align=align,
        )
    write_file(out, data)
    from swarm import metainfo  # loaded by create_torrent (while it hashed): no cost here

    torrent = metainfo.parse(data)
    echo(f"torrent:   {out}")
    echo(f"info-hash: {torrent.info_hash_hex}")
    echo(f"magnet:    {torrent.magnet()}")


def _is_big(path: Path) -> bool:
    try:
        if path.is_file():
            return path.stat().st_size >= BIG_FILE
        return path.is_dir()
    except OSError:
        return False


@click.command("info")
@click.argument("torrent", metavar="TORRENT|MAGNET")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_command(torrent: str, as_json: bool) -> None:
    """Show what is inside a .torrent file, or what a magnet URI names."""
    import json

    from swarm import magnet, metainfo

    if magnet.is_magnet(torrent):  # a str, not a Path: a Path would fold the "//" of its URLs
        _show_magnet(magnet.parse_magnet(torrent), as_json)
        return
    t = metainfo.load(Path(torrent))
    summary = t.summary()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    click.echo(f"name:         {t.name}")
    click.echo(f"info-hash:    {t.info_hash_hex}")
    click.echo(f"size:         {format_size(t.length)} ({t.length} bytes)")
    click.echo(f"pieces:       {t.num_pieces} x {format_size(t.piece_length)}")
    click.echo(f"private:      {'yes' if t.private else 'no'}")
    for i, tier in enumerate(t.announce_tiers):
        click.echo(f"tracker {i:<5d} {' '.join(tier)}")
    for url in t.trackers:
        problem = metainfo.tracker_url_problem(url)
        if problem:  # a client skips it: say so here, where the user looks
            click.echo(f"unusable:     {url}: {problem}")
    for url in t.url_list:
        click.echo(f"web seed:     {url}")
    for host, port in t.nodes:
        click.echo(f"dht node:     {host}:{port}")
    if t.comment:
        click.echo(f"comment:      {t.comment}")
    if t.created_by:
        click.echo(f"created by:   {t.created_by}")
    if t.creation_date:
        import datetime as _dt

        when = _dt.datetime.fromtimestamp(t.creation_date, _dt.UTC)
        click.echo(f"created:      {when:%Y-%m-%d %H:%M:%S} UTC")
    files = [f for f in t.files if not f.padding]
    click.echo(f"files:        {len(files)}")
    for f in files[:50]:
        link = f" -> {'/'.join(f.symlink)} (a symlink: not created)" if f.symlink else ""
        flag = " (executable)" if f.executable else ""
        click.echo(f"  {format_size(f.length):>10}  {f.path_str}{flag}{link}")
    if len(files) > 50:
        click.echo(f"  ... and {len(files) - 50} more")
    pads = [f for f in t.files if f.padding]
    if pads:  # BEP 47: in the pieces as zeros, never on disk
        size = format_size(sum(f.length for f in pads))
        click.echo(f"pad files:    {len(pads)} ({size} of zeros aligning files; never written)")
    click.echo(f"magnet:       {t.magnet()}")


def _show_magnet(m: Magnet, as_json: bool) -> None:
    import json

    from swarm.magnet import format_peer
    from swarm.metainfo import tracker_url_problem

    if as_json:
        click.echo(json.dumps(m.summary(), ensure_ascii=False))
        return
    click.echo(f"name:         {m.display_name if m.display_name is not None else '(none)'}")
    click.echo(f"info-hash:    {m.info_hash_hex}")
    for url in m.trackers:
        click.echo(f"tracker:      {url}")
        problem = tracker_url_problem(url)
        if problem:  # a client skips it: say so here, where the user looks
            click.echo(f"unusable:     {url}: {problem}")
    for peer in m.peers:
        click.echo(f"peer:         {format_peer(peer)}")
    for url in m.web_seeds:
        click.echo(f"web seed:     {url}")
    click.echo(f"magnet:       {m.uri()}")
