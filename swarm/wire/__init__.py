"""The peer wire protocol as data: BEP 3, BEP 6 (fast extension), BEP 10 (extension protocol).

``encode(message) -> bytes`` turns a message into its bytes; a :class:`Parser` fed whatever
bytes arrived returns the complete messages, or raises :class:`ProtocolError` for anything a
well-behaved peer would not send. No sockets, no clocks (the h11 way).

The parts, each after the spec's noun: :mod:`~swarm.wire.handshake` (the 68-byte handshake
and its reserved bits), :mod:`~swarm.wire.messages` (message values, ids, ``encode``),
:mod:`~swarm.wire.parser` (the incremental :class:`Parser`), :mod:`~swarm.wire.bitfield`,
:mod:`~swarm.wire.extended` (the BEP 10 handshake) and :mod:`~swarm.wire.fast` (the BEP 6
allowed-fast set). Everything public is re-exported here: use ``wire.Parser``,
``wire.encode``, ``wire.BLOCK_SIZE``.
"""

from swarm.wire.bitfield import bitfield_from_bools, bools_from_bitfield, check_bitfield
from swarm.wire.extended import (
    UT_METADATA,
    UT_METADATA_ID,
    UT_PEX,
    UT_PEX_ID,
    ExtendedHandshake,
    yourip,
)
from swarm.wire.fast import allowed_fast_set
from swarm.wire.handshake import HANDSHAKE_LEN, PROTOCOL, Handshake, make_reserved
from swarm.wire.messages import (
    BLOCK_SIZE,
    CHOKE,
    HAVE_ALL,
    HAVE_NONE,
    INTERESTED,
    KEEP_ALIVE,
    MAX_EXTENDED,
    NOT_INTERESTED,
    UNCHOKE,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Extended,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    MsgId,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    encode,
    encode_piece_header,
)
from swarm.wire.parser import Parser
from swarm.wire.pex import MAX_PEX_PEERS, PEX_INTERVAL, PEX_MAX_ADDED, PexMessage, PexState
from swarm.wire.ut_metadata import (
    MAX_METADATA_SIZE,
    METADATA_PIECE,
    MetadataAssembler,
    MetadataComplete,
    MetadataData,
    MetadataHashFailed,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
)

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
    "yourip",
]

# BEP 9 and BEP 11 (issue 15); ut_metadata's codec is swarm.wire.ut_metadata.encode / decode.
__all__ += [
    "MAX_METADATA_SIZE",
    "MAX_PEX_PEERS",
    "METADATA_PIECE",
    "PEX_INTERVAL",
    "PEX_MAX_ADDED",
    "MetadataAssembler",
    "MetadataComplete",
    "MetadataData",
    "MetadataHashFailed",
    "MetadataReject",
    "MetadataRequest",
    "MetadataServer",
    "PexMessage",
    "PexState",
    "UT_METADATA",
    "UT_METADATA_ID",
    "UT_PEX",
    "UT_PEX_ID",
]
