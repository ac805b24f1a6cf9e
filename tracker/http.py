"""The HTTP shell of the tracker (aiohttp's low-level server, for speed): /announce,
/scrape, /stats (JSON) and / (an HTML page listing the swarms). Every malformed announce
gets HTTP 200 with a bencoded failure reason, which is what clients read.
"""

from __future__ import annotations

import html
import json
import logging

from aiohttp import web

from swarm.errors import TrackerError
from tracker import protocol
from tracker.state import TrackerState

log = logging.getLogger(__name__)

_PLAIN = "text/plain"


class HTTPTracker:
    """Request handler for one :class:`TrackerState`."""

    def __init__(
        self, state: TrackerState, interval: int, min_interval: int, allow_ip_param: bool = False
    ) -> None:
        self.state = state
        self.interval = interval
        self.min_interval = min_interval
        self.allow_ip_param = allow_ip_param

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        try:
            if path == "/announce":
                return self._bencoded(self.announce(request))
            if path == "/scrape":
                return self._bencoded(self.scrape(request))
            if path == "/stats":
                return web.Response(
                    text=json.dumps(self.state.stats()), content_type="application/json"
                )
            if path == "/":
                return web.Response(text=self.page(), content_type="text/html")
        except Exception:  # never a 5xx for a client: log it, answer with a failure
            log.exception("tracker request failed")
            return self._bencoded(protocol.failure("internal tracker error"))
        return web.Response(status=404, text="not found\n", content_type=_PLAIN)

    @staticmethod
    def _bencoded(body: bytes) -> web.Response:
        return web.Response(body=body, content_type=_PLAIN)

    @staticmethod
    def _raw_query(request: web.BaseRequest) -> bytes:
        # The request target exactly as sent: info_hash and peer_id are percent-encoded bytes.
        _, _, query = request.raw_path.partition("?")
        return query.encode("latin-1", "replace")

    def announce(self, request: web.BaseRequest) -> bytes:
        query = self._raw_query(request)
        try:
            a, compact, no_peer_id = protocol.parse_announce(
                query, request.remote or "", allow_ip_param=self.allow_ip_param
            )
            result = self.state.announce(a)
        except TrackerError as exc:
            return protocol.failure(str(exc))
        return protocol.announce_response(
            result, self.interval, self.min_interval, compact, no_peer_id
        )

    def scrape(self, request: web.BaseRequest) -> bytes:
        query = self._raw_query(request)
        try:
            hashes = protocol.parse_scrape(query)
        except TrackerError as exc:
            return protocol.failure(str(exc))
        return protocol.scrape_response(self.state.scrape(hashes))

    def page(self) -> str:
        st = self.state.stats()
        rows = []
        for info_hash, swarm in list(self.state.swarms.items())[:500]:
            rows.append(
                f"<tr><td><code>{info_hash.hex()}</code></td><td>{swarm.seeders}</td>"
                f"<td>{swarm.leechers}</td><td>{swarm.completed}</td></tr>"
            )
        body = "\n".join(rows) or '<tr><td colspan="4">no torrents yet</td></tr>'
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>swarm tracker</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:right}}</style></head>
<body><h1>swarm tracker</h1>
<p>{st["torrents"]} torrents, {st["seeders"]} seeders, {st["leechers"]} leechers,
{st["completed"]} completed downloads, {st["announces_per_second"]} announces/s.</p>
<table><tr><th>info-hash</th><th>seeders</th><th>leechers</th><th>completed</th></tr>
{body}
</table><p>{html.escape("announce: /announce  scrape: /scrape  stats: /stats")}</p></body></html>
"""
