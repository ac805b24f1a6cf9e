"""Figures of one torrent for a progress display or a summary line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from swarm.picker import PiecePicker


class RateMeter:
    """Bytes per second over the last few seconds (an exponential moving average)."""

    __slots__ = ("_bytes", "rate", "total")

    def __init__(self) -> None:
        self._bytes = 0
        self.rate = 0.0
        self.total = 0

    def add(self, n: int) -> None:
        self._bytes += n
        self.total += n

    def tick(self, dt: float) -> None:
        if dt > 0:
            now = self._bytes / dt
            self.rate = now if now > self.rate else 0.6 * self.rate + 0.4 * now
        self._bytes = 0


class _State(Protocol):
    @property
    def peer_is_seed(self) -> bool: ...


class _Peer(Protocol):
    @property
    def state(self) -> _State: ...


@dataclass(slots=True)
class TorrentStats:
    """Figures a progress display shows."""

    have_pieces: int
    num_pieces: int
    have_bytes: int
    total_bytes: int
    downloaded: int  # every payload byte received
    uploaded: int
    wasted: int  # received but not in the file: duplicates, pieces that failed their hash
    download_rate: float  # from peers and web seeds
    upload_rate: float
    peers: int
    seeds: int
    hash_failures: int
    banned: int
    complete: bool
    web_seed_downloaded: int = 0  # of downloaded, what came from web seeds (BEP 19)
    web_seeds: int = 0  # web seeds in use (not dropped)

    @property
    def peer_downloaded(self) -> int:
        """Of downloaded, what came from peers."""
        return self.downloaded - self.web_seed_downloaded


class _WebSeeds(Protocol):
    @property
    def downloaded(self) -> int: ...

    @property
    def active(self) -> int: ...

    @property
    def rate(self) -> float: ...


class StatsSource(Protocol):
    """What the figures are read from (a torrent controller)."""

    picker: PiecePicker
    downloaded: int
    uploaded: int
    wasted: int
    hash_failures: int
    rates: tuple[float, float]  # bytes/s down and up
    banned_ids: set[bytes]

    @property
    def web_seeds(self) -> _WebSeeds: ...

    @property
    def peers(self) -> Iterable[_Peer]: ...


def snapshot(src: StatsSource) -> TorrentStats:
    """The figures as they stand."""
    picker = src.picker
    peers = list(src.peers)
    return TorrentStats(
        have_pieces=picker.num_have,
        num_pieces=picker.num_pieces,
        have_bytes=picker.have_bytes(),
        total_bytes=picker.total_length,
        downloaded=src.downloaded,
        uploaded=src.uploaded,
        wasted=src.wasted,
        download_rate=src.rates[0] + src.web_seeds.rate,
        upload_rate=src.rates[1],
        peers=len(peers),
        seeds=sum(1 for p in peers if p.state.peer_is_seed),
        hash_failures=src.hash_failures,
        banned=len(src.banned_ids),
        complete=picker.complete,
        web_seed_downloaded=src.web_seeds.downloaded,
        web_seeds=src.web_seeds.active,
    )
