"""BEP 9 (ut_metadata): fetching the info dictionary from peers, as data in and data out.

A ut_metadata message is the payload of an extended message (BEP 10) sent under the id the
receiver named for ``ut_metadata`` in its extended handshake: a bencoded dictionary
``{msg_type, piece[, total_size]}``, followed, for a data message only, by the raw bytes of
that 16 KiB piece of the info dictionary. :func:`encode` and :func:`decode` are the codec;
:class:`MetadataAssembler` is the receiving side (which piece to ask whom, checking and joining
the pieces, the SHA-1 against the info-hash); :class:`MetadataServer` is the serving side.
No sockets and no clock of its own: the caller passes ``now``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from swarm import bencoding
from swarm.errors import BencodeError, ProtocolError

__all__ = [
    "MAX_METADATA_SIZE",
    "METADATA_PIECE",
    "MetadataAssembler",
    "MetadataComplete",
    "MetadataData",
    "MetadataHashFailed",
    "MetadataMessage",
    "MetadataReject",
    "MetadataRequest",
    "MetadataServer",
    "decode",
    "encode",
]

METADATA_PIECE = 16384
MAX_METADATA_SIZE = 8 << 20
"""The largest info dictionary we fetch or accept a ``metadata_size`` for (512 pieces)."""

_MAX_PIECES = MAX_METADATA_SIZE // METADATA_PIECE
_MAX_HEADER = 256
"""The dictionary before a piece's bytes is at most 49 bytes as BEP 9 defines it; we look no
further than this, which bounds the cost of finding its end (see :func:`_leading_dict`)."""
_MAX_TRIES = 32


class MsgType(enum.IntEnum):
    REQUEST = 0
    DATA = 1
    REJECT = 2


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    """Ask for piece *piece* (16 KiB each) of the info dictionary."""

    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    """Piece *piece* of an info dictionary of *total_size* bytes; *data* is the piece."""

    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MetadataReject:
    """The sender will not give us piece *piece* (it lacks the metadata, or will not share)."""

    piece: int


MetadataMessage = MetadataRequest | MetadataData | MetadataReject


def _piece_size(piece: int, total_size: int) -> int:
    """The length piece *piece* must have: 16 KiB, except the last, which may be shorter."""
    return min(METADATA_PIECE, total_size - piece * METADATA_PIECE)


def _num_pieces(total_size: int) -> int:
    return -(-total_size // METADATA_PIECE)


def encode(message: MetadataMessage) -> bytes:
    """The extended message payload for *message* (the dictionary, then a data piece's bytes)."""
    if isinstance(message, MetadataRequest):
        return bencoding.encode({b"msg_type": MsgType.REQUEST.value, b"piece": message.piece})
    if isinstance(message, MetadataReject):
        return bencoding.encode({b"msg_type": MsgType.REJECT.value, b"piece": message.piece})
    head = {
        b"msg_type": MsgType.DATA.value,
        b"piece": message.piece,
        b"total_size": message.total_size,
    }
    return bencoding.encode(head) + bytes(message.data)


def _leading_dict(payload: bytes) -> tuple[dict[bytes, Any], int]:
    """The bencoded dictionary at the start of *payload* and where it ends.

    The strict decoder only reads whole values, so we try the prefixes that end in ``e``
    within the first :data:`_MAX_HEADER` bytes, the first :data:`_MAX_TRIES` of them.
    Bencoding is prefix-free: at most one prefix is a complete value, so the first that
    decodes is the dictionary. An honest header ends at its seventh ``e``; a hostile one costs
    at most 32 decodes of at most 256 bytes (about a millisecond), whatever it holds.
    """
    if payload[:1] != b"d":
        raise ProtocolError("a ut_metadata message does not start with a dictionary")
    head = payload[:_MAX_HEADER]
    end = head.find(b"e")
    for _ in range(_MAX_TRIES):
        if end == -1:
            break
        try:
            value = bencoding.decode(head[: end + 1])
        except BencodeError:
            end = head.find(b"e", end + 1)
            continue
        assert isinstance(value, dict)  # it starts with "d"
        return value, end + 1
    raise ProtocolError("a ut_metadata message does not start with a short, valid dictionary")


def decode(payload: bytes) -> MetadataMessage | None:
    """Read a ut_metadata payload; ``None`` for a ``msg_type`` we do not know (BEP 9 says an
    unknown one must be ignored). :class:`ProtocolError` for anything malformed: no leading
    dictionary, a missing or ill-typed key, bytes after a request or reject, a data message
    whose piece does not fit its ``total_size`` (index, or length: 16 KiB but the last)."""
    payload = bytes(payload)
    d, end = _leading_dict(payload)
    msg_type = d.get(b"msg_type")
    piece = d.get(b"piece")
    if not isinstance(msg_type, int) or not isinstance(piece, int):
        raise ProtocolError("a ut_metadata message lacks an integer msg_type or piece")
    if not 0 <= piece < 1 << 31:
        raise ProtocolError(f"a ut_metadata message names piece {piece}")
    rest = payload[end:]
    if msg_type in (MsgType.REQUEST, MsgType.REJECT):
        if rest:
            raise ProtocolError("a ut_metadata request or reject has bytes after its dictionary")
        return MetadataRequest(piece) if msg_type == MsgType.REQUEST else MetadataReject(piece)
    if msg_type != MsgType.DATA:
        return None
    total_size = d.get(b"total_size")
    if not isinstance(total_size, int) or not 0 < total_size <= MAX_METADATA_SIZE:
        raise ProtocolError(f"a ut_metadata data message gives total_size {total_size!r}")
    if piece >= _num_pieces(total_size):
        raise ProtocolError(f"ut_metadata piece {piece} is past the end of {total_size} bytes")
    if len(rest) != _piece_size(piece, total_size):
        raise ProtocolError(
            f"ut_metadata piece {piece} of {total_size} bytes is {len(rest)} bytes long"
        )
    return MetadataData(piece, total_size, rest)


@dataclass(frozen=True, slots=True)
class MetadataComplete:
    """The info dictionary's bytes, checked against the info-hash."""

    info: bytes


@dataclass(frozen=True, slots=True)
class MetadataHashFailed:
    """The joined pieces did not hash to the info-hash; *contributors* sent them (ban them).
    The assembler has started over and will not hand these peers another piece."""

    contributors: frozenset[Hashable]


class MetadataAssembler:
    """The receiving side: which pieces to ask which peer for, and joining what comes back.

    A peer is any hashable key the caller chooses (its address, its connection). Each piece
    is in flight from one peer at a time; a reject, a timeout or the peer going away frees it
    for another peer. A peer that rejected a piece is not asked for that piece again (until a
    start over), so a peer without the metadata is not asked in a loop.
    """

    def __init__(self, info_hash: bytes, metadata_size: int, *, timeout: float = 30.0) -> None:
        if len(info_hash) != 20:
            raise ValueError("an info-hash is 20 bytes")
        if not 0 < metadata_size <= MAX_METADATA_SIZE:
            raise ProtocolError(
                f"a peer says the metadata is {metadata_size} bytes"
                f" (we accept 1 to {MAX_METADATA_SIZE})"
            )
        self.info_hash = info_hash
        self.metadata_size = metadata_size
        self.num_pieces = _num_pieces(metadata_size)
        self.timeout = timeout
        self._pieces: dict[int, tuple[bytes, Hashable]] = {}
        self._in_flight: dict[int, tuple[Hashable, float]] = {}
        self._rejected: set[tuple[Hashable, int]] = set()
        self._banned: set[Hashable] = set()

    @property
    def have(self) -> int:
        """How many pieces have arrived so far."""
        return len(self._pieces)

    def expire(self, now: float) -> list[tuple[Hashable, int]]:
        """Free the pieces asked for more than ``timeout`` ago; gives ``(peer, piece)`` of each."""
        late = [
            (peer, piece)
            for piece, (peer, asked) in self._in_flight.items()
            if now - asked >= self.timeout
        ]
        for _, piece in late:
            del self._in_flight[piece]
        return late

    def next_request(self, peer: Hashable, now: float) -> MetadataRequest | None:
        """A request to send *peer* now, marked in flight from it; ``None`` if there is no
        piece this peer may be asked for (all held or in flight, rejected by it, it banned)."""
        if peer in self._banned:
            return None
        self.expire(now)
        for piece in range(self.num_pieces):
            if (
                piece not in self._pieces
                and piece not in self._in_flight
                and (peer, piece) not in self._rejected
            ):
                self._in_flight[piece] = (peer, now)
                return MetadataRequest(piece)
        return None

    def on_reject(self, peer: Hashable, message: MetadataReject) -> None:
        """*peer* refused a piece: another peer may be asked for it."""
        if not 0 <= message.piece < self.num_pieces:
            return  # nothing to free; not remembered, so a flood of them costs no memory
        if self._in_flight.get(message.piece, (None,))[0] == peer:
            del self._in_flight[message.piece]
        self._rejected.add((peer, message.piece))

    def peer_gone(self, peer: Hashable) -> None:
        """*peer* disconnected: what it had in flight goes back to the pool."""
        for piece in [p for p, (who, _) in self._in_flight.items() if who == peer]:
            del self._in_flight[piece]

    def on_data(
        self, peer: Hashable, message: MetadataData
    ) -> MetadataComplete | MetadataHashFailed | None:
        """Take a data message from *peer*; ``None`` until the last piece is in.

        A piece we did not ask *peer* for (unsolicited, or reassigned after a timeout) is
        ignored, as libtorrent does. :class:`ProtocolError` if ``total_size`` is not the
        ``metadata_size`` we were told, or the piece's length is wrong for it.
        """
        if message.total_size != self.metadata_size:
            raise ProtocolError(
                f"a ut_metadata piece says the metadata is {message.total_size} bytes,"
                f" the handshake said {self.metadata_size}"
            )
        piece = message.piece
        if not 0 <= piece < self.num_pieces:
            raise ProtocolError(f"ut_metadata piece {piece} is out of range")
        if len(message.data) != _piece_size(piece, self.metadata_size):
            raise ProtocolError(f"ut_metadata piece {piece} has the wrong length")
        if self._in_flight.get(piece, (None,))[0] != peer:
            return None
        del self._in_flight[piece]
        self._pieces[piece] = (bytes(message.data), peer)
        if len(self._pieces) < self.num_pieces:
            return None
        info = b"".join(self._pieces[i][0] for i in range(self.num_pieces))
        if hashlib.sha1(info).digest() == self.info_hash:
            return MetadataComplete(info)
        contributors = frozenset(who for _, who in self._pieces.values())
        self._banned |= contributors
        self._pieces.clear()
        self._in_flight.clear()
        self._rejected.clear()
        return MetadataHashFailed(contributors)


class MetadataServer:
    """The serving side: answers requests for pieces of our info dictionary.

    :attr:`metadata_size` goes into our extended handshake. A private torrent (BEP 27) should
    not offer ut_metadata at all: libtorrent does not add its ut_metadata extension to a
    torrent whose metadata it has and which is private (``create_ut_metadata_plugin``), so it
    serves a private torrent's metadata to no peer, and does not advertise the extension for
    it; the engine should do the same rather than build a server for one.
    """

    def __init__(self, info_bytes: bytes) -> None:
        if not 0 < len(info_bytes) <= MAX_METADATA_SIZE:
            raise ValueError(f"an info dictionary of {len(info_bytes)} bytes cannot be served")
        self._info = bytes(info_bytes)
        self.num_pieces = _num_pieces(len(self._info))

    @property
    def metadata_size(self) -> int:
        """The info dictionary's length, for ``metadata_size`` in the extended handshake."""
        return len(self._info)

    def answer(self, request: MetadataRequest) -> MetadataData | MetadataReject:
        """The data for an in-range piece, a reject for any other."""
        piece = request.piece
        if not 0 <= piece < self.num_pieces:
            return MetadataReject(piece)
        start = piece * METADATA_PIECE
        return MetadataData(piece, len(self._info), self._info[start : start + METADATA_PIECE])
