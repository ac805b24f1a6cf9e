"""A small BitTorrent tracker: HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15).

``tracker.state`` holds swarms and peers (pure, clock injected); ``tracker.protocol`` reads
HTTP announces and writes the answers; ``tracker.http`` and ``tracker.udp`` are thin network
shells around them, and ``tracker.listener`` accepts TCP connections and answers a one-shot
request (``Connection: close``) without the event loop's transports; ``tracker.page`` is the
live page at ``/`` and its ``/stats`` data; ``tracker.torrent_file`` reads a .torrent's
info-hash and name for that page; ``tracker.server`` starts them all. ``tracker.codec`` is
what a tracker and its clients both speak (UDP packets, events, compact peers): swarm's
tracker client imports it from here. The package stands on its own: it imports nothing from
``swarm`` and has its own errors (``tracker.errors``).
"""
