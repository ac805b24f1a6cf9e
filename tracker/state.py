"""Swarm state of the tracker: torrents, their peers, expiry and counters (BEP 3).

Pure: no sockets, no asyncio; the clock and the random source are passed in, so tests can
drive time. Memory is bounded by limits on torrents and peers per torrent.
"""

from __future__ import annotations

import functools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tracker.codec import pack_peer
from tracker.errors import RequestError


@dataclass(slots=True)
class PeerEntry:
    peer_id: bytes
    ip: str
    port: int
    left: int
    uploaded: int
    downloaded: int
    last_seen: float
    slot: int = -1  # index in Swarm.order
    compact: bytes = b""  # BEP 23/7 form (b"" for an address that has none)
    # A seed this tracker saw finish: it announced `completed`, or `left` fell to 0 from more.
    # A peer that only ever said left=0 may be a seed started with the data, or a magnet
    # client with no metadata yet (aria2 announces so); only a seed seen finishing is denied
    # other seeds.
    finished: bool = False

    @property
    def is_seed(self) -> bool:
        return self.left == 0


@dataclass(slots=True)
class Swarm:
    peers: dict[bytes, PeerEntry] = field(default_factory=dict)
    order: list[PeerEntry] = field(default_factory=list)  # for O(1) random sampling
    # order's compact forms, slot for slot: a compact answer is a slice of it and one join
    compacts: list[bytes] = field(default_factory=list)
    v6: int = 0  # peers with an IPv6 compact form (while 0, compacts are all 6 bytes or b"")
    seeders: int = 0
    completed: int = 0
    announces: int = 0
    recent: deque[list[int]] = field(default_factory=deque)  # [whole second, announces in it]

    @property
    def leechers(self) -> int:
        return len(self.peers) - self.seeders

    def add(self, entry: PeerEntry) -> None:
        entry.slot = len(self.order)
        self.order.append(entry)
        self.compacts.append(entry.compact)
        self.v6 += len(entry.compact) == 18
        self.peers[entry.peer_id] = entry

    def remove(self, peer_id: bytes) -> PeerEntry:
        entry = self.peers.pop(peer_id)
        last = self.order.pop()
        self.compacts.pop()
        if last is not entry:
            last.slot = entry.slot
            self.order[entry.slot] = last
            self.compacts[entry.slot] = last.compact
        self.v6 -= len(entry.compact) == 18
        return entry

    def readdress(self, entry: PeerEntry, ip: str, port: int) -> None:
        """A known peer announces from another address or port."""
        self.v6 -= len(entry.compact) == 18
        entry.ip, entry.port, entry.compact = ip, port, _compact(ip, port)
        self.compacts[entry.slot] = entry.compact
        self.v6 += len(entry.compact) == 18


def _compact(ip: str, port: int) -> bytes:
    """A peer's BEP 23/7 form: its address packed once per address, then the port added."""
    address = _packed_address(ip)
    return address + port.to_bytes(2, "big") if address else b""


@functools.lru_cache(maxsize=8192)
def _packed_address(ip: str) -> bytes:
    return pack_peer(ip, 1)[:-2]


@dataclass(slots=True)
class Announce:
    """One announce, already validated. (Not frozen: one is built for every announce, and a
    frozen dataclass pays an ``object.__setattr__`` call per field to build it.)"""

    info_hash: bytes
    peer_id: bytes
    ip: str
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0
    event: str = ""  # "", started, completed, stopped
    numwant: int = 50


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    peers: list[PeerEntry]
    complete: int
    incomplete: int


@dataclass(frozen=True, slots=True)
class CompactResult:
    """An announce's answer in compact form: BEP 23 (IPv4) and BEP 7 (IPv6) peer strings."""

    peers: bytes
    peers6: bytes
    complete: int
    incomplete: int


@dataclass(slots=True)
class Limits:
    max_torrents: int = 100_000
    max_peers: int = 10_000
    max_numwant: int = 200


class TrackerState:
    """Every swarm the tracker knows, with expiry after about two intervals."""

    def __init__(
        self,
        *,
        interval: int = 1800,
        limits: Limits | None = None,
        allow: set[bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.interval = interval
        self.limits = limits or Limits()
        self.allow = allow
        self.clock = clock
        self.rng = rng or random.Random()
        self.swarms: dict[bytes, Swarm] = {}
        self._recent: deque[list[int]] = deque()  # [whole second, announces in it]
        self.announces = 0
        self._next_sweep = clock() + interval

    @property
    def expiry(self) -> float:
        return 2 * self.interval + 60

    def announce(self, a: Announce) -> AnnounceResult:
        """Record *a*; the counts and up to ``numwant`` other peers (none after a stop)."""
        swarm, entry = self._update(a)
        if swarm is None:
            return AnnounceResult([], 0, 0)
        if entry is None:
            return AnnounceResult([], swarm.seeders, swarm.leechers)
        numwant = max(0, min(a.numwant, self.limits.max_numwant))
        return AnnounceResult(self._pick(swarm, entry, numwant), swarm.seeders, swarm.leechers)

    def announce_compact(self, a: Announce) -> CompactResult:
        """:meth:`announce` with the peers in compact form, the same peers for the same
        random draws, built from slices of the swarm's compact forms."""
        swarm, entry = self._update(a)
        if swarm is None:
            return CompactResult(b"", b"", 0, 0)
        if entry is None:
            return CompactResult(b"", b"", swarm.seeders, swarm.leechers)
        numwant = max(0, min(a.numwant, self.limits.max_numwant))
        order = swarm.order
        n = len(order)
        if swarm.v6 or entry.finished or n <= numwant + 1 or numwant == 0:
            packed = [p.compact for p in self._pick(swarm, entry, numwant)]
            joined = b"".join(packed)
            if len(joined) == 6 * len(packed):
                return CompactResult(joined, b"", swarm.seeders, swarm.leechers)
            v4 = b"".join([c for c in packed if len(c) == 6])
            v6 = b"".join([c for c in packed if len(c) == 18])
            return CompactResult(v4, v6, swarm.seeders, swarm.leechers)
        # _pick's window (the same draw), cut from the compact forms in C
        k = numwant + 1
        start = self.rng.randrange(n)
        end = start + k
        compacts = swarm.compacts
        if end <= n:
            window = compacts[start:end]
        else:
            window = compacts[start:] + compacts[: end - n]
        pos = entry.slot - start if entry.slot >= start else entry.slot + n - start
        del window[pos if pos < k else -1]  # the announcer itself, or the one too many
        return CompactResult(b"".join(window), b"", swarm.seeders, swarm.leechers)

    def _update(self, a: Announce) -> tuple[Swarm | None, PeerEntry | None]:
        """Record *a*: its swarm (None if a stop for an unknown torrent) and its entry (None
        after a stop)."""
        now = self.clock()
        self.announces += 1
        sec = int(now)
        # counted inline (not by a call) on this path, which every announce takes
        recent = self._recent
        if recent and recent[-1][0] == sec:
            recent[-1][1] += 1
        else:
            recent.append([sec, 1])
            if len(recent) > 64:
                recent.popleft()
        if now >= self._next_sweep:
            self.sweep()
        if self.allow is not None and a.info_hash not in self.allow:
            raise RequestError("torrent not allowed on this tracker")
        swarm = self.swarms.get(a.info_hash)
        if swarm is None:
            if a.event == "stopped":
                return None, None
            if len(self.swarms) >= self.limits.max_torrents:
                raise RequestError("tracker is full: too many torrents")
            swarm = self.swarms[a.info_hash] = Swarm()
        swarm.announces += 1
        recent = swarm.recent  # the torrent's own rate, for the page: 11 seconds kept
        if recent and recent[-1][0] == sec:
            recent[-1][1] += 1
        else:
            recent.append([sec, 1])
            if len(recent) > 11:
                recent.popleft()
        old = swarm.peers.get(a.peer_id)
        if a.event == "stopped":
            if old is not None:
                self._remove(swarm, a.peer_id)
                if not swarm.peers:
                    del self.swarms[a.info_hash]
            return swarm, None
        if old is None:
            if len(swarm.peers) >= self.limits.max_peers:
                raise RequestError("tracker is full: too many peers for this torrent")
            entry = PeerEntry(
                a.peer_id,
                a.ip,
                a.port,
                a.left,
                a.uploaded,
                a.downloaded,
                now,
                -1,
                _compact(a.ip, a.port),
                not a.left and a.event == "completed",
            )
            swarm.add(entry)
            swarm.seeders += not a.left
        else:
            was_seed = not old.left
            # left=0 after left>0 is a finish even if the `completed` event was lost
            old.finished = not a.left and (old.finished or bool(old.left) or a.event == "completed")
            if old.port != a.port or old.ip != a.ip:
                swarm.readdress(old, a.ip, a.port)
            old.left, old.uploaded, old.downloaded, old.last_seen = (
                a.left,
                a.uploaded,
                a.downloaded,
                now,
            )
            swarm.seeders += (not a.left) - was_seed
            entry = old
        if a.event == "completed":
            swarm.completed += 1
        return swarm, entry

    def _pick(self, swarm: Swarm, me: PeerEntry, numwant: int) -> list[PeerEntry]:
        """Up to *numwant* other peers at random; a seed seen finishing is given no seeds.

        Any other peer, left=0 or not, draws from everyone (as opentracker does): a left=0
        peer that never finished here may be a magnet client without the metadata, and
        denying it seeds starves it in a swarm of seeds."""
        if numwant == 0:
            return []
        order = swarm.order
        skip_seeds = me.finished  # (finished implies left == 0)
        n = len(order)
        if n <= numwant + 1:
            # Shuffled: clients dial the first peers of a reply first, and in a swarm that
            # starts at once every early announcer was dialled by all who came after it and
            # refused them, full (compare at N = 100: downloaders with no peer for 5 s).
            out = [p for p in order if p is not me and not (skip_seeds and p.left == 0)]
            self.rng.shuffle(out)
            return out
        # A window of consecutive slots from a random start (as opentracker does): random
        # enough, since removals reshuffle the slots, and O(numwant) however big the swarm.
        start = self.rng.randrange(n)
        window = order[start : start + numwant + 1]
        if len(window) < numwant + 1:
            window += order[: numwant + 1 - len(window)]
        if skip_seeds:
            out = [p for p in window if p.left and p is not me]
            if len(out) < numwant and swarm.leechers > len(out):
                # Seeds crowd this window: take the exact, slower path.
                out = [p for p in order if p.left and p is not me]
                if len(out) > numwant:
                    out = self.rng.sample(out, numwant)
            return out[:numwant]
        return [p for p in window if p is not me][:numwant]

    def _remove(self, swarm: Swarm, peer_id: bytes) -> None:
        entry = swarm.remove(peer_id)
        swarm.seeders -= entry.is_seed

    def sweep(self) -> int:
        """Forget peers silent for about two intervals; returns how many went."""
        now = self.clock()
        self._next_sweep = now + min(self.interval, 300)
        cutoff = now - self.expiry
        gone = 0
        for info_hash in list(self.swarms):
            swarm = self.swarms[info_hash]
            for pid in [pid for pid, p in swarm.peers.items() if p.last_seen < cutoff]:
                self._remove(swarm, pid)
                gone += 1
            if not swarm.peers and not swarm.completed:
                del self.swarms[info_hash]
        return gone

    def scrape(self, info_hashes: list[bytes]) -> dict[bytes, tuple[int, int, int]]:
        """(complete, downloaded, incomplete) for each named torrent (all when none named)."""
        names = info_hashes or list(self.swarms)[:1000]
        out = {}
        for h in names:
            s = self.swarms.get(h)
            out[h] = (s.seeders, s.completed, s.leechers) if s else (0, 0, 0)
        return out

    def announces_per_second(self, window: float = 10.0, swarm: Swarm | None = None) -> float:
        """Announces a second over the last *window* whole seconds, to the tracker or to one
        *swarm*."""
        now = int(self.clock())
        recent = self._recent if swarm is None else swarm.recent
        total = sum(n for sec, n in recent if now - window <= sec < now)
        return total / window

    def stats(self) -> dict[str, float]:
        """The totals: torrents, seeders, leechers, completed, announces and the rate."""
        seeders = peers = completed = 0
        for s in self.swarms.values():  # one pass: 100,000 torrents take tens of ms
            seeders += s.seeders
            peers += len(s.peers)
            completed += s.completed
        return {
            "torrents": len(self.swarms),
            "seeders": seeders,
            "leechers": peers - seeders,
            "completed": completed,
            "announces": self.announces,
            "announces_per_second": round(self.announces_per_second(), 1),
        }
