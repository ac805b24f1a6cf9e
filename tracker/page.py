"""The tracker's live page: what ``/stats`` says of each swarm, the HTML at ``/`` and the small
script (``/page.js``) that refetches ``/stats`` every second and redraws the tables.

Pure: a :class:`~tracker.state.TrackerState` in, JSON-ready data or text out. Everything a
peer or a .torrent chose (a name, a ``peer_id``) is untrusted: the HTML escapes it
(:func:`html.escape`), the script puts it in the page with ``textContent`` only, and the page
is served with a Content-Security-Policy that runs no inline script. The cost is bounded: at
most :data:`MAX_TORRENTS` torrents and :data:`MAX_PEERS` peers of each are listed, with a
count of the rest, however big the tracker.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping
from typing import Any

from tracker.state import PeerEntry, Swarm, TrackerState

__all__ = ["MAX_PEERS", "MAX_TORRENTS", "SCRIPT", "peer_id_text", "render", "snapshot"]

MAX_TORRENTS = 100
"""Torrents listed (in the order the tracker first saw them); the rest are only counted."""
MAX_PEERS = 50
"""Peers listed per torrent; the rest are only counted."""

_PRINTABLE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def peer_id_text(peer_id: bytes) -> str:
    """A ``peer_id`` (20 arbitrary bytes) as text: printable ASCII as it is, every other byte
    (and ``%``) as ``%xx``, e.g. ``-TR3000-%00%ffabc``."""
    return "".join(chr(b) if b in _PRINTABLE else f"%{b:02x}" for b in peer_id)


def _address(p: PeerEntry) -> str:
    return f"[{p.ip}]:{p.port}" if ":" in p.ip else f"{p.ip}:{p.port}"


def _swarm(
    state: TrackerState, info_hash: bytes, swarm: Swarm, name: str, now: float
) -> dict[str, Any]:
    peers = [
        {
            "peer_id": peer_id_text(p.peer_id),
            "address": _address(p),
            "left": p.left,
            "seconds_since_announce": round(max(0.0, now - p.last_seen), 1),
        }
        for p in itertools.islice(swarm.peers.values(), MAX_PEERS)
    ]
    return {
        "info_hash": info_hash.hex(),
        "name": name,
        "seeders": swarm.seeders,
        "leechers": swarm.leechers,
        "completed": swarm.completed,
        "announces": swarm.announces,
        "announces_per_second": round(state.announces_per_second(swarm=swarm), 1),
        "peers": peers,
        "more_peers": len(swarm.peers) - len(peers),
    }


def snapshot(state: TrackerState, names: Mapping[bytes, str]) -> dict[str, Any]:
    """``/stats``: the tracker's totals (``state.stats()``), then ``swarms``, the first
    :data:`MAX_TORRENTS` torrents each with up to :data:`MAX_PEERS` peers, and
    ``more_torrents``, how many were left out."""
    out: dict[str, Any] = dict(state.stats())
    now = state.clock()
    swarms = [
        _swarm(state, h, s, names.get(h, ""), now)
        for h, s in itertools.islice(state.swarms.items(), MAX_TORRENTS)
    ]
    out["swarms"] = swarms
    out["more_torrents"] = len(state.swarms) - len(swarms)
    return out


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _totals(st: Mapping[str, Any]) -> str:
    counts = ", ".join(
        _counted(int(st[key]), noun)
        for key, noun in (
            ("torrents", "torrent"),
            ("seeders", "seeder"),
            ("leechers", "leecher"),
            ("completed", "completed download"),
        )
    )
    return f"{counts}, {st['announces_per_second']} announces/s."


def _peer_rows(s: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(p['peer_id'])}</code></td>"
        f"<td>{html.escape(p['address'])}</td><td>{p['left']}</td>"
        f"<td>{p['seconds_since_announce']} s ago</td></tr>"
        for p in s["peers"]
    )
    more = f'<p class="more">and {s["more_peers"]} more</p>' if s["more_peers"] else ""
    return (
        '<table class="peers"><tr><th>peer_id</th><th>address</th><th>left</th>'
        f"<th>last announce</th></tr>{rows}</table>{more}"
    )


def render(snap: Mapping[str, Any]) -> str:
    """The page at ``/``: :func:`snapshot`'s data as HTML (readable without the script)."""
    rows = "\n".join(
        f'<tr class="torrent" data-info-hash="{s["info_hash"]}">'
        f'<td class="name">{html.escape(s["name"])}</td>'
        f'<td><code>{s["info_hash"]}</code></td><td class="seeders">{s["seeders"]}</td>'
        f'<td class="leechers">{s["leechers"]}</td><td class="completed">{s["completed"]}</td>'
        f'<td class="rate">{s["announces_per_second"]}</td></tr>\n'
        f'<tr class="peers"><td colspan="6">{_peer_rows(s)}</td></tr>'
        for s in snap["swarms"]
    )
    body = rows or '<tr><td colspan="6">no torrents yet</td></tr>'
    more = snap["more_torrents"]
    more_text = f"and {more} more torrents" if more else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>swarm tracker</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:right}}
td.name{{text-align:left;font-weight:bold}}tr.peers>td{{text-align:left;border:none}}
table.peers{{margin:0 0 1em 2em;font-size:90%}}#status{{color:#666}}</style></head>
<body><h1>swarm tracker</h1>
<p id="totals">{_totals(snap)}</p>
<p id="status">not refreshing (the page's script has not run)</p>
<table id="torrents"><thead><tr><th>name</th><th>info-hash</th><th>seeders</th>
<th>leechers</th><th>completed</th><th>announces/s</th></tr></thead>
<tbody id="swarms">
{body}
</tbody></table><p id="more-torrents">{more_text}</p>
<p>announce: /announce  scrape: /scrape  stats: <a href="/stats">/stats</a></p>
<script src="/page.js"></script></body></html>
"""


SCRIPT = r"""// swarm tracker: refetch /stats every second and redraw, as text only (never as HTML).
"use strict";
(function () {
  var PERIOD = 1000;
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells, tag) {
    var tr = el("tr");
    cells.forEach(function (c) { tr.appendChild(el(tag || "td", c)); });
    return tr;
  }
  function plural(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }
  function peersCell(s) {
    var td = el("td");
    td.colSpan = 6;
    var t = el("table", null, "peers");
    t.appendChild(row(["peer_id", "address", "left", "last announce"], "th"));
    s.peers.forEach(function (p) {
      var tr = row(["", p.address, p.left, p.seconds_since_announce + " s ago"]);
      tr.firstChild.appendChild(el("code", p.peer_id));
      t.appendChild(tr);
    });
    td.appendChild(t);
    if (s.more_peers > 0) td.appendChild(el("p", "and " + s.more_peers + " more", "more"));
    return td;
  }
  function draw(st) {
    document.getElementById("totals").textContent =
      [plural(st.torrents, "torrent"), plural(st.seeders, "seeder"),
       plural(st.leechers, "leecher"), plural(st.completed, "completed download")].join(", ") +
      ", " + st.announces_per_second + " announces/s.";
    var body = document.createElement("tbody");
    body.id = "swarms";
    st.swarms.forEach(function (s) {
      var tr = el("tr", null, "torrent");
      tr.setAttribute("data-info-hash", s.info_hash);
      tr.appendChild(el("td", s.name, "name"));
      var h = el("td");
      h.appendChild(el("code", s.info_hash));
      tr.appendChild(h);
      tr.appendChild(el("td", s.seeders, "seeders"));
      tr.appendChild(el("td", s.leechers, "leechers"));
      tr.appendChild(el("td", s.completed, "completed"));
      tr.appendChild(el("td", s.announces_per_second, "rate"));
      body.appendChild(tr);
      var pr = el("tr", null, "peers");
      pr.appendChild(peersCell(s));
      body.appendChild(pr);
    });
    if (!st.swarms.length) {
      var none = row(["no torrents yet"]);
      none.firstChild.colSpan = 6;
      body.appendChild(none);
    }
    var old = document.getElementById("swarms");
    old.parentNode.replaceChild(body, old);
    document.getElementById("more-torrents").textContent =
      st.more_torrents > 0 ? "and " + st.more_torrents + " more torrents" : "";
  }
  function status(text) { document.getElementById("status").textContent = text; }
  function tick() {
    fetch("/stats", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (st) {
        draw(st);
        status("live: updated " + new Date().toLocaleTimeString());
      })
      .catch(function (e) { status("tracker unreachable (" + e.message + "), retrying"); })
      .then(function () { setTimeout(tick, PERIOD); });
  }
  status("live");
  tick();
})();
"""
"""The page's script: polls ``/stats`` and rebuilds the table with DOM calls and
``textContent`` (no ``innerHTML``), one fetch at a time."""
