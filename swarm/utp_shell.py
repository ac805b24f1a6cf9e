"""The asyncio shell around the sans-I/O uTP core (BEP 29, :mod:`swarm.utp`): one UDP socket,
its connections as asyncio transports (:class:`~swarm.utp_transport.UtpTransport`).

:meth:`UtpEndpoint.connect` mirrors ``loop.create_connection``: it dials, and once the peer
answers gives the transport and the ``asyncio.Protocol`` made for it; an *accept* protocol
factory, like ``loop.create_server``'s, gets one per incoming connection. Datagrams that are
not uTP (a DHT's, first byte ``d``) go to *other*, so the DHT can share the port;
:meth:`UtpEndpoint.sendto` sends its answers from the same socket.

It only moves bytes and time: datagrams go to :class:`~swarm.utp.mux.UtpMux` and what the
core returns is sent; one timer per endpoint (every :data:`TICK` seconds while connections
exist) gives the core the time; writes made in one turn of the loop go to the core together.
The socket is read with ``loop.add_reader`` rather than through a ``DatagramProtocol``,
because asyncio's datagram transport reads one datagram per turn of the loop: here up to
:data:`READ_BATCH` are read at once and each connection that got data sends one ack for
them all (as libutp does after draining its socket), which halves the datagrams a transfer
costs. A datagram the kernel will not take is dropped (and counted), as a network drops it:
uTP resends it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from swarm.errors import SessionError
from swarm.utp.batch import runs
from swarm.utp.connection import UtpConnection
from swarm.utp.events import Closed, Connected, Data, Eof, Output
from swarm.utp.mux import UtpMux
from swarm.utp.packet import looks_like_utp
from swarm.utp_io import GSO, IP_RECVERR, MSG_ERRQUEUE, RECV_SIZE, gro, read, send_run, unreachable
from swarm.utp_transport import UtpTransport, connection_error

log = logging.getLogger(__name__)

__all__ = ["CONNECT_TIMEOUT", "UtpEndpoint", "UtpTransport"]

Address = tuple[str, int]
ProtocolFactory = Callable[[], asyncio.Protocol]

TICK = 0.05
CONNECT_TIMEOUT = 3.0
SOCKET_BUFFER = 4 << 20  # asked of the kernel for each direction; it may give less
READ_BATCH = 64  # datagrams read in one go before the acks go out


class UtpEndpoint:
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
        self._other = other
        self.clock = clock
        self.mux = UtpMux(rng or random.Random(secrets.randbits(64)), accept=accept is not None)
        self.address: Address = ("0.0.0.0", 0)
        self.dropped = 0  # datagrams the kernel would not take (a full send buffer)
        self._gso = GSO
        self._gro = False
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transports: dict[UtpConnection, UtpTransport] = {}
        self._dialing: dict[UtpConnection, tuple[ProtocolFactory, asyncio.Future[Any]]] = {}
        self._dirty: dict[UtpTransport, None] = {}
        # While a batch is read: each connection's data, delivered once at its end.
        self._inbox: dict[UtpTransport, list[bytes | memoryview]] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def other(self) -> Callable[[bytes, Address], None] | None:
        return self._other

    @other.setter
    def other(self, handler: Callable[[bytes, Address], None] | None) -> None:
        self._other = handler
        if self._sock is not None:
            self._recverr(self._sock)

    def _recverr(self, sock: socket.socket) -> None:
        """ICMP errors on the socket (IP_RECVERR) only while no other protocol shares it (the
        DHT sends to many dead nodes: with their errors on the socket its lookups were lost),
        and only on asyncio's own loop: uvloop (libuv) stops watching a socket for good once
        epoll says it is in error, as a queued ICMP error does, and every uTP connection on it
        went deaf. Without them a uTP dial to a closed port fails by its time-out."""
        if MSG_ERRQUEUE:
            on = self._other is None and isinstance(self._loop, asyncio.SelectorEventLoop)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, int(on))

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> None:
        """Bind the UDP socket (port 0: any free port) and start reading it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._loop = asyncio.get_running_loop()
        try:
            sock.setblocking(False)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            self._recverr(sock)
            self._gro = gro(sock)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise SessionError(f"cannot open the uTP port {host}:{port}: {exc}") from None
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._read_ready)
        name = sock.getsockname()
        self.address = (str(name[0]), int(name[1]))

    async def stop(self) -> None:
        """Reset every connection (``connection_lost`` for each) and close the socket."""
        for conn in list(self._transports) + list(self._dialing):
            self._handle(conn, conn.abort(self.clock()))
        for handle in (self._timer, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._timer = self._flush_handle = None
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    async def connect(
        self, protocol_factory: ProtocolFactory, addr: Address, timeout: float = CONNECT_TIMEOUT
    ) -> tuple[UtpTransport, asyncio.Protocol]:
        """Dial *addr* (an IPv4 address, not a name) over uTP; like
        ``loop.create_connection``: the transport and the protocol *protocol_factory* made
        once the peer answered. ConnectionRefusedError (an ST_RESET, or an ICMP "port
        unreachable") or TimeoutError (no answer within *timeout* seconds) otherwise."""
        if self._sock is None:
            raise ConnectionError("the uTP endpoint is not started")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn, out = self.mux.connect((addr[0], int(addr[1])), self.clock())
        self._dialing[conn] = (protocol_factory, fut)
        self._handle(conn, out)
        try:
            async with asyncio.timeout(timeout):
                tr, proto = await asyncio.shield(fut)
        except TimeoutError:
            raise TimeoutError(f"no uTP answer from {addr[0]}:{addr[1]}") from None
        finally:
            if conn in self._dialing:  # no answer in time, or our caller was cancelled
                self._dialing.pop(conn)
                self._handle(conn, conn.abort(self.clock()))
                self.mux.forget(conn)
        return tr, proto

    def _send_all(self, datagrams: list[bytes], addr: Address) -> None:
        """Send *datagrams* to *addr*, runs of them in one ``sendmsg`` each with UDP
        segmentation offload (:mod:`swarm.utp.batch`) where the kernel has it."""
        if not self._gso or len(datagrams) < 2:
            for d in datagrams:
                self.sendto(d, addr)
            return
        for start, end, size in runs(datagrams):
            if end - start == 1 or self._sock is None:
                self.sendto(datagrams[start], addr)
                continue
            group = datagrams[start:end]
            try:
                send_run(self._sock, group, size, addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += len(group)
            except OSError as exc:
                # EIO (no checksum offload on the route's device), EINVAL (a segment above
                # the path MTU), or an ICMP error queued for the socket: one sendto each,
                # and (but for the last) no GSO from now on.
                if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                    log.debug("utp: no UDP segmentation offload here: %s", exc)
                    self._gso = False
                for d in group:
                    self.sendto(d, addr)

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send one datagram (also another protocol's, the DHT's) from this socket; one the
        kernel will not take now is dropped, as a network would drop it."""
        for attempt in range(2):
            if self._sock is None:
                return
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self.dropped += 1
                return
            except OSError as exc:
                # With IP_RECVERR an ICMP error of an earlier datagram to another address
                # (a dead DHT node's "port unreachable") is reported by the next call on the
                # socket, this send: take the queued errors and send again, once.
                if attempt == 0:
                    self._read_errors()
                    continue
                log.debug("utp: cannot send to %s:%d: %s", addr[0], addr[1], exc)

    # -- datagrams, events and time -----------------------------------------------------------

    def _read_ready(self) -> None:
        """Read up to READ_BATCH datagrams, hand each connection's data to its protocol in
        one call (not one ``data_received`` per 1400-byte packet: the peer wire's parser
        costs per call), then send one ack for each connection that got data (libutp acks
        after draining the socket, too)."""
        inbox = self._inbox = {}
        try:
            touched = self._read_batch()
        finally:
            self._inbox = None
        for tr, chunks in inbox.items():
            tr._data(b"".join(chunks) if len(chunks) > 1 else bytes(chunks[0]))
        if touched:
            now = self.clock()
            for conn in touched:
                self._handle(conn, conn.flush(now))

    def _read_batch(self) -> dict[UtpConnection, None]:
        sock = self._sock
        touched: dict[UtpConnection, None] = {}
        budget = READ_BATCH
        while budget > 0:
            if sock is None:
                break
            try:
                data, seg, addr = read(sock, self._gro)
                size = len(data)
            except (BlockingIOError, InterruptedError):
                # ICMP errors may wait in the error queue with no error pending on the socket
                # (a recv or send took it): the socket polls readable (EPOLLERR) until the
                # queue is empty, so empty it, or this callback would spin.
                self._read_errors()
                break
            except OSError as exc:  # an ICMP error of an earlier send
                log.debug("utp: %s", exc)
                self._read_errors()
                continue
            src = (str(addr[0]), int(addr[1]))
            if seg >= size:
                budget -= 1
                conn = self._datagram(data, src)
                if conn is not None:
                    touched[conn] = None
                continue
            budget -= (size + seg - 1) // seg
            view = memoryview(data)  # views of the read bytes, not copies
            segs = [view[at : at + seg] for at in range(0, size, seg)]  # what GRO joined
            i = 0
            while i < len(segs):
                conn = self._datagram(segs[i], src)
                i += 1
                if conn is not None:
                    touched[conn] = None
                    if i < len(segs) and conn in self._transports:  # the rest in one go
                        n, out = conn.receive_run(segs[i:], self.clock())
                        i += n
                        self._handle(conn, out)
            sock = self._sock
        return touched

    def _read_errors(self) -> None:
        """The ICMP errors queued on the socket (Linux, IP_RECVERR): a SYN that met "port
        unreachable" fails its dial at once, rather than after its timeouts."""
        sock = self._sock
        for _ in range(READ_BATCH):
            if sock is None or not MSG_ERRQUEUE:
                return
            try:
                data, ancdata, _flags, addr = sock.recvmsg(RECV_SIZE, 512, MSG_ERRQUEUE)
            except OSError:
                return
            if addr and unreachable(ancdata):
                hit = self.mux.unreachable((str(addr[0]), int(addr[1])), data, self.clock())
                if hit is not None:
                    self._handle(*hit)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Take one datagram from *addr* (as a DatagramProtocol would) and ack it at once."""
        conn = self._datagram(data, addr)
        if conn is not None:
            self._handle(conn, conn.flush(self.clock()))

    def _datagram(self, data: bytes | memoryview, src: Address) -> UtpConnection | None:
        if not looks_like_utp(data):
            if self.other is not None:
                self.other(bytes(data), src)
            return None
        routed = self.mux.receive(data, src, self.clock(), defer_ack=True)
        conn = routed.connection
        if conn is None:
            for d in routed.output.datagrams:
                self.sendto(d, src)
            return None
        self._handle(conn, routed.output, accepted=routed.accepted)
        tr = self._transports.get(conn)
        if tr is not None and tr._write_paused:
            tr._check_write_buffer()
        return conn

    def _handle(self, conn: UtpConnection, out: Output, accepted: bool = False) -> None:
        if out.datagrams:
            if len(out.datagrams) == 1:
                self.sendto(out.datagrams[0], conn.addr)
            else:
                self._send_all(out.datagrams, conn.addr)
        for ev in out.events:
            tr = self._transports.get(conn)
            if type(ev) is Data:
                if tr is not None:
                    inbox = self._inbox
                    if inbox is None:
                        tr._data(bytes(ev.data))
                    elif tr in inbox:
                        inbox[tr].append(ev.data)
                    else:
                        inbox[tr] = [ev.data]
            elif type(ev) is Connected:
                self._connected(conn, accepted)
            else:
                if tr is not None and self._inbox and tr in self._inbox:
                    chunks = self._inbox.pop(tr)  # the data before the end comes first
                    tr._data(b"".join(chunks))
                if type(ev) is Eof:
                    if tr is not None:
                        tr._eof()
                elif type(ev) is Closed:
                    self._closed(conn, ev.reason)
        if self._timer is None and len(self.mux) and self._sock is not None:
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
            dialing[1].set_exception(connection_error(reason) or ConnectionRefusedError("closed"))
        tr = self._transports.pop(conn, None)
        if tr is not None:
            self._dirty.pop(tr, None)
            tr._connection_lost(connection_error(reason))

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
                if tr.peer_done:  # both sides closed: the core resends our FIN on its own
                    tr._connection_lost(None)
            tr._check_write_buffer()

    def _tick(self) -> None:
        self._timer = None
        for conn, out in self.mux.tick(self.clock()):
            self._handle(conn, out)
        if len(self.mux) and self._sock is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)
