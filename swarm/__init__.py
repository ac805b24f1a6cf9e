"""swarm: a small BitTorrent system beside a central file server.

The library API lives in the modules (``swarm.metainfo``, ``swarm.session``, ...); the
``swarm`` command (``swarm.cli``) is a thin layer over it.
"""

from swarm import native

__version__ = "0.1.0"

native.install()  # the mypyc-compiled hot path, if built from these very sources
