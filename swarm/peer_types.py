"""The values a :class:`~swarm.peer_state.PeerState` takes and gives: the torrent as the
connection sees it, the events of a peer's bitfield, the timers found due, a block's key."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarm import wire
from swarm.extensions import PexPeers
from swarm.wire.ut_metadata import MetadataServer

__all__ = ["Block", "Event", "PeerBitfield", "Timer", "Torrent"]

Block = tuple[int, int, int]  # (piece index, begin, length)


@dataclass(frozen=True, slots=True)
class PeerBitfield:
    """The peer said all it has at once (a bitfield, have all or have none)."""

    haves: list[bool]


Event = wire.Message | wire.Handshake | PeerBitfield | PexPeers
"""What :meth:`PeerState.receive` returns."""


class Timer(enum.Enum):
    """What :meth:`PeerState.timers` found due."""

    IDLE = "idle"  # nothing heard for too long: close
    KEEPALIVE = "keepalive"  # nothing sent for a while: send a keep-alive
    SNUBBED = "snubbed"  # our requests went unanswered for too long


@dataclass(frozen=True, slots=True)
class Torrent:
    """What the state needs to know of the torrent once the handshake named it."""

    info_hash: bytes
    num_pieces: int
    piece_length: int
    total_length: int
    have: Sequence[bool]  # our pieces, shared with the picker and read live
    defer: Callable[[int], bool] | None = None  # initial seeding: turn this request away once
    metadata: MetadataServer | None = None  # our info dictionary, served by ut_metadata
    pex: bool = False  # peer exchange on (not for a private torrent)
