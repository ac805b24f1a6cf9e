"""HTTP tracker requests and responses as data (BEP 3, 7, 23, 48).

The query string is parsed raw: ``info_hash`` and ``peer_id`` are 20 arbitrary bytes,
percent-encoded, which a text decoder would mangle. Bad requests raise :class:`RequestError`,
whose message goes back to the client as a bencoded ``failure reason``. Compact peers and the
event names come from :mod:`tracker.codec`, which the tracker client speaks too.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
from collections.abc import Iterator
from typing import Any

from tracker.bencoding import encode as _bencode
from tracker.codec import EVENT_NUMBERS, pack_peer
from tracker.errors import RequestError
from tracker.state import Announce, AnnounceResult, CompactResult

__all__ = [
    "RequestError",
    "announce_response",
    "compact_peers",
    "compact_response",
    "failure",
    "normalize_ip",
    "parse_announce",
    "parse_scrape",
    "scrape_response",
    "unquote",
]

MAX_QUERY = 4096
MAX_SCRAPE_HASHES = 100
EVENTS = {name.encode(): name for name in EVENT_NUMBERS}
EVENTS[b"paused"] = ""  # BEP 21: an ordinary announce


# Percent-decoding in C. A value that is nothing but %XX escapes (how most clients send
# info_hash) goes to bytes.fromhex; in any other, "%" becomes "\\x" and the codec for Python's
# escapes does the rest (bytes stay bytes through latin-1). A value with a backslash of its
# own, or a "%" not followed by two hex digits, goes to urllib, which leaves a broken escape
# as it is.
_unquote = urllib.parse.unquote_to_bytes


def unquote(value: bytes) -> bytes:
    """Percent-decode a raw query value to bytes (``+`` is a space, as in forms)."""
    if 37 not in value and 43 not in value:  # no "%" and no "+": nothing to decode
        return value
    third = len(value) / 3
    if value[::3].count(b"%") == third == value.count(b"%"):  # "%XX" and nothing else
        try:
            return bytes.fromhex(value.replace(b"%", b"").decode("ascii"))
        except ValueError:  # not hex (UnicodeDecodeError is a ValueError too)
            pass
    value = value.replace(b"+", b" ")
    if 92 not in value:
        try:
            return value.replace(b"%", b"\\x").decode("unicode_escape").encode("latin-1")
        except UnicodeDecodeError:
            pass
    return _unquote(value)


def _fields(query: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(decoded name, raw value) for each field of a raw query string; values are decoded
    by whoever reads them, so fields nobody reads cost nothing."""
    if len(query) > MAX_QUERY:
        raise RequestError("query string too long")
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            yield unquote(name), value


def _first_values(query: bytes) -> dict[bytes, bytes]:
    """Names to their first raw value (the announce's hot path: no generator, and a name is
    decoded only if it has a "%" or a "+")."""
    if len(query) > MAX_QUERY:
        raise RequestError("query string too long")
    out: dict[bytes, bytes] = {}
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if 37 in name or 43 in name:
            name = unquote(name)
        if name not in out:
            out[name] = value
    return out


def _int(q: dict[bytes, bytes], name: bytes, default: int | None = None, hi: int = 2**63) -> int:
    raw = q.get(name)
    if raw:
        if raw.isdigit() and len(raw) <= 20:
            value = int(raw)
            if value <= hi:
                return value
        raw = unquote(raw)  # a number percent-encoded for no reason is still a number
        if raw.isdigit() and len(raw) <= 20 and int(raw) <= hi:
            return int(raw)
        raise RequestError(f"invalid {name.decode()}")
    if default is None:
        raise RequestError(f"missing {name.decode()}")
    return default


def _hash20(q: dict[bytes, bytes], name: bytes) -> bytes:
    raw = q.get(name)
    if raw is None:
        raise RequestError(f"missing {name.decode()}")
    raw = unquote(raw)
    if len(raw) != 20:
        raise RequestError(f"invalid {name.decode()}: must be 20 bytes")
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
    q = _first_values(query)
    info_hash = _hash20(q, b"info_hash")
    peer_id = _hash20(q, b"peer_id")
    port = _int(q, b"port")
    if not 0 < port < 65536:
        raise RequestError("invalid port")
    raw = q.get(b"event")
    event = "" if raw is None else EVENTS.get(unquote(raw))
    if event is None:
        raise RequestError("invalid event")
    ip = remote_ip
    if allow_ip_param and q.get(b"ip"):
        try:
            ip = str(ipaddress.ip_address(unquote(q[b"ip"]).decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            raise RequestError("invalid ip") from None
    announce = Announce(  # positional: info_hash, peer_id, ip, port, up, down, left, ...
        info_hash,
        peer_id,
        normalize_ip(ip),
        port,
        _int(q, b"uploaded", 0),
        _int(q, b"downloaded", 0),
        _int(q, b"left", 0),
        event,
        _int(q, b"numwant", 50, hi=1 << 31),
    )
    raw = q.get(b"compact")
    compact = raw is None or raw == b"1" or unquote(raw) != b"0"
    raw = q.get(b"no_peer_id")
    no_peer_id = raw is not None and unquote(raw) == b"1"
    return announce, compact, no_peer_id


def compact_peers(result: AnnounceResult) -> tuple[bytes, bytes]:
    """BEP 23 (IPv4, 6 bytes each) and BEP 7 (IPv6, 18 bytes each) peer strings."""
    packed = [p.compact or pack_peer(p.ip, p.port) for p in result.peers]
    joined = b"".join(packed)
    if len(joined) == 6 * len(packed):  # the usual case: every peer is IPv4
        return joined, b""
    v4 = b"".join([c for c in packed if len(c) == 6])
    return v4, b"".join([c for c in packed if len(c) == 18])


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
    return _bencode(d)


def compact_response(result: CompactResult, interval: int, min_interval: int) -> bytes:
    """The answer to a compact announce (BEP 23, and BEP 7's ``peers6`` when there are any),
    written directly: its keys are fixed, and here in bencoding's sorted order."""
    head = b"d8:completei%de10:incompletei%de8:intervali%de12:min intervali%de5:peers%d:" % (
        result.complete,
        result.incomplete,
        interval,
        min_interval,
        len(result.peers),
    )
    if result.peers6:
        return b"".join(
            (head, result.peers, b"6:peers6%d:" % len(result.peers6), result.peers6, b"e")
        )
    return b"".join((head, result.peers, b"e"))


def failure(reason: str) -> bytes:
    return _bencode({b"failure reason": reason.encode()})


def parse_scrape(query: bytes) -> list[bytes]:
    hashes = [unquote(value) for name, value in _fields(query) if name == b"info_hash"]
    if len(hashes) > MAX_SCRAPE_HASHES:
        raise RequestError("too many info_hash values")
    for h in hashes:
        if len(h) != 20:
            raise RequestError("invalid info_hash: must be 20 bytes")
    return hashes


def scrape_response(files: dict[bytes, tuple[int, int, int]]) -> bytes:
    return _bencode(
        {
            b"files": {
                h: {b"complete": c, b"downloaded": d, b"incomplete": i}
                for h, (c, d, i) in files.items()
            }
        }
    )
