"""Who we upload to: tit-for-tat choking with an optimistic unchoke (BEP 3, as in BitTorrent 4 and
libtorrent's rate-based choker).

Every round (10 s) the *slots* interested peers that gave us the best download rate are
unchoked (as a seed: those we upload to fastest, so the data spreads quickest); every third
round one more peer is unchoked at random, new peers three times as likely. Between rounds a
newly interested peer takes a free slot, and a slot freed by a peer that lost interest or left
goes at once to the peer that has waited longest (interested and choked): a queue, not a draw.
Drawn at random (new peers three times as likely, as the optimistic one is), at N = 100 a
downloader that announced last, whose 5 to 14 peers all had their slots taken when it came,
waited 2.4 s for a first unchoke and finished last, at 6.0 s against a median of 5.2 s. While
*spreading* (a seed under an upload cap that has not yet sent every piece once) every
interested peer is unchoked: initial seeding sends each piece to one peer only and the rate
limiter sends one whole piece at a time, rarest first, so more unchoked peers split no piece;
they only spread the new pieces over more peers, each of which then has something the others
lack. With 4 slots the seed's 64 pieces went to 4-5 peers, and at N = 100 the others' upload
idled while they chased the few new pieces (4 pairs of runs: last copy 5.56 against 6.03 s,
median 5.07 against 5.24 s; with 8 slots 5.91 / 5.57 s, 16 5.96 / 5.24 s). A peer that loses
interest is choked then, as libtorrent does: left unchoked, it took a slot again whenever it
next wanted a piece, and at N = 100 a downloader had 11-13 peers unchoked rather than 5, each
served so thinly that pieces spread slower. Pure: the caller passes peers' figures and a random
source.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

ROUND_SECONDS = 10.0
SLOTS_CAPPED = 4  # BEP 3's classic figure: a capped upload split among few finishes pieces
SLOTS_UNCAPPED = 8  # libtorrent's default: an uncapped upload need not be split so thinly
OPTIMISTIC_EVERY = 3  # rounds: 30 s
NEW_PEER_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the choker needs to know about one peer."""

    key: Hashable
    interested: bool
    download_rate: float  # bytes/s the peer sends us
    upload_rate: float  # bytes/s we send the peer
    connected_for: float  # seconds
    is_seed: bool = False  # a seed wants nothing from us


def default_slots(upload_capped: bool) -> int:
    """Unchoke slots when the user named none: 4 under an upload cap, where a thin share per
    peer would slow every piece, 8 without one (with 4, a seed's fifth to eighth leechers
    waited for an optimistic unchoke or for the others: 8 leechers of 256 MiB on loopback
    took 20.4 s with 4 slots, 13 s with 9)."""
    return SLOTS_CAPPED if upload_capped else SLOTS_UNCAPPED


class Choker:
    """Decides the unchoked set each round."""

    def __init__(
        self,
        slots: int = 4,
        rng: random.Random | None = None,
        spreading: Callable[[], bool] = lambda: False,
    ) -> None:
        self.slots = slots
        self.rng = rng or random.Random()
        self.spreading = spreading
        self.optimistic: Hashable | None = None
        self._round = 0

    def rechoke(self, peers: Sequence[PeerInfo], am_seed: bool) -> set[Hashable]:
        """One choking round: the set of peers to have unchoked from now on."""
        candidates = [p for p in peers if p.interested and not p.is_seed]
        if am_seed:
            candidates.sort(key=lambda p: (-p.upload_rate, -p.connected_for))
        else:
            candidates.sort(key=lambda p: (-p.download_rate, -p.upload_rate))
        slots = self.current_slots
        unchoked = {p.key for p in candidates[:slots]}
        keys = {p.key for p in candidates}
        if self._round % OPTIMISTIC_EVERY == 0 or self.optimistic not in keys:
            self.optimistic = self._pick_optimistic(candidates[slots:])
        self._round += 1
        if self.optimistic is not None:
            unchoked.add(self.optimistic)
        return unchoked

    def pick_waiting(self, waiting: Sequence[tuple[Hashable, float]]) -> Hashable | None:
        """A peer for a slot freed between rounds: of (peer, seconds it has waited), the one
        that has waited longest."""
        if not waiting:
            return None
        return max(waiting, key=lambda w: w[1])[0]

    def _pick_optimistic(self, rest: Sequence[PeerInfo]) -> Hashable | None:
        if not rest:
            return None
        weights = [3 if p.connected_for < NEW_PEER_SECONDS else 1 for p in rest]
        return self.rng.choices(list(rest), weights=weights, k=1)[0].key

    @property
    def current_slots(self) -> int:
        """The regular slots now: *slots*, or every peer while spreading."""
        return sys.maxsize if self.spreading() else self.slots

    def has_free_slot(self, unchoked_count: int) -> bool:
        """Whether a newly interested peer may be unchoked at once, between rounds."""
        return unchoked_count < self.current_slots + 1


class ChokeState(Protocol):
    """The protocol state of a connection, as far as the choker reads it."""

    peer_interested: bool
    am_choking: bool
    connected_at: float
    waiting_since: float  # when it last became interested, or was last choked

    @property
    def peer_is_seed(self) -> bool: ...


class ChokePeer(Protocol):
    """A connection as the choker sees it: its state, its rates and the two verbs."""

    def __hash__(self) -> int: ...
    @property
    def state(self) -> ChokeState: ...
    @property
    def download_rate(self) -> float: ...
    @property
    def upload_rate(self) -> float: ...
    def choke(self) -> None: ...
    def unchoke(self) -> None: ...


def choke_round(choker: Choker, peers: Iterable[ChokePeer], am_seed: bool, now: float) -> None:
    """Run one round of *choker* over *peers* and choke or unchoke each."""
    peers = list(peers)
    infos = [
        PeerInfo(
            key=p,
            interested=p.state.peer_interested,
            download_rate=p.download_rate,
            upload_rate=p.upload_rate,
            connected_for=now - p.state.connected_at,
            is_seed=p.state.peer_is_seed,
        )
        for p in peers
    ]
    unchoke = choker.rechoke(infos, am_seed=am_seed)
    for p in peers:
        if p in unchoke:
            p.unchoke()
        else:
            p.choke()


def unchoke_if_free(choker: Choker, peer: ChokePeer, peers: Iterable[ChokePeer]) -> None:
    """A peer became interested: unchoke it now if a slot is free (between rounds)."""
    if peer.state.peer_interested and peer.state.am_choking:
        unchoked = sum(1 for p in peers if not p.state.am_choking and p.state.peer_interested)
        if choker.has_free_slot(unchoked):
            peer.unchoke()


def unchoke_waiting(choker: Choker, peers: Iterable[ChokePeer], now: float) -> None:
    """A slot may have come free between rounds (an unchoked peer lost interest or left): give
    each free slot to the peer waiting longest (interested, choked, not a seed) at once.
    Otherwise one that got no slot when the swarm started waits for the next round, 10 s: at
    N = 100 some downloaders had 30 peers and none unchoking them for 7 s, and finished at
    20 s against a median of 7 s."""
    peers = list(peers)
    unchoked = sum(1 for p in peers if not p.state.am_choking and p.state.peer_interested)
    if not choker.has_free_slot(unchoked):
        return
    # Only how long each has waited: this runs at every loss of interest (thousands of times a
    # run at N = 200), and the rates a round weighs cost more to read than the rest of it.
    waiting = [
        (p, now - p.state.waiting_since)
        for p in peers
        if p.state.peer_interested and p.state.am_choking and not p.state.peer_is_seed
    ]
    while waiting and choker.has_free_slot(unchoked):
        key = choker.pick_waiting(waiting)
        waiting = [w for w in waiting if w[0] is not key]
        key.unchoke()  # type: ignore[attr-defined]
        unchoked += 1
