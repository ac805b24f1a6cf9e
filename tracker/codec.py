"""What a tracker and its clients both speak, once: the UDP packets (BEP 15), the announce
events, and compact peers (BEP 23: 4-byte IPv4 + 2-byte port; BEP 7: 16-byte IPv6 + 2).

Pure data in, data out: the tracker server (:mod:`tracker.udp`, :mod:`tracker.protocol`) and
swarm's tracker client (``swarm.announce``) both use it. Packers never fail on valid fields;
readers raise :class:`~tracker.errors.PacketError` for a packet too short to hold what its
action says. What a reader should do with a packet for another transaction or an error reply
is the caller's business.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from tracker.errors import PacketError

__all__ = [
    "ANNOUNCE_REQUEST",
    "EVENT_NAMES",
    "EVENT_NUMBERS",
    "PROTOCOL_ID",
    "REQUEST_HEADER",
    "Action",
    "AnnounceReply",
    "announce_reply",
    "announce_request",
    "connect_reply",
    "connect_request",
    "error_reply",
    "pack_peer",
    "parse_announce_reply",
    "parse_connect_reply",
    "parse_error_reply",
    "parse_peers",
    "parse_scrape_reply",
    "reply_header",
    "scrape_reply",
    "scrape_request",
]

PROTOCOL_ID = 0x41727101980
"""The magic connection id of a connect request (BEP 15)."""


class Action(IntEnum):
    """The action field of every UDP tracker packet."""

    CONNECT = 0
    ANNOUNCE = 1
    SCRAPE = 2
    ERROR = 3


EVENT_NUMBERS: dict[str, int] = {"": 0, "completed": 1, "started": 2, "stopped": 3}
"""Announce events by name (the HTTP ``event`` value; "" is a regular announce) to their
number in a UDP announce."""
EVENT_NAMES: dict[int, str] = {number: name for name, number in EVENT_NUMBERS.items()}

IPV4_PEER = 6
IPV6_PEER = 18
MAX_SCRAPE_HASHES = 74
"""Info-hashes one UDP scrape may name (what fits in a 1500-byte datagram's answer)."""

REQUEST_HEADER = struct.Struct(">QII")
"""connection id, action, transaction id: the first 16 bytes of every request."""
REPLY_HEADER = struct.Struct(">II")
"""action, transaction id: the first 8 bytes of every reply."""
CONNECT_REPLY = struct.Struct(">IIQ")
ANNOUNCE_REQUEST = struct.Struct(">QII20s20sQQQIIIiH")
"""The 98-byte announce request. ``ANNOUNCE_REQUEST.unpack_from(packet)`` gives, in order:
connection id, action, transaction id, info_hash, peer_id, downloaded, left, uploaded,
event number, IPv4 address (0: the sender's), key, numwant (-1: the tracker's default), port."""
ANNOUNCE_REPLY = struct.Struct(">IIIII")
"""action, transaction id, interval, leechers, seeders; the compact peers follow."""
SCRAPE_ENTRY = struct.Struct(">III")
"""seeders, completed, leechers: one per info-hash of a scrape reply, in the request's order."""


# -- compact peers (BEP 23, BEP 7) ---------------------------------------------------------


def pack_peer(ip: str, port: int) -> bytes:
    """A peer's compact form (6 bytes for IPv4, 18 for IPv6); b"" if *ip* is not an address."""
    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return socket.inet_pton(family, ip) + port.to_bytes(2, "big")
    except (OSError, OverflowError):
        return b""


def parse_peers(data: bytes, ipv6: bool = False) -> list[tuple[str, int]]:
    """Compact peers as (address, port); a ragged tail and port 0 are dropped."""
    size = IPV6_PEER if ipv6 else IPV4_PEER
    out = []
    for i in range(0, len(data) - size + 1, size):
        port = int.from_bytes(data[i + size - 2 : i + size], "big")
        if port:
            out.append((str(ipaddress.ip_address(data[i : i + size - 2])), port))
    return out


# -- UDP requests (client -> tracker) ------------------------------------------------------


def connect_request(transaction_id: int) -> bytes:
    return REQUEST_HEADER.pack(PROTOCOL_ID, Action.CONNECT, transaction_id)


def announce_request(
    connection_id: int,
    transaction_id: int,
    *,
    info_hash: bytes,
    peer_id: bytes,
    port: int,
    downloaded: int = 0,
    left: int = 0,
    uploaded: int = 0,
    event: str = "",
    key: int = 0,
    numwant: int = -1,
) -> bytes:
    """An announce request; *event* is a name of :data:`EVENT_NUMBERS` (unknown: regular)."""
    return ANNOUNCE_REQUEST.pack(
        connection_id,
        Action.ANNOUNCE,
        transaction_id,
        info_hash,
        peer_id,
        downloaded,
        left,
        uploaded,
        EVENT_NUMBERS.get(event, 0),
        0,
        key & 0xFFFFFFFF,
        numwant,
        port,
    )


def scrape_request(connection_id: int, transaction_id: int, info_hashes: Iterable[bytes]) -> bytes:
    return REQUEST_HEADER.pack(connection_id, Action.SCRAPE, transaction_id) + b"".join(info_hashes)


# -- UDP replies (tracker -> client) -------------------------------------------------------


def connect_reply(transaction_id: int, connection_id: int) -> bytes:
    return CONNECT_REPLY.pack(Action.CONNECT, transaction_id, connection_id)


def announce_reply(
    transaction_id: int, interval: int, leechers: int, seeders: int, peers: bytes
) -> bytes:
    """An announce reply; *peers* is already compact, of the requester's address family."""
    return ANNOUNCE_REPLY.pack(Action.ANNOUNCE, transaction_id, interval, leechers, seeders) + peers


def scrape_reply(transaction_id: int, entries: Iterable[tuple[int, int, int]]) -> bytes:
    """A scrape reply; *entries* are (seeders, completed, leechers) in the request's order."""
    out = [REPLY_HEADER.pack(Action.SCRAPE, transaction_id)]
    out += [SCRAPE_ENTRY.pack(*e) for e in entries]
    return b"".join(out)


def error_reply(transaction_id: int, message: str) -> bytes:
    return REPLY_HEADER.pack(Action.ERROR, transaction_id) + message.encode()


def reply_header(data: bytes) -> tuple[int, int]:
    """(action, transaction id) of a reply: read it first to know whose it is."""
    if len(data) < REPLY_HEADER.size:
        raise PacketError("the UDP tracker's answer is too short")
    action, transaction_id = REPLY_HEADER.unpack_from(data)
    return action, transaction_id


def parse_connect_reply(data: bytes) -> int:
    """The connection id of a connect reply."""
    if len(data) < CONNECT_REPLY.size:
        raise PacketError("the UDP tracker's connect answer is too short")
    return int(CONNECT_REPLY.unpack_from(data)[2])


@dataclass(frozen=True, slots=True)
class AnnounceReply:
    interval: int
    leechers: int
    seeders: int
    peers: list[tuple[str, int]]


def parse_announce_reply(data: bytes, ipv6: bool = False) -> AnnounceReply:
    """An announce reply; its peers are IPv6 ones (BEP 15 over IPv6) when *ipv6*."""
    if len(data) < ANNOUNCE_REPLY.size:
        raise PacketError("the UDP tracker's announce answer is too short")
    _, _, interval, leechers, seeders = ANNOUNCE_REPLY.unpack_from(data)
    return AnnounceReply(
        interval, leechers, seeders, parse_peers(data[ANNOUNCE_REPLY.size :], ipv6=ipv6)
    )


def parse_scrape_reply(data: bytes) -> list[tuple[int, int, int]]:
    """(seeders, completed, leechers) for each info-hash the scrape named, in order."""
    if len(data) < REPLY_HEADER.size:
        raise PacketError("the UDP tracker's scrape answer is too short")
    body = len(data) - REPLY_HEADER.size
    return [
        SCRAPE_ENTRY.unpack_from(data, REPLY_HEADER.size + i)
        for i in range(0, body - body % SCRAPE_ENTRY.size, SCRAPE_ENTRY.size)
    ]


def parse_error_reply(data: bytes) -> str:
    """The message of an error reply (undecodable bytes replaced)."""
    return data[REPLY_HEADER.size :].decode("utf-8", "replace")
