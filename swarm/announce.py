"""Tracker client: HTTP (BEP 3, 23, 7) and UDP (BEP 15) announces, BEP 12 tiers.

The request and response codecs are pure functions; :class:`Announcer` is the asyncio part
that talks to the trackers, fails over between them, and backs off when they fail.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import secrets
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl

from swarm import bencoding
from swarm.errors import MetainfoError, TrackerError

log = logging.getLogger(__name__)

UDP_PROTOCOL_ID = 0x41727101980
EVENTS = {"": 0, "completed": 1, "started": 2, "stopped": 3}
Peer = tuple[str, int]


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0
    event: str = ""  # "", started, completed, stopped
    numwant: int = 50
    key: int = 0


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    interval: int
    min_interval: int | None
    peers: list[Peer] = field(default_factory=list)
    complete: int | None = None
    incomplete: int | None = None
    tracker_id: bytes | None = None
    warning: str | None = None


def http_announce_url(base: str, req: AnnounceRequest, tracker_id: bytes | None = None) -> str:
    """The announce URL with a raw, percent-encoded query (info_hash and peer_id as bytes)."""
    q = urllib.parse.quote_from_bytes
    params = [
        ("info_hash", q(req.info_hash, safe="")),
        ("peer_id", q(req.peer_id, safe="")),
        ("port", str(req.port)),
        ("uploaded", str(req.uploaded)),
        ("downloaded", str(req.downloaded)),
        ("left", str(req.left)),
        ("compact", "1"),
        ("numwant", str(req.numwant)),
        ("key", f"{req.key:08x}"),
    ]
    if req.event:
        params.append(("event", req.event))
    if tracker_id:
        params.append(("trackerid", q(tracker_id, safe="")))
    sep = "&" if "?" in base else "?"
    return base + sep + "&".join(f"{k}={v}" for k, v in params)


def parse_compact_peers(data: bytes, ipv6: bool = False) -> list[Peer]:
    """BEP 23 (6 bytes each) or BEP 7 (18 bytes each) compact peers; a ragged tail is dropped."""
    size = 18 if ipv6 else 6
    out = []
    for i in range(0, len(data) - size + 1, size):
        addr = ipaddress.ip_address(data[i : i + size - 2])
        (port,) = struct.unpack_from(">H", data, i + size - 2)
        if port:
            out.append((str(addr), port))
    return out


def parse_http_response(body: bytes) -> AnnounceResponse:
    """Decode an HTTP tracker's bencoded answer."""
    try:
        d = bencoding.decode(body)
    except MetainfoError:
        raise TrackerError("the tracker's answer is not bencoded") from None
    if not isinstance(d, dict):
        raise TrackerError("the tracker's answer is not a dictionary")
    if b"failure reason" in d:
        reason = d[b"failure reason"]
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise TrackerError(f"the tracker refused: {text}")
    interval = d.get(b"interval")
    if not isinstance(interval, int) or interval <= 0:
        interval = 1800
    min_interval = d.get(b"min interval")
    peers: list[Peer] = []
    raw = d.get(b"peers", b"")
    if isinstance(raw, bytes):
        peers += parse_compact_peers(raw)
    elif isinstance(raw, list):
        for p in raw:
            if not isinstance(p, dict):
                continue
            ip, port = p.get(b"ip"), p.get(b"port")
            if isinstance(ip, bytes) and isinstance(port, int) and 0 < port < 65536:
                peers.append((ip.decode("ascii", "replace"), port))
    raw6 = d.get(b"peers6", b"")
    if isinstance(raw6, bytes):
        peers += parse_compact_peers(raw6, ipv6=True)
    warning = d.get(b"warning message")
    tid = d.get(b"tracker id")
    return AnnounceResponse(
        interval=interval,
        min_interval=min_interval if isinstance(min_interval, int) and min_interval > 0 else None,
        peers=peers,
        complete=d.get(b"complete") if isinstance(d.get(b"complete"), int) else None,
        incomplete=d.get(b"incomplete") if isinstance(d.get(b"incomplete"), int) else None,
        tracker_id=tid if isinstance(tid, bytes) else None,
        warning=warning.decode("utf-8", "replace") if isinstance(warning, bytes) else None,
    )


# -- UDP (BEP 15) --------------------------------------------------------------------------


def udp_connect_request(transaction_id: int) -> bytes:
    return struct.pack(">QII", UDP_PROTOCOL_ID, 0, transaction_id)


def udp_announce_request(connection_id: int, transaction_id: int, req: AnnounceRequest) -> bytes:
    return struct.pack(
        ">QII20s20sQQQIIIiH",
        connection_id,
        1,
        transaction_id,
        req.info_hash,
        req.peer_id,
        req.downloaded,
        req.left,
        req.uploaded,
        EVENTS.get(req.event, 0),
        0,
        req.key & 0xFFFFFFFF,
        req.numwant,
        req.port,
    )


def parse_udp_response(data: bytes, action: int, transaction_id: int, ipv6: bool) -> Any:
    """Check a UDP tracker answer; return the connection id (connect) or a response."""
    if len(data) < 8:
        raise TrackerError("the UDP tracker's answer is too short")
    got_action, tid = struct.unpack_from(">II", data)
    if tid != transaction_id:
        raise TrackerError("the UDP tracker answered another transaction")
    if got_action == 3:
        raise TrackerError("the tracker refused: " + data[8:].decode("utf-8", "replace"))
    if got_action != action:
        raise TrackerError("the UDP tracker answered with the wrong action")
    if action == 0:
        if len(data) < 16:
            raise TrackerError("the UDP tracker's connect answer is too short")
        return struct.unpack_from(">Q", data, 8)[0]
    if len(data) < 20:
        raise TrackerError("the UDP tracker's announce answer is too short")
    interval, leechers, seeders = struct.unpack_from(">III", data, 8)
    return AnnounceResponse(
        interval=interval or 1800,
        min_interval=None,
        peers=parse_compact_peers(data[20:], ipv6=ipv6),
        complete=seeders,
        incomplete=leechers,
    )


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP tracker socket error: %s", exc)


async def udp_announce(url: str, req: AnnounceRequest, timeout: float = 15.0) -> AnnounceResponse:
    """One BEP 15 announce: connect, then announce, each retried on a short time-out."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or not parsed.port:
        raise TrackerError(f"bad UDP tracker URL: {url}")
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await loop.create_datagram_endpoint(
            _UDPClient, remote_addr=(parsed.hostname, parsed.port)
        )
    except OSError as exc:
        raise TrackerError(f"cannot reach {url}: {exc.strerror or exc}") from None
    ipv6 = transport.get_extra_info("sockname")[0].count(":") > 1
    try:
        async with asyncio.timeout(timeout):
            conn_id = await _udp_exchange(transport, proto, 0, udp_connect_request, ipv6)
            return await _udp_exchange(
                transport, proto, 1, lambda tid: udp_announce_request(conn_id, tid, req), ipv6
            )
    except TimeoutError:
        raise TrackerError(f"no answer from {url}") from None
    finally:
        transport.close()


async def _udp_exchange(
    transport: Any, proto: _UDPClient, action: int, make: Any, ipv6: bool
) -> Any:
    wait = 1.0
    while True:
        tid = secrets.randbits(32)
        transport.sendto(make(tid))
        try:
            async with asyncio.timeout(wait):
                while True:
                    data = await proto.queue.get()
                    try:
                        return parse_udp_response(data, action, tid, ipv6)
                    except TrackerError as exc:
                        if "another transaction" in str(exc):
                            continue
                        raise
        except TimeoutError:
            wait = min(wait * 2, 8.0)


async def http_announce(
    session: aiohttp.ClientSession,
    url: str,
    req: AnnounceRequest,
    tracker_id: bytes | None = None,
    timeout: float = 15.0,
) -> AnnounceResponse:
    full = http_announce_url(url, req, tracker_id)
    try:
        async with asyncio.timeout(timeout):
            async with session.get(yarl.URL(full, encoded=True)) as resp:
                body = await resp.content.read(1 << 20)
                if resp.status != 200:
                    raise TrackerError(f"{url} answered HTTP {resp.status}")
    except TimeoutError:
        raise TrackerError(f"no answer from {url}") from None
    except aiohttp.ClientError as exc:
        raise TrackerError(f"cannot reach {url}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise TrackerError(f"cannot reach {url}: {exc}") from None
    return parse_http_response(body)


async def announce_once(
    session: aiohttp.ClientSession, url: str, req: AnnounceRequest, tracker_id: bytes | None = None
) -> AnnounceResponse:
    """Announce to one tracker URL (http, https or udp)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return await http_announce(session, url, req, tracker_id)
    if scheme == "udp":
        return await udp_announce(url, req)
    raise TrackerError(f"unsupported tracker URL scheme: {url}")


class TierList:
    """BEP 12 tiers: within a tier try URLs in order (shuffled once); a URL that answers moves
    to the front of its tier; a tier whose every URL fails passes to the next tier."""

    def __init__(
        self, tiers: list[list[str]] | tuple[tuple[str, ...], ...], rng: random.Random | None = None
    ) -> None:
        rng = rng or random.Random()
        self.tiers = [list(t) for t in tiers if t]
        for t in self.tiers:
            rng.shuffle(t)

    def urls(self) -> list[tuple[int, int, str]]:
        return [(ti, ui, u) for ti, tier in enumerate(self.tiers) for ui, u in enumerate(tier)]

    def promote(self, tier: int, index: int) -> None:
        t = self.tiers[tier]
        t.insert(0, t.pop(index))
