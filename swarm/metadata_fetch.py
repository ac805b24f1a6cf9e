"""Fetching a magnet's info dictionary from peers (BEP 9 over BEP 10, peers from BEP 11 too).

:class:`~swarm.metadata_plan.MetadataPlan` is the pure part (which piece to ask whom, over
one :class:`~swarm.wire.MetadataAssembler` per ``metadata_size`` the peers name);
:class:`MetadataFetcher` is the asyncio shell: it dials the addresses it is
given (:meth:`MetadataFetcher.add_peers`; the magnet's ``x.pe``, ``--peer``, the trackers, the
peers' ut_pex messages), at most :data:`MAX_CONNECTIONS` at once, does the BEP 3 handshake with
the extension and fast bits, sends our extended handshake, and asks every peer that has the
metadata for pieces until the joined pieces hash to the info-hash. A peer whose pieces did not
hash is banned (closed, never dialled again); a peer that breaks the protocol (a
``metadata_size`` over :data:`~swarm.wire.MAX_METADATA_SIZE`, a piece out of range, a malformed
message, or one larger than the parser's limits) is closed alone; a peer without ut_metadata
or without ``metadata_size`` is closed after :data:`NO_METADATA_GRACE` seconds and tried again
later (it may have the metadata by then).

Trackers: while the metadata is unknown, the torrent's size is too, and we announce
``left`` = :data:`LEFT_BEFORE_METADATA` (16 KiB), as libtorrent does: in its
``src/torrent.cpp``, ``bytes_left()`` is empty (-1 in 1.x: "if we don't have the metadata
yet, we cannot tell how big the torrent is") and ``announce_with_tracker`` sends
``req.left = value_or(bytes_left(), 16*1024)``. A nonzero ``left`` tells every tracker we are
a leecher (so it gives us seeds, which have the metadata), which ``left=0`` (aria2's choice)
does not: most trackers give a seed no seeds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from swarm import wire
from swarm.announce import AnnounceRequest, announce_once
from swarm.announcer import AnnounceOnce, Announcer
from swarm.errors import ProtocolError, SwarmError, TrackerError
from swarm.metadata_plan import PIPELINE, MetadataPlan
from swarm.mse_shell import PeerCrypto
from swarm.wire import ut_metadata

__all__ = [
    "LEFT_BEFORE_METADATA",
    "FetchedMetadata",
    "MetadataFetcher",
    "MetadataProgress",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]

LEFT_BEFORE_METADATA = 16 * 1024
MAX_CONNECTIONS = 20
CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0
"""Longest a peer may take to send its BEP 3 handshake, and then its extended handshake."""
NO_METADATA_GRACE = 3.0
READ_TIMEOUT = 30.0
MAX_WRITE_BUFFER = 1 << 20
"""A peer that lets more than this pile up unread (rejects to a flood of requests) is closed."""
MAX_KNOWN = 1000
MAX_ADDRESSES = 10_000
"""At most this many addresses are taken in all (so a PEX flood cannot grow what we keep)."""
MAX_ATTEMPTS = 3
RETRY_SECONDS = 5.0
NO_SOURCE_SECONDS = 30.0
TICK = 0.25


@dataclass(frozen=True, slots=True)
class MetadataProgress:
    """How the fetch goes: peers handshaken now, those that have the metadata, and pieces."""

    peers: int
    with_metadata: int
    pieces: int
    total: int | None  # None until a peer has said how big the metadata is


@dataclass(frozen=True, slots=True)
class FetchedMetadata:
    """The verified info dictionary, how many peers sent pieces of it, and the time taken."""

    info: bytes
    contributors: int
    seconds: float


class _Peer:
    """One connection of the fetcher: its writer, the peer's ut_metadata id, its deadline."""

    def __init__(self, addr: Address) -> None:
        self.addr = addr
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.handshaken = False
        self.ut_metadata = 0  # the id the peer wants ut_metadata under (0: it has none)
        self.give_up_at: float | None = None  # close then, unless it has the metadata
        self.retry = True  # dial it again later when it closes (not after an error or a ban)

    def send(self, message: wire.Message | wire.Handshake) -> None:
        if self.writer is not None and not self.writer.is_closing():
            data = message.encode() if isinstance(message, wire.Handshake) else wire.encode(message)
            self.writer.write(data)


class MetadataFetcher:
    """Fetches the info dictionary of *info_hash* from peers; see the module's docstring.

    :meth:`run` returns a :class:`FetchedMetadata`, or raises :class:`TrackerError` when no
    peer, no address to dial and no usable tracker is left for *no_source_seconds*.
    :attr:`handshaken` keeps the addresses that completed a handshake, in order, so the
    download can dial them at once; :attr:`from_pex` those learned by PEX only.
    """

    def __init__(
        self,
        info_hash: bytes,
        *,
        peer_id: bytes,
        port: int,
        version: str,
        trackers: Iterable[str] = (),
        key: int = 0,
        rng: random.Random | None = None,
        max_connections: int = MAX_CONNECTIONS,
        connect_timeout: float = CONNECT_TIMEOUT,
        no_source_seconds: float = NO_SOURCE_SECONDS,
        announce: AnnounceOnce = announce_once,
        clock: Callable[[], float] = time.monotonic,
        crypto: PeerCrypto | None = None,  # MSE/PE: the session's policy (prefer by default)
    ) -> None:
        self.info_hash = info_hash
        self.crypto = crypto or PeerCrypto()
        self.peer_id = peer_id
        self.port = port
        self.version = version
        self.key = key
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.no_source_seconds = no_source_seconds
        self.plan = MetadataPlan(info_hash)
        self.handshaken: dict[Address, None] = {}
        self.from_pex: set[Address] = set()
        self.banned: set[Address] = set()
        self._clock = clock
        self._known: dict[Address, tuple[int, float]] = {}  # attempts made, dial not before
        self._taken = 0  # addresses taken into _known, ever
        self._peers: dict[Address, _Peer] = {}
        self._wake = asyncio.Event()
        self._result: wire.MetadataComplete | None = None
        self._trackers = [[url] for url in dict.fromkeys(trackers)]
        self.announcer = Announcer(
            self._trackers,
            request=self._announce_request,
            on_peers=self.add_peers,
            want_peers_soon=lambda: True,
            rng=rng or random.Random(),
            complete=lambda: False,
            announce_once=announce,
        )

    # -- what the caller sees -----------------------------------------------------------------

    def add_peers(self, addrs: Iterable[Address], *, pex: bool = False) -> None:
        """Addresses to dial (bounded: at most :data:`MAX_KNOWN` wait at once, and at most
        :data:`MAX_ADDRESSES` are taken in all)."""
        for addr in addrs:
            addr = (str(addr[0]), int(addr[1]))
            if addr in self.banned or addr in self._known or addr in self._peers:
                continue
            if len(self._known) >= MAX_KNOWN or self._taken >= MAX_ADDRESSES:
                continue
            if not 0 < addr[1] < 65536:
                continue
            self._taken += 1
            self._known[addr] = (0, 0.0)
            if pex and addr not in self.handshaken:
                self.from_pex.add(addr)
        self._wake.set()

    def progress(self) -> MetadataProgress:
        have, total = self.plan.progress()
        peers = sum(1 for p in self._peers.values() if p.handshaken)
        return MetadataProgress(peers, self.plan.peers, have, total)

    @property
    def sources(self) -> bool:
        """Whether the fetch has anywhere to get the metadata from: a peer connected or to
        dial, or a tracker that may yet answer."""
        return bool(self._peers or self._known or (self._trackers and self.announcer.usable))

    async def run(
        self, on_progress: Callable[[MetadataProgress], None] | None = None
    ) -> FetchedMetadata:
        """Fetch until the metadata is verified."""
        started = self._clock()
        alone_since: float | None = None
        announcing = asyncio.ensure_future(self.announcer.run()) if self._trackers else None
        try:
            while self._result is None:
                now = self._clock()
                self._tick(now)
                if self._result is not None:
                    break
                if self.sources:
                    alone_since = None
                elif alone_since is None:
                    alone_since = now
                elif now - alone_since >= self.no_source_seconds:
                    raise TrackerError("no usable tracker and no peer to fetch the metadata from")
                if on_progress is not None:
                    on_progress(self.progress())
                self._wake.clear()
                try:
                    async with asyncio.timeout(TICK):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            info = self._result.info
            if on_progress is not None:
                on_progress(self.progress())
            return FetchedMetadata(info, self.plan.contributors(len(info)), self._clock() - started)
        finally:
            await self._close_all(announcing)

    # -- the loop ---------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        for peer in list(self._peers.values()):
            if peer.give_up_at is not None and now >= peer.give_up_at and peer.task:
                log.debug("metadata: %s has no metadata for us; closing", peer.addr)
                peer.task.cancel()
            else:
                self._fill(peer, now)
        ready = [(at, a) for a, (_, at) in self._known.items() if at <= now]
        for _, addr in sorted(ready)[: max(0, self.max_connections - len(self._peers))]:
            self._dial(addr)

    def _dial(self, addr: Address) -> None:
        attempts, _ = self._known.pop(addr)
        peer = self._peers[addr] = _Peer(addr)
        peer.task = asyncio.ensure_future(self._connection(peer))
        peer.task.add_done_callback(lambda _: self._closed(peer, attempts + 1))

    def _closed(self, peer: _Peer, attempts: int) -> None:
        self._peers.pop(peer.addr, None)
        self.plan.remove_peer(peer.addr)
        if peer.writer is not None:
            peer.writer.close()
        if (
            peer.retry
            and self._result is None
            and peer.addr not in self.banned
            and attempts < MAX_ATTEMPTS
        ):
            self._known[peer.addr] = (attempts, self._clock() + RETRY_SECONDS * 2 ** (attempts - 1))
        self._wake.set()

    async def _close_all(self, announcing: asyncio.Future[None] | None) -> None:
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        if announcing is not None:
            tasks.append(announcing)  # type: ignore[arg-type]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._known.clear()

    def _announce_request(self, event: str) -> AnnounceRequest:
        return AnnounceRequest(
            info_hash=self.info_hash,
            peer_id=self.peer_id,
            port=self.port,
            left=LEFT_BEFORE_METADATA,
            event=event,
            key=self.key,
        )

    # -- one connection ----------------------------------------------------------------------

    async def _connection(self, peer: _Peer) -> None:
        try:
            reserved = wire.make_reserved(fast=True, extended=True)
            hs = wire.Handshake(reserved, self.info_hash, self.peer_id).encode()
            reader, peer.writer = await self.crypto.open_stream(
                peer.addr, self.info_hash, hs, self.connect_timeout
            )
            peer.give_up_at = self._clock() + HANDSHAKE_TIMEOUT
            parser = wire.Parser(expect_handshake=True)
            while True:
                async with asyncio.timeout(READ_TIMEOUT):
                    data = await reader.read(65536)
                if not data:
                    return
                for msg in parser.feed(data):
                    if isinstance(msg, wire.Handshake):
                        self._on_handshake(peer, msg, parser)
                        for later in parser.feed(b""):
                            self._on_message(peer, later)
                    else:
                        self._on_message(peer, msg)
                if self._result is not None:
                    return
                if peer.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                    raise ProtocolError("the peer does not read what we send it")
        except (OSError, TimeoutError) as exc:
            log.debug("metadata: %s: %s", peer.addr, exc or type(exc).__name__)
        except SwarmError as exc:
            peer.retry = False
            log.info("metadata: closing %s: %s", peer.addr, exc)
        except Exception:  # a bug must cost one connection, never the fetch
            peer.retry = False
            log.exception("metadata: error on the connection to %s", peer.addr)

    def _on_handshake(self, peer: _Peer, hs: wire.Handshake, parser: wire.Parser) -> None:
        if hs.info_hash != self.info_hash:
            raise ProtocolError("the peer answered for another torrent")
        if not hs.supports_extended:
            raise ProtocolError("the peer does not speak the extension protocol (BEP 10)")
        peer.handshaken = True
        self.handshaken[peer.addr] = None
        parser.fast = hs.supports_fast
        ours = wire.ExtendedHandshake(
            m={wire.UT_METADATA: wire.UT_METADATA_ID, wire.UT_PEX: wire.UT_PEX_ID},
            v=f"swarm {self.version}",
            p=self.port or None,
            reqq=PIPELINE * 32,
            yourip=wire.yourip(peer.addr[0]),
        )
        peer.send(wire.Extended(0, ours.encode()))
        if hs.supports_fast:
            peer.send(wire.HaveNone())
        peer.give_up_at = self._clock() + HANDSHAKE_TIMEOUT
        self._wake.set()

    def _on_message(self, peer: _Peer, msg: wire.Message | wire.Handshake) -> None:
        if not isinstance(msg, wire.Extended):
            return  # bitfield, have, choke ...: nothing to do with the metadata
        now = self._clock()
        if msg.ext_id == 0:
            theirs = wire.ExtendedHandshake.decode(msg.payload)
            peer.ut_metadata = theirs.m.get(wire.UT_METADATA, 0)
            size = theirs.metadata_size
            if peer.ut_metadata and size:
                self.plan.add_peer(peer.addr, size)  # ProtocolError over 8 MiB
                peer.give_up_at = None
                self._fill(peer, now)
            else:
                self.plan.remove_peer(peer.addr)
                peer.give_up_at = now + NO_METADATA_GRACE
        elif msg.ext_id == wire.UT_METADATA_ID:
            self._on_metadata(peer, ut_metadata.decode(msg.payload), now)
        elif msg.ext_id == wire.UT_PEX_ID:
            pex = wire.PexMessage.decode(msg.payload)
            self.add_peers(pex.added + pex.added6, pex=True)

    def _on_metadata(
        self, peer: _Peer, msg: ut_metadata.MetadataMessage | None, now: float
    ) -> None:
        if isinstance(msg, wire.MetadataRequest):
            if peer.ut_metadata:  # we have nothing to give yet
                reject = ut_metadata.encode(wire.MetadataReject(msg.piece))
                peer.send(wire.Extended(peer.ut_metadata, reject))
        elif isinstance(msg, wire.MetadataReject):
            self.plan.on_reject(peer.addr, msg)
            self._fill_all(now)
        elif isinstance(msg, wire.MetadataData):
            result = self.plan.on_data(peer.addr, msg)
            if isinstance(result, wire.MetadataComplete):
                self._result = result
                self._wake.set()
            elif isinstance(result, wire.MetadataHashFailed):
                for addr in result.contributors:
                    self._ban(addr)  # type: ignore[arg-type]
                self._fill_all(now)
            else:
                self._fill(peer, now)

    def _ban(self, addr: Address) -> None:
        log.warning("metadata: banning %s:%d: its pieces did not hash", *addr)
        self.banned.add(addr)
        self._known.pop(addr, None)
        peer = self._peers.get(addr)
        if peer is not None and peer.task is not None:
            peer.retry = False
            peer.task.cancel()

    def _fill(self, peer: _Peer, now: float) -> None:
        if peer.ut_metadata and peer.addr not in self.banned:
            for req in self.plan.requests(peer.addr, now):
                peer.send(wire.Extended(peer.ut_metadata, ut_metadata.encode(req)))

    def _fill_all(self, now: float) -> None:
        for peer in list(self._peers.values()):
            self._fill(peer, now)
