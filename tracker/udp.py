"""UDP tracker (BEP 15): connect, announce, scrape and error, plus its asyncio shell. The
packets' forms live in :mod:`tracker.codec`, shared with the tracker client.

Connection ids are a keyed hash (BLAKE2b) of the client's address and a one-minute time slot
under a random secret: not guessable, checked on every request, valid for one to two minutes,
and nothing to store. Malformed packets are dropped without an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import cast

from tracker import codec
from tracker.codec import PROTOCOL_ID
from tracker.errors import RequestError
from tracker.protocol import normalize_ip
from tracker.state import Announce, TrackerState

__all__ = ["PROTOCOL_ID", "SLOT_SECONDS", "UDPServerProtocol", "UDPTracker"]

log = logging.getLogger(__name__)

SLOT_SECONDS = 60
MAX_REMEMBERED = 65_536
"""Addresses whose valid connection ids are kept, computed once per time slot."""
# The hot path compares plain ints and calls bound methods: no enum or attribute look-ups.
CONNECT = int(codec.Action.CONNECT)
ANNOUNCE = int(codec.Action.ANNOUNCE)
SCRAPE = int(codec.Action.SCRAPE)
EVENTS = codec.EVENT_NAMES
_HEADER = codec.REQUEST_HEADER.unpack_from
_HEADER_SIZE = codec.REQUEST_HEADER.size
_ANNOUNCE = codec.ANNOUNCE_REQUEST.unpack_from
_ANNOUNCE_SIZE = codec.ANNOUNCE_REQUEST.size
_ANNOUNCE_REPLY = codec.ANNOUNCE_REPLY.pack
_CONNECT_REPLY = codec.CONNECT_REPLY.pack
_error = codec.error_reply


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
        self.announce = state.announce_compact
        self.interval = interval
        self.clock = clock
        self.secret = secret or secrets.token_bytes(32)
        # address -> (slot, its id in that slot, its id in the slot before): the ids valid
        # now, so that checking one is a dict look-up, not two keyed hashes
        self._valid: dict[tuple[str, int], tuple[int, int, int]] = {}
        self._valid_slot = -1

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
        known = self._valid.get(addr)
        if known is None or known[0] != slot:
            if slot != self._valid_slot or len(self._valid) >= MAX_REMEMBERED:
                self._valid.clear()  # the ids of another slot, or too many addresses
                self._valid_slot = slot
            known = self._valid[addr] = (
                slot,
                self.connection_id(addr, slot),
                self.connection_id(addr, slot - 1),
            )
        return conn_id == known[1] or conn_id == known[2]

    def handle(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        if len(data) < _HEADER_SIZE:
            return None
        conn_id, action, tid = _HEADER(data)
        if action == CONNECT:
            if conn_id != PROTOCOL_ID:
                return None
            return _CONNECT_REPLY(CONNECT, tid, self.connection_id(addr))
        if action != ANNOUNCE and action != SCRAPE:
            return None
        if action == ANNOUNCE and len(data) < _ANNOUNCE_SIZE:
            return None
        if not self.valid(conn_id, addr):
            return _error(tid, "connection id expired or invalid")
        try:
            if action == ANNOUNCE:
                return self._announce(data, tid, addr)
            return self._scrape(data, tid)
        except RequestError as exc:
            return _error(tid, str(exc))

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
        ) = _ANNOUNCE(data)
        if event not in EVENTS or port == 0:
            return _error(tid, "invalid event or port")
        ip = normalize_ip(addr[0])
        result = self.announce(
            # positional, in the order of Announce's fields: info_hash, peer_id, ip, port,
            # uploaded, downloaded, left, event, numwant
            Announce(
                info_hash,
                peer_id,
                ip,
                port,
                uploaded,
                downloaded,
                left,
                EVENTS[event],
                50 if numwant < 0 else numwant,
            )
        )
        peers = result.peers6 if ":" in ip else result.peers  # the socket's family
        return (
            _ANNOUNCE_REPLY(ANNOUNCE, tid, self.interval, result.incomplete, result.complete)
            + peers
        )

    def _scrape(self, data: bytes, tid: int) -> bytes | None:
        body = data[codec.REQUEST_HEADER.size :]
        if len(body) % 20 or not body:
            return None
        hashes = [
            body[i : i + 20] for i in range(0, min(len(body), codec.MAX_SCRAPE_HASHES * 20), 20)
        ]
        files = self.state.scrape(hashes)
        return codec.scrape_reply(tid, [files[h] for h in hashes])


class UDPServerProtocol(asyncio.DatagramProtocol):
    """The asyncio shell: one datagram in, at most one out."""

    transport: asyncio.DatagramTransport  # set by connection_made, before any datagram

    def __init__(self, tracker: UDPTracker) -> None:
        self.tracker = tracker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's datagram transport is not a subclass of asyncio's, but has its methods
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(
        self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]
    ) -> None:  # (host, port) over IPv4, (host, port, flowinfo, scope id) over IPv6
        try:
            reply = self.tracker.handle(data, addr if len(addr) == 2 else (addr[0], addr[1]))
        except Exception:  # a bug must never stop the tracker
            log.exception("UDP request failed")
            return
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
