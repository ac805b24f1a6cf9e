"""``swarm dht`` (a standalone Mainline DHT node: a bootstrap node for a lab or a LAN) and the
DHT options of ``swarm seed`` and ``swarm fetch``.

By default ``seed`` and ``fetch`` run a DHT node (BEP 5) that joins through the usual public
routers (router.bittorrent.com:6881, dht.transmissionbt.com:6881, router.utorrent.com:6881)
and a trackerless torrent's own ``nodes``; ``--dht-bootstrap HOST:PORT`` joins through those
nodes instead, ``--no-dht`` turns it off. The public routers are never dialled when the peer
port listens on a loopback address (``--host 127.0.0.1``: they could not be reached from it)
or with ``SWARM_NO_PUBLIC_DHT=1`` in the environment (the test suite sets it): the DHT is then
on only when ``--dht``, ``--dht-bootstrap`` or the torrent's ``nodes`` ask for it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from swarm.dht_nodes import PUBLIC_ROUTERS, parse_node_address

__all__ = [
    "NO_PUBLIC_DHT",
    "DhtArgs",
    "STATE_FILE",
    "dht_command",
    "dht_options",
    "dht_session_options",
    "public_routers_allowed",
]

F = TypeVar("F", bound=Callable[..., Any])
Address = tuple[str, int]
DhtArgs = tuple[bool | None, tuple[str, ...], int | None]
"""What ``--dht/--no-dht``, ``--dht-bootstrap`` and ``--dht-port`` said."""

NO_PUBLIC_DHT = "SWARM_NO_PUBLIC_DHT"
STATE_FILE = ".swarm-dht.state"
"""The routing table kept between runs: in the output folder (fetch), beside the .torrent
(seed)."""
ROUTERS_TEXT = ", ".join(f"{h}:{p}" for h, p in PUBLIC_ROUTERS)


def dht_options(f: F) -> F:
    """``--dht/--no-dht``, ``--dht-bootstrap HOST:PORT`` (repeatable) and ``--dht-port``."""
    f = click.option(
        "--dht-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="UDP port of the DHT node [default: the peer port, or any free one].",
    )(f)
    f = click.option(
        "--dht-bootstrap",
        "dht_bootstrap",
        multiple=True,
        metavar="HOST:PORT",
        help="Join the DHT through this node rather than the public routers; repeatable.",
    )(f)
    return click.option(
        "--dht/--no-dht",
        "dht",
        default=None,
        help="Find peers through the Mainline DHT (BEP 5) and announce there (never for a "
        f"private torrent) [default: on, joining through {ROUTERS_TEXT}; only through "
        "--dht-bootstrap or a torrent's nodes when --host is a loopback address or "
        f"{NO_PUBLIC_DHT}=1 is set]. The table is kept in {STATE_FILE} in the output "
        "folder (fetch) or beside the .torrent (seed).",
    )(f)


def dht_session_options(
    args: DhtArgs, host: str, folder: Path, torrent_nodes: Iterable[Address] = ()
) -> dict[str, Any]:
    """The DHT keyword arguments of a :class:`~swarm.session.Session` listening on *host*
    for these options, its table kept in *folder*: off with ``--no-dht``; else the nodes
    given, or the public routers unless *host* is a loopback address or the environment
    forbids them; off when nothing at all is left to join through (and the DHT was not asked
    for by name)."""
    dht, bootstrap, port = args
    if dht is False:
        return {"dht": False}
    routers = [parse_node_address(text) for text in bootstrap]
    if not routers and public_routers_allowed(host):
        routers = list(PUBLIC_ROUTERS)
    if not routers and not list(torrent_nodes) and dht is None:
        return {"dht": False}
    return {
        "dht": True,
        "dht_port": port,
        "dht_bootstrap": routers,
        "dht_state": folder / STATE_FILE,
    }


def public_routers_allowed(host: str) -> bool:
    """Whether a node on *host* may join through the public routers by default."""
    if os.environ.get(NO_PUBLIC_DHT, "") not in ("", "0"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


@click.command("dht")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=6881,
    show_default=True,
    help="UDP port; 0: any.",
)
@click.option(
    "--bootstrap",
    "bootstrap",
    multiple=True,
    metavar="HOST:PORT",
    help="Join an existing DHT through this node; repeatable (by default the node waits for "
    "others to join it).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the node's id and table in this file between runs.",
)
@click.option(
    "--stats-every",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Print the table's figures as one JSON line this often (and on SIGUSR1 always).",
)
@click.option(
    "--query-rate",
    type=click.FloatRange(min=1.0),
    default=200.0,
    show_default=True,
    help="Queries a second answered per source IP (a lab's nodes often share one IP).",
)
def dht_command(
    host: str,
    port: int,
    bootstrap: tuple[str, ...],
    state: Path | None,
    stats_every: float | None,
    query_rate: float,
) -> None:
    """Run a standalone Mainline DHT node (BEP 5), for instance the bootstrap node of a lab or
    a LAN, until Ctrl-C (or SIGTERM). Prints its node id and address, then a JSON line of its
    figures (nodes, buckets, torrents and peers stored, queries in flight) on SIGUSR1 or every
    --stats-every seconds."""
    import asyncio
    import json
    import signal
    import sys

    from swarm.cli.running import run_until_signal
    from swarm.dht_shell import DhtNode

    routers = [parse_node_address(text, "--bootstrap") for text in bootstrap]

    async def main(stop: asyncio.Event) -> int:
        node = DhtNode(state_path=state, query_rate=query_rate, query_burst=2 * query_rate)
        await node.start(host, port)
        loop = asyncio.get_running_loop()

        def show() -> None:
            click.echo(json.dumps(node.stats(), sort_keys=True))
            sys.stdout.flush()

        loop.add_signal_handler(signal.SIGUSR1, show)
        try:
            click.echo(f"dht node {node.node.id.hex()} on {node.address[0]}:{node.address[1]}")
            sys.stdout.flush()
            joining = asyncio.ensure_future(node.bootstrap(routers)) if routers else None
            while not stop.is_set():
                try:
                    async with asyncio.timeout(stats_every):
                        await stop.wait()
                except TimeoutError:
                    show()
            if joining is not None:
                joining.cancel()
                await asyncio.gather(joining, return_exceptions=True)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            await node.stop()
        return 0

    raise SystemExit(run_until_signal(main))
