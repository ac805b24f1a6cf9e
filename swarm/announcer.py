"""The tracker client's loop for one torrent (BEP 3, BEP 12 tiers): announce, back off, repeat.

:class:`Announcer` asks the torrent's trackers for peers: ``started`` first, then regular
announces at the interval the tracker gives (sooner while a download has few peers),
``completed`` as soon as the download completes, and ``stopped`` when the torrent stops. A
tracker that fails passes the turn to the next (:class:`TierList`); when all fail, the loop
backs off 5, 10, 20 ... 300 s. One announce is :func:`swarm.announce.announce_once`, passed in
so that tests drive the loop without sockets; so are the sleep and the clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from swarm.announce import AnnounceRequest, AnnounceResponse, Peer, announce_once
from swarm.errors import SwarmError, TrackerError, TrackerURLError

__all__ = ["Announcer", "AnnounceOnce", "TierList", "backoff", "next_wait"]

log = logging.getLogger(__name__)

AnnounceOnce = Callable[[str, AnnounceRequest, bytes | None], Awaitable[AnnounceResponse]]
"""One announce to one tracker URL, with the tracker id it gave us (None before it gave
one); :class:`TrackerError` if it fails."""

SOON_SECONDS = 30.0
"""Longest wait between announces while a download has few peers."""
FLOOR_SECONDS = 5.0
"""Shortest wait between announces, whatever a tracker says."""
MAX_BACKOFF_SECONDS = 300.0
STOP_TIMEOUT = 3.0
"""Longest the ``stopped`` announce may hold up a torrent's stop."""


class TierList:
    """BEP 12 tiers: within a tier try URLs in order (shuffled once); a URL that answers moves
    to the front of its tier; a tier whose every URL fails passes to the next tier."""

    def __init__(self, tiers: Sequence[Sequence[str]], rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.tiers = [list(t) for t in tiers if t]
        for t in self.tiers:
            rng.shuffle(t)

    def urls(self) -> list[tuple[int, int, str]]:
        """(tier, index in tier, URL) in the order to try them."""
        return [(ti, ui, u) for ti, tier in enumerate(self.tiers) for ui, u in enumerate(tier)]

    def promote(self, tier: int, index: int) -> None:
        """The URL at (*tier*, *index*) answered: try it first in its tier from now on."""
        t = self.tiers[tier]
        t.insert(0, t.pop(index))


def backoff(fails: int) -> float:
    """Seconds to wait after *fails* announces in a row found no tracker: 5, 10, 20 ... 300."""
    # The exponent is capped: a tracker down for days must not overflow a float.
    return min(MAX_BACKOFF_SECONDS, 5.0 * 2.0 ** min(fails - 1, 16))


def next_wait(resp: AnnounceResponse, want_peers_soon: bool) -> float:
    """Seconds until the next regular announce after *resp*: the tracker's interval, at most
    30 s while we want peers soon, never under its min interval nor under 5 s."""
    wait = float(resp.interval)
    if want_peers_soon:
        wait = min(wait, SOON_SECONDS)
    return max(wait, float(resp.min_interval or 0), FLOOR_SECONDS)


class Announcer:
    """Announces one torrent to its trackers until cancelled; see the module's docstring.

    *request* builds the request for an event ("started", "", "completed", "stopped") with the
    torrent's figures of the moment (left, uploaded, downloaded); *on_peers* takes the peers
    each answer brings; *want_peers_soon* says whether the download is incomplete with few
    peers (then announces come at most 30 s apart). *complete* is read once when :meth:`run`
    starts: a torrent complete from the start announces ``started`` (with left=0, from
    *request*) and never ``completed``. *sleep* and *clock* are asyncio's and the monotonic
    clock unless a test passes its own.
    """

    def __init__(
        self,
        tiers: Sequence[Sequence[str]],
        *,
        request: Callable[[str], AnnounceRequest],
        on_peers: Callable[[list[Peer]], None],
        want_peers_soon: Callable[[], bool],
        rng: random.Random,
        complete: Callable[[], bool],
        announce_once: AnnounceOnce = announce_once,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.tiers = TierList(tiers, rng=rng)
        self._request = request
        self._on_peers = on_peers
        self._want_peers_soon = want_peers_soon
        self._complete = complete
        self._announce_once = announce_once
        self._clock = clock
        self._sleep = sleep
        self._completed = False  # the download has completed (completed() was called)
        self._wake = asyncio.Event()
        self.last_url: str | None = None
        """The tracker that answered last (None: none ever did); ``stopped`` goes there."""
        self.fails = 0
        """Announces in a row that found no tracker."""
        self.next_announce: float | None = None
        """When (on *clock*) the loop next announces, unless :meth:`completed` comes first."""
        self.unusable: set[str] = set()
        """URLs no announce can use (a bad scheme or address): said once, then skipped."""
        self.tracker_ids: dict[str, bytes] = {}
        """The ``tracker id`` each tracker gave, sent back on its next announces (BEP 3)."""

    @property
    def usable(self) -> bool:
        """Whether any tracker URL may yet answer (False with no tracker at all)."""
        return any(url not in self.unusable for _, _, url in self.tiers.urls())

    async def run(self) -> None:
        """Announce until cancelled."""
        event = "started"
        completed_sent = self._complete()
        while True:
            try:
                resp = await self._announce_tiers(event)
            except TrackerError as exc:
                if not self.usable:
                    return  # each unusable URL was named once; nothing left to try
                self.fails += 1
                wait = backoff(self.fails)
                log.warning("tracker: %s (retrying in %.0f s)", exc, wait)
            else:
                self.fails = 0
                if event == "completed":
                    completed_sent = True
                event = ""
                self._on_peers(resp.peers)
                wait = next_wait(resp, self._want_peers_soon())
            self._wake.clear()
            if self._completed and not completed_sent:
                event = "completed"
                if not self.fails:
                    continue  # tell the tracker at once (after a failure: back off first)
            self.next_announce = self._clock() + wait
            await self._wait(wait)
            self.next_announce = None
            if self._completed and not completed_sent:
                event = "completed"

    def completed(self) -> None:
        """The download has just completed: announce ``completed`` now (once)."""
        self._completed = True
        self._wake.set()

    async def stop(self) -> None:
        """Announce ``stopped`` to the tracker that answered last, if one ever did, waiting
        at most 3 s. Call it once :meth:`run` has been cancelled."""
        if self.last_url is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                url = self.last_url
                await self._announce_once(url, self._request("stopped"), self.tracker_ids.get(url))
        except (TimeoutError, SwarmError, OSError) as exc:
            log.debug("tracker: the stopped announce failed: %s", exc)

    async def _announce_tiers(self, event: str) -> AnnounceResponse:
        """Announce *event* to the first tracker that answers, in tier order (BEP 12)."""
        req = self._request(event)
        errors = []
        for ti, ui, url in self.tiers.urls():
            if url in self.unusable:
                continue
            try:
                resp = await self._announce_once(url, req, self.tracker_ids.get(url))
            except TrackerURLError as exc:
                log.warning("tracker: %s (not tried again)", exc)
                self.unusable.add(url)
                errors.append(str(exc))
                continue
            except TrackerError as exc:
                errors.append(str(exc))
                continue
            self.tiers.promote(ti, ui)
            self.last_url = url
            if resp.tracker_id:
                self.tracker_ids[url] = resp.tracker_id
            return resp
        raise TrackerError("; ".join(errors) or "no usable tracker")

    async def _wait(self, seconds: float) -> None:
        """Sleep *seconds*, or less if :meth:`completed` is called meanwhile."""
        if self._wake.is_set():
            return
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()
