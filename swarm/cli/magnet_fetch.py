"""``swarm fetch 'magnet:?...'``: the metadata phase (BEP 9), then a torrent fetch as usual.

Before the piece bar, the progress display says ``fetching metadata from N peers``; once the
info dictionary is verified, one line ``metadata: NAME, 123456 bytes, from 2 peers in 0.41 s``
(``from 1 peer`` with one), and ``NAME.torrent`` is written in the output folder, where the
next run finds it and skips this phase. The same session (and listening port) goes on to
download and seed. A bad magnet is ``error: ...``, exit 2, before anything starts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swarm.cli.common import Display, echo
from swarm.cli.fetch import download_and_seed, notice
from swarm.cli.running import INTERRUPTED, unless_stopped
from swarm.units import counted

if TYPE_CHECKING:
    from swarm.cli.dht import DhtArgs
    from swarm.metadata_fetch import FetchedMetadata, MetadataProgress
    from swarm.metainfo import Torrent

__all__ = ["fetch_magnet", "metadata_line", "metadata_status"]


def metadata_status(progress: MetadataProgress) -> str:
    """The progress display's text while the metadata is fetched."""
    text = f"fetching metadata from {counted(progress.with_metadata, 'peer')}"
    if progress.peers > progress.with_metadata:
        text += f" ({progress.peers} connected)"
    return text


def metadata_line(torrent: Torrent, fetched: FetchedMetadata, seconds: float) -> str:
    """``metadata: NAME, 123456 bytes, from 2 peers in 0.41 s``: *seconds* from the start to
    the torrent checked and read (not only the exchange: reading a large info dictionary
    takes time too)."""
    return (
        f"metadata: {torrent.name}, {len(fetched.info)} bytes, "
        f"from {counted(fetched.contributors, 'peer')} in {seconds:.2f} s"
    )


def fetch_magnet(
    uri: str,
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
    """Download what the magnet *uri* names into *out_dir*; the exit code. Without tr and
    x.pe, the DHT alone finds its peers. *web_seeds* False: no web seed is used (neither the
    magnet's ws= nor a url-list in its metadata)."""
    from swarm.cli.dht import dht_session_options
    from swarm.cli.running import run_until_signal
    from swarm.magnet import parse_magnet
    from swarm.session import Session
    from swarm.storage import check_folder

    magnet = parse_magnet(uri)
    check_folder(out_dir)
    dht_kw = dht_session_options(dht, host, out_dir)

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
            display = Display(magnet.display_name or magnet.info_hash_hex, None)

            def progress(p: MetadataProgress) -> None:
                display.update(p.pieces, p.total, metadata_status(p))

            def verified(torrent: Torrent, fetched: FetchedMetadata) -> None:
                display.stop()
                click.echo(metadata_line(torrent, fetched, time.monotonic() - started))
                sys.stdout.flush()

            adding = session.add_magnet(
                magnet,
                out_dir,
                peers=direct,
                on_progress=progress,
                on_metadata=verified,
                overwrite=overwrite,
            )
            try:
                added = await unless_stopped(adding, stop)
            finally:
                display.stop()
            if added is None:
                echo("stopped before the metadata was complete; run again to start over")
                return INTERRUPTED
            t = added.result()
            return await download_and_seed(t, stop, started, seed, session.port)

    return run_until_signal(main, fast_loop=True)
