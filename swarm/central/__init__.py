"""The central server baseline: one plain HTTP server for the same files (aiohttp), and the
HTTP download client that ``swarm fetch http://...`` uses.

:mod:`swarm.central.server` has :class:`CentralServer` and :func:`serve_central`;
:mod:`swarm.central.client` has :func:`http_download`.
"""

from swarm.errors import SwarmError

__all__ = ["CentralError", "NotFoundError"]


class CentralError(SwarmError):
    """The central server or an HTTP download failed at run time (a port in use, a refused
    connection, an HTTP error, a transfer cut short)."""

    exit_code = 1


class NotFoundError(CentralError):
    """The server has no file at the URL (HTTP 404): the user's URL is wrong."""

    exit_code = 2
