"""Tracker client, one announce at a time: HTTP (BEP 3, 23, 7) and UDP (BEP 15).

The request and response codecs are pure functions; the UDP packets, the event numbers and
compact peers are the tracker's own codec (:mod:`tracker.codec`), which both ends speak.
:func:`announce_once` talks to one tracker URL; the loop over tiers, with back-off and
re-announces, is :class:`swarm.announcer.Announcer`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from swarm import bencoding, http_get
from swarm.errors import BencodeError, TrackerError, TrackerURLError, UDPTransactionMismatch
from tracker import codec
from tracker.errors import PacketError

__all__ = [
    "AnnounceRequest",
    "AnnounceResponse",
    "Peer",
    "announce_once",
    "http_announce",
    "http_announce_url",
    "parse_compact_peers",
    "parse_http_response",
    "parse_udp_announce",
    "parse_udp_connect",
    "udp_announce",
    "udp_announce_request",
]

log = logging.getLogger(__name__)

Peer = tuple[str, int]
_T = TypeVar("_T")

MAX_ANSWER = 1 << 20
"""Most bytes an HTTP tracker's answer may take."""


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    """What we tell a tracker: who we are, how far along, and the event (if any)."""

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
    """What a tracker answered: when to ask again, peers, and its counts (if it gave them)."""

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


parse_compact_peers = codec.parse_peers
"""BEP 23 (6 bytes each) or BEP 7 (18 bytes each) compact peers; a ragged tail is dropped."""


def parse_http_response(body: bytes) -> AnnounceResponse:
    """Decode an HTTP tracker's bencoded answer."""
    try:
        d = bencoding.decode(body)
    except BencodeError:
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


def udp_announce_request(connection_id: int, transaction_id: int, req: AnnounceRequest) -> bytes:
    return codec.announce_request(
        connection_id,
        transaction_id,
        info_hash=req.info_hash,
        peer_id=req.peer_id,
        port=req.port,
        downloaded=req.downloaded,
        left=req.left,
        uploaded=req.uploaded,
        event=req.event,
        key=req.key,
        numwant=req.numwant,
    )


def _check_udp_reply(data: bytes, action: codec.Action, transaction_id: int) -> None:
    """Raise unless *data* answers our *transaction_id* with *action*: a reply for another
    transaction is :class:`UDPTransactionMismatch` (to skip), an error reply a refusal."""
    try:
        got_action, tid = codec.reply_header(data)
    except PacketError as exc:
        raise TrackerError(str(exc)) from None
    if tid != transaction_id:
        raise UDPTransactionMismatch("the UDP tracker answered another transaction")
    if got_action == codec.Action.ERROR:
        raise TrackerError("the tracker refused: " + codec.parse_error_reply(data))
    if got_action != action:
        raise TrackerError("the UDP tracker answered with the wrong action")


def parse_udp_connect(data: bytes, transaction_id: int) -> int:
    """The connection id from a connect reply to *transaction_id*."""
    _check_udp_reply(data, codec.Action.CONNECT, transaction_id)
    try:
        return codec.parse_connect_reply(data)
    except PacketError as exc:
        raise TrackerError(str(exc)) from None


def parse_udp_announce(data: bytes, transaction_id: int, ipv6: bool) -> AnnounceResponse:
    """An announce reply to *transaction_id*; its peers are IPv6 ones when *ipv6*."""
    _check_udp_reply(data, codec.Action.ANNOUNCE, transaction_id)
    try:
        reply = codec.parse_announce_reply(data, ipv6=ipv6)
    except PacketError as exc:
        raise TrackerError(str(exc)) from None
    return AnnounceResponse(
        interval=reply.interval or 1800,
        min_interval=None,
        peers=reply.peers,
        complete=reply.seeders,
        incomplete=reply.leechers,
    )


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP tracker socket error: %s", exc)


async def udp_announce(url: str, req: AnnounceRequest, timeout: float = 15.0) -> AnnounceResponse:
    """One BEP 15 announce: connect, then announce, each retried on a short time-out."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or not parsed.port:
        raise TrackerURLError(f"bad UDP tracker URL: {url}")
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
            conn_id = await _udp_exchange(
                transport, proto, codec.connect_request, parse_udp_connect
            )
            return await _udp_exchange(
                transport,
                proto,
                lambda tid: udp_announce_request(conn_id, tid, req),
                lambda data, tid: parse_udp_announce(data, tid, ipv6),
            )
    except TimeoutError:
        raise TrackerError(f"no answer from {url}") from None
    finally:
        transport.close()


async def _udp_exchange(
    transport: asyncio.DatagramTransport,
    proto: _UDPClient,
    make: Callable[[int], bytes],
    parse: Callable[[bytes, int], _T],
) -> _T:
    """Send ``make(tid)`` and return ``parse(reply, tid)``, resending after 1, 2, 4, 8 s...;
    replies to other transactions (a late answer to a resent request) are skipped."""
    wait = 1.0
    while True:
        tid = secrets.randbits(32)
        transport.sendto(make(tid))
        try:
            async with asyncio.timeout(wait):
                while True:
                    data = await proto.queue.get()
                    try:
                        return parse(data, tid)
                    except UDPTransactionMismatch:
                        continue
        except TimeoutError:
            wait = min(wait * 2, 8.0)


async def http_announce(
    url: str, req: AnnounceRequest, tracker_id: bytes | None = None, timeout: float = 15.0
) -> AnnounceResponse:
    """One HTTP(S) announce (:mod:`swarm.http_get`); :class:`TrackerError` for any failure."""
    full = http_announce_url(url, req, tracker_id)
    try:
        resp = await http_get.get(full, timeout=timeout, max_body=MAX_ANSWER)
    except http_get.HTTPGetError as exc:
        raise TrackerError(f"{url}: {exc}") from None
    if resp.status != 200:
        raise TrackerError(f"{url} answered HTTP {resp.status} {resp.reason}".rstrip())
    return parse_http_response(resp.body)


async def announce_once(
    url: str, req: AnnounceRequest, tracker_id: bytes | None = None
) -> AnnounceResponse:
    """Announce to one tracker URL (http, https or udp)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https", "udp") and not parts.hostname:
        raise TrackerURLError(f"no host in tracker URL: {url}")
    if scheme in ("http", "https"):
        return await http_announce(url, req, tracker_id)
    if scheme == "udp":
        return await udp_announce(url, req)
    raise TrackerURLError(f"unsupported tracker URL scheme: {url}")
