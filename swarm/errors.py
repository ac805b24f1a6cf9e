"""The error types of swarm: one base, a subclass per area, messages written for a user.

The CLI prints ``error: <message>`` and exits with ``exit_code``: 2 for a user's bad input
(the default), 1 for a failure at run time (a network or disk failure).
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error swarm raises on purpose; ``str(err)`` is a one-line message."""

    exit_code: int = 2


class MetainfoError(SwarmError):
    """A .torrent file (or its bencoding) is malformed or unsafe."""


class ProtocolError(SwarmError):
    """A peer or tracker broke the wire protocol; the connection that did it is closed."""

    exit_code = 1


class TrackerError(SwarmError):
    """A tracker could not be reached or answered with a failure."""

    exit_code = 1


class StorageError(SwarmError):
    """Data on disk is missing, does not match the torrent, or cannot be written."""

    exit_code = 1


class UsageError(SwarmError):
    """A command-line value (a size, a rate, a path) is not acceptable."""
