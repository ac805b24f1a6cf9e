"""The torrent controller: wires one torrent's parts together and owns their timers.

The parts each do one job and know nothing above them: the :class:`~swarm.requests.
RequestPolicy` (which block to ask whom), the :class:`~swarm.peer_directory.PeerDirectory`
(who is connected, whom to dial, whom we banned), :class:`~swarm.initial_seeding.
InitialSeeding`, the :class:`~swarm.choker.Choker`, the :class:`~swarm.announcer.Announcer` and
:class:`~swarm.piece_io.PieceIO` (pieces to and from disk). Connections report here through
the :class:`~swarm.peer.PeerHandler` protocol. Timers: a 1 s tick (rates, time-outs,
keep-alives, dialling, PEX, resume data), choking every 10 s, and the announcer's own loop.

Each torrent's tick has a phase of its own (its first comes 1-2 s in, at random): torrents
started together, such as the downloaders of ``swarm compare`` or a session resuming many,
otherwise all tick at the same moment. At N = 100 the first tick (the first PEX message to
every peer, dialling, interest, resume data) stalled all four group processes at 1 s, the
swarm's upload falling from ~70 to ~20-30 MiB/s for a quarter second (median copy 5.61 s
against 5.87 s, last 6.08 against 6.26 s, with the first resume save 10 s in).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from swarm.announce import AnnounceRequest
from swarm.announcer import Announcer
from swarm.choker import ROUND_SECONDS, Choker, choke_round, unchoke_if_free, unchoke_waiting
from swarm.errors import SwarmError, TrackerError
from swarm.extensions import pex_round
from swarm.have_batch import HaveBatcher
from swarm.metainfo import Torrent
from swarm.peer import PeerConnection
from swarm.peer_directory import MAX_PEERS_PER_TORRENT, Address, PeerDirectory
from swarm.peer_state import Torrent as TorrentView
from swarm.picker import PiecePicker
from swarm.piece_io import Existing, PieceIO
from swarm.ratelimit import RateLimiter
from swarm.requests import RequestPolicy
from swarm.stats import TorrentStats, snapshot
from swarm.tasks import TaskOwner
from swarm.webseed import WebSeeds, WebSeedSettings
from swarm.wire.ut_metadata import MAX_METADATA_SIZE, MetadataServer

__all__ = ["TorrentController", "TorrentHost", "TorrentStats"]

log = logging.getLogger(__name__)

SNUB_SECONDS = 60.0
NO_SOURCE_SECONDS = 30.0


class TorrentHost(Protocol):
    """The session, as a torrent sees it."""

    peer_id: bytes
    host: str
    port: int
    key: int

    upload_limiter: RateLimiter

    def can_connect(self) -> bool: ...
    def download_delay(self, n: int) -> float: ...
    async def connect(self, torrent: TorrentController, addr: Address) -> PeerConnection: ...


class TorrentController:
    """Downloads and/or seeds one torrent for a session (its :class:`TorrentHost`)."""

    def __init__(
        self,
        host: TorrentHost,
        torrent: Torrent,
        root: Path,
        *,
        rng: random.Random | None = None,
        max_peers: int = MAX_PEERS_PER_TORRENT,
        max_outgoing: int | None = None,  # dialled at most (default: half of max_peers) ...
        dial_under: int | None = None,  # ... unless fewer connections than this (PeerDirectory)
        unchoke_slots: int = 4,
        web_seeds: WebSeedSettings | bool = True,
    ) -> None:
        self.host = host
        self.torrent = torrent
        self.info_hash, self.num_pieces = torrent.info_hash, torrent.num_pieces
        self.rng = rng or random.Random()
        self._shape = (torrent.info_hash, torrent.num_pieces, torrent.piece_length, torrent.length)
        # BEP 9 and BEP 11, neither for a private torrent (BEP 27; libtorrent does the same).
        self.pex = not torrent.private
        info = torrent.raw_info
        served = self.pex and 0 < len(info) <= MAX_METADATA_SIZE
        self.metadata = MetadataServer(info) if served else None
        self.io = PieceIO(torrent, root)
        self.io.keep_for_upload = lambda: bool(self.peers)  # no copy for nobody (web seeds)
        self.io.peers_to_keep = lambda: self.directory.worth_keeping((host.host, host.port))
        self.storage = self.io.storage
        self.picker = PiecePicker(*self._shape[1:], rng=self.rng)
        self.choker = Choker(unchoke_slots, rng=self.rng, spreading=partial(_spreading, self))
        self.directory = PeerDirectory[PeerConnection](
            host.peer_id, max_peers=max_peers, max_outgoing=max_outgoing, dial_under=dial_under
        )
        self.peers = self.directory.peers
        self.requests = RequestPolicy(self.picker, self.peers)
        self.haves = HaveBatcher(self.peers)
        self.web_seeds = WebSeeds(self, torrent.url_list, host.download_delay, web_seeds)
        self.announcer = Announcer(
            torrent.announce_tiers,
            request=partial(_announce_request, self),
            on_peers=self.add_peers,
            want_peers_soon=lambda: not self.picker.complete and len(self.peers) < 5,
            rng=self.rng,
            complete=lambda: self.picker.complete,
        )
        self.snub_seconds, self.no_source_seconds = SNUB_SECONDS, NO_SOURCE_SECONDS
        self.complete = asyncio.Event()
        self.failed: SwarmError | None = None
        self.stopped = asyncio.Event()
        self.downloaded = self.uploaded = self.wasted = self.hash_failures = self.started_with = 0
        self.existing: Existing | None = None  # files found at the real names (see PieceIO)
        self._alone_since: float | None = None
        self.rates = (0.0, 0.0)  # bytes/s down and up, over the last second
        self.banned_ids = self.directory.banned_ids
        self.tasks = TaskOwner(self._fail)

    # -- life cycle ----------------------------------------------------------------------

    async def open(
        self, *, seed: bool, verify: bool = True, overwrite: bool = True, on_check: Any = None
    ) -> None:
        """Open the data: see :meth:`~swarm.piece_io.PieceIO.open`."""
        have = await self.io.open(seed=seed, verify=verify, overwrite=overwrite, on_check=on_check)
        self.existing = self.io.existing
        for i, h in enumerate(have):
            if h:
                self.picker.set_have(i)
        self.started_with = self.picker.num_have
        self.add_peers(await self.io.saved_peers())  # the resume data's: dialled at once
        if self.picker.complete:
            await self._finish()
        log.info(
            "%s: %d of %d pieces present", self.torrent.name, self.picker.num_have, self.num_pieces
        )

    def start(self) -> None:
        """Start the timers and the announcer."""
        self.tasks.spawn(self._tick_loop())
        self.tasks.spawn(self._choke_loop())
        if self.torrent.announce_tiers:
            self.tasks.spawn(self.announcer.run())
        self.web_seeds.start(self.tasks.spawn)

    def _fail(self, exc: SwarmError) -> None:
        if self.failed is None:
            self.failed = exc
            self.stopped.set()

    async def stop(self, announce_stopped: bool = True) -> None:
        """Close every connection, tell the tracker, save resume data, close files."""
        if self.tasks.closing:
            await self.stopped.wait()
            return
        self.tasks.closing = True  # from here on nothing new starts
        known = self.io.peers_to_keep()  # saved with the resume data, before they go
        for conn in list(self.peers):
            conn.close()
        await self.tasks.close()
        self.haves.close()
        if announce_stopped:
            await self.announcer.stop()
        await self.io.close(self.picker.have, self.picker.complete, known)
        self.stopped.set()

    # -- what connections report (PeerHandler) -------------------------------------------

    def describe(self, conn: PeerConnection) -> TorrentView:
        defer = partial(self.requests.defer, conn)
        return TorrentView(*self._shape, self.picker.have, defer, self.metadata, self.pex)

    def peer_ready(self, conn: PeerConnection) -> None:
        if self.directory.admit(conn):
            conn.send_initial()
            self.haves.joined(conn)  # its bitfield told it of every piece verified so far

    def peer_closed(self, conn: PeerConnection) -> None:
        if not self.directory.remove(conn):
            return
        self.requests.peer_gone(conn)
        if not conn.state.am_choking:  # its slot is free
            unchoke_waiting(self.choker, self.peers, time.monotonic())

    def on_interest(self, conn: PeerConnection) -> None:
        if conn.state.peer_interested:
            unchoke_if_free(self.choker, conn, self.peers)
        elif not conn.state.am_choking:  # it lost interest: choked (see the choker), and
            conn.choke()  # its slot goes to a peer that waits
            unchoke_waiting(self.choker, self.peers, time.monotonic())

    def on_piece(
        self, conn: PeerConnection, index: int, begin: int, block: bytes | memoryview
    ) -> None:
        """A block we asked *conn* for (it tops up its requests after a read's blocks)."""
        self.downloaded += len(block)
        if self.requests.block_arrived(conn, index, begin, len(block)):
            self.io.add_block(index, begin, block, conn.peer_id or b"")
            if self.picker.piece_full(index):
                self.picker.start_verify(index)
                if self.io.inline(index):  # no task for a small piece
                    self.tasks.call(self._verify_now, index)
                else:
                    self.tasks.spawn(self._verify_and_write(index))
        else:
            self.wasted += len(block)  # a second copy (end-game) or a piece already done

    def on_blocks_sent(self, blocks: list[tuple[int, int, int]], size: int) -> None:
        self.uploaded += size
        self.requests.blocks_sent(blocks)

    # -- pieces --------------------------------------------------------------------------

    async def _verify_and_write(self, index: int) -> None:
        self._verified(index, *await self.io.verify_and_write(index))

    def _verify_now(self, index: int) -> None:
        self._verified(index, *self.io.verify_and_write_now(index))

    def _verified(self, index: int, ok: bool, contributors: set[bytes]) -> None:
        if ok:
            self.picker.piece_verified(index)
            self.haves.add(index)  # with others verified in the same window, to those who lack it
            self.requests.lose_interest(index)
            if self.picker.complete:
                self.haves.flush()  # that we are a seed now, at once
                self.tasks.spawn(self._finish())
            else:
                self.requests.piece_written()
            return
        self.hash_failures += 1
        self.wasted += self.torrent.piece_size(index)
        self.picker.piece_failed(index)
        log.info("piece %d failed its hash check", index)
        for p in self.directory.blame(self.web_seeds.blame(contributors)):
            log.info("banning %s: it sent corrupt data", p)
            p.close("banned: sent corrupt data")
        self.requests.refill_all()

    async def _finish(self) -> None:
        await self.io.finalize()
        self.requests.download_complete()
        if not self.complete.is_set():
            self.complete.set()
            self.announcer.completed()

    # -- timers --------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        await asyncio.sleep(self.rng.random())  # a phase of our own (the module's docstring)
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            dt, last = now - last, now
            down = up = 0.0
            for p in list(self.peers):
                snubbed = p.tick(dt, now, self.snub_seconds)
                down, up = down + p.down.rate, up + p.up.rate
                if snubbed:
                    log.debug("%s is snubbing us; its requests go to others", p)
                    self.requests.snubbed(p)
                elif not p.closed and not p.state.peer_choking:
                    self.requests.fill(p)
            self.rates = (down, up)
            self.requests.drop_interest()
            if self.pex:
                pex_round(self.peers, now)
            self._connect_more()
            self._check_sources(now)
            if not self.picker.complete:
                await self.io.save_resume(self.picker.have, now)

    async def _choke_loop(self) -> None:
        while True:
            choke_round(self.choker, self.peers, self.picker.complete, time.monotonic())
            await asyncio.sleep(ROUND_SECONDS)

    def _check_sources(self, now: float) -> None:
        """A download with no peer, no address to dial and no usable tracker has nowhere to
        get data from: after *no_source_seconds* of that, it fails rather than wait forever."""
        if (
            self.picker.complete
            or self.peers
            or self.directory.candidates
            or self.web_seeds.active
            or (self.torrent.announce_tiers and self.announcer.usable)
        ):
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = now
        elif now - self._alone_since >= self.no_source_seconds:
            self._fail(TrackerError("no usable tracker and no peer to download from"))

    # -- peers to dial ---------------------------------------------------------------------

    def add_peers(self, addresses: list[Address]) -> None:
        self.directory.add(addresses)
        self._connect_more()

    def _connect_more(self) -> None:
        ourselves = (self.host.host, self.host.port)
        for addr in self.directory.to_dial(self.host.can_connect, ourselves):
            self.tasks.spawn(self.directory.dial(addr, partial(self.host.connect, self)))

    def stats(self) -> TorrentStats:
        return snapshot(self)


def _spreading(t: TorrentController) -> bool:
    """A seed under an upload cap that has not sent every piece once unchokes every
    interested peer (see :mod:`swarm.choker`)."""
    return t.requests.initial_seeding and not t.host.upload_limiter.unlimited


def _announce_request(t: TorrentController, event: str) -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=t.info_hash,
        peer_id=t.host.peer_id,
        port=t.host.port,
        uploaded=t.uploaded,
        downloaded=t.downloaded,
        left=t.torrent.length - t.picker.have_bytes(),
        event=event,
        numwant=50,
        key=t.host.key,
    )
