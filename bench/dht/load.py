"""The load generator of bench/dht: ``get_peers`` queries for random info-hashes at one DHT
node, as fast as it answers, from this process.

It sends from :data:`SOCKETS` UDP sockets, each a "node" with an id of its own that answers
the pings and ``find_node`` queries the measured node sends it, so that the measured node's
table fills up with them and its answers carry ``nodes`` as they would on the Internet: the
ids are made to share 0, 1, 2, ... leading bits with the measured node's (learnt from its
answer to a ping), 8 of each, which fills 20 buckets, some 160 nodes, the size of a table
in the millions-strong public DHT (random ids would fill only a few buckets). It keeps
keeps :data:`WINDOW` queries in flight: a query is counted when the answer with its
transaction id comes back; one not answered within :data:`LOST_AFTER` seconds is counted
lost. One answer in :data:`CHECK_EVERY` is decoded with swarm's KRPC codec and must be a
``get_peers`` answer (a token and ``nodes`` or ``values``), else it is counted bad.
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import time
from dataclasses import dataclass

from swarm.dht import krpc

SOCKETS = 160
WINDOW = 128
LOST_AFTER = 2.0
CHECK_EVERY = 64
HASHES = 4096


@dataclass
class Load:
    """What one stretch of load did."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    bad: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


class Generator:
    """Sockets bound to *host*, aimed at the node at *target*."""

    def __init__(self, host: str, target: tuple[str, int], window: int = WINDOW) -> None:
        self.target = target
        self.window = window
        rng = random.Random(1)
        self.hashes = [rng.randbytes(20) for _ in range(HASHES)]
        self.socks: list[socket.socket] = []
        self.ids: dict[socket.socket, bytes] = {}
        self.sel = selectors.DefaultSelector()
        theirs = int.from_bytes(node_id(host, target), "big")
        for n in range(SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((host, 0))
            s.setblocking(False)
            self.socks.append(s)
            shared = n // 8  # leading bits in common with the measured node's id
            mine = theirs ^ (1 << (159 - shared)) ^ rng.getrandbits(159 - shared)
            self.ids[s] = mine.to_bytes(20, "big")
            self.sel.register(s, selectors.EVENT_READ)
        self._t = 0

    def close(self) -> None:
        self.sel.close()
        for s in self.socks:
            s.close()

    def run(self, seconds: float, count: int) -> Load:
        """Load for *seconds* or until *count* answers, whichever comes first."""
        out = Load()
        outstanding: dict[bytes, float] = {}
        socks, hashes, target = self.socks, self.hashes, self.target
        began = time.monotonic()
        end = began + seconds
        next_expiry = began + 0.25
        while out.answered < count:
            now = time.monotonic()
            if now >= end:
                break
            while len(outstanding) < self.window:
                self._t += 1
                t = (self._t & 0xFFFFFFFF).to_bytes(4, "big")
                s = socks[self._t % len(socks)]
                ih = hashes[self._t % len(hashes)]
                packet = (
                    b"d1:ad2:id20:" + self.ids[s] + b"9:info_hash20:" + ih
                    + b"e1:q9:get_peers1:t4:" + t + b"1:y1:qe"
                )  # fmt: skip
                try:
                    s.sendto(packet, target)
                except BlockingIOError:
                    break
                outstanding[t] = now
                out.sent += 1
            for key, _ in self.sel.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    if data.endswith(b"1:y1:qe") or b"1:y1:q" in data[-16:]:
                        self._answer(sock, data, addr)
                        continue
                    i = data.rfind(b"1:t4:")
                    if i < 0 or outstanding.pop(data[i + 5 : i + 9], None) is None:
                        continue
                    out.answered += 1
                    if out.answered % CHECK_EVERY == 0 and not _good(data):
                        out.bad += 1
            if now >= next_expiry:
                next_expiry = now + 0.25
                old = [t for t, sent in outstanding.items() if now - sent > LOST_AFTER]
                for t in old:
                    del outstanding[t]
                out.lost += len(old)
        out.seconds = time.monotonic() - began
        # what is still out is neither answered nor lost: drain it before the next stretch
        drain_until = time.monotonic() + LOST_AFTER
        while outstanding and time.monotonic() < drain_until:
            for key, _ in self.sel.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    i = data.rfind(b"1:t4:")
                    if i >= 0:
                        outstanding.pop(data[i + 5 : i + 9], None)
        return out

    def _answer(self, s: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        """A query of the measured node to one of our "nodes": an answer with no nodes."""
        try:
            msg = krpc.decode(data)
        except krpc.KrpcError:
            return
        if isinstance(msg, krpc.Ping | krpc.FindNode | krpc.GetPeers):
            s.sendto(krpc.encode(krpc.Response(msg.t, self.ids[s], nodes=())), addr)


def node_id(host: str, target: tuple[str, int], timeout: float = 5.0) -> bytes:
    """The id of the node at *target*, from its answer to a ping (tried for *timeout* s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.settimeout(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.sendto(krpc.encode(krpc.Ping(b"id", os.urandom(20))), target)
            try:
                msg = krpc.decode(s.recvfrom(2048)[0])
            except (TimeoutError, krpc.KrpcError):
                continue
            if isinstance(msg, krpc.Response):
                return msg.id
    raise TimeoutError(f"no answer to a ping from {target[0]}:{target[1]}")


def _good(data: bytes) -> bool:
    try:
        msg = krpc.decode(data)
    except krpc.KrpcError:
        return False
    return isinstance(msg, krpc.Response) and msg.token is not None
