"""The protocol state of one peer connection (BEP 3, BEP 6, BEP 10), without any I/O.

Bytes go in (:meth:`PeerState.receive`) and the messages the torrent must hear come out, after
the state has applied what they mean: both sides' choke and interest flags, what the peer has,
our requests to it (with the ones we withdrew, whose blocks may still arrive) and its requests
to us (with cancel and reject). Calls that change what we tell the peer return the bytes to
send. There is no asyncio and no clock here: the caller passes ``now`` where time matters, so
tests drive a connection's whole life with byte strings and a fake clock.
"""

from __future__ import annotations

from collections import deque

from swarm import wire
from swarm.errors import ProtocolError
from swarm.extensions import PeerExtensions
from swarm.peer_types import Block, Event, PeerBitfield, Timer, Torrent

__all__ = [
    "DEFAULT_REMOTE_REQQ",
    "MAX_QUEUED_REQUESTS",
    "MAX_REMOTE_REQQ",
    "OUR_REQQ",
    "Block",
    "Event",
    "PeerBitfield",
    "PeerState",
    "Timer",
    "Torrent",
]

OUR_REQQ = 500  # requests we let a peer queue with us (sent as BEP 10 'reqq')
MAX_QUEUED_REQUESTS = 2 * OUR_REQQ  # beyond this a peer is flooding us
DEFAULT_REMOTE_REQQ = 250  # what a peer takes when its extension handshake does not say
MAX_REMOTE_REQQ = 2000
STALE_LIMIT = 4096  # withdrawn requests remembered; past this the oldest are forgotten


class PeerState:
    """One connection's protocol state, both sides of it."""

    def __init__(
        self,
        our_peer_id: bytes,
        *,
        info_hash: bytes | None = None,
        now: float = 0.0,
        dht_port: int | None = None,
    ):
        self.our_peer_id = our_peer_id
        self.dht_port = dht_port  # our DHT node's UDP port: the DHT bit and a PORT message
        self.reserved = wire.make_reserved(fast=True, extended=True, dht=dht_port is not None)
        self.peer_dht = False
        self.info_hash = info_hash  # None for an incoming connection until the handshake
        self.torrent: Torrent | None = None
        self._parser = wire.Parser(expect_handshake=True)
        self.peer_id: bytes | None = None
        self.fast = False
        self.extended = False
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_has: list[bool] = []
        self.peer_count = 0  # how many pieces the peer has
        self.remote_reqq = DEFAULT_REMOTE_REQQ
        self.listen_port: int | None = None
        self.client_name: str | None = None
        self.allowed_fast: set[int] = set()
        self.extensions: PeerExtensions | None = None  # after attach
        # Our requests to the peer ((index, begin) -> length), and the ones we withdrew.
        self.requests_out: dict[tuple[int, int], int] = {}
        self.stale: dict[tuple[int, int], int] = {}
        # The peer's requests to us, in order, and a count of what the queue holds, so that a
        # cancel for a block not queued costs no scan (a flood of them would busy the loop).
        self.requests_in: deque[Block] = deque()
        self._queued: dict[Block, int] = {}  # a dict: a Counter's del is Python code
        self.output: list[bytes] = []  # replies made while receiving (rejects): send them
        self.write_blocked = False  # the peer is not reading what we send (set by the shell)
        self.snubbed = False
        self.connected_at = self.last_received = self.last_sent = self.last_block = now
        self.waiting_since = now  # when the peer last became interested, or we last choked it

    # -- the handshake ---------------------------------------------------------------------

    def handshake(self) -> bytes:
        """Our 68-byte handshake for :attr:`info_hash`."""
        assert self.info_hash is not None
        return wire.Handshake(self.reserved, self.info_hash, self.our_peer_id).encode()

    @property
    def attached(self) -> bool:
        return self.torrent is not None

    def attach(self, torrent: Torrent) -> None:
        """The peer's handshake named *torrent* and we serve it: messages may flow."""
        self.info_hash = torrent.info_hash
        self.torrent = torrent
        self.peer_has = [False] * torrent.num_pieces
        self._parser.set_num_pieces(torrent.num_pieces)
        self._parser.fast = self.fast
        if self.extended:
            self.extensions = PeerExtensions(torrent.metadata, torrent.pex)

    def _check_handshake(self, hs: wire.Handshake) -> None:
        if self.info_hash is not None and hs.info_hash != self.info_hash:
            raise ProtocolError("handshake for another torrent")
        if hs.peer_id == self.our_peer_id:
            raise ProtocolError("connected to ourselves")
        self.peer_id = hs.peer_id
        self.fast = hs.supports_fast
        self.extended = hs.supports_extended
        self.peer_dht = hs.supports_dht

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Apply *data* and return what the torrent must hear, in order.

        Before :meth:`attach`, at most the peer's :class:`~swarm.wire.Handshake`; whatever
        followed it is held until the next call (``receive(b"", now)`` after attaching).
        Then :class:`~swarm.wire.Piece` (only blocks we asked for, of the right length),
        new :class:`~swarm.wire.Have`, :class:`PeerBitfield`, choke and interest changes,
        :class:`~swarm.wire.Reject` of our requests, and :class:`~swarm.wire.Request` when one
        was queued. Raises :class:`ProtocolError` when the peer broke the protocol.
        """
        self.last_received = now
        if self.torrent is None:
            if self.peer_id is not None:
                raise ProtocolError("data before the handshake was accepted")
            got = self._parser.feed(data)
            if not got:
                return []
            hs = got[0]
            assert type(hs) is wire.Handshake  # the parser's first message, alone
            self._check_handshake(hs)
            return [hs]
        out: list[Event] = []
        for msg in self._parser.feed(data):
            if type(msg) is wire.Piece:
                self._on_block(msg, now)
                out.append(msg)
            elif type(msg) is wire.Request:
                if self._on_request(msg.index, msg.begin, msg.length):
                    out.append(msg)
            elif type(msg) is wire.Have:
                index = msg.index
                if not self.peer_has[index]:
                    self.peer_has[index] = True
                    self.peer_count += 1
                    out.append(msg)
            elif type(msg) is wire.Cancel:
                self._on_cancel(msg.index, msg.begin, msg.length)
            elif type(msg) is wire.Unchoke:
                self.peer_choking = False
                out.append(msg)
            elif type(msg) is wire.Choke:
                self.peer_choking = True
                out.append(msg)
            elif type(msg) is wire.Interested or type(msg) is wire.NotInterested:
                interested = type(msg) is wire.Interested
                if interested and not self.peer_interested:
                    self.waiting_since = now
                self.peer_interested = interested
                out.append(msg)
            elif type(msg) is wire.Bitfield:
                out.append(
                    self._on_bitfield(wire.bools_from_bitfield(msg.bits, len(self.peer_has)))
                )
            elif type(msg) is wire.HaveAll or type(msg) is wire.HaveNone:
                out.append(self._on_bitfield([type(msg) is wire.HaveAll] * len(self.peer_has)))
            elif type(msg) is wire.Reject:
                # A reject answers the oldest request of that block: one withdrawn at a
                # choke (or cancelled) and asked again since is still out. Taking the new
                # request for rejected dropped its block when it came (the netns lab at N = 2:
                # a leecher's last piece waited 0.85 s).
                key = (msg.index, msg.begin)
                if key in self.stale:
                    del self.stale[key]
                elif self.requests_out.pop(key, None) is not None:
                    out.append(msg)
            elif type(msg) is wire.AllowedFast:
                self.allowed_fast.add(msg.index)
            elif type(msg) is wire.Port:
                if self.dht_port is not None and self.torrent.pex:  # never a private torrent's
                    out.append(msg)
            elif type(msg) is wire.Extended:
                learned = self._on_extended(msg, now)
                if learned and self.extensions is not None:
                    out.append(self.extensions.pex_event(learned))
            # Keep-alive and suggest are advisory: nothing to do.
        return out

    def _on_block(self, msg: wire.Piece, now: float) -> None:
        key = (msg.index, msg.begin)
        expected = self.requests_out.pop(key, None)
        if expected is None:
            expected = self.stale.pop(key, None)
            if expected is None:
                raise ProtocolError(f"a block of piece {msg.index} that we never asked for")
        if len(msg.block) != expected:
            raise ProtocolError("a block of the wrong length")
        self.last_block = now
        self.snubbed = False

    def _on_bitfield(self, haves: list[bool]) -> PeerBitfield:
        # Some clients follow 'have none' with a bitfield: the newest one counts.
        self.peer_has = haves
        self.peer_count = sum(haves)
        return PeerBitfield(haves)

    @property
    def peer_is_seed(self) -> bool:
        return self.torrent is not None and self.peer_count == self.torrent.num_pieces

    def _on_extended(self, msg: wire.Extended, now: float) -> list[tuple[str, int]]:
        ext = self.extensions
        if ext is None:
            return []  # the peer did not set the extension bit: ignore what it sends
        if msg.ext_id != 0:
            reply, learned = ext.receive(
                msg.ext_id, msg.payload, now, write_blocked=self.write_blocked
            )
            if reply:
                self.output.append(reply)
            return learned
        hs = wire.ExtendedHandshake.decode(msg.payload)
        ext.on_handshake(hs)
        if hs.reqq:
            self.remote_reqq = max(1, min(hs.reqq, MAX_REMOTE_REQQ))
        if hs.p and 0 < hs.p < 65536:
            self.listen_port = hs.p
        self.client_name = hs.v
        return []

    def _on_request(self, index: int, begin: int, length: int) -> bool:
        """Queue the peer's request, or reject or drop it; True when it was queued."""
        t = self.torrent
        assert t is not None
        size = (
            t.piece_length if index < t.num_pieces - 1 else t.total_length - index * t.piece_length
        )
        if begin + length > size:
            raise ProtocolError(f"request past the end of piece {index}")
        if not t.have[index]:
            if self.fast:
                self._reject(index, begin, length)
                return False
            raise ProtocolError(f"request for piece {index}, which we do not have")
        if self.am_choking:
            if self.fast:
                self._reject(index, begin, length)
            return False  # without the fast extension a request while choked is dropped
        if len(self.requests_in) >= MAX_QUEUED_REQUESTS:
            raise ProtocolError("request flood")
        if self.fast and t.defer is not None and t.defer(index):
            self._reject(index, begin, length)
            return False
        key = (index, begin, length)
        self.requests_in.append(key)
        self._queued[key] = self._queued.get(key, 0) + 1
        return True

    def _reject(self, index: int, begin: int, length: int) -> None:
        if self.write_blocked:
            # Every request earns a reject: a peer that keeps asking but never reads would
            # have us buffer its rejects without bound.
            raise ProtocolError("the peer keeps sending requests but does not read our replies")
        self.output.append(wire.encode(wire.Reject(index, begin, length)))

    def _on_cancel(self, index: int, begin: int, length: int) -> None:
        key = (index, begin, length)
        if key not in self._queued:
            return  # already sent, or never asked: the common case, and the cheap one
        self._unqueue(key)
        self.requests_in.remove(key)

    def _unqueue(self, key: Block) -> None:
        left = self._queued[key] - 1
        if left:
            self._queued[key] = left
        else:
            del self._queued[key]

    def take_output(self) -> bytes:
        """The replies made while receiving, once."""
        data = b"".join(self.output)
        self.output.clear()
        return data

    # -- what we tell the peer ---------------------------------------------------------------

    def initial(self, version: str, port: int | None, yourip: bytes | None = None) -> bytes:
        """What follows the handshake: bitfield (or have all/none), then the BEP 10 handshake
        (with *yourip*, the peer's address as we see it, 4 or 16 bytes, when known)."""
        t = self.torrent
        assert t is not None
        num_have = sum(t.have)
        msgs: list[wire.Message] = []
        if self.fast and num_have == t.num_pieces:
            msgs.append(wire.HAVE_ALL)
        elif self.fast and num_have == 0:
            msgs.append(wire.HAVE_NONE)
        elif num_have:
            msgs.append(wire.Bitfield(wire.bitfield_from_bools(t.have)))
        if self.extensions is not None:
            m, size = self.extensions.ours()
            ext = wire.ExtendedHandshake(
                m=m, v=version, p=port or None, reqq=OUR_REQQ, yourip=yourip, metadata_size=size
            )
            msgs.append(wire.Extended(0, ext.encode()))
        if self.dht_port is not None and self.peer_dht and t.pex:  # BEP 5; not if private
            msgs.append(wire.Port(self.dht_port))
        return b"".join(wire.encode(m) for m in msgs)

    def choke(self, now: float | None = None) -> bytes:
        """Choke the peer: its queued requests are dropped (rejected, with BEP 6). *now*: from
        when it waits for a slot again (:attr:`waiting_since`)."""
        if self.am_choking:
            return b""
        self.am_choking = True
        if now is not None:
            self.waiting_since = now
        data = wire.encode(wire.CHOKE)
        if self.fast:
            data += b"".join(wire.encode(wire.Reject(*r)) for r in self.requests_in)
        self.requests_in.clear()
        self._queued.clear()
        return data

    def unchoke(self) -> bytes:
        if not self.am_choking:
            return b""
        self.am_choking = False
        return wire.encode(wire.UNCHOKE)

    def interested(self, value: bool) -> bytes:
        if value == self.am_interested:
            return b""
        self.am_interested = value
        return wire.encode(wire.INTERESTED if value else wire.NOT_INTERESTED)

    def request(self, blocks: list[Block]) -> bytes:
        out = self.requests_out
        for index, begin, length in blocks:
            out[(index, begin)] = length
        return b"".join([wire.encode(wire.Request(i, b, n)) for i, b, n in blocks])

    def cancel(self, index: int, begin: int, length: int) -> bytes:
        """Withdraw one request; its block may be on its way already and is then welcome."""
        asked = self.requests_out.pop((index, begin), None)
        if asked is None:
            return b""
        self._remember_stale({(index, begin): asked})
        return wire.encode(wire.Cancel(index, begin, length))

    def withdraw(self) -> list[Block]:
        """Forget every request we have out (choke, snub, close) and return them; blocks that
        still arrive for them are accepted, not taken for unasked-for data."""
        blocks = [(i, b, n) for (i, b), n in self.requests_out.items()]
        self._remember_stale(self.requests_out)
        self.requests_out = {}
        return blocks

    def _remember_stale(self, requests: dict[tuple[int, int], int]) -> None:
        if len(self.stale) > STALE_LIMIT:
            self.stale.clear()
        self.stale.update(requests)

    # -- the upload queue --------------------------------------------------------------------

    def next_request(self) -> Block | None:
        """The peer's oldest queued request, taken off the queue; None when there is none."""
        if not self.requests_in:
            return None
        key = self.requests_in.popleft()
        self._unqueue(key)
        return key

    def withdrawn(self, blocks: list[Block]) -> bytes:
        """Blocks taken off the queue that we will not send after all (we choked meanwhile)."""
        if not self.fast:
            return b""
        return b"".join(wire.encode(wire.Reject(*r)) for r in blocks)

    # -- time --------------------------------------------------------------------------------

    def timers(self, now: float, *, idle: float, keepalive: float, snub: float) -> list[Timer]:
        """What is due at *now*: the connection idle (nothing else then), a keep-alive, the
        peer snubbing us (once, until it sends a block again)."""
        if now - self.last_received > idle:
            return [Timer.IDLE]
        due = []
        if now - self.last_sent > keepalive:
            due.append(Timer.KEEPALIVE)
        if self.requests_out and now - self.last_block > snub and not self.snubbed:
            self.snubbed = True
            due.append(Timer.SNUBBED)
        return due
