"""The peer wire messages as values, their ids, and their bytes (BEP 3, BEP 6, BEP 10).

Each message is a dataclass with slots; the ones without fields are frozen and have one
shared instance (:data:`CHOKE`, :data:`HAVE_ALL`, ...). The others are made for every message
parsed or sent, tens of thousands a second in a group process at N = 200, and are not
frozen (treat them as values all the same): a frozen dataclass sets each field through
``object.__setattr__``, 0.55 us a message against 0.19 us. ``encode(message)`` gives a
message's bytes, length prefix included; :func:`encode_piece_header` gives the 13 bytes before
a block, so a block read from disk can be sent without being copied into a message first.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The public names are listed once, in swarm.wire's __all__.

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


@dataclass(slots=True)
class Have:
    index: int


@dataclass(slots=True)
class Bitfield:
    bits: bytes


@dataclass(slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(slots=True)
class Piece:
    index: int
    begin: int
    block: bytes | memoryview  # a view into the bytes received, when parsed in place


@dataclass(slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(slots=True)
class Port:
    port: int


@dataclass(slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(slots=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(slots=True)
class AllowedFast:
    index: int


@dataclass(slots=True)
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

# The messages of each id, for the parser (plain int keys: it looks ids up as ints): the ones
# without fields, the ones with a piece index alone, and the ones with (index, begin, length).
SINGLETONS: dict[int, Message] = {
    0: CHOKE,
    1: UNCHOKE,
    2: INTERESTED,
    3: NOT_INTERESTED,
    14: HAVE_ALL,
    15: HAVE_NONE,
}
INDEX_MESSAGES: dict[int, type[Have | Suggest | AllowedFast]] = {
    4: Have,
    13: Suggest,
    17: AllowedFast,
}
TRIPLE_MESSAGES: dict[int, type[Request | Cancel | Reject]] = {6: Request, 8: Cancel, 16: Reject}

# -- encoding ----------------------------------------------------------------------------

_HDR = struct.Struct(">IB")
_INDEX_MSG = struct.Struct(">IBI")
_TRIPLE_MSG = struct.Struct(">IBIII")
_PIECE_HDR = struct.Struct(">IBII")
_PORT_MSG = struct.Struct(">IBH")
_EXT_HDR = struct.Struct(">IBB")

# Each encoder takes a message of the one type it is filed under in _ENCODERS.
_Encoder = Callable[[Any], bytes]


def encode_piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13 bytes that precede a block of *length* bytes in a piece message."""
    return _PIECE_HDR.pack(9 + length, MsgId.PIECE, index, begin)


def _simple(msg_id: MsgId) -> _Encoder:
    data = _HDR.pack(1, msg_id)
    return lambda msg: data


def _index(msg_id: MsgId) -> _Encoder:
    return lambda msg: _INDEX_MSG.pack(5, msg_id, msg.index)


def _triple(msg_id: MsgId) -> _Encoder:
    return lambda msg: _TRIPLE_MSG.pack(13, msg_id, msg.index, msg.begin, msg.length)


_ENCODERS: dict[type, _Encoder] = {
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
