"""The extension messages of one connection (BEP 10): serving our metadata (BEP 9) and peer
exchange (BEP 11), as data in and data out.

A :class:`PeerExtensions` belongs to one :class:`~swarm.peer_state.PeerState`. It says what goes
into our extended handshake (``m`` and ``metadata_size``), learns the ids the peer wants its
messages under from the peer's handshake, answers ut_metadata requests and reads ut_pex
messages; :func:`pex_round` makes the PEX messages a torrent sends its peers once a minute,
each peer with its ``added.f`` flags (seed, reachable, and "prefers encryption" for a peer
whose connection went through the MSE/PE handshake, as libtorrent sets it). A
private torrent (BEP 27) offers neither: its metadata is not served (as libtorrent does not)
and peers are not exchanged, so its extended handshake's ``m`` is empty. No sockets and no
clock of its own: the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from swarm import wire
from swarm.errors import ProtocolError
from swarm.wire import ut_metadata
from swarm.wire.pex import FLAG_ENCRYPTION, PexMessage, PexState

__all__ = [
    "FLAG_ENCRYPTION",
    "PEX_FLOOD_SECONDS",
    "PeerExtensions",
    "PexPeers",
    "SpeaksMse",
    "pex_addresses",
    "pex_round",
]

Address = tuple[str, int]

PEX_FLOOD_SECONDS = 10.0
"""A peer's PEX messages closer together than this count against it (BEP 11 asks for one a
minute); after :data:`_PEX_STRIKES` of them the peer is dropped."""
_PEX_STRIKES = 3
_METADATA_ROUNDS = 4
"""How many times over a peer may ask for each piece of our metadata on one connection (a
fetch that restarted after a bad piece from someone else asks again); beyond that: rejects."""
_METADATA_EXTRA = 16

# BEP 11 flags for an added peer.
FLAG_SEED = 0x02
FLAG_REACHABLE = 0x10  # we connected to it: it accepts connections


@dataclass(frozen=True, slots=True)
class PexPeers:
    """The peer told us of other peers (BEP 11): an event of the connection's state.
    *encrypted*: those of them flagged as preferring encryption (worth dialling with MSE
    first: a peer that requires it closes a plain handshake)."""

    addresses: list[Address]
    encrypted: frozenset[Address] = frozenset()


class PeerExtensions:
    """One connection's ut_metadata (serving side) and ut_pex, both directions.

    *metadata* is the server of the torrent's info dictionary, or None (a private torrent, or
    no metadata to give); *pex* whether peers are exchanged on this torrent.
    """

    def __init__(self, metadata: ut_metadata.MetadataServer | None, pex: bool) -> None:
        self.metadata = metadata
        self.pex = pex
        self.peer_metadata_id = 0  # the ids the peer named in its handshake (0: not offered)
        self.peer_pex_id = 0
        self.metadata_served = 0
        self._metadata_budget = (
            metadata.num_pieces * _METADATA_ROUNDS + _METADATA_EXTRA if metadata else 0
        )
        self._pex_out: PexState | None = None
        self._last_pex_in: float | None = None
        self._pex_strikes = 0
        self.pex_encrypted: frozenset[Address] = frozenset()
        """The peers the last ut_pex message flagged as preferring encryption (``added.f``
        0x01), for :class:`PexPeers`' *encrypted*."""

    # -- the handshake -----------------------------------------------------------------------

    def ours(self) -> tuple[dict[str, int], int | None]:
        """Our handshake's ``m`` and ``metadata_size``."""
        m: dict[str, int] = {}
        if self.metadata is not None:
            m[wire.UT_METADATA] = wire.UT_METADATA_ID
        if self.pex:
            m[wire.UT_PEX] = wire.UT_PEX_ID
        return m, self.metadata.metadata_size if self.metadata is not None else None

    def on_handshake(self, hs: wire.ExtendedHandshake) -> None:
        """The peer's extended handshake (a later one updates the ids; 0 disables)."""
        if wire.UT_METADATA in hs.m:
            self.peer_metadata_id = hs.m[wire.UT_METADATA]
        if wire.UT_PEX in hs.m:
            self.peer_pex_id = hs.m[wire.UT_PEX]

    # -- receiving -----------------------------------------------------------------------------

    def receive(
        self, ext_id: int, payload: bytes, now: float, *, write_blocked: bool = False
    ) -> tuple[bytes, list[Address]]:
        """An extended message under one of our ids: the bytes to answer with and the peer
        addresses it told us of. Messages under ids we did not offer are ignored (BEP 10);
        :class:`ProtocolError` for a malformed one or a flood."""
        if ext_id == wire.UT_METADATA_ID and self.metadata is not None:
            return self._on_metadata(payload, write_blocked), []
        if ext_id == wire.UT_PEX_ID and self.pex:
            return b"", self._on_pex(payload, now)
        return b"", []

    def _on_metadata(self, payload: bytes, write_blocked: bool) -> bytes:
        assert self.metadata is not None
        msg = ut_metadata.decode(payload)
        if not isinstance(msg, ut_metadata.MetadataRequest):
            return b""  # data or reject for a fetch we never made, or an unknown msg_type
        if self.peer_metadata_id == 0:
            raise ProtocolError("a ut_metadata request from a peer that did not offer it")
        if write_blocked:
            raise ProtocolError("the peer keeps asking for metadata but does not read it")
        self.metadata_served += 1
        if self.metadata_served > self._metadata_budget:
            answer: ut_metadata.MetadataMessage = ut_metadata.MetadataReject(msg.piece)
        else:
            answer = self.metadata.answer(msg)
        body = ut_metadata.encode(answer)
        return wire.encode(wire.Extended(self.peer_metadata_id, body))

    def _on_pex(self, payload: bytes, now: float) -> list[Address]:
        last, self._last_pex_in = self._last_pex_in, now
        if last is not None and now - last < PEX_FLOOD_SECONDS:
            self._pex_strikes += 1
            if self._pex_strikes > _PEX_STRIKES:
                raise ProtocolError("PEX messages too often (BEP 11: one a minute)")
        msg = PexMessage.decode(payload)
        learned = [a for a in msg.added + msg.added6 if 0 < a[1] < 65536]
        self.pex_encrypted = frozenset(msg.prefers_encryption()).intersection(learned)
        return learned

    def pex_event(self, learned: list[Address]) -> PexPeers:
        """The event for the peers a ut_pex message just told of (:meth:`receive`)."""
        return PexPeers(learned, self.pex_encrypted)

    # -- sending PEX ---------------------------------------------------------------------------

    def pex_due(self, now: float) -> bool:
        """Whether a PEX message to the peer may go now (not a minute since the last one: no);
        False if PEX is off on either side."""
        if not self.pex or not self.peer_pex_id:
            return False
        return self._pex_out is None or self._pex_out.due(now)

    def pex_message(
        self, me: Address | None, connected: dict[Address, int], now: float
    ) -> wire.Extended | None:
        """The PEX message to send the peer now (*me*: its own dialable address, never listed
        to it; None if it has none), or None: not yet a minute since the last one, nothing
        new, or PEX off on either side."""
        if not self.pex or not self.peer_pex_id:
            return None
        if self._pex_out is None:
            self._pex_out = PexState(me or ("", 0))
        msg = self._pex_out.update(connected, now)
        if msg is None:
            return None
        return wire.Extended(self.peer_pex_id, msg.encode())


class PexPeerState(Protocol):
    """What PEX reads of a connection's protocol state."""

    @property
    def listen_port(self) -> int | None: ...
    @property
    def peer_is_seed(self) -> bool: ...
    @property
    def extensions(self) -> PeerExtensions | None: ...


class SpeaksMse(Protocol):
    """A connection that knows whether it went through the MSE/PE handshake (encrypted, or
    MSE with plaintext selected). A :class:`PexPeer` that is one is listed to others with
    ``added.f`` 0x01; one that is not (or cannot tell) never is."""

    @property
    def mse(self) -> bool: ...


class PexPeer(Protocol):
    """A connection, as PEX sees it."""

    @property
    def outgoing(self) -> bool: ...
    @property
    def address(self) -> Address | None: ...
    @property
    def state(self) -> PexPeerState: ...
    def send(self, msg: wire.Message) -> None: ...


def dialable(peer: PexPeer) -> Address | None:
    """The address another peer could reach *peer* at: the one we dialled, or for a peer that
    dialled us its IP and the listen port its extended handshake gave (None: not known)."""
    if peer.address is None:
        return None
    if peer.outgoing:
        return peer.address
    port = peer.state.listen_port
    return (peer.address[0], port) if port else None


def pex_addresses(peers: Iterable[PexPeer]) -> dict[Address, int]:
    """The peers we are connected to that others could dial, with their BEP 11 flags."""
    out: dict[Address, int] = {}
    for p in peers:
        addr = dialable(p)
        if addr is not None:
            seed = FLAG_SEED if p.state.peer_is_seed else 0
            # a SpeaksMse (getattr: an isinstance of a runtime Protocol per peer per tick
            # was 1.5% of a group process's time at N = 100)
            mse = FLAG_ENCRYPTION if getattr(p, "mse", False) else 0
            out[addr] = (FLAG_REACHABLE if p.outgoing else 0) | seed | mse
    return out


def pex_round(peers: Iterable[PexPeer], now: float) -> int:
    """Send each peer that takes PEX what changed since its last message (at most one a
    minute each, see :class:`~swarm.wire.pex.PexState`); how many messages went. The
    addresses are gathered only when a peer is due one (not at every tick)."""
    peers = list(peers)
    connected: dict[Address, int] | None = None
    sent = 0
    for p in peers:
        ext = p.state.extensions
        if ext is None or not ext.pex_due(now):
            continue
        if connected is None:
            connected = pex_addresses(peers)
        msg = ext.pex_message(dialable(p), connected, now)
        if msg is not None:
            p.send(msg)
            sent += 1
    return sent
