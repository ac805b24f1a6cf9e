"""DHT node addresses as a user and a .torrent give them: BEP 5's ``nodes`` key of a trackerless
torrent (``[["host", port], ...]``, read and written) and ``HOST:PORT`` on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from swarm.errors import UsageError

__all__ = [
    "MAX_NODES",
    "PUBLIC_ROUTERS",
    "nodes_of",
    "nodes_value",
    "parse_node_address",
    "parse_nodes",
]

Address = tuple[str, int]
MAX_NODES = 64
"""At most this many of a torrent's ``nodes`` are read."""
PUBLIC_ROUTERS: tuple[Address, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
)
"""The usual public bootstrap routers (what ``swarm seed`` and ``fetch`` join through unless
told otherwise)."""


class _HasExtra(Protocol):
    @property
    def extra(self) -> dict[bytes, Any]: ...


def parse_nodes(value: Any) -> tuple[Address, ...]:
    """The (host, port) pairs of a ``nodes`` value; entries of the wrong shape are skipped,
    as other clients skip them."""
    if not isinstance(value, list):
        return ()
    out: list[Address] = []
    for entry in value[:MAX_NODES]:
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        host, port = entry
        if isinstance(host, bytes) and host and type(port) is int and 0 < port < 65536:
            out.append((host.decode("utf-8", "replace"), port))
    return tuple(dict.fromkeys(out))


def nodes_of(torrent: _HasExtra) -> tuple[Address, ...]:
    """A torrent's BEP 5 ``nodes`` (kept among its unknown keys, and written back with them)."""
    return parse_nodes(torrent.extra.get(b"nodes"))


def nodes_value(addrs: Iterable[Address]) -> list[list[bytes | int]]:
    """The ``nodes`` value for *addrs*."""
    return [[host.encode(), port] for host, port in dict.fromkeys(addrs)]


def parse_node_address(text: str, option: str = "--dht-bootstrap") -> Address:
    """``HOST:PORT`` (a name or an IPv4 address) for *option*; UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or "[" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} takes HOST:PORT (IPv4 or a name), not {text!r}")
    return host, int(port)
