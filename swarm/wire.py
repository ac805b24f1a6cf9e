"""The peer wire protocol as data (BEP 3, BEP 6 fast extension, BEP 10 extension protocol).

``encode(message) -> bytes``; a :class:`Parser` fed with whatever bytes arrived returns the
complete messages, or raises :class:`ProtocolError` for anything a well-behaved peer would not
send. No sockets, no clocks. Bounds are checked on the length prefix, before a body is
buffered, so a hostile peer cannot make us hold more than one message's worth of memory.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from swarm import bencoding
from swarm.errors import MetainfoError, ProtocolError

PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_LEN = 68
BLOCK_SIZE = 16384
MAX_EXTENDED = 1 << 20


class MsgId(enum.IntEnum):
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7
    CANCEL = 8
    PORT = 9
    SUGGEST = 13
    HAVE_ALL = 14
    HAVE_NONE = 15
    REJECT = 16
    ALLOWED_FAST = 17
    EXTENDED = 20


def make_reserved(*, fast: bool = True, extended: bool = True, dht: bool = False) -> bytes:
    """The 8 reserved handshake bytes with the given extension bits set."""
    r = bytearray(8)
    if extended:
        r[5] |= 0x10
    if fast:
        r[7] |= 0x04
    if dht:
        r[7] |= 0x01
    return bytes(r)


@dataclass(frozen=True, slots=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    @property
    def supports_fast(self) -> bool:
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_extended(self) -> bool:
        return bool(self.reserved[5] & 0x10)

    def encode(self) -> bytes:
        return PROTOCOL + self.reserved + self.info_hash + self.peer_id

    @classmethod
    def decode(cls, data: bytes) -> Handshake:
        if len(data) != HANDSHAKE_LEN or data[:20] != PROTOCOL:
            raise ProtocolError("not a BitTorrent handshake")
        return cls(bytes(data[20:28]), bytes(data[28:48]), bytes(data[48:68]))


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    bits: bytes


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    begin: int
    block: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class Extended:
    ext_id: int
    payload: bytes


KEEP_ALIVE = KeepAlive()
CHOKE = Choke()
UNCHOKE = Unchoke()
INTERESTED = Interested()
NOT_INTERESTED = NotInterested()
HAVE_ALL = HaveAll()
HAVE_NONE = HaveNone()

Message = (
    KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | Bitfield
    | Request
    | Piece
    | Cancel
    | Port
    | Suggest
    | HaveAll
    | HaveNone
    | Reject
    | AllowedFast
    | Extended
)

_SIMPLE = {
    Choke: MsgId.CHOKE,
    Unchoke: MsgId.UNCHOKE,
    Interested: MsgId.INTERESTED,
    NotInterested: MsgId.NOT_INTERESTED,
    HaveAll: MsgId.HAVE_ALL,
    HaveNone: MsgId.HAVE_NONE,
}
_INDEX = {Have: MsgId.HAVE, Suggest: MsgId.SUGGEST, AllowedFast: MsgId.ALLOWED_FAST}
_TRIPLE = {Request: MsgId.REQUEST, Cancel: MsgId.CANCEL, Reject: MsgId.REJECT}
_HDR = struct.Struct(">IB")
_TRIPLE_S = struct.Struct(">IBIII")
_INDEX_S = struct.Struct(">IBI")
_PIECE_HDR = struct.Struct(">IBII")


def encode_piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13 bytes that precede a block of *length* bytes in a piece message."""
    return _PIECE_HDR.pack(9 + length, MsgId.PIECE, index, begin)


def encode(msg: Any) -> bytes:
    """The bytes of one message, length prefix included."""
    kind = type(msg)
    if kind in _TRIPLE:
        return _TRIPLE_S.pack(13, _TRIPLE[kind], msg.index, msg.begin, msg.length)
    if kind in _INDEX:
        return _INDEX_S.pack(5, _INDEX[kind], msg.index)
    if kind in _SIMPLE:
        return _HDR.pack(1, _SIMPLE[kind])
    if kind is Piece:
        return encode_piece_header(msg.index, msg.begin, len(msg.block)) + bytes(msg.block)
    if kind is Bitfield:
        return _HDR.pack(1 + len(msg.bits), MsgId.BITFIELD) + msg.bits
    if kind is KeepAlive:
        return b"\x00\x00\x00\x00"
    if kind is Port:
        return struct.pack(">IBH", 3, MsgId.PORT, msg.port)
    if kind is Extended:
        return _HDR.pack(2 + len(msg.payload), MsgId.EXTENDED) + bytes([msg.ext_id]) + msg.payload
    raise TypeError(f"not a wire message: {msg!r}")


_FAST_IDS = frozenset(
    {MsgId.SUGGEST, MsgId.HAVE_ALL, MsgId.HAVE_NONE, MsgId.REJECT, MsgId.ALLOWED_FAST}
)
_FIXED_LEN = {
    MsgId.CHOKE: 1,
    MsgId.UNCHOKE: 1,
    MsgId.INTERESTED: 1,
    MsgId.NOT_INTERESTED: 1,
    MsgId.HAVE: 5,
    MsgId.REQUEST: 13,
    MsgId.CANCEL: 13,
    MsgId.PORT: 3,
    MsgId.SUGGEST: 5,
    MsgId.HAVE_ALL: 1,
    MsgId.HAVE_NONE: 1,
    MsgId.REJECT: 13,
    MsgId.ALLOWED_FAST: 5,
}
_SIMPLE_BY_ID = {
    MsgId.CHOKE: CHOKE,
    MsgId.UNCHOKE: UNCHOKE,
    MsgId.INTERESTED: INTERESTED,
    MsgId.NOT_INTERESTED: NOT_INTERESTED,
    MsgId.HAVE_ALL: HAVE_ALL,
    MsgId.HAVE_NONE: HAVE_NONE,
}


class Parser:
    """Incremental parser of a peer's byte stream; dead after the first protocol error."""

    def __init__(
        self,
        *,
        expect_handshake: bool = True,
        num_pieces: int | None = None,
        max_block: int = BLOCK_SIZE,
        fast: bool = False,
    ) -> None:
        self._buf = bytearray()
        self._need_handshake = expect_handshake
        self.num_pieces = num_pieces
        self.max_block = max_block
        self.fast = fast
        self._dead = False
        self._max_len = 0
        self._update_bound()

    def set_num_pieces(self, n: int) -> None:
        self.num_pieces = n
        self._update_bound()

    def _update_bound(self) -> None:
        bitfield = -(-(self.num_pieces or 0) // 8) + 1 if self.num_pieces else 1 << 20
        self._max_len = max(self.max_block + 9, bitfield, MAX_EXTENDED)

    def feed(self, data: bytes) -> list[Any]:
        if self._dead:
            raise ProtocolError("connection already failed")
        try:
            return self._feed(data)
        except ProtocolError:
            self._dead = True
            raise

    def _feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out: list[Any] = []
        pos = 0
        if self._need_handshake:
            if len(buf) < HANDSHAKE_LEN:
                if not PROTOCOL.startswith(bytes(buf[:20])):
                    raise ProtocolError("not a BitTorrent handshake")
                return out
            out.append(Handshake.decode(bytes(buf[:HANDSHAKE_LEN])))
            self._need_handshake = False
            pos = HANDSHAKE_LEN
        end = len(buf)
        unpack = struct.unpack_from
        max_len = self._max_len
        while end - pos >= 4:
            (length,) = unpack(">I", buf, pos)
            if length == 0:
                out.append(KEEP_ALIVE)
                pos += 4
                continue
            if length > max_len:
                raise ProtocolError(f"message of {length} bytes is over the limit")
            if end - pos - 4 < length:
                break
            mid = buf[pos + 4]
            body = pos + 5
            pos += 4 + length
            if mid == 7:
                if length < 9 or length - 9 > self.max_block:
                    raise ProtocolError("piece message of a bad length")
                index, begin = unpack(">II", buf, body)
                self._check_index(index)
                out.append(Piece(index, begin, bytes(buf[body + 8 : pos])))
            else:
                out.append(self._other(mid, length, buf, body, pos))
        if pos:
            del buf[:pos]
        return out

    def _check_index(self, index: int) -> None:
        if self.num_pieces is not None and index >= self.num_pieces:
            raise ProtocolError(f"piece index {index} out of range")

    def _other(self, mid: int, length: int, buf: bytearray, body: int, end: int) -> Any:
        try:
            msg_id = MsgId(mid)
        except ValueError:
            raise ProtocolError(f"unknown message id {mid}") from None
        if msg_id in _FAST_IDS and not self.fast:
            raise ProtocolError(f"fast-extension message {msg_id.name} without the fast extension")
        fixed = _FIXED_LEN.get(msg_id)
        if fixed is not None and length != fixed:
            raise ProtocolError(f"{msg_id.name} message of length {length}")
        simple = _SIMPLE_BY_ID.get(msg_id)
        if simple is not None:
            return simple
        if msg_id in (MsgId.HAVE, MsgId.SUGGEST, MsgId.ALLOWED_FAST):
            (index,) = struct.unpack_from(">I", buf, body)
            self._check_index(index)
            return {MsgId.HAVE: Have, MsgId.SUGGEST: Suggest, MsgId.ALLOWED_FAST: AllowedFast}[
                msg_id
            ](index)
        if msg_id in (MsgId.REQUEST, MsgId.CANCEL, MsgId.REJECT):
            index, begin, blen = struct.unpack_from(">III", buf, body)
            self._check_index(index)
            if msg_id is MsgId.REQUEST and not 0 < blen <= self.max_block:
                raise ProtocolError(f"request for {blen} bytes")
            cls = {MsgId.REQUEST: Request, MsgId.CANCEL: Cancel, MsgId.REJECT: Reject}[msg_id]
            return cls(index, begin, blen)
        if msg_id is MsgId.BITFIELD:
            bits = bytes(buf[body:end])
            if self.num_pieces is not None:
                check_bitfield(bits, self.num_pieces)
            return Bitfield(bits)
        if msg_id is MsgId.PORT:
            return Port(struct.unpack_from(">H", buf, body)[0])
        if msg_id is MsgId.EXTENDED:
            if length < 2:
                raise ProtocolError("extended message without an id")
            return Extended(buf[body], bytes(buf[body + 1 : end]))
        raise ProtocolError(f"unexpected message id {mid}")  # pragma: no cover


def check_bitfield(bits: bytes, num_pieces: int) -> None:
    """A bitfield must be exactly ceil(n/8) bytes with its spare bits clear."""
    if len(bits) != -(-num_pieces // 8):
        raise ProtocolError(f"bitfield of {len(bits)} bytes for {num_pieces} pieces")
    spare = len(bits) * 8 - num_pieces
    if spare and bits[-1] & ((1 << spare) - 1):
        raise ProtocolError("bitfield has spare bits set")


def bitfield_from_bools(haves: Sequence[bool]) -> bytes:
    n = len(haves)
    if not n:
        return b""
    value = int("".join("1" if h else "0" for h in haves), 2) << (-n % 8)
    return value.to_bytes(-(-n // 8), "big")


def bools_from_bitfield(bits: bytes, num_pieces: int) -> list[bool]:
    if not num_pieces:
        return []
    text = bin(int.from_bytes(bits, "big"))[2:].zfill(len(bits) * 8)
    return [c == "1" for c in text[:num_pieces]]


@dataclass(slots=True)
class ExtendedHandshake:
    """The BEP 10 handshake dictionary (extended message id 0)."""

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    yourip: bytes | None = None
    metadata_size: int | None = None
    extra: dict[bytes, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        d: dict[bytes, Any] = dict(self.extra)
        d[b"m"] = {k.encode(): v for k, v in self.m.items()}
        if self.v is not None:
            d[b"v"] = self.v.encode()
        if self.p is not None:
            d[b"p"] = self.p
        if self.reqq is not None:
            d[b"reqq"] = self.reqq
        if self.yourip is not None:
            d[b"yourip"] = self.yourip
        if self.metadata_size is not None:
            d[b"metadata_size"] = self.metadata_size
        return bencoding.encode(d)

    @classmethod
    def decode(cls, payload: bytes) -> ExtendedHandshake:
        try:
            d = bencoding.decode(payload)
        except MetainfoError:
            raise ProtocolError("extended handshake is not bencoded") from None
        if not isinstance(d, dict):
            raise ProtocolError("extended handshake is not a dictionary")
        raw_m = d.get(b"m", {})
        m = {}
        if isinstance(raw_m, dict):
            for k, v in raw_m.items():
                if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256:
                    m[k.decode("utf-8", "replace")] = v

        def opt_int(key: bytes) -> int | None:
            v = d.get(key)
            return v if isinstance(v, int) and v >= 0 else None

        v = d.get(b"v")
        yourip = d.get(b"yourip")
        known = {b"m", b"v", b"p", b"reqq", b"yourip", b"metadata_size"}
        return cls(
            m=m,
            v=v.decode("utf-8", "replace") if isinstance(v, bytes) else None,
            p=opt_int(b"p"),
            reqq=opt_int(b"reqq"),
            yourip=yourip if isinstance(yourip, bytes) else None,
            metadata_size=opt_int(b"metadata_size"),
            extra={k: val for k, val in d.items() if k not in known},
        )


def allowed_fast_set(ip: str, info_hash: bytes, num_pieces: int, k: int = 10) -> list[int]:
    """BEP 6's canonical allowed-fast set for an IPv4 peer."""
    addr = ipaddress.ip_address(ip)
    if addr.version != 4:
        return []
    x = (int(addr) & 0xFFFFFF00).to_bytes(4, "big") + info_hash
    out: list[int] = []
    k = min(k, num_pieces)
    while len(out) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            if len(out) >= k:
                break
            index = int.from_bytes(x[i : i + 4], "big") % num_pieces
            if index not in out:
                out.append(index)
    return out
