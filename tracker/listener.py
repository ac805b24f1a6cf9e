"""The tracker's TCP listener: accepts connections in batches and answers a one-shot request
(the whole request already in, ``Connection: close``) on the spot; every other connection goes
to :class:`~tracker.http.HTTPTrackerProtocol` on the event loop.

Why: most announces are one request on a fresh connection that the client or the tracker then
closes (opentracker closes every one). Through the event loop's transport such a connection
costs a transport, a protocol and an httptools parser, an epoll registration and its removal,
a peer-name call and four Python callbacks; here it is accept, one read, one write, a close.
:func:`one_shot` decides from the bytes alone, conservatively: a request it is not sure of
(another method, a body, a header it does not know to be harmless, keep-alive, a request cut
short) goes the long way, where llhttp reads it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable

from tracker import protocol
from tracker.http import HTTPTracker, HTTPTrackerProtocol, answer_bytes

__all__ = ["Listener", "one_shot"]

log = logging.getLogger(__name__)

ACCEPT_BATCH = 256
"""Connections accepted per wake-up at most, so other work on the loop is not starved."""
ACCEPT_PAUSE = 1.0
"""Seconds without accepting after accept fails (out of file descriptors), as asyncio does."""
_VERSIONS = (b" HTTP/1.1", b" HTTP/1.0")
# Headers that would change how the request is framed or answered: their requests go the long
# way, where llhttp reads them (so do any with a folded or otherwise odd header line).
_ODD_HEAD = re.compile(rb"\n(?:content-length|transfer-encoding|upgrade|expect|[ \t])").search
_TARGET_BYTES = bytes(range(0x21, 0x7F))  # what llhttp takes in a request target


def one_shot(data: bytes) -> bytes | None:
    """The request target of *data* if it is exactly one complete ``GET`` that asks for the
    connection to be closed (``Connection: close``, or HTTP/1.0 without keep-alive), with no
    body and nothing after it; None when it is anything else or when in doubt."""
    if not data.startswith(b"GET /") or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    line_end = data.find(b"\r\n")
    version = data[line_end - 9 : line_end]
    if version not in _VERSIONS:
        return None
    target = data[4 : line_end - 9]
    # a target llhttp would refuse (a space, a control character, a byte above 126)
    if target.translate(None, _TARGET_BYTES):
        return None
    head = data[line_end:].lower()  # "\r\nname: value" ... "\r\n\r\n"
    n = head.count
    if _ODD_HEAD(head) or not n(b"\r") == n(b"\n") == n(b"\r\n"):  # a bare CR or LF
        return None
    fields = n(b"\r\nconnection:")
    if fields == 0:
        return target if version == b" HTTP/1.0" else None
    if fields == 1:
        at = head.index(b"\r\nconnection:") + 13
        if head[at : head.index(b"\r\n", at)].strip(b" \t") == b"close":
            return target
    return None


class Listener:
    """Accepts on *sock* (bound, listening) for *handler* on the running loop."""

    def __init__(self, handler: HTTPTracker, sock: socket.socket) -> None:
        self.handler = handler
        self.sock = sock
        self.family = sock.family
        self.loop = asyncio.get_running_loop()
        self.adopting: set[asyncio.Task[None]] = set()
        self._paused: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._on_readable)
        self._accept: Callable[[], tuple[int, tuple[str, int]]] = sock._accept  # type: ignore[attr-defined]

    def _on_readable(self) -> None:
        accept = self._accept
        family = self.family
        respond = self.handler.respond
        for _ in range(ACCEPT_BATCH):
            try:
                fd, addr = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: leave the rest in the backlog
                log.warning("cannot accept a connection: %s; pausing for a second", exc)
                self.loop.remove_reader(self.sock.fileno())  # or it would wake us at once
                self._paused = self.loop.call_later(ACCEPT_PAUSE, self._resume)
                return
            conn = socket.socket(family, socket.SOCK_STREAM, 0, fd)
            try:
                self._serve(conn, addr, respond)
            except Exception:  # a bug must not stop the listener or leak the socket
                log.exception("tracker connection from %s failed", addr[0])
                conn.close()

    def _resume(self) -> None:
        self._paused = None
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def _serve(
        self,
        conn: socket.socket,
        addr: tuple[str, int],
        respond: Callable[[bytes, str], tuple[int, bytes, bytes]],
    ) -> None:
        """Answer a one-shot request on *conn* at once, or hand *conn* to the event loop."""
        try:
            data = conn.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = b""
        except OSError:
            conn.close()
            return
        target = one_shot(data) if data else None
        if target is None:
            self._adopt(conn, data)
            return
        status, ctype, body = respond(target, protocol.normalize_ip(addr[0]))
        out = answer_bytes(status, ctype, body, False)
        try:
            sent = conn.send(out, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away: nothing left to do
            sent = len(out)
        if sent < len(out):  # a big page and a full send buffer: the loop writes the rest
            self._adopt(conn, b"", out[sent:])
        else:
            conn.close()

    def _adopt(self, conn: socket.socket, data: bytes, unsent: bytes = b"") -> None:
        """The long way: the connection to the event loop, with the bytes already read (or,
        after a one-shot answer, the part of it not yet sent, then a close)."""
        task = self.loop.create_task(self._adopted(conn, data, unsent))
        self.adopting.add(task)
        task.add_done_callback(self.adopting.discard)

    async def _adopted(self, conn: socket.socket, data: bytes, unsent: bytes) -> None:
        conn.setblocking(False)
        proto = HTTPTrackerProtocol(self.handler)
        try:
            await self.loop.connect_accepted_socket(lambda: proto, conn)
        except OSError:
            conn.close()
            return
        transport = proto.transport
        if transport is None:
            return
        if unsent:
            transport.write(unsent)
            transport.close()
        elif data:
            proto.data_received(data)

    async def close(self) -> None:
        """Stop accepting; connections being handed to the loop are dropped."""
        if self._paused is not None:
            self._paused.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        tasks = list(self.adopting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
