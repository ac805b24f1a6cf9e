"""A small BitTorrent tracker: HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15).

``tracker.state`` holds swarms and peers (pure, clock injected); ``tracker.http`` and
``tracker.udp`` are thin network shells around it. Nothing here imports the peer engine.
"""
