"""Web seeds (BEP 19) in the download engine: HTTP servers holding the torrent's files, used
beside the peers. This is the asyncio shell; what to ask and what an answer must be are in
:mod:`swarm.webseed_run` and :mod:`swarm.webseed_plan`.

One :class:`WebSeedSource` per usable URL of a torrent's ``url-list`` (a magnet's ``ws=``
become the url-list of the torrent made from its metadata). It works as a peer that has
every piece and never chokes: it asks the torrent's picker for work with itself as the peer
key, fetches a run of consecutive whole pieces (about :attr:`WebSeedSettings.run_bytes`, one
HTTP range request per file the run touches) on one of its keep-alive connections
(:mod:`swarm.webseed_conn`), reading the answers straight into the piece buffers
(:mod:`swarm.webseed_sink`: each whole block handed on in place, a piece's last one as a
peer's block goes, through ``on_piece``): counted in the
torrent's ``downloaded``, hash-checked, a corrupt piece held against the web seed. Each
connection is a slot; a source takes a new run only when one is free. Its bytes are charged
to the session's download limit as a peer's are.

Policy: prefer peers for pieces the swarm already has, use the web seed for the rare ones.
The web seed is not counted in the picker's availability, so rarest first hands it the
pieces no connected peer has before any other. Alone, or beside a seed, it takes runs while it
has a free slot (libtorrent's choice too: a web seed is a never-choked peer in the normal
picker): someone who lists a fast web seed wants it used. Among other downloaders and no seed
(:meth:`WebSeeds.shared`: N downloaders of one server, compare's hybrid mode) each would pull
the same pieces from it (1.66-1.78 copies of the file from a 1 MiB/s server to 8
downloaders, 1.71-1.82x the bound): there it is asked only for pieces no connected peer has,
one piece at a time on one connection, random among those, and when fewer such pieces are left
than twice the downloaders, a downloader takes one only with a chance (``crowd`` in
:func:`~swarm.webseed_run.pick_run`), so that about one asks for each: 1.18-1.22 copies and
1.23-1.27x the bound at N = 8 (``rare_only`` alone: 1.76 copies, 1.81x). Before any peer is
known, the first run is one piece on one connection. A run is otherwise about a second of
the web seed's measured rate (:class:`~swarm.webseed_run.RunSizer`, at most
:attr:`WebSeedSettings.run_bytes`): fixed 1 MiB runs from a capped web seed beside peers took
4.3-4.7 s and 2-3.5 MiB of duplicates, the runs' last blocks fetched again by peers in
end-game while the web seed still held them. ``rare_only=True`` always keeps it to the pieces
no connected peer has. In end-game it duplicates blocks as a peer does. A web seed that
errs (an HTTP error, a refused connection, a silent server: each request has a time limit) is
backed off and tried again, and dropped after too many failures in a row or corrupt pieces
(:class:`~swarm.webseed_plan.WebSeedHealth`), with the reason in the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from swarm import http_get
from swarm.metainfo import Torrent
from swarm.picker import PiecePicker
from swarm.piece_io import PieceIO
from swarm.webseed_conn import Conn, ConnError, Head, connect, copy_into
from swarm.webseed_plan import (
    BASE_DELAY_SECONDS,
    MAX_CORRUPT,
    MAX_DELAY_SECONDS,
    MAX_FAILURES,
    Problem,
    WebSeedHealth,
    parse_web_seeds,
    plan_span,
    range_url,
)
from swarm.webseed_run import BadResponse, Job, RunSizer, check_response, pick_run
from swarm.webseed_sink import JobSink

__all__ = ["WebSeedSettings", "WebSeedSource", "WebSeeds", "WebSeedTorrent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebSeedSettings:
    """How the engine uses web seeds (tests shorten the times)."""

    connections: int = 2  # per web seed: each carries one run at a time
    run_bytes: int = 16 << 20  # a run: at least a piece, a second of the rate, at most this
    timeout: float = 30.0  # to connect, and the longest silence while an answer comes
    max_redirects: int = 5
    idle_poll: float = 0.25  # seconds between looks for work when the picker had none
    rare_only: bool = False  # new pieces only among those no connected peer has
    base_delay: float = BASE_DELAY_SECONDS
    max_delay: float = MAX_DELAY_SECONDS
    max_failures: int = MAX_FAILURES
    max_corrupt: int = MAX_CORRUPT


class WebSeedTorrent(Protocol):
    """The torrent controller, as its web seeds see it."""

    torrent: Torrent
    picker: PiecePicker
    io: PieceIO
    downloaded: int
    wasted: int

    @property
    def peers(self) -> Collection[Any]: ...

    def on_piece(self, conn: Any, index: int, begin: int, block: bytes | memoryview) -> None: ...


class WebSeeds:
    """A torrent's web seeds: started with it, stopped with it, their figures summed."""

    def __init__(
        self,
        owner: WebSeedTorrent,
        urls: Iterable[str],
        download_delay: Callable[[int], float] = lambda n: 0.0,
        settings: WebSeedSettings | bool = True,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """*settings*: False for no web seeds, True for the defaults."""
        self.owner = owner
        self.settings = settings if isinstance(settings, WebSeedSettings) else WebSeedSettings()
        self.download_delay = download_delay
        self.clock = clock
        found = parse_web_seeds(urls if settings is not False else ())
        for line in found.skipped:
            log.info("%s: %s", owner.torrent.name, line)
        self.sources = [WebSeedSource(self, url) for url in found.urls]
        self._rate = (0.0, clock(), 0)  # bytes/s, when measured, downloaded then

    @property
    def downloaded(self) -> int:
        """Payload bytes received from web seeds (duplicates and corrupt pieces included)."""
        return sum(s.downloaded for s in self.sources)

    @property
    def rate(self) -> float:
        """Bytes/s from web seeds since the last measure (taken when read, a second apart)."""
        rate, at, total = self._rate
        now = self.clock()
        if now - at >= 1.0:
            downloaded = self.downloaded
            rate = (downloaded - total) / (now - at)
            self._rate = (rate, now, downloaded)
        return rate

    def shared(self) -> bool:
        """Whether the web seeds are shared with the connected peers: some are connected and
        none is a seed (downloaders of one web seed, as in compare's hybrid mode). Then a web
        seed is asked only for pieces no connected peer has, a piece at a time, on one
        connection, so that N downloaders fetch different pieces from it rather than each the
        whole file (and once a peer has a piece it comes from the peer)."""
        picker = self.owner.picker
        return self.settings.rare_only or (bool(self.owner.peers) and picker.seeds == 0)

    @property
    def active(self) -> int:
        """Web seeds not dropped."""
        return sum(1 for s in self.sources if s.health.dropped is None)

    def start(self, spawn: Callable[[Any], None]) -> None:
        """Start every source's work as tasks of the torrent (*spawn* owns them); nothing for
        a complete torrent (a seed never connects to its url-list)."""
        if self.owner.picker.complete:
            return
        for source in self.sources:
            spawn(source.run())

    def blame(self, contributors: set[bytes]) -> set[bytes]:
        """A piece failed its hash check: the web seeds among its *contributors* are told; the
        others (peers) are returned."""
        ours = {s.peer_id: s for s in self.sources}
        for pid in contributors & ours.keys():
            ours[pid].corrupt()
        return contributors - ours.keys()


class WebSeedSource:
    """One web seed of one torrent: a peer that has every piece, reached over HTTP."""

    def __init__(self, owner: WebSeeds, url: str) -> None:
        self.owner = owner
        self.url = url
        s = owner.settings
        self.health = WebSeedHealth(url, s.max_failures, s.max_corrupt, s.base_delay, s.max_delay)
        self.peer_id = b"web seed " + url.encode()  # no peer id is this long: never a peer's
        self.downloaded = 0
        self._jobs: list[Job] = []
        self._sizer = RunSizer(owner.settings.run_bytes)
        self._rng = random.Random()
        self._start = self._rng.randrange(1 << 30)  # alone, runs go in order from here

    def __repr__(self) -> str:
        return f"web seed {self.url}"

    # -- what the request policy may tell a peer ------------------------------------------------

    def cancel(self, index: int, begin: int, length: int) -> None:
        """An end-game block came from someone else: ours, if it still comes, is a duplicate."""
        for job in self._jobs:
            job.blocks.discard((index, begin))

    # -- the work -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch runs on :attr:`WebSeedSettings.connections` connections until the torrent is
        complete or the web seed is dropped."""
        async with asyncio.TaskGroup() as group:
            for slot in range(self.owner.settings.connections):
                group.create_task(self._worker(slot))

    def _done(self) -> bool:
        return self.health.dropped is not None or self.owner.owner.picker.complete

    async def _worker(self, slot: int = 0) -> None:
        conn: list[Conn | None] = [None]  # this slot's connection, kept alive between runs
        try:
            await self._work(slot, conn)
        finally:
            if conn[0] is not None:
                conn[0].close()

    async def _work(self, slot: int, conn: list[Conn | None]) -> None:
        owner = self.owner
        picker = owner.owner.picker
        while not self._done():
            now = owner.clock()
            if not self.health.ready(now):
                await asyncio.sleep(max(self.health.next_try - now, 0.0))
                continue
            shared = owner.shared()
            if slot > 0 and (shared or self._sizer.rate == 0):
                # One request at a time when shared (fewer collisions), and until the first
                # answer came (before peers are known, a run of a piece on one connection).
                await asyncio.sleep(owner.settings.idle_poll)
                continue
            run_bytes = picker.piece_length if shared else self._sizer.run_bytes
            crowd = len(owner.owner.peers) - picker.seeds if shared else 0
            draw = self._rng.random()
            start = None if owner.owner.peers else self._start
            blocks = pick_run(
                picker, self, run_bytes, rare_only=shared, crowd=crowd, draw=draw, in_order=start
            )
            if not blocks:  # shared: the last pieces go quickly, look again sooner
                await asyncio.sleep(owner.settings.idle_poll / (5 if shared else 1))
                continue
            job = Job.of(blocks, picker.piece_length)
            self._jobs.append(job)
            started = owner.clock()
            try:
                await self._fetch(conn, job)
                self.health.succeeded()
                self._sizer.done(job.end - job.start, owner.clock() - started)
            except BadResponse as exc:
                self._failed(exc.problem, exc.detail, exc.retry_after)
            except TimeoutError:
                self._failed(Problem.TIMEOUT, f"nothing for {owner.settings.timeout:g} s")
            except (ConnError, http_get.HTTPGetError) as exc:  # refused, reset, not HTTP
                self._failed(Problem.HTTP_ERROR, str(exc)[:200])
            finally:
                self._jobs.remove(job)
                left = job.remaining(picker)
                if left:
                    picker.release(self, left)  # moves picker.freed: peers pick them up

    async def _fetch(self, conn: list[Conn | None], job: Job) -> None:
        """Fetch *job*'s span, file range by file range, on this slot's connection (*conn*,
        made or replaced as needed), its bytes going straight into the pieces."""
        owner = self.owner
        t = owner.owner.torrent
        sink = JobSink(owner.owner, self, job)
        for r in plan_span(t, job.start, job.end):
            if sink.done:
                return  # every block left came from others (end-game), or it was dropped
            if r.padding:
                copy_into(sink, bytes(r.length))
                continue
            url = range_url(self.url, t.name, t, t.multi_file, r.file_index)
            for _ in range(owner.settings.max_redirects + 1):
                target = http_get.target(url, f"Range: {r.header}\r\n", keep_alive=True)
                head = await self._ask(conn, target)
                location = head.headers.get("location")
                if head.status in http_get.REDIRECTS and location is not None:
                    conn[0].close()  # type: ignore[union-attr]  # its body is not read
                    url = http_get.redirect(url, location.encode("latin-1"))[0]
                    continue
                break
            else:
                conn[0].close()  # type: ignore[union-attr]
                more = owner.settings.max_redirects
                raise BadResponse(Problem.HTTP_ERROR, f"too many redirects (more than {more})")
            try:
                sink.skip = check_response(
                    head.status, head.headers, r, t.files[r.file_index].length
                )
            except BadResponse:
                conn[0].close()  # type: ignore[union-attr]  # its body is not read
                raise
            await conn[0].read_body(sink, sink.skip + r.length)  # type: ignore[union-attr]

    async def _ask(self, conn: list[Conn | None], target: http_get.Target) -> Head:
        """Send *target*'s request on the slot's connection (a new one if there is none to the
        same server, or it is closed) and wait for the answer's head; a connection kept alive
        that the server closed meanwhile is replaced once."""
        s = self.owner.settings
        key = (target.https, target.host, target.port)
        for attempt in range(2):
            c = conn[0]
            if c is None or not c.reusable or c.key != key:
                if c is not None:
                    c.close()
                conn[0] = None
                c = conn[0] = await connect(target, s.timeout, self.owner.download_delay)
            reused = c.used
            try:
                return await c.send(target.request)
            except ConnError:
                if attempt or not reused:
                    raise
                c.close()
        raise AssertionError("not reached")

    # -- health -------------------------------------------------------------------------------

    def _failed(self, problem: Problem, detail: str, retry_after: float | None = None) -> None:
        now = self.owner.clock()
        if self.health.dropped is not None:
            return
        if not self.health.ready(now) and problem is not Problem.CORRUPT:
            return  # the other connection's request failed as well: one failure, one back-off
        delay = self.health.failed(now, problem, detail, retry_after)
        if delay is None:
            log.warning("dropping web seed %s: %s", self.url, self.health.dropped)
        else:
            log.info("web seed %s: %s; trying again in %.1f s", self.url, detail, delay)

    def corrupt(self) -> None:
        """A piece it sent failed its hash check."""
        self._failed(Problem.CORRUPT, "a piece failed its hash check")
