"""The asyncio shell around the sans-I/O uTP core (BEP 29, :mod:`swarm.utp`): one UDP socket,
its connections as asyncio transports.

:class:`UtpEndpoint` is the socket's ``asyncio.DatagramProtocol``. :meth:`UtpEndpoint.connect`
mirrors ``loop.create_connection``: it dials, and once the peer answers gives a
:class:`UtpTransport` (``write``, ``writelines``, ``close``, ``abort``, ``is_closing``,
``get_extra_info("peername"/"sockname")``, pause/resume reading, write-buffer limits with
``pause_writing``/``resume_writing`` on the protocol) and the ``asyncio.Protocol`` made for
it; an *accept* protocol factory, like ``loop.create_server``'s, gets one per incoming
connection. Datagrams that are not uTP (a DHT's, first byte ``d``) go to *other*, so the
DHT can share the port; :meth:`UtpEndpoint.sendto` sends its answers from the same socket.

It only moves bytes and time: every datagram goes to :class:`~swarm.utp.mux.UtpMux`, every
datagram the core returns is sent, one timer per endpoint (every :data:`TICK` seconds while
connections exist) gives the core the time, and writes made in one turn of the loop go to
the core together (one flush per turn), so small messages share packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from swarm.errors import SessionError
from swarm.utp.connection import UtpConnection
from swarm.utp.events import Closed, Connected, Data, Eof, Output
from swarm.utp.mux import UtpMux
from swarm.utp.packet import looks_like_utp

log = logging.getLogger(__name__)

__all__ = ["CONNECT_TIMEOUT", "UtpEndpoint", "UtpTransport"]

Address = tuple[str, int]
ProtocolFactory = Callable[[], asyncio.Protocol]

TICK = 0.05
CONNECT_TIMEOUT = 3.0
SOCKET_BUFFER = 4 << 20  # asked of the kernel for each direction; it may give less
_REASONS: dict[str, type[OSError]] = {
    "connection refused": ConnectionRefusedError,
    "connection reset by peer": ConnectionResetError,
    "timed out": TimeoutError,
}


def _error(reason: str | None) -> OSError | None:
    return None if reason is None else _REASONS.get(reason, ConnectionError)(reason)


class UtpTransport(asyncio.Transport):
    """One uTP connection as an asyncio transport (made by :class:`UtpEndpoint`)."""

    def __init__(self, endpoint: UtpEndpoint, conn: UtpConnection, protocol: asyncio.Protocol):
        super().__init__()
        self._endpoint = endpoint
        self._conn = conn
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._closing = False
        self._lost = False
        self._reading = True
        self._backlog: list[bytes] = []
        self._eof_waiting = False
        self._write_paused = False
        self._high = 64 * 1024
        self._low = 16 * 1024

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        self._endpoint._mark(self)
        self._check_write_buffer()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._pending_size + self._conn.send_buffer_size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._check_write_buffer()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def can_write_eof(self) -> bool:
        return False

    def _check_write_buffer(self) -> None:
        size = self.get_write_buffer_size()
        if not self._write_paused and size > self._high and not self._lost:
            self._write_paused = True
            self._call(self._protocol.pause_writing)
        elif self._write_paused and size <= self._low:
            self._write_paused = False
            self._call(self._protocol.resume_writing)

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is buffered, then a FIN; ``connection_lost`` once the peer acks it."""
        if not self._closing:
            self._closing = True
            self._endpoint._mark(self)

    def abort(self) -> None:
        """Drop the connection at once (an ST_RESET); ``connection_lost(None)`` follows."""
        self._closing = True
        self._pending.clear()
        self._pending_size = 0
        self._endpoint._handle(self._conn, self._conn.abort(self._endpoint.clock()))

    def is_closing(self) -> bool:
        return self._closing or self._lost

    # -- reading ----------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            asyncio.get_running_loop().call_soon(self._drain_backlog)

    def is_reading(self) -> bool:
        return self._reading

    def _drain_backlog(self) -> None:
        while self._backlog and self._reading and not self._lost and not self._closing:
            self._call(self._protocol.data_received, self._backlog.pop(0))
        if not self._backlog and self._eof_waiting and self._reading:
            self._eof_waiting = False
            self._eof()
        self._set_backlog()

    def _set_backlog(self) -> None:
        size = sum(map(len, self._backlog))
        out = self._conn.set_read_backlog(size, self._endpoint.clock())
        self._endpoint._handle(self._conn, out)

    def _data(self, data: bytes) -> None:
        if self._closing or self._lost:
            return
        if self._reading and not self._backlog:
            self._call(self._protocol.data_received, data)
        else:
            self._backlog.append(data)
            self._set_backlog()

    def _eof(self) -> None:
        if self._backlog or not self._reading:
            self._eof_waiting = True
        elif not self._closing and not self._lost:
            keep_open = self._call(self._protocol.eof_received)
            if not keep_open:
                self.close()

    def _connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = self._closing = True
            self._call(self._protocol.connection_lost, exc)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the protocol; its exception aborts this connection, never the socket."""
        try:
            return fn(*args)
        except Exception:
            log.exception("utp: the protocol of %s:%d failed", *self._conn.addr)
            if not self._lost:
                self._lost = self._closing = True
                self._endpoint._handle(self._conn, self._conn.abort(self._endpoint.clock()))
            return None

    # -- the rest of the Transport interface ------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._conn.addr
        if name == "sockname":
            return self._endpoint.address
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol


class UtpEndpoint(asyncio.DatagramProtocol):
    """uTP on one UDP socket: :meth:`start`, then :meth:`connect` as often as wanted; *accept*
    (a protocol factory) serves incoming connections; *other* takes non-uTP datagrams."""

    def __init__(
        self,
        *,
        accept: ProtocolFactory | None = None,
        other: Callable[[bytes, Address], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accept = accept
        self.other = other
        self.clock = clock
        self.mux = UtpMux(rng or random.Random(secrets.randbits(64)), accept=accept is not None)
        self.address: Address = ("0.0.0.0", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self._transports: dict[UtpConnection, UtpTransport] = {}
        self._dialing: dict[UtpConnection, tuple[ProtocolFactory, asyncio.Future[Any]]] = {}
        self._dirty: dict[UtpTransport, None] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> None:
        """Bind the UDP socket (port 0: any free port)."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, local_addr=(host, port), family=socket.AF_INET
            )
        except OSError as exc:
            raise SessionError(f"cannot open the uTP port {host}:{port}: {exc}") from None
        self._transport = transport
        sock = transport.get_extra_info("socket")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        sockname = transport.get_extra_info("sockname")
        self.address = (str(sockname[0]), int(sockname[1]))

    async def stop(self) -> None:
        """Reset every connection (``connection_lost`` for each) and close the socket."""
        for conn in list(self._transports) + list(self._dialing):
            self._handle(conn, conn.abort(self.clock()))
        for handle in (self._timer, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._timer = self._flush_handle = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def connect(
        self, protocol_factory: ProtocolFactory, addr: Address, timeout: float = CONNECT_TIMEOUT
    ) -> tuple[UtpTransport, asyncio.Protocol]:
        """Dial *addr* over uTP; like ``loop.create_connection``: the transport and the
        protocol *protocol_factory* made once the peer answered. ConnectionRefusedError
        (an ST_RESET) or TimeoutError (no answer within *timeout* seconds) otherwise."""
        if self._transport is None:
            raise ConnectionError("the uTP endpoint is not started")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn, out = self.mux.connect((addr[0], int(addr[1])), self.clock())
        self._dialing[conn] = (protocol_factory, fut)
        self._handle(conn, out)
        try:
            async with asyncio.timeout(timeout):
                tr, proto = await asyncio.shield(fut)
        except TimeoutError:
            if conn in self._dialing:
                self._dialing.pop(conn)
                self._handle(conn, conn.abort(self.clock()))
                self.mux.forget(conn)
            raise TimeoutError(f"no uTP answer from {addr[0]}:{addr[1]}") from None
        return tr, proto

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send a datagram of another protocol (the DHT's) from this socket."""
        if self._transport is not None:
            self._transport.sendto(data, addr)

    # -- datagrams, events and time -----------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        src = (str(addr[0]), int(addr[1]))
        if not looks_like_utp(data):
            if self.other is not None:
                self.other(data, src)
            return
        routed = self.mux.receive(data, src, self.clock())
        conn = routed.connection
        if conn is None:
            for d in routed.output.datagrams:
                self.sendto(d, src)
            return
        self._handle(conn, routed.output, accepted=routed.accepted)
        tr = self._transports.get(conn)
        if tr is not None and tr._write_paused:
            tr._check_write_buffer()

    def error_received(self, exc: Exception) -> None:
        log.debug("utp: %s", exc)  # an ICMP error of an earlier send: that connection times out

    def _handle(self, conn: UtpConnection, out: Output, accepted: bool = False) -> None:
        if out.datagrams and self._transport is not None:
            sendto, addr = self._transport.sendto, conn.addr
            for d in out.datagrams:
                sendto(d, addr)
        for ev in out.events:
            tr = self._transports.get(conn)
            if type(ev) is Data:
                if tr is not None:
                    tr._data(ev.data)
            elif type(ev) is Connected:
                self._connected(conn, accepted)
            elif type(ev) is Eof:
                if tr is not None:
                    tr._eof()
            elif type(ev) is Closed:
                self._closed(conn, ev.reason)
        if self._timer is None and len(self.mux) and self._transport is not None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)

    def _connected(self, conn: UtpConnection, accepted: bool) -> None:
        dialing = self._dialing.pop(conn, None)
        factory = dialing[0] if dialing is not None else self.accept
        if factory is None or (dialing is not None and dialing[1].done()):
            self._handle(conn, conn.abort(self.clock()))
            return
        try:
            proto = factory()
        except Exception:
            log.exception("utp: the protocol factory failed")
            self._handle(conn, conn.abort(self.clock()))
            return
        tr = self._transports[conn] = UtpTransport(self, conn, proto)
        tr._call(proto.connection_made, tr)
        if dialing is not None:
            dialing[1].set_result((tr, proto))

    def _closed(self, conn: UtpConnection, reason: str | None) -> None:
        dialing = self._dialing.pop(conn, None)
        if dialing is not None and not dialing[1].done():
            dialing[1].set_exception(_error(reason) or ConnectionRefusedError("closed"))
        tr = self._transports.pop(conn, None)
        if tr is not None:
            self._dirty.pop(tr, None)
            tr._connection_lost(_error(reason))

    def _mark(self, tr: UtpTransport) -> None:
        self._dirty[tr] = None
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        now = self.clock()
        for tr in dirty:
            conn = tr._conn
            if tr._pending:
                data = b"".join(tr._pending) if len(tr._pending) > 1 else tr._pending[0]
                tr._pending.clear()
                tr._pending_size = 0
                self._handle(conn, conn.send(data, now))
            if tr._closing and not tr._lost:
                self._handle(conn, conn.close(now))
            tr._check_write_buffer()

    def _tick(self) -> None:
        self._timer = None
        for conn, out in self.mux.tick(self.clock()):
            self._handle(conn, out)
        if len(self.mux) and self._transport is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)
