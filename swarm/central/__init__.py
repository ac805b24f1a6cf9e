"""The central server baseline: one plain HTTP server for the same files (aiohttp), and the
HTTP download client that ``swarm fetch http://...`` uses."""

from swarm.errors import SwarmError


class CentralError(SwarmError):
    """The central server or an HTTP download failed at run time."""

    exit_code = 1
