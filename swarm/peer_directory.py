"""The peers of one torrent: those connected, the addresses we may dial, and those we banned.

Addresses come from trackers (and later PEX and the DHT) and from peers that dialled us; the
directory decides whom to dial next (within the torrent's connection limit, backing off from
addresses that fail), which of two crossed connections to one peer survives, and whom to ban
for corrupt data. Pure: time is a clock passed in, connections are objects that satisfy
:class:`DirectoryPeer`, and dialling is the caller's job (:meth:`PeerDirectory.to_dial`).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

MAX_PEERS_PER_TORRENT = 30  # as mainline BitTorrent initiated up to 40; see SHORT_LIVED_SECONDS
MAX_CANDIDATES = 2000
STRIKES_TO_BAN = 3
RECONNECT_SECONDS = 5.0  # after a connection that worked closes
SHORT_LIVED_SECONDS = 10.0  # a connection closed sooner (a full peer's "too many") did not work
MAX_BACKOFF_SECONDS = 300.0
SAVED_PEERS = 100  # addresses kept with a download's resume data (see PeerDirectory.worth_keeping)
SETTLE_SECONDS = 5.0  # a torrent's age from which it dials past max_outgoing (see dial_under)

Address = tuple[str, int]

log = logging.getLogger(__name__)


class DirectoryPeer(Protocol):
    @property
    def peer_id(self) -> bytes | None: ...

    @property
    def address(self) -> Address | None: ...

    @property
    def outgoing(self) -> bool: ...

    @property
    def listen_address(self) -> Address | None:
        """Where the peer listens, when it said (BEP 10 'p'): for one that dialled us."""
        ...

    def close(self, reason: str = "") -> None: ...

    async def closed_wait(self) -> None: ...


P = TypeVar("P", bound=DirectoryPeer)


def addresses_from(items: object, limit: int = SAVED_PEERS) -> list[Address]:
    """The valid ``[ip, port]`` pairs of *items* (as :meth:`PeerDirectory.worth_keeping`'s
    addresses are saved); anything else in it is skipped, whatever it is."""
    out: list[Address] = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, list) and len(item) == 2:
            host, port = item
            if isinstance(host, str) and type(port) is int and 0 < port < 65536:
                try:
                    out.append((str(ipaddress.ip_address(host)), port))
                except ValueError:
                    continue
        if len(out) >= limit:
            break
    return out


@dataclass(slots=True)
class Candidate:
    """A peer address we know of."""

    fails: int = 0
    next_try: float = 0.0
    connecting: bool = False
    connected: bool = False


class PeerDirectory(Generic[P]):
    """Connected peers, candidate addresses and bans for one torrent."""

    def __init__(
        self,
        our_peer_id: bytes,
        *,
        max_peers: int = MAX_PEERS_PER_TORRENT,
        max_outgoing: int | None = None,
        dial_under: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.our_peer_id = our_peer_id
        self.max_peers = max_peers
        # Connections we open: half the limit unless told (mainline BitTorrent initiated 40 of
        # its 80), the rest left to peers that dial us. Dialling up to the whole limit, at
        # N = 100 every downloader dialled 15 peers while 15 dialled it: half the handshakes
        # ended in "too many peers" (47 handshakes a downloader for 15 connections).
        self.max_outgoing = max_outgoing if max_outgoing is not None else max(1, max_peers // 2)
        # Past that, a torrent with fewer than *dial_under* connections in all dials on once it
        # is :data:`SETTLE_SECONDS` old: one that nobody dials (it announced last, in a swarm
        # that started at once) is otherwise left with only its own few all along. Not sooner:
        # the dials it waits for come in the first second, and more handshakes in a swarm's
        # first seconds cost its start more CPU than they gave (N = 100: median copy 6.31
        # against 6.07 s, CPU +13%).
        self.dial_under = dial_under if dial_under is not None else self.max_outgoing
        self.clock = clock
        self.born = clock()
        self.peers: set[P] = set()
        # The kept connection of each peer id (a scan of every peer for a duplicate at each
        # handshake was ~1% of a group's CPU at N = 200, ~6,000 handshakes a run).
        self._by_id: dict[bytes, P] = {}
        self.candidates: dict[Address, Candidate] = {}
        self.banned_ids: set[bytes] = set()
        self.strikes: dict[bytes, int] = {}

    # -- connections -------------------------------------------------------------------------

    def admit(self, conn: P) -> bool:
        """A connection finished its handshake: keep it (True) or close it (banned, a
        duplicate, over the limit)."""
        pid = conn.peer_id
        assert pid is not None
        if pid in self.banned_ids:
            conn.close("banned peer")
            return False
        other = self._by_id.get(pid)  # one of self.peers: admit adds both, remove drops both
        if other is not None:
            # Both sides must keep the same one of two crossed connections: the one
            # opened by the peer with the lower peer id.
            we_opened_keeper = self.our_peer_id < pid
            keep_new = conn.outgoing == we_opened_keeper and other.outgoing != conn.outgoing
            if not keep_new:
                conn.close("duplicate connection")
                return False
            other.close("duplicate connection")
        elif len(self.peers) >= self.max_peers:
            conn.close("too many peers")
            return False
        self.peers.add(conn)
        self._by_id[pid] = conn
        if conn.address and conn.outgoing:
            self.candidates.setdefault(conn.address, Candidate()).connected = True
        return True

    def remove(self, conn: P) -> bool:
        """A connection closed; whether it was one of ours."""
        if conn not in self.peers:
            return False
        self.peers.discard(conn)
        if conn.peer_id is not None and self._by_id.get(conn.peer_id) is conn:
            del self._by_id[conn.peer_id]
        if conn.outgoing and conn.address in self.candidates:
            self.candidates[conn.address].connected = False
        return True

    # -- dialling ------------------------------------------------------------------------------

    def add(self, addresses: list[Address]) -> None:
        for addr in addresses:
            if addr not in self.candidates and len(self.candidates) < MAX_CANDIDATES:
                self.candidates[addr] = Candidate()

    def worth_keeping(self, ourselves: Address) -> list[Address]:
        """Addresses to save for a restart, which dials them before any tracker answers (as
        Transmission's and libtorrent's resume data keep peers): the peers we are connected
        to first (where they listen), then the candidates whose last dial did not fail."""
        here = (p.address if p.outgoing else p.listen_address for p in self.peers)
        out = dict.fromkeys(a for a in here if a is not None)
        out.update((a, None) for a, c in self.candidates.items() if not c.fails)
        out.pop(ourselves, None)
        return list(out)[:SAVED_PEERS]

    def to_dial(self, can_connect: Callable[[], bool], ourselves: Address) -> list[Address]:
        """Addresses to dial now (marked as connecting), within the limits."""
        now = self.clock()
        # A dial stays `connecting` until its connection closes: one that connected is among
        # the peers already (counted twice, the outgoing limit was half what it says).
        dialling = sum(1 for c in self.candidates.values() if c.connecting and not c.connected)
        busy = len(self.peers) + dialling
        opened = sum(1 for p in self.peers if p.outgoing) + dialling
        # A peer that dialled us is known by its listening address too: not dialled again.
        connected = {p.address for p in self.peers} | {p.listen_address for p in self.peers}
        settled = now - self.born >= SETTLE_SECONDS
        out: list[Address] = []
        for addr, cand in self.candidates.items():
            if busy >= self.max_peers or not can_connect():
                break
            if opened >= self.max_outgoing and (busy >= self.dial_under or not settled):
                break
            if cand.connecting or cand.connected or addr in connected or cand.next_try > now:
                continue
            if addr == ourselves:
                continue
            cand.connecting = True
            busy += 1
            opened += 1
            out.append(addr)
        return out

    async def dial(self, addr: Address, connect: Callable[[Address], Awaitable[P]]) -> None:
        """Dial *addr* (one of :meth:`to_dial`) with *connect* and follow the connection until
        it closes; then the address may be dialled again after a pause or a back-off."""
        ok = False
        try:
            conn = await connect(addr)
            opened = self.clock()
            await conn.closed_wait()
            # A peer at its connection limit closes us at once: dialling it again every few
            # seconds would only repeat that (at N = 100 that churn was a tenth of the CPU).
            ok = self.clock() - opened >= SHORT_LIVED_SECONDS
        except (OSError, TimeoutError) as exc:
            log.debug("cannot connect to %s:%d: %s", addr[0], addr[1], exc)
        finally:
            self.dialled(addr, ok)

    def dialled(self, addr: Address, ok: bool) -> None:
        """A dial ended: the connection worked and has closed (*ok*), or it failed."""
        cand = self.candidates.get(addr)
        if cand is None:
            return
        if ok:
            cand.fails = 0
            cand.next_try = self.clock() + RECONNECT_SECONDS
        else:
            cand.fails += 1
            cand.next_try = self.clock() + min(MAX_BACKOFF_SECONDS, 2.0 * 2**cand.fails)
        cand.connecting = False
        cand.connected = False

    # -- bans ----------------------------------------------------------------------------------

    def blame(self, contributors: set[bytes]) -> list[P]:
        """A piece failed its hash check. A peer that alone sent it is banned at once; one of
        several gets a strike. Returns the connected peers just banned (the caller closes)."""
        banned = []
        for pid in contributors:
            strikes = self.strikes.get(pid, 0) + (STRIKES_TO_BAN if len(contributors) == 1 else 1)
            self.strikes[pid] = strikes
            if strikes >= STRIKES_TO_BAN:
                self.banned_ids.add(pid)
                banned += [p for p in self.peers if p.peer_id == pid]
        return banned
