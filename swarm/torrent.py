"""The torrent controller: one torrent's peers, picker, choker, storage and announcer.

This is the only place where the parts meet. Connections (:mod:`swarm.peer`) report messages
here; the controller decides what to request, whom to unchoke, when a piece is verified and
written, and whom to blame for a bad one. Its timers: choking every 10 s, a 1 s tick for rates,
time-outs and keep-alives, and the tracker announces.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from swarm import announce, wire
from swarm.choker import ROUND_SECONDS, Choker, PeerInfo
from swarm.errors import ProtocolError, StorageError, SwarmError, TrackerError
from swarm.metainfo import Torrent
from swarm.peer import PeerConnection
from swarm.picker import PiecePicker
from swarm.storage import Storage

if TYPE_CHECKING:
    from swarm.session import Session

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 90.0
IDLE_SECONDS = 120.0
SNUB_SECONDS = 60.0
MAX_PEERS_PER_TORRENT = 50
REJECT_MEMORY_SECONDS = 2.0  # how long a piece a peer rejected is not asked of it again
MAX_PENDING_BYTES = 16 << 20  # in-hand pieces awaiting hash and write before we stop asking
CACHE_BYTES = 32 << 20  # pieces kept in memory for uploading
STRIKES_TO_BAN = 3


@dataclass(slots=True)
class Candidate:
    """A peer address we know of (from a tracker or an incoming connection)."""

    fails: int = 0
    next_try: float = 0.0
    connecting: bool = False
    connected: bool = False


@dataclass(slots=True)
class TorrentStats:
    """Figures a progress display shows."""

    have_pieces: int
    num_pieces: int
    have_bytes: int
    total_bytes: int
    downloaded: int
    uploaded: int
    download_rate: float
    upload_rate: float
    peers: int
    seeds: int
    hash_failures: int
    banned: int
    complete: bool


class TorrentController:
    """Downloads and/or seeds one torrent inside a :class:`~swarm.session.Session`."""

    def __init__(
        self,
        session: Session,
        torrent: Torrent,
        root: Path,
        *,
        rng: random.Random | None = None,
        max_peers: int = MAX_PEERS_PER_TORRENT,
        unchoke_slots: int = 4,
    ) -> None:
        self.session = session
        self.torrent = torrent
        self.info_hash = torrent.info_hash
        self.num_pieces = torrent.num_pieces
        self.storage = Storage(torrent, root)
        self.rng = rng or random.Random()
        self.picker = PiecePicker(
            torrent.num_pieces, torrent.piece_length, torrent.length, rng=self.rng
        )
        self.choker = Choker(unchoke_slots, rng=self.rng)
        self.max_peers = max_peers
        self.peers: set[PeerConnection] = set()
        self.candidates: dict[tuple[str, int], Candidate] = {}
        self.banned_ids: set[bytes] = set()
        self.strikes: dict[bytes, int] = {}
        self.snub_seconds = SNUB_SECONDS
        self.complete = asyncio.Event()
        self.failed: SwarmError | None = None
        self.stopped = asyncio.Event()
        self.downloaded = 0  # payload bytes received
        self.uploaded = 0
        self.hash_failures = 0
        self._piece_owner: dict[int, PeerConnection] = {}  # initial seeding: who got it first
        self.initial_seeding_done = False
        self._pieces_sent: set[int] = set()
        self._buffers: dict[int, bytearray] = {}
        self._contributors: dict[int, set[bytes]] = {}
        self._cache: OrderedDict[int, asyncio.Future[bytes]] = OrderedDict()
        self._cache_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="disk")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announce_now = asyncio.Event()
        self._resume_dirty = False
        self._last_tick = time.monotonic()
        self.keep_seeding = True
        self.down_rate = 0.0
        self.up_rate = 0.0

    # -- life cycle ----------------------------------------------------------------------

    def have_piece(self, index: int) -> bool:
        return self.picker.have[index]

    def piece_size(self, index: int) -> int:
        return self.torrent.piece_size(index)

    async def open(self, *, seed: bool, verify: bool = True, on_check: Any = None) -> None:
        """Open the data. *seed*: the files must be complete at their real names (verified
        unless *verify* is False). Otherwise prepare a download, resuming what is there."""
        loop = asyncio.get_running_loop()
        st = self.storage
        if seed:
            await loop.run_in_executor(self._pool, st.open_for_seeding)
            if verify:
                have = await loop.run_in_executor(self._pool, st.check_all, on_check)
                bad = have.count(False)
                if bad:
                    raise StorageError(
                        f"{bad} of {len(have)} pieces of {st.final_paths[0]} do not match the "
                        "torrent: refusing to seed data that is not the torrent's"
                    )
            have = [True] * self.num_pieces
        else:
            existed = any(
                p.exists() or p.with_name(p.name + ".part").exists() for p in st.final_paths
            )
            await loop.run_in_executor(self._pool, st.open_for_download)
            have = None
            if existed:
                have = await loop.run_in_executor(self._pool, st.load_resume)
                if have is None:
                    have = await loop.run_in_executor(self._pool, st.check_all, on_check)
            have = have or [False] * self.num_pieces
        for i, h in enumerate(have):
            if h:
                self.picker.set_have(i)
        if self.picker.complete:
            await self._finish()
        log.info(
            "%s: %d of %d pieces present", self.torrent.name, self.picker.num_have, self.num_pieces
        )

    def start(self) -> None:
        """Start the timers and the announcer."""
        self._spawn(self._tick_loop())
        self._spawn(self._choke_loop())
        if self.torrent.announce_tiers:
            self._spawn(self._announce_loop())

    def _spawn(self, coro: Any) -> asyncio.Task[Any] | None:
        if self._stopping:
            coro.close()  # a block or a peer arriving while we shut down: nothing to start
            return None
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, SwarmError):
                self._fail(exc)
            else:
                log.error("task failed", exc_info=exc)
                self._fail(SwarmError(f"internal error: {exc!r}"))

    def _fail(self, exc: SwarmError) -> None:
        if self.failed is None:
            self.failed = exc
            self.stopped.set()

    async def stop(self, announce_stopped: bool = True) -> None:
        """Close every connection, tell the tracker, save resume data, close files."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True  # from here on nothing new starts (see _spawn)
        for conn in list(self.peers):
            conn.close()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass
                self._tasks.discard(task)
        if announce_stopped and self.torrent.announce_tiers and self._announced:
            try:
                async with asyncio.timeout(3):
                    await self._announce_event("stopped")
            except (TimeoutError, SwarmError, OSError):
                pass
        # Writes already handed to the pool finish before the files close.
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        if not self.picker.complete:
            self.storage.save_resume(self.picker.have)
        self.storage.close()
        self.stopped.set()

    _announced = False
    _stopping = False

    # -- peers coming and going ----------------------------------------------------------

    def peer_ready(self, conn: PeerConnection) -> None:
        pid = conn.peer_id
        assert pid is not None
        if pid in self.banned_ids:
            conn.close("banned peer")
            return
        for other in self.peers:
            if other.peer_id == pid:
                # Both sides must keep the same one of two crossed connections: the one
                # opened by the peer with the lower peer id.
                we_opened_keeper = self.session.peer_id < pid
                keep_new = conn.outgoing == we_opened_keeper and other.outgoing != conn.outgoing
                if keep_new:
                    other.close("duplicate connection")
                    break
                conn.close("duplicate connection")
                return
        if len(self.peers) >= self.max_peers:
            conn.close("too many peers")
            return
        self.peers.add(conn)
        if conn.address and conn.outgoing:
            self.candidates.setdefault(conn.address, Candidate()).connected = True
        conn.send_initial(self.picker.have, self.picker.num_have)

    def peer_closed(self, conn: PeerConnection) -> None:
        if conn not in self.peers:
            return
        self.peers.discard(conn)
        counted = conn.counted
        if counted is not None:
            self.picker.peer_bitfield(
                conn.peer_has if counted == "pieces" else [True] * self.num_pieces, -1
            )
        self._release(conn)
        if conn.outgoing and conn.address in self.candidates:
            self.candidates[conn.address].connected = False
        if not self.peers:
            # Everyone we sent pieces to is gone: the next peers start a new swarm, and a
            # seed's initial seeding starts over with them.
            self._reset_initial_seeding(done=False)
        self._refill_all()

    def on_bitfield(self, conn: PeerConnection, haves: list[bool]) -> None:
        if conn.counted is not None:
            # Some clients follow 'have none' with a bitfield: the newest one counts.
            self.picker.peer_bitfield(
                conn.peer_has if conn.counted == "pieces" else [True] * self.num_pieces, -1
            )
        conn.peer_has = haves
        conn.peer_is_seed = all(haves)
        conn.counted = "seed" if conn.peer_is_seed else "pieces"
        self.picker.peer_bitfield(haves)
        if conn.peer_is_seed and self.picker.complete:
            conn.close("both of us are seeds")
            return
        self._update_interest(conn)

    def on_have(self, conn: PeerConnection, index: int) -> None:
        if conn.peer_has[index]:
            return
        conn.peer_has[index] = True
        if conn.counted is None:
            conn.counted = "pieces"
        self.picker.peer_have(index)
        if all(conn.peer_has):
            conn.peer_is_seed = True
            self.picker.peer_became_seed(conn.peer_has)
            conn.counted = "seed"
            if self.picker.complete:
                conn.close("both of us are seeds")
                return
        if not conn.am_interested and self.picker.wanted(index):
            conn.set_interested(True)
        self.fill(conn)

    def _update_interest(self, conn: PeerConnection) -> None:
        want = not self.picker.complete and self.picker.interesting(conn.peer_has)
        conn.set_interested(want)
        if want:
            self.fill(conn)

    def on_interest(self, conn: PeerConnection) -> None:
        if conn.peer_interested and conn.am_choking:
            unchoked = sum(1 for p in self.peers if not p.am_choking and p.peer_interested)
            if self.choker.has_free_slot(unchoked):
                conn.unchoke()

    def on_unchoke(self, conn: PeerConnection) -> None:
        self.fill(conn)

    def on_choke(self, conn: PeerConnection) -> None:
        self._release(conn)
        self._refill_all()

    def on_allowed_fast(self, conn: PeerConnection, index: int) -> None:
        pass  # we request only from peers that unchoke us; allowed-fast is an optimisation

    def on_reject(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        if conn.requests_out.pop((index, begin), None) is None:
            return
        # Do not ask this peer for the piece again at once: a seed that rejects a piece it has
        # is telling us to get it from the swarm (initial seeding), or it is overloaded.
        conn.rejected[index] = time.monotonic()
        self.picker.release(conn, [(index, begin, length)])
        self._refill_all()

    # -- initial seeding -----------------------------------------------------------------

    def defer_to_swarm(self, conn: PeerConnection, index: int) -> bool:
        """Whether to reject *conn*'s request for *index* so that it fetches the piece from
        the peer we are already sending it to (the idea of BEP 16 super-seeding, done with
        BEP 6 rejects so any fast-extension peer follows it).

        While a seed has not yet sent every piece once, a second copy of a piece is upload
        spent on data the swarm already has: the first peer to ask for a piece owns it, and
        others are turned away, each only once per piece so nobody can starve.
        """
        if not self.picker.complete or self.initial_seeding_done:
            return False
        owner = self._piece_owner.get(index)
        # An owner we have since choked will not get the piece from us (its queued requests
        # were dropped): the next asker takes the piece over.
        if owner is None or owner is conn or owner.closed or owner.am_choking:
            self._piece_owner[index] = conn
            return False
        if index in conn.deferred:
            return False
        conn.deferred.add(index)
        return True

    def _release(self, conn: PeerConnection) -> None:
        if conn.requests_out:
            blocks = [(i, b, n) for (i, b), (n, _t) in conn.requests_out.items()]
            conn.stale_requests().update(conn.requests_out)
            conn.requests_out.clear()
            self.picker.release(conn, blocks)

    # -- requesting ----------------------------------------------------------------------

    def queue_depth(self, conn: PeerConnection) -> int:
        """Requests to keep outstanding: a quarter of a second of the peer's rate (enough to
        cover round trips up to 250 ms, so the pipe never runs dry), within what the peer
        accepts. No more: every request queued at an uploader delays the others' requests
        behind it, and under a rate cap deep queues are what keep the last pieces of a swarm
        from spreading (the default compare: 0.5 s + 8 blocks 4.9 s, 0.5 s + 2 blocks 4.8 s,
        0.25 s + 2 blocks 4.6 s, against a 4.0 s bound)."""
        if conn.snubbed:
            return 1
        depth = int(conn.down.rate * 0.25 / wire.BLOCK_SIZE) + 2
        return max(4, min(depth, conn.remote_reqq))

    def fill(self, conn: PeerConnection) -> None:
        if conn.closed or conn.peer_choking or not conn.am_interested or self.picker.complete:
            return
        depth = self.queue_depth(conn)
        outstanding = len(conn.requests_out)
        if outstanding > depth // 2:
            return  # ask in batches: fewer, larger writes
        if len(self.picker.pending) * self.torrent.piece_length > MAX_PENDING_BYTES:
            return
        has = conn.peer_has
        if conn.rejected:
            has = self._without_rejected(conn)
        blocks = self.picker.pick(conn, has, depth - outstanding)
        if blocks:
            conn.request(blocks)
        elif not outstanding and not self.picker.interesting(conn.peer_has):
            conn.set_interested(False)

    def _without_rejected(self, conn: PeerConnection) -> list[bool]:
        """What *conn* has, less the pieces it rejected in the last few seconds."""
        cutoff = time.monotonic() - REJECT_MEMORY_SECONDS
        for index in [i for i, when in conn.rejected.items() if when < cutoff]:
            del conn.rejected[index]
        has = list(conn.peer_has)
        for index in conn.rejected:
            has[index] = False
        return has

    def _refill_all(self) -> None:
        for p in list(self.peers):
            if not p.peer_choking and p.am_interested:
                self.fill(p)

    def on_piece(self, conn: PeerConnection, index: int, begin: int, block: bytes) -> None:
        key = (index, begin)
        asked = conn.requests_out.pop(key, None)
        if asked is None:
            if conn.stale.pop(key, None) is None:
                raise ProtocolError(f"a block of piece {index} that we never asked for")
            expected = self.picker.block_length(index, begin // wire.BLOCK_SIZE)
        else:
            expected = asked[0]
        if len(block) != expected:
            raise ProtocolError("a block of the wrong length")
        n = len(block)
        conn.down.add(n)
        self.downloaded += n
        conn.last_block = time.monotonic()
        conn.snubbed = False
        accepted, others = self.picker.block_received(conn, index, begin)
        if accepted:
            buf = self._buffers.get(index)
            if buf is None:
                buf = self._buffers[index] = bytearray(self.piece_size(index))
            buf[begin : begin + n] = block
            self._contributors.setdefault(index, set()).add(conn.peer_id or b"")
            for other in others:
                if isinstance(other, PeerConnection):
                    other.cancel(index, begin, n)
            if self.picker.piece_full(index):
                self.picker.start_verify(index)
                self._spawn(self._verify_and_write(index, self._buffers.pop(index)))
        self.fill(conn)

    async def _verify_and_write(self, index: int, data: bytearray) -> None:
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._pool, self._check_and_write, index, data)
        contributors = self._contributors.pop(index, set())
        if ok:
            self.picker.piece_verified(index)
            self._resume_dirty = True
            self._drop_cached(index)
            have = wire.Have(index)
            for p in list(self.peers):
                p.send(have)
                if p.am_interested and not self.picker.interesting(p.peer_has):
                    if not p.requests_out:
                        p.set_interested(False)
            if self.picker.complete:
                await self._finish()
        else:
            self.hash_failures += 1
            self.picker.piece_failed(index)
            log.info("piece %d failed its hash check", index)
            self._blame(contributors)
            self._refill_all()

    def _check_and_write(self, index: int, data: bytearray) -> bool:
        if hashlib.sha1(data).digest() != self.torrent.piece_hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    def _blame(self, contributors: set[bytes]) -> None:
        """A peer that alone sent a bad piece is banned at once; one of several gets a strike."""
        for pid in contributors:
            strikes = self.strikes.get(pid, 0) + (STRIKES_TO_BAN if len(contributors) == 1 else 1)
            self.strikes[pid] = strikes
            if strikes >= STRIKES_TO_BAN:
                self.banned_ids.add(pid)
                for p in list(self.peers):
                    if p.peer_id == pid:
                        log.info("banning %s: it sent corrupt data", p)
                        p.close("banned: sent corrupt data")

    async def _finish(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.storage.finalize)
        self.storage.remove_resume()
        for p in list(self.peers):
            if p.peer_is_seed:
                p.close("both of us are seeds")
            else:
                p.set_interested(False)
        if not self.complete.is_set():
            self.complete.set()
            self._announce_now.set()

    # -- uploading -----------------------------------------------------------------------

    def cached_block(self, index: int, begin: int, length: int) -> memoryview | None:
        """The block from the piece cache if the piece is in memory already, else None."""
        fut = self._cache.get(index)
        if fut is None or not fut.done() or fut.cancelled() or fut.exception() is not None:
            return None
        return memoryview(fut.result())[begin : begin + length]

    async def read_block(self, index: int, begin: int, length: int) -> bytes | memoryview:
        """A block to upload, from a small cache of whole pieces read from disk."""
        fut = self._cache.get(index)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._pool, self.storage.read, index)
            self._cache[index] = fut
            self._cache_bytes += self.piece_size(index)
            while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
                old, _ = self._cache.popitem(last=False)
                self._cache_bytes -= self.piece_size(old)
        else:
            self._cache.move_to_end(index)
        try:
            data = await asyncio.shield(fut)
        except SwarmError:
            self._drop_cached(index)
            raise
        return memoryview(data)[begin : begin + length]

    def _drop_cached(self, index: int) -> None:
        if self._cache.pop(index, None) is not None:
            self._cache_bytes -= self.piece_size(index)

    def on_uploaded(self, n: int) -> None:
        self.uploaded += n

    def on_blocks_sent(self, blocks: list[tuple[int, int, int]]) -> None:
        """Blocks went out; initial seeding ends once a block of every piece has."""
        if self.initial_seeding_done or not self.picker.complete:
            return
        self._pieces_sent.update(index for index, _, _ in blocks)
        if len(self._pieces_sent) == self.num_pieces:
            self._reset_initial_seeding(done=True)

    def _reset_initial_seeding(self, done: bool) -> None:
        self.initial_seeding_done = done
        self._pieces_sent.clear()
        self._piece_owner.clear()

    # -- timers --------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        resume_at = time.monotonic() + 10
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            dt, self._last_tick = now - self._last_tick, now
            down = up = 0.0
            for p in list(self.peers):
                p.down.tick(dt)
                p.up.tick(dt)
                down += p.down.rate
                up += p.up.rate
                if now - p.last_received > IDLE_SECONDS:
                    p.close("idle for two minutes")
                    continue
                if now - p.last_sent > KEEPALIVE_SECONDS:
                    p.send(wire.KEEP_ALIVE)
                if p.requests_out and now - p.last_block > self.snub_seconds and not p.snubbed:
                    log.debug("%s is snubbing us; its requests go to others", p)
                    p.snubbed = True
                    self._release(p)
                    self._refill_all()
                elif not p.peer_choking:
                    self.fill(p)
            self.down_rate, self.up_rate = down, up
            self._connect_more()
            if self._resume_dirty and now >= resume_at and not self.picker.complete:
                self._resume_dirty = False
                resume_at = now + 10
                have = list(self.picker.have)
                await asyncio.get_running_loop().run_in_executor(
                    self._pool, self.storage.save_resume, have
                )

    async def _choke_loop(self) -> None:
        while True:
            self.rechoke()
            await asyncio.sleep(ROUND_SECONDS)

    def rechoke(self) -> None:
        now = time.monotonic()
        infos = [
            PeerInfo(
                key=p,
                interested=p.peer_interested,
                download_rate=p.down.rate,
                upload_rate=p.up.rate,
                connected_for=now - p.connected_at,
                is_seed=p.peer_is_seed,
            )
            for p in self.peers
        ]
        unchoke = self.choker.rechoke(infos, am_seed=self.picker.complete)
        for p in list(self.peers):
            if p in unchoke:
                p.unchoke()
            else:
                p.choke()

    # -- peers from trackers -------------------------------------------------------------

    def add_peers(self, addresses: list[tuple[str, int]]) -> None:
        for addr in addresses:
            if addr not in self.candidates and len(self.candidates) < 2000:
                self.candidates[addr] = Candidate()
        self._connect_more()

    def _connect_more(self) -> None:
        now = time.monotonic()
        busy = len(self.peers) + sum(1 for c in self.candidates.values() if c.connecting)
        connected = {p.address for p in self.peers}
        for addr, cand in self.candidates.items():
            if busy >= self.max_peers or not self.session.can_connect():
                return
            if cand.connecting or cand.connected or addr in connected or cand.next_try > now:
                continue
            if addr == (self.session.host, self.session.port):
                continue
            cand.connecting = True
            busy += 1
            self._spawn(self._connect(addr, cand))

    async def _connect(self, addr: tuple[str, int], cand: Candidate) -> None:
        try:
            conn = await self.session.connect(self, addr)
            if conn is None:
                raise OSError("connection refused by the session")
            cand.fails = 0
            await conn.closed_event.wait()
            cand.next_try = time.monotonic() + 5
        except (OSError, TimeoutError) as exc:
            cand.fails += 1
            cand.next_try = time.monotonic() + min(300.0, 2.0 * 2**cand.fails)
            log.debug("cannot connect to %s:%d: %s", addr[0], addr[1], exc)
        finally:
            cand.connecting = False
            cand.connected = False

    async def _announce_loop(self) -> None:
        tiers = announce.TierList(self.torrent.announce_tiers, rng=self.rng)
        event = "started"
        # A torrent complete from the start announces started with left=0, never completed.
        completed_sent = self.picker.complete
        fails = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            while True:
                try:
                    resp = await self._announce_tiers(http, tiers, event)
                except TrackerError as exc:
                    fails += 1
                    wait = min(300.0, 5.0 * 2 ** (fails - 1))
                    log.warning("tracker: %s (retrying in %.0f s)", exc, wait)
                else:
                    self._announced = True
                    fails = 0
                    if event == "completed":
                        completed_sent = True
                    event = ""
                    self.add_peers(resp.peers)
                    wait = float(resp.interval)
                    if not self.picker.complete and len(self.peers) < 5:
                        wait = min(wait, 30.0)  # few peers: ask again sooner
                    wait = max(wait, float(resp.min_interval or 0), 5.0)
                self._announce_now.clear()
                if self.complete.is_set() and not completed_sent:
                    event = "completed"
                    if not fails:
                        continue
                try:
                    async with asyncio.timeout(wait):
                        await self._announce_now.wait()
                except TimeoutError:
                    pass
                if self.complete.is_set() and not completed_sent:
                    event = "completed"

    def _announce_request(self, event: str) -> announce.AnnounceRequest:
        left = self.torrent.length - sum(
            self.piece_size(i) for i in range(self.num_pieces) if self.picker.have[i]
        )
        return announce.AnnounceRequest(
            info_hash=self.info_hash,
            peer_id=self.session.peer_id,
            port=self.session.port,
            uploaded=self.uploaded,
            downloaded=self.downloaded,
            left=left,
            event=event,
            numwant=50,
            key=self.session.key,
        )

    async def _announce_tiers(
        self, http: aiohttp.ClientSession, tiers: announce.TierList, event: str
    ) -> announce.AnnounceResponse:
        req = self._announce_request(event)
        errors = []
        for ti, ui, url in tiers.urls():
            try:
                resp = await announce.announce_once(http, url, req)
            except TrackerError as exc:
                errors.append(str(exc))
                continue
            tiers.promote(ti, ui)
            self._last_url = url
            return resp
        raise TrackerError("; ".join(errors) or "no tracker")

    async def _announce_event(self, event: str) -> None:
        url = getattr(self, "_last_url", None)
        if url is None:
            return
        async with aiohttp.ClientSession() as http:
            await announce.announce_once(http, url, self._announce_request(event))

    # -- figures -------------------------------------------------------------------------

    def stats(self) -> TorrentStats:
        have_bytes = (
            sum(self.piece_size(i) for i in range(self.num_pieces) if self.picker.have[i])
            if not self.picker.complete
            else self.torrent.length
        )
        return TorrentStats(
            have_pieces=self.picker.num_have,
            num_pieces=self.num_pieces,
            have_bytes=have_bytes,
            total_bytes=self.torrent.length,
            downloaded=self.downloaded,
            uploaded=self.uploaded,
            download_rate=self.down_rate,
            upload_rate=self.up_rate,
            peers=len(self.peers),
            seeds=sum(1 for p in self.peers if p.peer_is_seed),
            hash_failures=self.hash_failures,
            banned=len(self.banned_ids),
            complete=self.picker.complete,
        )
