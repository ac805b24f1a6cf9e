"""The incremental parser of a peer's byte stream (BEP 3, BEP 6, BEP 10 framing).

A :class:`Parser` fed whatever bytes arrived returns the complete messages, or raises
:class:`ProtocolError` for anything a well-behaved peer would not send. No sockets, no clocks
(the h11 way). Lengths are checked on the 4-byte prefix and the id byte, before a body is
buffered, so a hostile peer cannot make us hold more than one bounded message's worth of
memory.
"""

from __future__ import annotations

import struct

from swarm.errors import ProtocolError
from swarm.wire.bitfield import check_bitfield
from swarm.wire.handshake import HANDSHAKE_LEN, PROTOCOL, Handshake
from swarm.wire.messages import (
    BLOCK_SIZE,
    INDEX_MESSAGES,
    KEEP_ALIVE,
    MAX_EXTENDED,
    SINGLETONS,
    TRIPLE_MESSAGES,
    Bitfield,
    Extended,
    Message,
    MsgId,
    Piece,
    Port,
)

__all__ = ["Parser"]

_U32 = struct.Struct(">I")
_TWO_U32 = struct.Struct(">II")
_THREE_U32 = struct.Struct(">III")
_FAST_IDS = frozenset({13, 14, 15, 16, 17})
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

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | Handshake]:
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

    def _feed(self, data: bytes | bytearray | memoryview) -> list[Message | Handshake]:
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
        out: list[Message | Handshake] = []
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
                used = self._parse(held, 0, len(buf), out, copy=True)
            if used:
                del buf[:used]
        if taken < n:
            # *data* is not ours to keep if it is mutable: blocks are copied out of it then.
            used = self._parse(view, taken, n, out, copy=not isinstance(data, bytes))
            if used < n:
                buf += view[used:]
        self._need = _missing(buf) if buf else 0
        return out

    def _parse(
        self, mv: memoryview, pos: int, end: int, out: list[Message | Handshake], *, copy: bool
    ) -> int:
        """Append the complete messages in ``mv[pos:end]`` to *out*; return where they end.
        A PIECE's block is a view into *mv* (no copy) unless *copy*: *mv* is our own buffer,
        which changes after this call."""
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
                block = mv[pos + 13 : stop]
                append(Piece(index, begin, block.tobytes() if copy else block))
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
        index_type = INDEX_MESSAGES.get(mid)
        if index_type is not None:
            (index,) = _U32.unpack_from(mv, body)
            self._check_index(index)
            return index_type(index)
        triple_type = TRIPLE_MESSAGES.get(mid)
        if triple_type is not None:
            index, begin, length = _THREE_U32.unpack_from(mv, body)
            self._check_index(index)
            if mid == 6 and not 0 < length <= self._max_block:
                raise ProtocolError(f"the peer requested a block of {length} bytes")
            return triple_type(index, begin, length)
        single = SINGLETONS.get(mid)
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
    length: int = _U32.unpack_from(buf)[0]
    return 4 + length - have
