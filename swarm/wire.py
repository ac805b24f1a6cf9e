"""The peer wire protocol as data: BEP 3, BEP 6 (fast extension), BEP 10 (extension protocol).

``encode(message) -> bytes`` turns a message into its bytes; a :class:`Parser` fed whatever
bytes arrived returns the complete messages, or raises :class:`ProtocolError` for anything a
well-behaved peer would not send. No sockets, no clocks (the h11 way). Lengths are checked on
the 4-byte prefix and the id byte, before a body is buffered, so a hostile peer cannot make us
hold more than one bounded message's worth of memory.
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

__all__ = [
    "BLOCK_SIZE",
    "CHOKE",
    "HANDSHAKE_LEN",
    "HAVE_ALL",
    "HAVE_NONE",
    "INTERESTED",
    "KEEP_ALIVE",
    "MAX_EXTENDED",
    "NOT_INTERESTED",
    "PROTOCOL",
    "UNCHOKE",
    "AllowedFast",
    "Bitfield",
    "Cancel",
    "Choke",
    "Extended",
    "ExtendedHandshake",
    "Handshake",
    "Have",
    "HaveAll",
    "HaveNone",
    "Interested",
    "KeepAlive",
    "Message",
    "MsgId",
    "NotInterested",
    "Parser",
    "Piece",
    "Port",
    "Reject",
    "Request",
    "Suggest",
    "Unchoke",
    "allowed_fast_set",
    "bitfield_from_bools",
    "bools_from_bitfield",
    "check_bitfield",
    "encode",
    "encode_piece_header",
    "make_reserved",
]

PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_LEN = 68
BLOCK_SIZE = 16384
MAX_EXTENDED = 1 << 20
"""Cap on an extended (BEP 10) message's length prefix; ut_metadata pieces are far smaller."""


class MsgId(enum.IntEnum):
    """Message ids: 0-9 from BEP 3 (9 is the DHT port), 13-17 from BEP 6, 20 from BEP 10."""

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


# -- handshake ---------------------------------------------------------------------------


def make_reserved(*, fast: bool = True, extended: bool = True, dht: bool = False) -> bytes:
    """The 8 reserved handshake bytes advertising the given extensions (BEP 4 bit numbers)."""
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
    """The 68-byte BEP 3 handshake: protocol string, reserved bits, info_hash, peer_id."""

    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    def __post_init__(self) -> None:
        if len(self.reserved) != 8 or len(self.info_hash) != 20 or len(self.peer_id) != 20:
            raise ValueError("a handshake needs 8 reserved bytes, a 20-byte info_hash and peer_id")

    @property
    def supports_fast(self) -> bool:
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_extended(self) -> bool:
        return bool(self.reserved[5] & 0x10)

    @property
    def supports_dht(self) -> bool:
        return bool(self.reserved[7] & 0x01)

    def encode(self) -> bytes:
        return PROTOCOL + self.reserved + self.info_hash + self.peer_id

    @classmethod
    def decode(cls, data: bytes) -> Handshake:
        """Read exactly 68 handshake bytes; :class:`ProtocolError` if they are not one."""
        if len(data) != HANDSHAKE_LEN or data[:20] != PROTOCOL:
            raise ProtocolError("the peer did not send a BitTorrent handshake")
        return cls(bytes(data[20:28]), bytes(data[28:48]), bytes(data[48:68]))


# -- messages ----------------------------------------------------------------------------


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
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


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
    """A BEP 10 message: ``ext_id`` 0 is the extended handshake, others as the peer's ``m``."""

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

# -- encoding ----------------------------------------------------------------------------

_U32 = struct.Struct(">I")
_HDR = struct.Struct(">IB")
_INDEX_MSG = struct.Struct(">IBI")
_TRIPLE_MSG = struct.Struct(">IBIII")
_PIECE_HDR = struct.Struct(">IBII")
_PORT_MSG = struct.Struct(">IBH")
_EXT_HDR = struct.Struct(">IBB")
_TWO_U32 = struct.Struct(">II")
_THREE_U32 = struct.Struct(">III")


def encode_piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13 bytes that precede a block of *length* bytes in a piece message."""
    return _PIECE_HDR.pack(9 + length, MsgId.PIECE, index, begin)


def _simple(msg_id: MsgId) -> Any:
    data = _HDR.pack(1, msg_id)
    return lambda msg: data


def _index(msg_id: MsgId) -> Any:
    return lambda msg: _INDEX_MSG.pack(5, msg_id, msg.index)


def _triple(msg_id: MsgId) -> Any:
    return lambda msg: _TRIPLE_MSG.pack(13, msg_id, msg.index, msg.begin, msg.length)


_ENCODERS: dict[type, Any] = {
    KeepAlive: lambda msg: b"\x00\x00\x00\x00",
    Choke: _simple(MsgId.CHOKE),
    Unchoke: _simple(MsgId.UNCHOKE),
    Interested: _simple(MsgId.INTERESTED),
    NotInterested: _simple(MsgId.NOT_INTERESTED),
    Have: _index(MsgId.HAVE),
    Bitfield: lambda msg: _HDR.pack(1 + len(msg.bits), MsgId.BITFIELD) + msg.bits,
    Request: _triple(MsgId.REQUEST),
    Piece: lambda msg: encode_piece_header(msg.index, msg.begin, len(msg.block)) + msg.block,
    Cancel: _triple(MsgId.CANCEL),
    Port: lambda msg: _PORT_MSG.pack(3, MsgId.PORT, msg.port),
    Suggest: _index(MsgId.SUGGEST),
    HaveAll: _simple(MsgId.HAVE_ALL),
    HaveNone: _simple(MsgId.HAVE_NONE),
    Reject: _triple(MsgId.REJECT),
    AllowedFast: _index(MsgId.ALLOWED_FAST),
    Extended: lambda msg: (
        _EXT_HDR.pack(2 + len(msg.payload), MsgId.EXTENDED, msg.ext_id) + msg.payload
    ),
}


def encode(msg: Message) -> bytes:
    """The bytes of one message, length prefix included.

    Raises :class:`TypeError` for a non-message and :class:`ValueError` for a field that does
    not fit its wire size (a negative index, an ``ext_id`` over 255, ...): both are our bugs.
    """
    try:
        encoder = _ENCODERS[type(msg)]
    except KeyError:
        raise TypeError(f"not a peer wire message: {msg!r}") from None
    try:
        return bytes(encoder(msg))
    except struct.error as exc:
        raise ValueError(f"cannot encode {msg!r}: {exc}") from None


# -- parsing -----------------------------------------------------------------------------

_FAST_IDS = frozenset({13, 14, 15, 16, 17})
_SINGLETONS: dict[int, Message] = {
    0: CHOKE,
    1: UNCHOKE,
    2: INTERESTED,
    3: NOT_INTERESTED,
    14: HAVE_ALL,
    15: HAVE_NONE,
}
_INDEX_TYPES: dict[int, type[Have | Suggest | AllowedFast]] = {
    4: Have,
    13: Suggest,
    17: AllowedFast,
}
_TRIPLE_TYPES: dict[int, type[Request | Cancel | Reject]] = {6: Request, 8: Cancel, 16: Reject}
_NO_INDEX_LIMIT = 1 << 32  # every u32 index is in range while the torrent size is unknown


class Parser:
    """Incremental parser of one peer's byte stream; dead after its first protocol error.

    ``feed(data)`` returns the messages completed by *data*, in order; a partial message
    stays buffered. With ``expect_handshake`` the stream starts with the 68-byte handshake,
    and the feed that completes it returns ``[Handshake]`` alone: what came after it stays
    buffered until the caller has looked at the handshake, called :meth:`set_num_pieces` and
    set :attr:`fast`, because a peer typically sends its bitfield or HAVE_ALL in the same
    segment. Call ``feed(b"")`` then to parse the bytes held back.
    """

    __slots__ = (
        "_awaiting_handshake",
        "_bounds",
        "_buf",
        "_dead",
        "_held",
        "_index_limit",
        "_max_block",
        "_max_len",
        "_need",
        "_num_pieces",
        "_piece_max",
        "fast",
    )

    def __init__(
        self,
        *,
        expect_handshake: bool = True,
        num_pieces: int | None = None,
        max_block: int = BLOCK_SIZE,
        fast: bool = False,
    ) -> None:
        if max_block <= 0:
            raise ValueError("max_block must be positive")
        self._buf = bytearray()
        self._awaiting_handshake = expect_handshake
        self._held = b""  # what followed the handshake, parsed on the next feed
        self._need = 0  # bytes the buffered message still lacks (0: none buffered)
        self._dead = False
        self._max_block = max_block
        self._num_pieces: int | None = None
        # BEP 6 messages are a protocol error until both sides have set the fast bit.
        self.fast = fast
        self._bounds: list[tuple[int, int] | None] = []
        self._max_len = self._piece_max = self._index_limit = 0
        self.set_num_pieces(num_pieces)

    @property
    def num_pieces(self) -> int | None:
        return self._num_pieces

    @property
    def max_block(self) -> int:
        return self._max_block

    @property
    def buffered(self) -> int:
        """How many bytes are held: a partial message, or what followed the handshake."""
        return len(self._buf) + len(self._held)

    def set_num_pieces(self, n: int | None) -> None:
        """Set the torrent's piece count (once the handshake named it); enables index checks."""
        if n is not None and n < 0:
            raise ValueError("num_pieces must not be negative")
        self._num_pieces = n
        self._index_limit = _NO_INDEX_LIMIT if n is None else n
        # The largest length prefix of every message id, so a body is never buffered before
        # its length is known to be right.
        self._max_len = max(self._max_block + 13, MAX_EXTENDED, 0 if n is None else 1 + -(-n // 8))
        bounds: list[tuple[int, int] | None] = [None] * 256
        for mid in (0, 1, 2, 3, 14, 15):
            bounds[mid] = (1, 1)
        for mid in (4, 13, 17):
            bounds[mid] = (5, 5)
        for mid in (6, 8, 16):
            bounds[mid] = (13, 13)
        bounds[9] = (3, 3)
        bounds[5] = (1, self._max_len) if n is None else (1 + -(-n // 8),) * 2
        self._piece_max = 9 + self._max_block
        bounds[7] = (9, self._piece_max)
        bounds[20] = (2, MAX_EXTENDED)
        self._bounds = bounds

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Messages (and first the :class:`Handshake`, if expected) completed by *data*."""
        if self._dead:
            raise ProtocolError("the peer already broke the protocol on this connection")
        n = len(data)
        if n < self._need:
            # The common case with small reads: the buffered message is still incomplete
            # and its header was checked when it arrived.
            self._buf += data
            self._need -= n
            return []
        try:
            return self._feed(data)
        except ProtocolError:
            self._dead = True
            raise

    def _feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        buf = self._buf
        if self._awaiting_handshake:
            buf += data
            if len(buf) < HANDSHAKE_LEN:
                if not PROTOCOL.startswith(bytes(buf[:20])):
                    raise ProtocolError("the peer did not send a BitTorrent handshake")
                return []
            handshake = Handshake.decode(bytes(buf[:HANDSHAKE_LEN]))
            self._held = bytes(buf[HANDSHAKE_LEN:])
            buf.clear()
            self._awaiting_handshake = False
            return [handshake]
        if self._held:
            data = self._held + bytes(data)
            self._held = b""

        # Invariant: the buffer holds at most one incomplete message, whose header has been
        # checked. Finish it by moving only the bytes it lacks into the buffer; the rest of
        # *data* is parsed where it lies, uncopied.
        out: list[Any] = []
        view = memoryview(data)
        n = len(view)
        taken = 0
        while buf:
            need = _missing(buf)
            if need > n - taken:
                buf += view[taken:]
                self._need = need - (n - taken)
                return out
            buf += view[taken : taken + need]
            taken += need
            with memoryview(buf) as held:
                used = self._parse(held, 0, len(buf), out)
            if used:
                del buf[:used]
        if taken < n:
            used = self._parse(view, taken, n, out)
            if used < n:
                buf += view[used:]
        self._need = _missing(buf) if buf else 0
        return out

    def _parse(self, mv: memoryview, pos: int, end: int, out: list[Any]) -> int:
        """Append the complete messages in ``mv[pos:end]`` to *out*; return where they end."""
        unpack_u32 = _U32.unpack_from
        unpack_two = _TWO_U32.unpack_from
        append = out.append
        max_len = self._max_len
        piece_max = self._piece_max
        index_limit = self._index_limit
        while end - pos >= 4:
            (length,) = unpack_u32(mv, pos)
            if not length:
                append(KEEP_ALIVE)
                pos += 4
                continue
            if length > max_len:
                raise ProtocolError(f"the peer announced a message of {length} bytes")
            if end - pos < 5:
                break
            mid = mv[pos + 4]
            stop = pos + 4 + length
            if mid == 7:  # the bulk of the traffic: keep it on the short path
                if length > piece_max or length < 9:
                    raise ProtocolError(f"the peer sent a PIECE message of {length} bytes")
                if stop > end:
                    break
                index, begin = unpack_two(mv, pos + 5)
                if index >= index_limit:
                    raise ProtocolError(f"the peer sent a block of piece {index}, out of range")
                append(Piece(index, begin, mv[pos + 13 : stop].tobytes()))
                pos = stop
                continue
            self._check_header(mid, length)
            if stop > end:
                break
            append(self._decode(mid, mv, pos + 5, stop))
            pos = stop
        return pos

    def _check_header(self, mid: int, length: int) -> None:
        bounds = self._bounds[mid]
        if bounds is None:
            raise ProtocolError(f"the peer sent an unknown message id {mid}")
        if mid in _FAST_IDS and not self.fast:
            name = MsgId(mid).name
            raise ProtocolError(f"the peer sent {name} without the fast extension (BEP 6)")
        low, high = bounds
        if not low <= length <= high:
            name = MsgId(mid).name
            expected = str(low) if low == high else f"{low} to {high}"
            raise ProtocolError(
                f"the peer sent a {name} message of {length} bytes (expected {expected})"
            )

    def _decode(self, mid: int, mv: memoryview, body: int, stop: int) -> Message:
        """One message whose id and length are already checked."""
        index_type = _INDEX_TYPES.get(mid)
        if index_type is not None:
            (index,) = _U32.unpack_from(mv, body)
            self._check_index(index)
            return index_type(index)
        triple_type = _TRIPLE_TYPES.get(mid)
        if triple_type is not None:
            index, begin, length = _THREE_U32.unpack_from(mv, body)
            self._check_index(index)
            if mid == 6 and not 0 < length <= self._max_block:
                raise ProtocolError(f"the peer requested a block of {length} bytes")
            return triple_type(index, begin, length)
        single = _SINGLETONS.get(mid)
        if single is not None:
            return single
        if mid == 5:
            bits = mv[body:stop].tobytes()
            if self._num_pieces is not None:
                check_bitfield(bits, self._num_pieces)
            return Bitfield(bits)
        if mid == 9:
            return Port(int.from_bytes(mv[body:stop], "big"))
        assert mid == 20
        return Extended(mv[body], mv[body + 1 : stop].tobytes())

    def _check_index(self, index: int) -> None:
        if index >= self._index_limit:
            raise ProtocolError(
                f"the peer named piece {index}, but the torrent has {self._num_pieces}"
            )


def _missing(buf: bytearray) -> int:
    """How many more bytes the incomplete message at the start of *buf* needs before the
    parser can make progress: the rest of its length prefix, its id byte, or its body."""
    have = len(buf)
    if have < 4:
        return 4 - have
    if have == 4:
        return 1  # the id byte, so the id's own length bound is checked before the body
    return 4 + _U32.unpack_from(buf)[0] - have


# -- bitfields ---------------------------------------------------------------------------

_BITS_TO_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_DIGITS_TO_BITS = bytes.maketrans(b"01", b"\x00\x01")


def check_bitfield(bits: bytes, num_pieces: int) -> None:
    """Raise :class:`ProtocolError` unless *bits* is ceil(n/8) bytes with its spare bits clear."""
    if len(bits) != -(-num_pieces // 8):
        raise ProtocolError(
            f"the peer sent a bitfield of {len(bits)} bytes for {num_pieces} pieces"
        )
    spare = len(bits) * 8 - num_pieces
    if spare and bits[-1] & ((1 << spare) - 1):
        raise ProtocolError("the peer sent a bitfield with its spare bits set")


def bitfield_from_bools(haves: Sequence[bool]) -> bytes:
    """The BEP 3 bitfield of *haves*: piece 0 is the high bit of byte 0; spare bits are 0."""
    n = len(haves)
    if not n:
        return b""
    # One C-level pass each: bools to b"0"/b"1" digits, digits to an int (base 2 has no
    # digit limit), the int to bytes.
    digits = bytes(map(bool, haves)).translate(_BITS_TO_DIGITS)
    return (int(digits, 2) << (-n % 8)).to_bytes((n + 7) // 8, "big")


def bools_from_bitfield(bits: bytes, num_pieces: int) -> list[bool]:
    """Which of *num_pieces* pieces *bits* marks; :class:`ProtocolError` if it is malformed."""
    check_bitfield(bits, num_pieces)
    if not num_pieces:
        return []
    text = format(int.from_bytes(bits, "big"), f"0{len(bits) * 8}b")
    return list(map(bool, text[:num_pieces].encode().translate(_DIGITS_TO_BITS)))


# -- BEP 10 extended handshake -------------------------------------------------------------

_KNOWN_KEYS = frozenset({b"m", b"v", b"p", b"reqq", b"yourip", b"metadata_size"})


@dataclass(frozen=True, slots=True)
class ExtendedHandshake:
    """The BEP 10 handshake dictionary, sent as ``Extended(0, handshake.encode())``.

    ``m`` maps extension names to the ids the sender wants to receive them under (0 means
    disabled); ``extra`` keeps every other key, raw, so nothing a peer says is lost.
    """

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    yourip: bytes | None = None
    metadata_size: int | None = None
    extra: dict[bytes, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The bencoded dictionary (the payload of the extended message with id 0)."""
        d: dict[bytes, Any] = dict(self.extra)
        d[b"m"] = {name.encode(): ext_id for name, ext_id in self.m.items()}
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
        """Read a handshake dictionary; a key of the wrong type is ignored, as libtorrent does.

        :class:`ProtocolError` if *payload* is not bencoding or not a dictionary.
        """
        try:
            d = bencoding.decode(bytes(payload))
        except MetainfoError as exc:
            raise ProtocolError(f"the peer's extended handshake is malformed: {exc}") from None
        if not isinstance(d, dict):
            raise ProtocolError("the peer's extended handshake is not a dictionary")
        raw_m = d.get(b"m")
        m: dict[str, int] = {}
        if isinstance(raw_m, dict):
            for name, ext_id in raw_m.items():
                if isinstance(ext_id, int) and 0 <= ext_id <= 255:
                    m[name.decode("utf-8", "replace")] = ext_id
        v = d.get(b"v")
        yourip = d.get(b"yourip")
        return cls(
            m=m,
            v=v.decode("utf-8", "replace") if isinstance(v, bytes) else None,
            p=_int_in(d.get(b"p"), 1, 65535),
            reqq=_int_in(d.get(b"reqq"), 1, None),
            yourip=yourip if isinstance(yourip, bytes) and len(yourip) in (4, 16) else None,
            metadata_size=_int_in(d.get(b"metadata_size"), 0, None),
            extra={key: value for key, value in d.items() if key not in _KNOWN_KEYS},
        )


def _int_in(value: Any, low: int, high: int | None) -> int | None:
    if not isinstance(value, int) or value < low or (high is not None and value > high):
        return None
    return value


# -- BEP 6 allowed-fast set ----------------------------------------------------------------


def allowed_fast_set(ip: str, info_hash: bytes, num_pieces: int, k: int = 10) -> list[int]:
    """The pieces BEP 6's canonical algorithm lets the peer at *ip* request while choked.

    BEP 6 defines the set for IPv4 (the address masked to its /24); an IPv4-mapped IPv6
    address counts as IPv4, and any other IPv6 peer gets no allowed-fast set.
    """
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return []
        addr = addr.ipv4_mapped
    k = min(k, num_pieces)
    if k <= 0:
        return []
    x = (int(addr) & 0xFFFFFF00).to_bytes(4, "big") + bytes(info_hash)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            if len(chosen) >= k:
                break
            index = int.from_bytes(x[i : i + 4], "big") % num_pieces
            if index not in seen:
                seen.add(index)
                chosen.append(index)
    return chosen
