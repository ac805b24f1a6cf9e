"""``swarm serve-central``: the plain HTTP server that is the baseline of the comparison."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from swarm.cli.common import report, status_option
from swarm.cli.running import run_until_signal
from swarm.errors import UsageError
from swarm.status import Event, Status


@click.command("serve-central")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0: any free port).",
)
@click.option(
    "--max-upload-rate",
    default=None,
    metavar="RATE",
    help="Cap on the total upload to all clients (e.g. 1M); unlimited by default.",
)
@status_option
def serve_central_command(path: Path, host: str, port: int, max_upload_rate: str | None) -> None:
    """Serve the file PATH, or every file of the folder PATH, over plain HTTP.

    It is also a web seed (BEP 19) for a torrent of PATH: give the URL it prints as
    'web seed URL: ...' to `swarm create --webseed` or `swarm seed --webseed`. A torrent of a
    file finds it at that URL + the file's name; a torrent of a folder (named after the folder,
    as `swarm create` names it) at that URL + the folder's name + each file's path, which this
    server maps into PATH. Hidden files (a name starting with '.') are not served."""
    from swarm.central.server import CentralServer
    from swarm.units import format_rate, parse_rate

    rate = parse_rate(max_upload_rate)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")

    async def main(stop: asyncio.Event) -> int:
        server = CentralServer(path, host=host, port=port, max_upload_rate=rate)
        await server.start()
        try:
            click.echo(f"serving {path} at {server.url}")
            if rate:
                click.echo(f"upload capped at {format_rate(rate)} in all")
            for url in server.urls[:20]:
                click.echo(f"  {url}")
            click.echo(f"web seed URL: {server.webseed_url}")
            sys.stdout.flush()
            urls = tuple(server.urls[:20])
            report(Status(Event.LISTENING, port=server.port, urls=urls, webseed=server.webseed_url))
            await stop.wait()
        finally:
            await server.stop()
        return 0

    raise SystemExit(run_until_signal(main))
