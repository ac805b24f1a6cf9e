"""UDP tracker protocol (BEP 15): connect, announce, scrape and error, plus its asyncio shell.

Connection ids are an HMAC of the client's address and a one-minute time slot under a random
secret: not guessable, checked on every request, valid for one to two minutes, and nothing to
store. Malformed packets are dropped without an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import struct
from collections.abc import Callable
from typing import Any

from swarm.errors import TrackerError
from tracker.protocol import compact_peers, normalize_ip
from tracker.state import Announce, TrackerState

log = logging.getLogger(__name__)

PROTOCOL_ID = 0x41727101980
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3
SLOT_SECONDS = 60
EVENTS = {0: "", 1: "completed", 2: "started", 3: "stopped"}
_ANNOUNCE = struct.Struct(">QII20s20sQQQIIIiH")


class UDPTracker:
    """The pure part: a request packet in, a response packet (or None) out."""

    def __init__(
        self,
        state: TrackerState,
        interval: int,
        clock: Callable[[], float],
        secret: bytes | None = None,
    ) -> None:
        self.state = state
        self.interval = interval
        self.clock = clock
        self.secret = secret or secrets.token_bytes(32)

    def connection_id(self, addr: tuple[str, int], slot: int | None = None) -> int:
        """A keyed hash (BLAKE2b with a random secret) of the address and the time slot."""
        if slot is None:
            slot = int(self.clock() // SLOT_SECONDS)
        msg = f"{addr[0]}|{addr[1]}|{slot}".encode()
        return int.from_bytes(hashlib.blake2b(msg, key=self.secret, digest_size=8).digest())

    def valid(self, conn_id: int, addr: tuple[str, int]) -> bool:
        """Issued to *addr* in this time slot or the one before: one to two minutes old."""
        slot = int(self.clock() // SLOT_SECONDS)
        # Not secret-dependent timing worth guarding: the id is 64 bits of a keyed hash, and
        # a guess is checked against the right value, not a prefix of it.
        return conn_id == self.connection_id(addr, slot) or conn_id == self.connection_id(
            addr, slot - 1
        )

    def handle(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        if len(data) < 16:
            return None
        conn_id, action, tid = struct.unpack_from(">QII", data)
        if action == CONNECT:
            if conn_id != PROTOCOL_ID:
                return None
            return struct.pack(">IIQ", CONNECT, tid, self.connection_id(addr))
        if action not in (ANNOUNCE, SCRAPE):
            return None
        if action == ANNOUNCE and len(data) < 98:
            return None
        if not self.valid(conn_id, addr):
            return error(tid, "connection id expired or invalid")
        try:
            if action == ANNOUNCE:
                return self._announce(data, tid, addr)
            return self._scrape(data, tid)
        except TrackerError as exc:
            return error(tid, str(exc))

    def _announce(self, data: bytes, tid: int, addr: tuple[str, int]) -> bytes | None:
        (
            _,
            _,
            _,
            info_hash,
            peer_id,
            downloaded,
            left,
            uploaded,
            event,
            _ip,
            _key,
            numwant,
            port,
        ) = _ANNOUNCE.unpack_from(data)
        if event not in EVENTS or port == 0:
            return error(tid, "invalid event or port")
        ip = normalize_ip(addr[0])
        result = self.state.announce(
            Announce(
                info_hash=info_hash,
                peer_id=peer_id,
                ip=ip,
                port=port,
                uploaded=uploaded,
                downloaded=downloaded,
                left=left,
                event=EVENTS[event],
                numwant=50 if numwant < 0 else numwant,
            )
        )
        v4, v6 = compact_peers(result)  # packed once per peer, cached on its entry
        peers = v6 if ":" in ip else v4  # the requester's family: the socket's family
        head = struct.pack(
            ">IIIII", ANNOUNCE, tid, self.interval, result.incomplete, result.complete
        )
        return head + peers

    def _scrape(self, data: bytes, tid: int) -> bytes | None:
        body = data[16:]
        if len(body) % 20 or not body:
            return None
        hashes = [body[i : i + 20] for i in range(0, min(len(body), 74 * 20), 20)]
        files = self.state.scrape(hashes)
        out = [struct.pack(">II", SCRAPE, tid)]
        for h in hashes:
            complete, downloaded, incomplete = files[h]
            out.append(struct.pack(">III", complete, downloaded, incomplete))
        return b"".join(out)


def error(tid: int, message: str) -> bytes:
    return struct.pack(">II", ERROR, tid) + message.encode()


class UDPServerProtocol(asyncio.DatagramProtocol):
    """The asyncio shell: one datagram in, at most one out."""

    def __init__(self, tracker: UDPTracker) -> None:
        self.tracker = tracker
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            reply = self.tracker.handle(data, (addr[0], addr[1]))
        except Exception:  # a bug must never stop the tracker
            log.exception("UDP request failed")
            return
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
