"""What ``swarm compare --web`` shows, as data: each phase's downloaders (progress, rate,
finish time), the swarm's piece map (who got which piece from where) and the rates over time,
then the final table. Pure: fed the children's status lines and the phase's own events, read
as JSON-ready messages for a page (:meth:`LiveRun.messages`), one cursor per page.

A piece's source is the ``peer_id`` of the peer that sent it (or ``web``, a web seed): a
``peer_id`` that is one of the phase's downloaders' is a peer, any other the seed (the one
party of a swarm phase that is not a downloader); the class is taken when a page is told, so
that a downloader's ``peer_id`` reported after a piece it sent still counts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from swarm.status import WEB_SEED, Status

SEED, PEER, WEB = 0, 1, 2  # a piece's source classes, as the page colours them
RATE_WINDOW = 2.0  # seconds over which a rate is taken
HTTP_RATE_WINDOW = 10.0  # the same for an HTTP download, whose bytes come a MiB (a write) at a time
SAMPLE_EVERY = 0.5  # seconds between two points of the rates over time
MAX_POINTS = 2400  # points kept per phase (20 minutes at 0.5 s)


@dataclass(slots=True)
class Downloader:
    """One downloader as the page shows it."""

    total: int  # bytes of the file
    done_bytes: int = 0  # an HTTP download's bytes done (a torrent's: its pieces)
    pieces: int = 0  # verified pieces reported
    downloaded: int = 0  # its bytes received, all sessions (churn starts a new one)
    uploaded: int = 0
    finished: float | None = None  # seconds from 'go' to its verified copy
    _last: tuple[int, int] = (0, 0)  # the session counters last read
    _window: deque[tuple[float, int, int]] = field(default_factory=deque)

    def counters(self, down: int | None, up: int | None) -> None:
        """A session's byte counts; one smaller than before is a new session's (churn)."""
        for k, value in enumerate((down, up)):
            if value is None:
                continue
            last = self._last[k]
            gained = value - last if value >= last else value
            if k == 0:
                self.downloaded += gained
            else:
                self.uploaded += gained
            self._last = (value, self._last[1]) if k == 0 else (self._last[0], value)

    def sample(self, now: float, window: float = RATE_WINDOW) -> tuple[float, float]:
        """Its download and upload rates over the last *window* seconds."""
        w = self._window
        w.append((now, self.downloaded, self.uploaded))
        while len(w) > 2 and now - w[1][0] >= window:
            w.popleft()
        t, down, up = w[0]
        if now - t <= 0:
            return 0.0, 0.0
        return (self.downloaded - down) / (now - t), (self.uploaded - up) / (now - t)


class Phase:
    """One mode at one N: its downloaders, the pieces they got and the rates over time."""

    def __init__(
        self,
        pid: int,
        mode: str,
        n: int,
        size: int,
        num_pieces: int,
        bound: float,
        caps: dict[str, float | None],
    ) -> None:
        self.id, self.mode, self.n, self.size, self.num_pieces = pid, mode, n, size, num_pieces
        self.bound, self.caps = bound, caps
        self.downloaders = [Downloader(size) for _ in range(n)]
        self.pieces: list[tuple[int, int, str]] = []  # (downloader, piece, source)
        self.ids: dict[str, int] = {}  # a downloader's peer_id (hex) -> its number
        self.series: list[tuple[float, float, float, float]] = []  # t, down, server, peers
        self.rates: list[float] = [0.0] * n
        self.t0: float | None = None  # 'go'
        self.ended: float | None = None  # seconds from 'go' to the phase's end
        self.version = 0  # bumped on every change a page should hear of
        self.ignored = 0  # progress parts that named no downloader of ours

    def progress(self, status: Status, first: int) -> None:
        """A progress line of a child whose downloaders are *first*, *first* + 1, ...
        (an entry with no index is *first*'s: a process of one)."""
        for p in status.progress:
            i = p.index if p.index is not None else first
            if not 0 <= i < self.n:
                self.ignored += 1
                continue
            d = self.downloaders[i]
            if p.peer_id:
                self.ids[p.peer_id] = i
            for source, got in p.pieces:
                for piece in got:
                    if piece < self.num_pieces:
                        self.pieces.append((i, piece, source))
                        d.pieces += 1
            if p.total is not None:  # an HTTP download: downloaded is its bytes done
                d.done_bytes = p.downloaded or 0
                d.total = p.total or d.total
                d.counters(p.downloaded, None)
            else:
                d.counters(p.downloaded, p.uploaded)
        self.version += 1

    def done(self, i: int, seconds: float) -> None:
        d = self.downloaders[i]
        d.finished = seconds
        self.version += 1

    def sample(self, now: float) -> None:
        """A point of the rates over time (and each downloader's rate)."""
        if self.t0 is None or self.ended is not None:
            return
        down = up = 0.0
        window = HTTP_RATE_WINDOW if self.mode == "central" else RATE_WINDOW
        for i, d in enumerate(self.downloaders):
            r_down, r_up = d.sample(now, window)
            self.rates[i] = r_down if d.finished is None else 0.0
            down, up = down + r_down, up + r_up
        if len(self.series) < MAX_POINTS:
            self.series.append((round(now - self.t0, 2), down, max(0.0, down - up), up))
        self.version += 1

    def source(self, source: str) -> int:
        if source == WEB_SEED:
            return WEB
        if source in self.ids or self.mode == "hybrid":  # hybrid has no seed
            return PEER
        return SEED

    def fraction(self, d: Downloader) -> float:
        if d.finished is not None:
            return 1.0
        if self.mode == "central":
            return min(1.0, d.done_bytes / d.total) if d.total else 0.0
        return min(1.0, d.pieces / self.num_pieces) if self.num_pieces else 0.0

    def head(self) -> dict[str, Any]:
        """What a page needs to lay the phase out."""
        return {
            "type": "phase",
            "id": self.id,
            "mode": self.mode,
            "n": self.n,
            "size": self.size,
            "num_pieces": self.num_pieces,
            "bound": round(self.bound, 2),
            "caps": self.caps,
        }

    def tick(self, pieces_from: int, series_from: int, now: float) -> dict[str, Any]:
        """The state of every downloader, and the pieces and points from the cursors on."""
        at = self.ended if self.ended is not None else (now - self.t0 if self.t0 else 0.0)
        return {
            "type": "tick",
            "id": self.id,
            "t": round(at, 2),
            "state": "done" if self.ended is not None else "running" if self.t0 else "starting",
            "downloaders": [
                [round(self.fraction(d), 4), round(self.rates[i]), _round(d.finished)]
                for i, d in enumerate(self.downloaders)
            ],
            "pieces": [[d, p, self.source(s)] for d, p, s in self.pieces[pieces_from:]],
            "series": [
                [t, round(a), round(b), round(c)] for t, a, b, c in self.series[series_from:]
            ],
        }


@dataclass(slots=True)
class Cursor:
    """How far one page has been told."""

    seen: dict[int, tuple[int, int, int]] = field(
        default_factory=dict
    )  # id: version, pieces, points
    run: bool = False
    final: bool = False


class LiveRun:
    """The whole run for the page: its settings, its phases in order, the final table."""

    def __init__(self, info: dict[str, Any], clock: Callable[[], float] = time.monotonic) -> None:
        self.info = info  # file, size, rates, modes, peer counts
        self.clock = clock
        self.phases: list[Phase] = []
        self.final: dict[str, Any] | None = None
        self.over = False  # the run has ended (the final state is told) or was stopped

    def phase(
        self,
        mode: str,
        n: int,
        size: int,
        num_pieces: int,
        bound: float,
        caps: dict[str, float | None],
    ) -> Phase:
        p = Phase(len(self.phases), mode, n, size, num_pieces, bound, caps)
        self.phases.append(p)
        return p

    def go(self, phase: Phase) -> None:
        phase.t0 = self.clock()
        phase.version += 1

    def end(self, phase: Phase) -> None:
        if phase.t0 is not None and phase.ended is None:
            phase.sample(self.clock())
            phase.ended = self.clock() - phase.t0
            phase.version += 1

    def sample(self) -> None:
        now = self.clock()
        for p in self.phases:
            p.sample(now)

    def finish(self, final: dict[str, Any]) -> None:
        self.final = final
        self.over = True

    def messages(self, cursor: Cursor) -> list[dict[str, Any]]:
        """What a page has not been told yet; *cursor* moves on."""
        out: list[dict[str, Any]] = []
        if not cursor.run:
            cursor.run = True
            out.append({"type": "run", **self.info})
        now = self.clock()
        for p in self.phases:
            version, pieces, points = cursor.seen.get(p.id, (-1, 0, 0))
            if version == -1:
                out.append(p.head())
            if version != p.version:
                out.append(p.tick(pieces, points, now))
                cursor.seen[p.id] = (p.version, len(p.pieces), len(p.series))
        if self.final is not None and not cursor.final:
            cursor.final = True
            out.append({"type": "final", **self.final})
        return out


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def table_data(
    title: str, columns: Iterable[Any], caption: str, lines: list[str]
) -> dict[str, Any]:
    """The terminal's table (rich's columns, their header and cells) as the page shows it."""
    cols = list(columns)
    cells = [[str(c) for c in col.cells] for col in cols]
    return {
        "title": title,
        "columns": [str(c.header) for c in cols],
        "rows": [list(r) for r in zip(*cells, strict=True)],
        "caption": caption,
        "lines": lines,
    }
