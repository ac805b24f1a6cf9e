"""``swarm tracker``: run the tracker until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click


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
    help="Allow only these torrents: a folder of .torrent files or a file of hex info-hashes.",
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
def tracker_command(
    host: str,
    port: int,
    udp_port: int | None,
    no_udp: bool,
    interval: int,
    min_interval: int,
    allow: Path | None,
    max_torrents: int,
    max_peers: int,
    allow_ip_param: bool,
) -> None:
    """Run a BitTorrent tracker (HTTP and UDP) until Ctrl-C."""
    from swarm.cli_peer import run_until_signal
    from swarm.errors import UsageError
    from tracker.server import Tracker, TrackerConfig, load_allow_list

    if no_udp and udp_port is not None:
        raise UsageError("--udp-port and --no-udp cannot be used together")
    config = TrackerConfig(
        host=host,
        port=port,
        udp_port=udp_port,
        udp=not no_udp,
        interval=interval,
        min_interval=min(min_interval, interval),
        max_torrents=max_torrents,
        max_peers=max_peers,
        allow=load_allow_list(allow) if allow else None,
        allow_ip_param=allow_ip_param,
    )

    async def main(stop: asyncio.Event) -> int:
        tracker = Tracker(config)
        await tracker.start()
        try:
            for url in tracker.announce_urls:
                click.echo(url)
            click.echo(f"stats: http://{host}:{tracker.port}/stats")
            sys.stdout.flush()
            await stop.wait()
        finally:
            await tracker.stop()
        return 0

    raise SystemExit(run_until_signal(main, fast_loop=True))
