"""HTTP tracker requests and responses as data (BEP 3, 7, 23, 48).

The query string is parsed raw: ``info_hash`` and ``peer_id`` are 20 arbitrary bytes,
percent-encoded, which a text decoder would mangle. Bad requests raise :class:`RequestError`,
whose message goes back to the client as a bencoded ``failure reason``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
import urllib.parse
from typing import Any

import bencodepy

from swarm.errors import TrackerError
from tracker.state import Announce, AnnounceResult

MAX_QUERY = 4096
MAX_SCRAPE_HASHES = 100
EVENTS = {"", "started", "completed", "stopped", "paused"}


class RequestError(TrackerError):
    """A malformed announce or scrape; the message is the failure reason."""


def parse_query(query: bytes) -> dict[str, list[bytes]]:
    """Split a raw query string into names and raw byte values."""
    if len(query) > MAX_QUERY:
        raise RequestError("query string too long")
    out: dict[str, list[bytes]] = {}
    if not query:
        return out
    unquote = urllib.parse.unquote_to_bytes
    for part in query.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        # Most names and numbers carry no escapes: skip the decoder for them (hot path).
        key = (unquote(name) if b"%" in name else name).decode("latin-1")
        if b"%" in value or b"+" in value:
            value = unquote(value.replace(b"+", b" "))
        out.setdefault(key, []).append(value)
    return out


def _one(q: dict[str, list[bytes]], name: str) -> bytes | None:
    values = q.get(name)
    return values[0] if values else None


def _int(q: dict[str, list[bytes]], name: str, default: int | None = None, hi: int = 2**63) -> int:
    raw = _one(q, name)
    if raw is None or raw == b"":
        if default is None:
            raise RequestError(f"missing {name}")
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise RequestError(f"invalid {name}")
    value = int(raw)
    if value > hi:
        raise RequestError(f"invalid {name}")
    return value


def _hash20(q: dict[str, list[bytes]], name: str) -> bytes:
    raw = _one(q, name)
    if raw is None:
        raise RequestError(f"missing {name}")
    if len(raw) != 20:
        raise RequestError(f"invalid {name}: must be 20 bytes")
    return raw


@functools.lru_cache(maxsize=4096)
def normalize_ip(ip: str) -> str:
    """'::ffff:1.2.3.4' is an IPv4 peer."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def parse_announce(
    query: bytes, remote_ip: str, *, allow_ip_param: bool = False
) -> tuple[Announce, bool, bool]:
    """Validate an announce; returns it with the client's ``compact`` and ``no_peer_id``."""
    q = parse_query(query)
    info_hash = _hash20(q, "info_hash")
    peer_id = _hash20(q, "peer_id")
    port = _int(q, "port")
    if not 0 < port < 65536:
        raise RequestError("invalid port")
    event_raw = _one(q, "event") or b""
    event = event_raw.decode("latin-1")
    if event not in EVENTS:
        raise RequestError("invalid event")
    if event == "paused":
        event = ""
    ip = remote_ip
    if allow_ip_param and _one(q, "ip"):
        try:
            ip = str(ipaddress.ip_address(_one(q, "ip").decode("ascii")))  # type: ignore[union-attr]
        except (ValueError, UnicodeDecodeError):
            raise RequestError("invalid ip") from None
    announce = Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        ip=normalize_ip(ip),
        port=port,
        uploaded=_int(q, "uploaded", 0),
        downloaded=_int(q, "downloaded", 0),
        left=_int(q, "left", 0),
        event=event,
        numwant=_int(q, "numwant", 50, hi=1 << 31),
    )
    compact = (_one(q, "compact") or b"1") != b"0"
    no_peer_id = (_one(q, "no_peer_id") or b"0") == b"1"
    return announce, compact, no_peer_id


def compact_peers(result: AnnounceResult) -> tuple[bytes, bytes]:
    """BEP 23 (IPv4, 6 bytes each) and BEP 7 (IPv6, 18 bytes each) peer strings."""
    v4, v6 = [], []
    for p in result.peers:
        packed = p.compact
        if packed is None:
            try:
                family = socket.AF_INET6 if ":" in p.ip else socket.AF_INET
                packed = p.compact = socket.inet_pton(family, p.ip) + struct.pack(">H", p.port)
            except OSError:
                continue
        (v6 if len(packed) == 18 else v4).append(packed)
    return b"".join(v4), b"".join(v6)


def announce_response(
    result: AnnounceResult, interval: int, min_interval: int, compact: bool, no_peer_id: bool
) -> bytes:
    d: dict[bytes, Any] = {
        b"interval": interval,
        b"min interval": min_interval,
        b"complete": result.complete,
        b"incomplete": result.incomplete,
    }
    if compact:
        v4, v6 = compact_peers(result)
        d[b"peers"] = v4
        if v6:
            d[b"peers6"] = v6
    else:
        peers = []
        for p in result.peers:
            entry: dict[bytes, Any] = {b"ip": p.ip.encode(), b"port": p.port}
            if not no_peer_id:
                entry[b"peer id"] = p.peer_id
            peers.append(entry)
        d[b"peers"] = peers
    return bencodepy.encode(d)


def failure(reason: str) -> bytes:
    return bencodepy.encode({b"failure reason": reason.encode()})


def parse_scrape(query: bytes) -> list[bytes]:
    q = parse_query(query)
    hashes = q.get("info_hash", [])
    if len(hashes) > MAX_SCRAPE_HASHES:
        raise RequestError("too many info_hash values")
    for h in hashes:
        if len(h) != 20:
            raise RequestError("invalid info_hash: must be 20 bytes")
    return hashes


def scrape_response(files: dict[bytes, tuple[int, int, int]]) -> bytes:
    return bencodepy.encode(
        {
            b"files": {
                h: {b"complete": c, b"downloaded": d, b"incomplete": i}
                for h, (c, d, i) in files.items()
            }
        }
    )
