"""The Mainline DHT (BEP 5), sans I/O: the KRPC codec (krpc), the routing table (routing),
announce tokens (tokens), the peer store (store), the iterative lookup (lookup), per-address
rate limits (ratelimit) and the node that ties them together (node). Imports nothing from the
engine but swarm.bencoding and swarm.errors; the asyncio UDP shell around
:class:`~swarm.dht.node.Node` lives elsewhere."""
