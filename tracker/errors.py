"""The tracker's own error types: it stands apart from swarm and imports nothing from it.

:class:`RequestError` is an announce or scrape the tracker refuses; its message goes back to
the client (a bencoded ``failure reason`` over HTTP, an error packet over UDP, BEP 15).
:class:`StartError` is raised by :meth:`tracker.server.Tracker.start` with a one-line message
for a user; a front end (``swarm tracker``) wraps it into its own error type.
"""

from __future__ import annotations

__all__ = ["PacketError", "RequestError", "StartError", "TorrentFileError"]


class RequestError(Exception):
    """A request the tracker refuses; ``str(err)`` is the failure reason the client is sent."""


class StartError(Exception):
    """The tracker could not start (a port in use, an address it cannot bind)."""


class PacketError(ValueError):
    """A UDP tracker packet (BEP 15) that is too short or malformed to read."""


class TorrentFileError(ValueError):
    """A .torrent file the tracker cannot read a name from (``str(err)`` says why, for a user)."""
