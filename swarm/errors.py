"""The error types of swarm, all of them: one base, a subclass per area, messages for a user.

The CLI prints ``error: <message>`` and exits with ``exit_code``: 2 for a user's bad input
(the default), 1 for a failure at run time (a network or disk failure). The tracker server
(the top-level ``tracker`` package) stands on its own and keeps its request errors to itself;
what reaches a swarm user from it is wrapped in :class:`TrackerStartError`.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error swarm raises on purpose; ``str(err)`` is a one-line message."""

    exit_code: int = 2


class UsageError(SwarmError):
    """A command-line value (a size, a rate, a path) is not acceptable."""


class BencodeError(SwarmError):
    """Bytes that are not strict, canonical bencoding (BEP 3)."""


class MetainfoError(SwarmError):
    """A .torrent file is malformed or unsafe (its bencoding, or what the bencoding says)."""


class ProtocolError(SwarmError):
    """A peer broke the wire protocol; the connection that did it is closed."""

    exit_code = 1


class TrackerError(SwarmError):
    """A tracker could not be reached or answered with a failure."""

    exit_code = 1


class TrackerURLError(TrackerError):
    """A tracker URL that no announce can use (an unknown scheme, no host, no UDP port)."""


class UDPTransactionMismatch(TrackerError):
    """A UDP tracker datagram for another transaction (BEP 15): skipped, not a failure."""


class TrackerStartError(SwarmError):
    """The tracker server could not start (a port in use, an address we cannot bind)."""

    exit_code = 1


class StorageError(SwarmError):
    """Data on disk is missing, does not match the torrent, or cannot be written."""

    exit_code = 1


class ExistingDataError(StorageError):
    """Files at the torrent's names hold other data, and the user asked not to overwrite it."""

    exit_code = 2


class SessionError(SwarmError):
    """The peer session could not start (for example, the port is in use)."""

    exit_code = 1


class CentralError(SwarmError):
    """The central server or an HTTP download failed at run time (a port in use, a refused
    connection, an HTTP error, a transfer cut short)."""

    exit_code = 1


class NotFoundError(CentralError):
    """The server has no file at the URL (HTTP 404): the user's URL is wrong."""

    exit_code = 2


class CompareError(SwarmError):
    """An experiment of ``swarm compare`` failed at run time (a process died, a copy differs)."""

    exit_code = 1


class MagnetError(SwarmError):
    """A magnet URI (BEP 9) that names no torrent swarm can fetch: not a magnet, no info-hash,
    a malformed one, or a v2 (btmh) magnet."""
