"""KRPC (BEP 5): the DHT's bencoded messages over UDP, as typed values, both ways.

One codec for both ends: :func:`decode` turns a datagram into a :data:`Message` (a query,
a :class:`Response` or an :class:`Error`) or raises :class:`KrpcError`, which says whether
the sender is owed a 203/204 error answer and under which transaction id. :func:`encode`
writes any message back. Bencoding is swarm.bencoding's (strict; no hand-rolled forms).

IPv4 only for now: compact node info is 26 bytes (id, address, port) and compact peer info
6 bytes. An IPv6 ``nodes6`` key (BEP 32) is read past and ignored, never an error.

Limits, and why:

* a datagram over :data:`MAX_PACKET` (1,500 bytes, one Ethernet MTU) is refused before it
  is parsed: every BEP 5 message real clients send fits (a ``find_node`` answer is ~270
  bytes; libtorrent's fullest ``get_peers`` answer, 100 values, ~1,000);
* ids and info-hashes exactly 20 bytes; ports 1-65535; transaction ids at most
  :data:`MAX_T` bytes (BEP 5: "typically 2 characters"; they are echoed in our errors, so
  they must stay short); tokens 1 to :data:`MAX_TOKEN` bytes;
* at most :data:`MAX_VALUES` peers and :data:`MAX_NODES` nodes are read from one answer
  (the rest ignored), so one answer costs a lookup bounded work; entries with port 0 are
  skipped, as libtorrent does.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from swarm import bencoding
from swarm.errors import BencodeError, ProtocolError

__all__ = [
    "GENERIC_ERROR",
    "MAX_NODES",
    "MAX_PACKET",
    "MAX_T",
    "MAX_TOKEN",
    "MAX_VALUES",
    "METHOD_UNKNOWN",
    "PROTOCOL_ERROR",
    "SERVER_ERROR",
    "Address",
    "AnnouncePeer",
    "Error",
    "FindNode",
    "GetPeers",
    "KrpcError",
    "Message",
    "NodeInfo",
    "Ping",
    "Query",
    "Response",
    "decode",
    "encode",
    "is_ipv4",
    "pack_nodes",
    "pack_peer",
    "unpack_nodes",
    "unpack_peer",
]

Address = tuple[str, int]

GENERIC_ERROR = 201
SERVER_ERROR = 202
PROTOCOL_ERROR = 203
METHOD_UNKNOWN = 204

MAX_PACKET = 1500
MAX_T = 16
MAX_TOKEN = 64
MAX_VALUES = 200
MAX_NODES = 32
_MAX_V = 16
_ID = 20


class KrpcError(ProtocolError):
    """A datagram that is not a KRPC message we accept. ``reply`` is true when it was a query
    with a readable transaction id ``t``: the sender is owed an error ``code`` (203 protocol
    error or 204 method unknown); anything else is dropped without a word."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR, t: bytes | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.t = t

    @property
    def reply(self) -> bool:
        return self.t is not None


@dataclass(slots=True, frozen=True)
class NodeInfo:
    """Compact node info (BEP 5): a node's 20-byte id and its IPv4 UDP address."""

    id: bytes
    addr: Address


@dataclass(slots=True, frozen=True)
class Ping:
    t: bytes
    id: bytes
    v: bytes | None = None


@dataclass(slots=True, frozen=True)
class FindNode:
    t: bytes
    id: bytes
    target: bytes
    v: bytes | None = None


@dataclass(slots=True, frozen=True)
class GetPeers:
    t: bytes
    id: bytes
    info_hash: bytes
    v: bytes | None = None


@dataclass(slots=True, frozen=True)
class AnnouncePeer:
    """``implied_port``: the peer listens on the UDP source port; ``port`` is then ignored."""

    t: bytes
    id: bytes
    info_hash: bytes
    port: int
    token: bytes
    implied_port: bool = False
    v: bytes | None = None


@dataclass(slots=True, frozen=True)
class Response:
    """An answer to any query: ``nodes`` (find_node, get_peers), ``values`` (compact peers of
    get_peers), ``token`` (get_peers); a key absent on the wire is None here."""

    t: bytes
    id: bytes
    nodes: tuple[NodeInfo, ...] | None = None
    values: tuple[Address, ...] | None = None
    token: bytes | None = None
    v: bytes | None = None


@dataclass(slots=True, frozen=True)
class Error:
    t: bytes
    code: int
    message: str
    v: bytes | None = None


Query = Ping | FindNode | GetPeers | AnnouncePeer
Message = Query | Response | Error

_METHODS: dict[type[Any], bytes] = {
    Ping: b"ping",
    FindNode: b"find_node",
    GetPeers: b"get_peers",
    AnnouncePeer: b"announce_peer",
}


@functools.lru_cache(maxsize=4096)
def _packed_ip(host: str) -> bytes:
    try:
        return ipaddress.IPv4Address(host).packed
    except ValueError:
        raise ValueError(f"{host!r} is not an IPv4 address") from None


def is_ipv4(host: str) -> bool:
    """Whether *host* is an IPv4 address in dotted form (all this codec can pack)."""
    try:
        _packed_ip(host)
    except ValueError:
        return False
    return True


def pack_peer(addr: Address) -> bytes:
    """Compact peer info: 4-byte IPv4 address and 2-byte port, big-endian (BEP 5, BEP 23)."""
    host, port = addr
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return _packed_ip(host) + port.to_bytes(2, "big")


def unpack_peer(raw: bytes) -> Address:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}", (raw[4] << 8) | raw[5]


def pack_nodes(nodes: tuple[NodeInfo, ...] | list[NodeInfo]) -> bytes:
    """Compact node info, 26 bytes a node, concatenated."""
    return b"".join(n.id + pack_peer(n.addr) for n in nodes)


def unpack_nodes(raw: bytes, limit: int = MAX_NODES) -> tuple[NodeInfo, ...]:
    """Read compact node info; raises ValueError unless it is whole 26-byte entries. At most
    *limit* entries are read; entries with port 0 are skipped."""
    if len(raw) % 26:
        raise ValueError(f"compact node info of {len(raw)} bytes is not whole 26-byte entries")
    out = []
    for at in range(0, min(len(raw), limit * 26), 26):
        host, port = unpack_peer(raw[at + 20 : at + 26])
        if port:
            out.append(NodeInfo(raw[at : at + 20], (host, port)))
    return tuple(out)


def encode(message: Message) -> bytes:
    """The datagram for *message* (keys sorted by swarm.bencoding, as BEP 3 requires)."""
    d: dict[bytes, Any] = {b"t": message.t}
    if isinstance(message, Response):
        r: dict[bytes, Any] = {b"id": message.id}
        if message.nodes is not None:
            r[b"nodes"] = pack_nodes(message.nodes)
        if message.values is not None:
            r[b"values"] = [pack_peer(a) for a in message.values]
        if message.token is not None:
            r[b"token"] = message.token
        d[b"y"], d[b"r"] = b"r", r
    elif isinstance(message, Error):
        d[b"y"], d[b"e"] = b"e", [message.code, message.message.encode()]
    else:
        a: dict[bytes, Any] = {b"id": message.id}
        if isinstance(message, FindNode):
            a[b"target"] = message.target
        elif isinstance(message, GetPeers | AnnouncePeer):
            a[b"info_hash"] = message.info_hash
        if isinstance(message, AnnouncePeer):
            a[b"port"], a[b"token"] = message.port, message.token
            if message.implied_port:
                a[b"implied_port"] = 1
        d[b"y"], d[b"q"], d[b"a"] = b"q", _METHODS[type(message)], a
    if message.v is not None:
        d[b"v"] = message.v
    return bencoding.encode(d)


def decode(data: bytes) -> Message:
    """Read one datagram; raises :class:`KrpcError` for anything that is not a well-formed
    KRPC message within the limits above."""
    if len(data) > MAX_PACKET:
        raise KrpcError(f"a datagram of {len(data)} bytes is over {MAX_PACKET}")
    try:
        d = bencoding.decode(data)
    except BencodeError:
        raise KrpcError("not bencoded") from None
    if not isinstance(d, dict):
        raise KrpcError("not a dictionary")
    t = d.get(b"t")
    if not isinstance(t, bytes) or len(t) > MAX_T:
        raise KrpcError("no transaction id, or an overlong one")
    y = d.get(b"y")
    v = d.get(b"v")
    if not isinstance(v, bytes) or len(v) > _MAX_V:
        v = None  # a version is informative only: a strange one is ignored, not fatal
    if y == b"q":
        try:
            return _query(d, t, v)
        except KrpcError as exc:
            exc.t = t
            raise
    if y == b"r":
        return _response(d, t, v)
    if y == b"e":
        return _error(d, t, v)
    raise KrpcError("the message type y is not q, r or e")


def _id(d: dict[bytes, Any], key: bytes) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes) or len(value) != _ID:
        raise KrpcError(f"{key.decode()} is not a 20-byte string")
    return value


def _query(d: dict[Any, Any], t: bytes, v: bytes | None) -> Query:
    q, a = d.get(b"q"), d.get(b"a")
    if not isinstance(q, bytes) or not isinstance(a, dict):
        raise KrpcError("a query without a method name q or arguments a")
    node_id = _id(a, b"id")
    if q == b"ping":
        return Ping(t, node_id, v)
    if q == b"find_node":
        return FindNode(t, node_id, _id(a, b"target"), v)
    if q == b"get_peers":
        return GetPeers(t, node_id, _id(a, b"info_hash"), v)
    if q == b"announce_peer":
        info_hash = _id(a, b"info_hash")
        implied = a.get(b"implied_port", 0)
        if not isinstance(implied, int) or implied not in (0, 1):
            raise KrpcError("implied_port is not 0 or 1")
        port, token = a.get(b"port"), a.get(b"token")
        if not implied and (not isinstance(port, int) or not 0 < port < 65536):
            raise KrpcError("port is not an integer in 1-65535")
        if not isinstance(token, bytes) or not 0 < len(token) <= MAX_TOKEN:
            raise KrpcError("token is not a short byte string")
        # with implied_port the port argument is ignored (BEP 5); keep it only if sound
        port = port if isinstance(port, int) and 0 < port < 65536 else 0
        return AnnouncePeer(t, node_id, info_hash, port, token, bool(implied), v)
    raise KrpcError(f"method {q[:32]!r} unknown", METHOD_UNKNOWN)


def _response(d: dict[Any, Any], t: bytes, v: bytes | None) -> Response:
    r = d.get(b"r")
    if not isinstance(r, dict):
        raise KrpcError("a response without a dictionary r")
    node_id = _id(r, b"id")
    nodes: tuple[NodeInfo, ...] | None = None
    values: tuple[Address, ...] | None = None
    token = r.get(b"token")
    if b"nodes" in r:
        raw = r[b"nodes"]
        if not isinstance(raw, bytes):
            raise KrpcError("nodes is not a byte string")
        try:
            nodes = unpack_nodes(raw)
        except ValueError as exc:
            raise KrpcError(str(exc)) from None
    if b"values" in r:
        raw = r[b"values"]
        if not isinstance(raw, list) or not all(isinstance(p, bytes) for p in raw):
            raise KrpcError("values is not a list of strings")
        # 6 bytes is IPv4; an 18-byte IPv6 peer (BEP 32) is skipped, like a port of 0
        peers = (unpack_peer(p) for p in raw[:MAX_VALUES] if len(p) == 6)
        values = tuple(a for a in peers if a[1])
    if token is not None and (not isinstance(token, bytes) or not 0 < len(token) <= MAX_TOKEN):
        raise KrpcError("token is not a short byte string")
    return Response(t, node_id, nodes, values, token, v)


def _error(d: dict[Any, Any], t: bytes, v: bytes | None) -> Error:
    e = d.get(b"e")
    if (
        not isinstance(e, list)
        or len(e) < 2
        or not isinstance(e[0], int)
        or not isinstance(e[1], bytes)
    ):
        raise KrpcError("an error without [code, message]")
    return Error(t, e[0], e[1].decode("utf-8", "replace"), v)
