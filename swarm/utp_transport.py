"""One uTP connection (BEP 29) as an asyncio transport, for :mod:`swarm.utp_shell`.

:class:`UtpTransport` is what an ``asyncio.Protocol`` (a peer connection) runs on: ``write``
and ``writelines`` (queued, handed to the core once per loop turn by the endpoint),
``close`` (the queue, then a FIN), ``abort`` (an ST_RESET), ``is_closing``,
``get_extra_info("peername"/"sockname")``, ``pause_reading``/``resume_reading`` (data held
back shrinks the window we advertise) and write-buffer limits that call the protocol's
``pause_writing``/``resume_writing``. An exception in the protocol aborts its connection,
never the socket. The endpoint it belongs to satisfies :class:`TransportHost`.

The first :data:`FIRST_WRITES_ALONE` writes go to the core at once, each in packets of its
own, rather than joined with the others of their loop turn: Transmission 3.00 reads a peer's
BitTorrent handshake and hands the connection over, leaving what came in the same uTP packet
unread until the peer's next packet (its handshake reader returns "read later"); a swarm seed
sent its handshake, HAVE_ALL and extension handshake in one packet, then waited for
"interested", and Transmission, never having read the HAVE_ALL, never said it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from swarm.utp.connection import UtpConnection
from swarm.utp.events import Output

log = logging.getLogger(__name__)

__all__ = ["TransportHost", "UtpTransport", "connection_error"]

Address = tuple[str, int]

FIRST_WRITES_ALONE = 6  # a plain or MSE handshake's steps, then the messages after them

_REASONS: dict[str, type[OSError]] = {
    "connection refused": ConnectionRefusedError,
    "connection reset by peer": ConnectionResetError,
    "timed out": TimeoutError,
}


def connection_error(reason: str | None) -> OSError | None:
    """The exception ``connection_lost`` gets for a core's close *reason* (None: clean)."""
    return None if reason is None else _REASONS.get(reason, ConnectionError)(reason)


class TransportHost(Protocol):
    """What a transport needs of its endpoint."""

    address: Address

    def clock(self) -> float: ...

    def _mark(self, tr: UtpTransport) -> None:
        """*tr* has writes or a close to hand to the core at the end of this loop turn."""

    def _handle(self, conn: UtpConnection, out: Output) -> None:
        """Send *out*'s datagrams and deliver its events."""


class UtpTransport(asyncio.Transport):
    """One uTP connection as an asyncio transport (made by :class:`UtpEndpoint`)."""

    def __init__(self, endpoint: TransportHost, conn: UtpConnection, protocol: asyncio.Protocol):
        super().__init__()
        self._endpoint = endpoint
        self._conn = conn
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._closing = False
        self._lost = False
        self._reading = True
        self._backlog: collections.deque[bytes] = collections.deque()
        self._backlog_size = 0
        self._eof_waiting = False
        self.peer_done = False  # the peer's FIN came and went up as eof_received
        self._write_paused = False
        self._alone = FIRST_WRITES_ALONE
        self._high = 64 * 1024
        self._low = 16 * 1024

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        if self._alone and not self._pending:  # see the module's docstring
            self._alone -= 1
            endpoint = self._endpoint
            endpoint._handle(self._conn, self._conn.send(bytes(data), endpoint.clock()))
            self._check_write_buffer()
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
        """Send what is buffered, then a FIN; ``connection_lost`` once the peer acks it, or
        once it is sent if the peer had closed its side already (as TCP's transport: a peer
        that sent its FIN and forgot the connection, as libtorrent does, never acks ours)."""
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
            data = self._backlog.popleft()
            self._backlog_size -= len(data)
            self._call(self._protocol.data_received, data)
        if not self._backlog and self._eof_waiting and self._reading:
            self._eof_waiting = False
            self._eof()
        self._set_backlog()

    def _set_backlog(self) -> None:
        out = self._conn.set_read_backlog(self._backlog_size, self._endpoint.clock())
        self._endpoint._handle(self._conn, out)

    def _data(self, data: bytes) -> None:
        if self._closing or self._lost:
            return
        if self._reading and not self._backlog:
            self._call(self._protocol.data_received, data)
        else:
            self._backlog.append(data)
            self._backlog_size += len(data)
            self._set_backlog()

    def _eof(self) -> None:
        if self._backlog or not self._reading:
            self._eof_waiting = True
        elif not self._closing and not self._lost:
            self.peer_done = True
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
        """Hand what follows to *protocol* (MSE does, once its handshake is done)."""
        self._protocol = cast(asyncio.Protocol, protocol)  # duck-typed, as asyncio's are

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol
