"""One peer connection: the asyncio shell around a :class:`~swarm.peer_state.PeerState`.

The shell owns the transport, the handshake timer, flow control and the upload task; the
protocol (handshake, choke and interest, what the peer has, both request queues) is the
state's. It reports to a :class:`PeerHandler` (the torrent) and asks a :class:`PeerHost` (the
session) for what torrents share: small protocols handed in, so this imports neither."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol, cast

from swarm import wire
from swarm.errors import SwarmError
from swarm.extensions import PexPeers
from swarm.peer_state import MAX_QUEUED_REQUESTS, OUR_REQQ, PeerState
from swarm.peer_types import Block, Event, PeerBitfield, Timer, Torrent
from swarm.ratelimit import RateLimiter
from swarm.stats import RateMeter
from swarm.uplink import UplinkGate
from swarm.upload import BlockSource, serve

__all__ = ["MAX_QUEUED_REQUESTS", "OUR_REQQ", "PeerConnection", "PeerHandler", "PeerHost"]

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 90.0
IDLE_SECONDS = 120.0


class DownloadEvents(Protocol):
    """What the torrent's request policy hears from a connection."""

    def bitfield(self, conn: PeerConnection, haves: list[bool]) -> None: ...
    def have(self, conn: PeerConnection, index: int) -> None: ...
    def choked(self, conn: PeerConnection) -> None: ...
    def unchoked(self, conn: PeerConnection) -> None: ...
    def rejected(self, conn: PeerConnection, blocks: list[tuple[int, int, int]]) -> None: ...
    def fill(self, conn: PeerConnection) -> None: ...


class HaveSource(Protocol):
    def take(self, conn: PeerConnection) -> bytes: ...


class PieceCounts(Protocol):
    availability: list[int]  # how many of the torrent's peers have each piece


class PeerHandler(Protocol):
    """The torrent, as one of its connections sees it."""

    info_hash: bytes

    @property
    def picker(self) -> PieceCounts: ...

    @property
    def requests(self) -> DownloadEvents: ...
    @property
    def io(self) -> BlockSource: ...
    @property
    def haves(self) -> HaveSource: ...

    def describe(self, conn: PeerConnection) -> Torrent: ...
    def peer_ready(self, conn: PeerConnection) -> None: ...
    def peer_closed(self, conn: PeerConnection) -> None: ...
    def on_piece(
        self, conn: PeerConnection, index: int, begin: int, block: bytes | memoryview
    ) -> None: ...
    def on_interest(self, conn: PeerConnection) -> None: ...
    def on_blocks_sent(self, blocks: list[tuple[int, int, int]], size: int) -> None: ...
    def add_peers(self, addresses: list[tuple[str, int]]) -> None: ...


class MseDialling(Protocol):
    def mse_first(self, addrs: Iterable[tuple[str, int]]) -> None: ...


class PeerHost(Protocol):
    """The session, as a connection sees it."""

    peer_id: bytes
    version: str
    port: int
    upload_limiter: RateLimiter
    upload_gate: UplinkGate | None  # with no upload limit (swarm.uplink)
    handshake_timeout: float

    @property
    def crypto(self) -> MseDialling: ...
    @property
    def dht_port(self) -> int | None: ...
    def torrent_for(self, info_hash: bytes) -> PeerHandler | None: ...
    def dht_ping(self, addr: tuple[str, int]) -> None: ...
    def download_delay(self, n: int) -> float: ...
    def connection_closed(self, conn: PeerConnection) -> None: ...


class PeerConnection(asyncio.Protocol):
    """A connection to one peer, incoming or outgoing (*torrent* known)."""

    handshake_sent = False  # set by a dialler that sends our handshake itself (MSE's IA)

    def __init__(
        self,
        host: PeerHost,
        *,
        torrent: PeerHandler | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.host = host
        self.torrent = torrent  # known for outgoing connections, found by info-hash otherwise
        self.outgoing = torrent is not None
        self.address = address
        self.transport: asyncio.Transport | None = None
        info_hash = torrent.info_hash if torrent else None
        self.state = PeerState(
            host.peer_id, info_hash=info_hash, now=time.monotonic(), dht_port=host.dht_port
        )
        self.closed = False
        self.ready = False  # handshake done and registered with a torrent
        self.closed_event = asyncio.Event()
        self._handshake_timer: asyncio.TimerHandle | None = None
        self.write_ok = asyncio.Event()
        self.write_ok.set()
        self._upload_task: asyncio.Task[None] | None = None
        self.wake_upload = asyncio.Event()
        self.down = RateMeter()
        self.up = RateMeter()

    @property
    def peer_id(self) -> bytes | None:
        return self.state.peer_id

    @property
    def mse(self) -> bool:  # the connection went through the MSE/PE handshake (PEX flag 0x01)
        return bool(getattr(self.transport, "mse", False))

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where the peer listens, as its extension handshake said (BEP 10 'p')."""
        port = self.state.listen_port
        return (self.address[0], port) if port and self.address else None

    async def closed_wait(self) -> None:
        await self.closed_event.wait()

    @property
    def download_rate(self) -> float:
        return self.down.rate

    @property
    def upload_rate(self) -> float:
        return self.up.rate

    @property
    def write_paused(self) -> bool:  # the peer is not reading: our buffer is past its high mark
        return not self.write_ok.is_set()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tr = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        if self.closed:
            # Closed before the transport existed (refused at the session's connection
            # cap): without this the socket would stay open, uncounted, for ever.
            tr.abort()
            return
        tr.set_write_buffer_limits(high=4 << 20, low=1 << 20)
        if self.address is None:
            peer = transport.get_extra_info("peername")
            self.address = (peer[0], peer[1]) if peer else ("?", 0)
        later = asyncio.get_running_loop().call_later
        self._handshake_timer = later(self.host.handshake_timeout, self._handshake_timeout)
        if self.torrent is not None and not self.handshake_sent:
            self.write(self.state.handshake())

    def connection_lost(self, exc: Exception | None) -> None:
        self._teardown()

    def pause_writing(self) -> None:
        self.write_ok.clear()
        self.state.write_blocked = True

    def resume_writing(self) -> None:
        self.write_ok.set()
        self.state.write_blocked = False

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        state = self.state
        try:
            if not state.attached:
                got = state.receive(data, time.monotonic())
                if not got or type(got[0]) is not wire.Handshake or not self._accept(got[0]):
                    return
                data = b""
            else:
                self._throttle_download(len(data))
            t = self.torrent
            assert t is not None
            received = 0
            rejected: list[tuple[int, int, int]] = []
            for msg in state.receive(data, time.monotonic()):
                if type(msg) is wire.Piece:  # the bulk of the traffic: the short path
                    received += len(msg.block)
                    t.on_piece(self, msg.index, msg.begin, msg.block)
                elif type(msg) is wire.Reject:  # a read's rejects are handled together
                    rejected.append((msg.index, msg.begin, msg.length))
                else:
                    self._dispatch(msg)
                if self.closed:
                    return
            if rejected:
                t.requests.rejected(self, rejected)
            if received:
                # One count and one top-up of our requests for all the blocks of this read.
                self.down.add(received)
                t.requests.fill(self)
            if state.output:
                self.write(state.take_output())
        except SwarmError as exc:
            self.close(f"{exc}")
        except Exception:  # a bug must cost one connection, never the process
            log.exception("error handling a message from %s", self)
            self.close("internal error")

    # -- handshake -----------------------------------------------------------------------

    def _accept(self, hs: wire.Handshake) -> bool:
        """The peer's handshake arrived (the state checked it): find its torrent, attach,
        answer; whether messages may flow."""
        if self.torrent is None:
            torrent = self.host.torrent_for(hs.info_hash)
            if torrent is None:
                self.close("handshake for a torrent we do not serve")
                return False
            self.torrent = torrent
            self.state.info_hash = torrent.info_hash
            self.write(self.state.handshake())
        if self._handshake_timer:
            self._handshake_timer.cancel()
        self.state.attach(self.torrent.describe(self))
        self.torrent.peer_ready(self)  # may close us (duplicate, cap, banned)
        if self.closed:
            return False
        self.ready = True
        self._upload_task = asyncio.get_running_loop().create_task(self._upload_loop())
        return True

    def _handshake_timeout(self) -> None:
        if not self.state.attached:
            self.close("handshake timed out")

    # -- receiving -----------------------------------------------------------------------

    def _throttle_download(self, n: int) -> None:
        delay = self.host.download_delay(n)
        if delay > 0 and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(delay, self._resume_reading)

    def _resume_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def _dispatch(self, msg: Event) -> None:
        t = self.torrent
        assert t is not None
        if type(msg) is wire.Request:
            self.wake_upload.set()
        elif type(msg) is wire.Have:
            t.requests.have(self, msg.index)
        elif type(msg) is PeerBitfield:
            t.requests.bitfield(self, msg.haves)
        elif type(msg) is wire.Unchoke:
            t.requests.unchoked(self)
        elif type(msg) is wire.Choke:
            t.requests.choked(self)
        elif type(msg) is wire.Interested or type(msg) is wire.NotInterested:
            t.on_interest(self)
        elif type(msg) is PexPeers:
            if msg.encrypted:  # flagged as preferring encryption: dial those with MSE first
                self.host.crypto.mse_first(msg.encrypted)
            t.add_peers(msg.addresses)
        elif type(msg) is wire.Port and self.address is not None:
            self.host.dht_ping((self.address[0], msg.port))

    # -- sending -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        tr = self.transport
        if data and tr is not None and not self.closed and not tr.is_closing():
            if self.ready:  # our haves the peer has not heard yet ride along
                data = self.torrent.haves.take(self) + data  # type: ignore[union-attr]
            tr.write(data)
            self.state.last_sent = time.monotonic()

    def write_blocks(self, out: list[bytes | memoryview], sent: list[Block], size: int) -> bool:
        """Write the blocks of *sent* (headers and data in *out*); False if we are closing."""
        tr, t = self.transport, self.torrent
        if tr is None or tr.is_closing() or t is None:
            return False
        haves = t.haves.take(self)
        tr.writelines([haves, *out] if haves else out)
        self.state.last_sent = time.monotonic()
        self.up.add(size)
        t.on_blocks_sent(sent, size)
        return True

    def send(self, *msgs: wire.Message) -> None:
        self.write(b"".join([wire.encode(m) for m in msgs]))  # several: one write

    def send_initial(self) -> None:
        """What follows the handshake: bitfield (or have all/none), then BEP 10 handshake."""
        ip = wire.yourip(self.address[0] if self.address else None)
        self.write(self.state.initial(f"swarm {self.host.version}", self.host.port, ip))

    def choke(self) -> None:
        self.write(self.state.choke(time.monotonic()))

    def unchoke(self) -> None:
        self.write(self.state.unchoke())

    def set_interested(self, value: bool) -> None:
        self.write(self.state.interested(value))

    def request(self, blocks: list[tuple[int, int, int]]) -> None:
        self.write(self.state.request(blocks))

    def cancel(self, index: int, begin: int, length: int) -> None:
        self.write(self.state.cancel(index, begin, length))

    def tick(self, dt: float, now: float, snub_seconds: float) -> bool:
        """Once a second: rates, the idle time-out and keep-alives. Whether the peer has just
        been found snubbing us (sitting on our requests for *snub_seconds*)."""
        self.down.tick(dt)
        self.up.tick(dt)
        due = self.state.timers(
            now, idle=IDLE_SECONDS, keepalive=KEEPALIVE_SECONDS, snub=snub_seconds
        )
        if Timer.IDLE in due:
            self.close("idle for two minutes")
            return False
        if Timer.KEEPALIVE in due:
            self.send(wire.KEEP_ALIVE)
        return Timer.SNUBBED in due

    async def _upload_loop(self) -> None:
        """Serve the peer's queued requests (:func:`swarm.upload.serve`)."""
        t, h = self.torrent, self.host
        assert t is not None
        try:
            await serve(
                self, t.io, h.upload_limiter, lambda i: t.picker.availability[i], h.upload_gate
            )
        except asyncio.CancelledError:
            raise
        except SwarmError as exc:
            self.close(str(exc))
        except Exception:
            log.exception("upload to %s failed", self)
            self.close("internal error")

    # -- closing -------------------------------------------------------------------------

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        if reason:
            log.debug("closing %s: %s", self, reason)
        if self.transport is not None:
            self.transport.abort() if reason else self.transport.close()
        self._teardown()

    def _teardown(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._handshake_timer:
            self._handshake_timer.cancel()
        if self._upload_task is not None:
            self._upload_task.cancel()
        self.wake_upload.set()
        self.write_ok.set()
        if self.torrent is not None and self.ready:
            self.torrent.peer_closed(self)
        self.host.connection_closed(self)
        self.closed_event.set()

    def __repr__(self) -> str:
        host, port = self.address or ("?", 0)
        return f"<peer {host}:{port}{' out' if self.outgoing else ' in'}>"
