"""One peer connection (BEP 3, 6, 10): an asyncio protocol around the pure wire codec.

The connection owns its socket, its parser and its upload task; it turns bytes into
messages for the torrent controller (:mod:`swarm.torrent`) and sends what it is told. Time-outs,
rate limits on reading, flow control on writing and the limits on what a peer may ask of us
live here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from swarm import wire
from swarm.errors import ProtocolError, SwarmError

if TYPE_CHECKING:
    from swarm.session import Session
    from swarm.torrent import TorrentController

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
OUR_REQQ = 500  # requests we let a peer queue with us (sent as BEP 10 'reqq')
MAX_QUEUED_REQUESTS = 2 * OUR_REQQ  # beyond this a peer is flooding us


class RateMeter:
    """Bytes per second over the last few seconds (an exponential moving average)."""

    __slots__ = ("_bytes", "rate", "total")

    def __init__(self) -> None:
        self._bytes = 0
        self.rate = 0.0
        self.total = 0

    def add(self, n: int) -> None:
        self._bytes += n
        self.total += n

    def tick(self, dt: float) -> None:
        if dt > 0:
            now = self._bytes / dt
            self.rate = now if now > self.rate else 0.6 * self.rate + 0.4 * now
        self._bytes = 0


class PeerConnection(asyncio.Protocol):
    """A connection to one peer, incoming or outgoing."""

    def __init__(
        self,
        session: Session,
        *,
        torrent: TorrentController | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.session = session
        self.torrent = torrent  # known for outgoing connections, found by info-hash otherwise
        self.outgoing = torrent is not None
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.peer_id: bytes | None = None
        self.closed = False
        self.ready = False  # handshake done and registered with a torrent
        self.closed_event = asyncio.Event()
        self._hs_buf = bytearray()
        self._parser: wire.Parser | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._write_ok = asyncio.Event()
        self._write_ok.set()
        self._upload_task: asyncio.Task[None] | None = None
        self._wake_upload = asyncio.Event()
        # Protocol state, from our side and theirs.
        self.fast = False
        self.extended = False
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_has: list[bool] = []
        self.peer_is_seed = False
        self.remote_reqq = 250
        self.listen_port: int | None = None
        self.client_name: str | None = None
        self.allowed_fast: set[int] = set()
        # Requests: ours to them (block -> time asked) and theirs to us (in order).
        self.requests_out: dict[tuple[int, int], tuple[int, float]] = {}
        self.requests_in: deque[tuple[int, int, int]] = deque()
        # What requests_in holds, so that a cancel for a block not queued costs no scan of
        # the queue (a flood of such cancels would otherwise busy the whole event loop).
        self._queued: Counter[tuple[int, int, int]] = Counter()
        self.stale: dict[tuple[int, int], tuple[int, float]] = {}
        # Initial seeding: pieces we turned this peer away for once (it should get them from
        # the peer we sent them to), and pieces the peer turned us away for, with when.
        self.deferred: set[int] = set()
        self.rejected: dict[int, float] = {}
        self.counted: str | None = None  # how the picker counts this peer: pieces or seed
        self.down = RateMeter()
        self.up = RateMeter()
        now = time.monotonic()
        self.connected_at = now
        self.last_received = now
        self.last_sent = now
        self.last_block = now
        self.snubbed = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self.closed:
            # Closed before the transport existed (refused at the session's connection
            # cap): without this the socket would stay open, uncounted, for ever.
            transport.abort()
            return
        transport.set_write_buffer_limits(high=4 << 20, low=1 << 20)
        if self.address is None:
            peer = transport.get_extra_info("peername")
            self.address = (peer[0], peer[1]) if peer else ("?", 0)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        if self.torrent is not None:
            self._send_handshake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._teardown()

    def pause_writing(self) -> None:
        self._write_ok.clear()

    def resume_writing(self) -> None:
        self._write_ok.set()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_received = time.monotonic()
        try:
            if self._parser is None:
                data = self._take_handshake(data)
                if self._parser is None or not data:
                    return
            self._throttle_download(len(data))
            for msg in self._parser.feed(data):
                self._dispatch(msg)
                if self.closed:
                    return
        except SwarmError as exc:
            self.close(f"{exc}")
        except Exception:  # a bug must cost one connection, never the process
            log.exception("error handling a message from %s", self)
            self.close("internal error")

    # -- handshake -----------------------------------------------------------------------

    def _send_handshake(self) -> None:
        assert self.torrent is not None
        hs = wire.Handshake(
            reserved=wire.make_reserved(fast=True, extended=True),
            info_hash=self.torrent.info_hash,
            peer_id=self.session.peer_id,
        )
        self._write(hs.encode())

    def _take_handshake(self, data: bytes) -> bytes:
        self._hs_buf += data
        if len(self._hs_buf) < 1 or self._hs_buf[:1] != wire.PROTOCOL[:1]:
            raise ProtocolError("not a BitTorrent handshake")
        if len(self._hs_buf) < wire.HANDSHAKE_LEN:
            if not wire.PROTOCOL.startswith(bytes(self._hs_buf[:20])):
                raise ProtocolError("not a BitTorrent handshake")
            return b""
        hs = wire.Handshake.decode(bytes(self._hs_buf[: wire.HANDSHAKE_LEN]))
        rest = bytes(self._hs_buf[wire.HANDSHAKE_LEN :])
        self._hs_buf = bytearray()
        if self.torrent is None:
            torrent = self.session.torrent_for(hs.info_hash)
            if torrent is None:
                raise ProtocolError("handshake for a torrent we do not serve")
            self.torrent = torrent
            self._send_handshake()
        elif hs.info_hash != self.torrent.info_hash:
            raise ProtocolError("handshake for another torrent")
        if hs.peer_id == self.session.peer_id:
            raise ProtocolError("connected to ourselves")
        self.peer_id = hs.peer_id
        self.fast = hs.supports_fast
        self.extended = hs.supports_extended
        if self._handshake_timer:
            self._handshake_timer.cancel()
        torrent = self.torrent
        n = torrent.num_pieces
        self.peer_has = [False] * n
        self._parser = wire.Parser(expect_handshake=False, num_pieces=n, fast=self.fast)
        torrent.peer_ready(self)  # may close us (duplicate, cap, banned)
        if self.closed:
            return b""
        self.ready = True
        self._upload_task = asyncio.get_running_loop().create_task(self._upload_loop())
        return rest

    def _handshake_timeout(self) -> None:
        if self._parser is None:
            self.close("handshake timed out")

    # -- receiving -----------------------------------------------------------------------

    def _throttle_download(self, n: int) -> None:
        delay = self.session.download_limiter_delay(n)
        if delay > 0 and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(delay, self._resume_reading)

    def _resume_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def _dispatch(self, msg: Any) -> None:
        t = self.torrent
        assert t is not None
        kind = type(msg)
        if kind is wire.Piece:
            t.on_piece(self, msg.index, msg.begin, msg.block)
        elif kind is wire.Request:
            self._on_request(msg.index, msg.begin, msg.length)
        elif kind is wire.Have:
            t.on_have(self, msg.index)
        elif kind is wire.KeepAlive:
            pass
        elif kind is wire.Unchoke:
            self.peer_choking = False
            t.on_unchoke(self)
        elif kind is wire.Choke:
            self.peer_choking = True
            t.on_choke(self)
        elif kind is wire.Interested:
            self.peer_interested = True
            t.on_interest(self)
        elif kind is wire.NotInterested:
            self.peer_interested = False
            t.on_interest(self)
        elif kind is wire.Bitfield:
            t.on_bitfield(self, wire.bools_from_bitfield(msg.bits, t.num_pieces))
        elif kind is wire.HaveAll:
            t.on_bitfield(self, [True] * t.num_pieces)
        elif kind is wire.HaveNone:
            t.on_bitfield(self, [False] * t.num_pieces)
        elif kind is wire.Cancel:
            self._on_cancel(msg.index, msg.begin, msg.length)
        elif kind is wire.Reject:
            t.on_reject(self, msg.index, msg.begin, msg.length)
        elif kind is wire.AllowedFast:
            self.allowed_fast.add(msg.index)
            t.on_allowed_fast(self, msg.index)
        elif kind is wire.Extended:
            self._on_extended(msg.ext_id, msg.payload)
        # Port (DHT) and Suggest are advisory; we ignore them.

    def _on_extended(self, ext_id: int, payload: bytes) -> None:
        if ext_id != 0:
            return  # we advertise no extension messages, so none should come; ignore
        hs = wire.ExtendedHandshake.decode(payload)
        if hs.reqq:
            self.remote_reqq = max(1, min(hs.reqq, 2000))
        if hs.p and 0 < hs.p < 65536:
            self.listen_port = hs.p
        self.client_name = hs.v

    def _on_request(self, index: int, begin: int, length: int) -> None:
        t = self.torrent
        assert t is not None
        if begin + length > t.piece_size(index):
            raise ProtocolError(f"request past the end of piece {index}")
        if not t.have_piece(index):
            if self.fast:
                self._reject(index, begin, length)
                return
            raise ProtocolError(f"request for piece {index}, which we do not have")
        if self.am_choking:
            if self.fast:
                self._reject(index, begin, length)
            return  # without the fast extension a request while choked is simply dropped
        if len(self.requests_in) >= MAX_QUEUED_REQUESTS:
            raise ProtocolError("request flood")
        if self.fast and t.defer_to_swarm(self, index):
            self._reject(index, begin, length)
            return
        self.requests_in.append((index, begin, length))
        self._queued[(index, begin, length)] += 1
        self._wake_upload.set()

    def _reject(self, index: int, begin: int, length: int) -> None:
        if not self._write_ok.is_set():
            # Every request earns a reject: a peer that keeps asking but never reads would
            # have us buffer its rejects without bound.
            raise ProtocolError("the peer keeps sending requests but does not read our replies")
        self.send(wire.Reject(index, begin, length))

    def _on_cancel(self, index: int, begin: int, length: int) -> None:
        key = (index, begin, length)
        if key not in self._queued:
            return  # already sent, or never asked: the common case, and the cheap one
        self._unqueue(key)
        self.requests_in.remove(key)

    def _unqueue(self, key: tuple[int, int, int]) -> None:
        left = self._queued[key] - 1
        if left:
            self._queued[key] = left
        else:
            del self._queued[key]

    # -- sending -------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)
            self.last_sent = time.monotonic()

    def send(self, msg: Any) -> None:
        self._write(wire.encode(msg))

    def send_many(self, msgs: list[Any]) -> None:
        if (
            msgs
            and self.transport is not None
            and not self.closed
            and not self.transport.is_closing()
        ):
            self.transport.write(b"".join(wire.encode(m) for m in msgs))
            self.last_sent = time.monotonic()

    def send_initial(self, bitfield: list[bool], num_have: int) -> None:
        """What follows the handshake: bitfield (or have all/none), then BEP 10 handshake."""
        t = self.torrent
        assert t is not None
        if self.fast and num_have == t.num_pieces:
            self.send(wire.HAVE_ALL)
        elif self.fast and num_have == 0:
            self.send(wire.HAVE_NONE)
        elif num_have:
            self.send(wire.Bitfield(wire.bitfield_from_bools(bitfield)))
        if self.extended:
            ext = wire.ExtendedHandshake(
                m={}, v=f"swarm {self.session.version}", p=self.session.port or None, reqq=OUR_REQQ
            )
            self.send(wire.Extended(0, ext.encode()))

    def choke(self) -> None:
        if not self.am_choking:
            self.am_choking = True
            self.send(wire.CHOKE)
            if self.fast:
                rejects = [wire.Reject(*r) for r in self.requests_in]
                self.send_many(rejects)
            self.requests_in.clear()
            self._queued.clear()

    def unchoke(self) -> None:
        if self.am_choking:
            self.am_choking = False
            self.send(wire.UNCHOKE)

    def set_interested(self, value: bool) -> None:
        if value != self.am_interested:
            self.am_interested = value
            self.send(wire.INTERESTED if value else wire.NOT_INTERESTED)

    def request(self, blocks: list[tuple[int, int, int]]) -> None:
        now = time.monotonic()
        for index, begin, length in blocks:
            self.requests_out[(index, begin)] = (length, now)
        self.send_many([wire.Request(i, b, n) for i, b, n in blocks])

    def cancel(self, index: int, begin: int, length: int) -> None:
        asked = self.requests_out.pop((index, begin), None)
        if asked is not None:
            # The block may be on its way already; it must not count as unasked-for.
            self.stale_requests()[(index, begin)] = asked
            self.send(wire.Cancel(index, begin, length))

    def stale_requests(self) -> dict[tuple[int, int], tuple[int, float]]:
        """Requests we withdrew (cancel, choke, snub) whose blocks may still arrive."""
        if len(self.stale) > 4096:
            self.stale.clear()
        return self.stale

    async def _upload_loop(self) -> None:
        """Serve the peer's queued requests in order, within the upload rate limit.

        Unthrottled, several blocks go out in one write (one system call); under a rate
        limit, one block at a time so that the peers sharing the limit take turns."""
        t = self.torrent
        assert t is not None
        limiter = self.session.upload_limiter
        batch_bytes = 256 * 1024 if limiter.unlimited else 1
        try:
            while not self.closed:
                if not self.requests_in:
                    self._wake_upload.clear()
                    await self._wake_upload.wait()
                    continue
                out: list[bytes | memoryview] = []
                sent: list[tuple[int, int, int]] = []
                size = 0
                while self.requests_in and size < batch_bytes:
                    index, begin, length = self.requests_in.popleft()
                    self._unqueue((index, begin, length))
                    block = t.cached_block(index, begin, length)
                    if block is None:
                        block = await t.read_block(index, begin, length)
                    out.append(wire.encode_piece_header(index, begin, length))
                    out.append(block)
                    sent.append((index, begin, length))
                    size += length
                    if self.closed or self.am_choking:
                        break
                await limiter.throttle(size + 13 * len(sent))
                await self._write_ok.wait()
                if self.closed:
                    return
                if self.am_choking:
                    # We choked the peer while these were on their way: withdraw them.
                    if self.fast:
                        self.send_many([wire.Reject(*r) for r in sent])
                    continue
                if self.transport is None or self.transport.is_closing():
                    return
                self.transport.writelines(out)
                t.on_blocks_sent(sent)
                self.last_sent = time.monotonic()
                self.up.add(size)
                t.on_uploaded(size)
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
        self._wake_upload.set()
        self._write_ok.set()
        if self.torrent is not None and self.ready:
            self.torrent.peer_closed(self)
        self.session.connection_closed(self)
        self.closed_event.set()

    def __repr__(self) -> str:
        host, port = self.address or ("?", 0)
        return f"<peer {host}:{port}{' out' if self.outgoing else ' in'}>"
