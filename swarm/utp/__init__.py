"""uTP, the micro transport protocol (BEP 29), sans I/O: the packet codec (packet), LEDBAT
congestion control (ledbat), the send side's packets in flight (sender), the receive side's
reorder buffer (receiver), one connection's state machine (connection) and the router of one
UDP socket's datagrams to connections (mux). Imports nothing from the engine but
swarm.errors; no asyncio, no sockets, no clock or randomness of its own (``now`` and a
``random.Random`` are arguments). The asyncio shell is :mod:`swarm.utp_shell`."""
