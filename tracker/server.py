"""The tracker as a library: HTTP and UDP on one host, started and stopped cleanly::

t = Tracker(TrackerConfig(port=0))
await t.start()
print(t.announce_urls)
...
await t.stop()
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass, field

from tracker.errors import StartError
from tracker.http import IDLE_TIMEOUT, HTTPTracker
from tracker.listener import Listener
from tracker.state import Limits, TrackerState
from tracker.udp import UDPServerProtocol, UDPTracker

__all__ = ["StartError", "Tracker", "TrackerConfig"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TrackerConfig:
    """How a :class:`Tracker` listens and answers. *allow*: the 20-byte info-hashes it tracks
    (None: any torrent). *names*: a torrent's name by its info-hash, for the HTML page."""

    host: str = "127.0.0.1"
    port: int = 6969
    udp_port: int | None = None  # None: the same number as the HTTP port
    udp: bool = True
    interval: int = 1800
    min_interval: int = 60
    max_torrents: int = 100_000
    max_peers: int = 10_000
    allow: set[bytes] | None = None
    allow_ip_param: bool = False
    names: dict[bytes, str] = field(default_factory=dict)


class Tracker:
    """One tracker state served over HTTP and (unless ``config.udp`` is off) UDP."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self.state = TrackerState(
            interval=config.interval,
            limits=Limits(config.max_torrents, config.max_peers),
            allow=config.allow,
            clock=time.monotonic,
        )
        self.http = HTTPTracker(
            self.state, config.interval, config.min_interval, config.allow_ip_param, config.names
        )
        self._listeners: list[Listener] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.udp_port: int | None = None

    async def start(self) -> None:
        """Listen; :class:`~tracker.errors.StartError` (a one-line message) if a port cannot
        be bound. ``port`` and ``udp_port`` then hold the ports actually bound."""
        loop = asyncio.get_running_loop()
        c = self.config
        try:
            socks = await self._listen(c.host, c.port)
        except OSError as exc:
            raise self._bind_error("TCP", c.port, exc) from None
        self.port = socks[0].getsockname()[1]
        self._listeners = [Listener(self.http, sock) for sock in socks]
        self._sweep()
        if c.udp:
            udp_port = self.port if c.udp_port is None else c.udp_port
            udp = UDPTracker(self.state, c.interval, time.monotonic)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: UDPServerProtocol(udp), local_addr=(c.host, udp_port)
                )
            except OSError as exc:
                await self.stop()
                raise self._bind_error("UDP", udp_port, exc) from None
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]

    @staticmethod
    async def _listen(host: str, port: int) -> list[socket.socket]:
        """Listening TCP sockets on every address *host* names (as ``loop.create_server``
        binds them); with port 0, the first one's port for the others."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        socks: list[socket.socket] = []
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(socks) > 1:
                    addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
                sock.bind(addr)
                if hasattr(socket, "TCP_DEFER_ACCEPT"):
                    # Linux: accept only once the request is in, so that the listener can
                    # answer it at once (a connection with nothing to read goes the long way)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
                sock.listen(1024)
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return socks

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self.http.sweep_idle(time.monotonic())
        self._sweeper = loop.call_later(IDLE_TIMEOUT / 4, self._sweep)

    @staticmethod
    def _bind_error(kind: str, port: int, exc: OSError) -> StartError:
        if exc.errno == errno.EADDRINUSE:
            return StartError(f"{kind} port {port} is already in use")
        return StartError(f"cannot listen on {kind} port {port}: {exc.strerror}")

    @property
    def announce_urls(self) -> list[str]:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        urls = [f"http://{shown}:{self.port}/announce"]
        if self.udp_port is not None:
            urls.append(f"udp://{shown}:{self.udp_port}/announce")
        return urls

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:  # stop accepting, then end the open connections
            await listener.close()
        for conn in list(self.http.connections):
            conn.close()
        await asyncio.sleep(0)  # the closed connections' connection_lost callbacks
