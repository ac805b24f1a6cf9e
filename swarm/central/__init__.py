"""The central server baseline: one plain HTTP server for the same files (aiohttp), and the
HTTP download client that ``swarm fetch http://...`` uses.

:mod:`swarm.central.server` has :class:`CentralServer` and :func:`serve_central`, over the
HTTP decisions as data in :mod:`swarm.central.protocol` and the zero-copy body sender in
:mod:`swarm.central.sendfile`; :mod:`swarm.central.client` has :func:`http_download`, which
reads the server's answers with :func:`~swarm.central.protocol.read_answer` and keeps its
``.part`` file with :mod:`swarm.central.partfile`.
Their errors, :class:`~swarm.errors.CentralError` and :class:`~swarm.errors.NotFoundError`,
live in :mod:`swarm.errors` with every other (re-exported here for older imports).
"""

from swarm.errors import CentralError, NotFoundError

__all__ = ["CentralError", "NotFoundError"]
