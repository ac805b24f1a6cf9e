"""The tracker client's loop (BEP 3, 12, 15): announce, back off, re-announce.

Provisional port of the loop that lived in the torrent controller; the tracker work replaces
it with the tested version.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp

from swarm.announce import AnnounceRequest, AnnounceResponse, TierList, announce_once
from swarm.errors import SwarmError, TrackerError

log = logging.getLogger(__name__)

Peer = tuple[str, int]


class Announcer:
    def __init__(
        self,
        tiers: list[list[str]] | tuple[tuple[str, ...], ...],
        *,
        request: Callable[[str], AnnounceRequest],
        on_peers: Callable[[list[Peer]], None],
        want_peers_soon: Callable[[], bool],
        rng: random.Random,
        complete: Callable[[], bool] = lambda: False,
        announce_once: Callable[
            [aiohttp.ClientSession, str, AnnounceRequest], Awaitable[AnnounceResponse]
        ] = announce_once,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tiers = TierList(tiers, rng=rng)
        self.request = request
        self.on_peers = on_peers
        self.want_peers_soon = want_peers_soon
        self.complete = complete
        self._announce_once = announce_once
        self._now: asyncio.Event | None = None
        self._completed = False
        self._last_url: str | None = None

    async def run(self) -> None:
        self._now = asyncio.Event()
        event = "started"
        completed_sent = self.complete()
        fails = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            while True:
                try:
                    resp = await self._announce_tiers(http, event)
                except TrackerError as exc:
                    fails += 1
                    wait = min(300.0, 5.0 * 2 ** (fails - 1))
                    log.warning("tracker: %s (retrying in %.0f s)", exc, wait)
                else:
                    fails = 0
                    if event == "completed":
                        completed_sent = True
                    event = ""
                    self.on_peers(resp.peers)
                    wait = float(resp.interval)
                    if self.want_peers_soon():
                        wait = min(wait, 30.0)
                    wait = max(wait, float(resp.min_interval or 0), 5.0)
                self._now.clear()
                if self._completed and not completed_sent:
                    event = "completed"
                    if not fails:
                        continue
                try:
                    async with asyncio.timeout(wait):
                        await self._now.wait()
                except TimeoutError:
                    pass
                if self._completed and not completed_sent:
                    event = "completed"

    async def _announce_tiers(self, http: aiohttp.ClientSession, event: str) -> AnnounceResponse:
        req = self.request(event)
        errors = []
        for ti, ui, url in self.tiers.urls():
            try:
                resp = await self._announce_once(http, url, req)
            except TrackerError as exc:
                errors.append(str(exc))
                continue
            self.tiers.promote(ti, ui)
            self._last_url = url
            return resp
        raise TrackerError("; ".join(errors) or "no tracker")

    def completed(self) -> None:
        self._completed = True
        if self._now is not None:
            self._now.set()

    async def stop(self) -> None:
        if self._last_url is None:
            return
        try:
            async with asyncio.timeout(3):
                async with aiohttp.ClientSession() as http:
                    await self._announce_once(http, self._last_url, self.request("stopped"))
        except (TimeoutError, SwarmError, OSError):
            pass
