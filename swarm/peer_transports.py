"""A session's transports to peers: TCP, and uTP (BEP 29) on the UDP port of the same number.

:class:`PeerTransports` owns the :class:`~swarm.utp_shell.UtpEndpoint` (none with uTP off,
``--no-utp``) and dials peers the way :class:`~swarm.transport_choice.TransportChoice` says:
uTP first, then TCP at once when uTP fails, remembering which worked (libtorrent's rule, see
that module). :meth:`PeerTransports.connect` has ``loop.create_connection``'s shape for a
protocol factory, so it is the connector :meth:`swarm.mse_shell.PeerCrypto.dial` runs over
(MSE goes over uTP as over TCP) and what the magnet fetcher's streams are made on. The DHT
shares the endpoint's socket when the session has both (:meth:`DhtNode.start_on`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from swarm.dht_shell import DhtNode
from swarm.errors import SessionError
from swarm.transport_choice import TCP, UTP, TransportChoice
from swarm.utp_shell import UtpEndpoint

__all__ = ["UTP_CONNECT_TIMEOUT", "PeerTransports"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
ProtocolFactory = Callable[[], asyncio.Protocol]
UTP_CONNECT_TIMEOUT = 3.0
"""Seconds a uTP dial waits for the peer's answer before TCP is tried (libtorrent waits for
its connection timeout; a closed UDP port answers at once with ICMP)."""


class PeerTransports:
    """TCP and uTP dials for one session; :meth:`start` opens the uTP side (see the module)."""

    def __init__(self, utp: bool = True, *, utp_timeout: float = UTP_CONNECT_TIMEOUT) -> None:
        self.choice = TransportChoice(utp)
        self.utp_timeout = utp_timeout
        self.endpoint: UtpEndpoint | None = None
        self.counts: Counter[str] = Counter()  # "utp out", "tcp out", "utp in"

    async def start(self, host: str, port: int, accept: ProtocolFactory) -> None:
        """Open the uTP endpoint on UDP *port* (the TCP listen port), peers it accepts served
        by *accept*; when that port is taken, on any free one (dials only). Nothing with uTP
        off."""
        if not self.choice.utp:
            return

        def accepted() -> asyncio.Protocol:
            self.counts["utp in"] += 1
            log.info("a peer connected over uTP")
            return accept()

        endpoint = UtpEndpoint(accept=accepted)
        try:
            await endpoint.start(host, port)
        except SessionError as exc:
            if port == 0:
                raise
            log.warning("%s; uTP dials out only", exc)
            await endpoint.start(host, 0)
        self.endpoint = endpoint
        log.info("uTP on %s:%d", *endpoint.address)

    async def connect(
        self, factory: ProtocolFactory, addr: Address
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        """Dial *addr* for a protocol from *factory*: uTP, then TCP when uTP fails (OSError,
        TimeoutError), as the choice says; the transport and protocol, like
        ``loop.create_connection``. The factory is called once, by the dial that worked."""
        kinds = self.choice.order(addr) if self.endpoint is not None else (TCP,)
        for i, kind in enumerate(kinds):
            try:
                if kind == UTP and self.endpoint is not None:
                    result: tuple[
                        asyncio.BaseTransport, asyncio.Protocol
                    ] = await self.endpoint.connect(factory, addr, timeout=self.utp_timeout)
                else:
                    loop = asyncio.get_running_loop()
                    result = await loop.create_connection(factory, addr[0], addr[1])
            except OSError as exc:  # TimeoutError and the ConnectionErrors are OSErrors
                if self.choice.failed(addr, kind) and i + 1 < len(kinds):
                    log.debug("uTP dial of %s:%d failed (%s); TCP now", addr[0], addr[1], exc)
                    continue
                raise
            self.choice.worked(addr, kind)
            self.counts[f"{kind} out"] += 1
            name = "uTP" if kind == UTP else "TCP"
            log.info("connected to %s:%d over %s", addr[0], addr[1], name)
            return result
        raise ConnectionError(f"no transport to {addr[0]}:{addr[1]}")  # pragma: no cover

    async def dht_node(
        self, host: str, tcp_port: int, port: int | None, state: Path | None, rng: random.Random
    ) -> DhtNode:
        """A started DHT node (its table kept in *state*, its randomness drawn from *rng*): on
        UDP *port* when given and not uTP's, else on the uTP endpoint's socket, else (no uTP)
        on *tcp_port*'s number or any free port."""
        node = DhtNode(state_path=state, rng=random.Random(rng.getrandbits(64)))
        if self.endpoint is not None and port in (None, self.endpoint.address[1]):
            await node.start_on(self.endpoint)
            return node
        try:
            await node.start(host, tcp_port if port is None else port)
        except SessionError:
            if port is not None:
                raise
            await node.start(host, 0)
        return node

    async def close(self) -> None:
        """Close the uTP endpoint (its connections reset)."""
        if self.endpoint is not None:
            await self.endpoint.stop()
            self.endpoint = None
