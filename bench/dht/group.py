"""A group of swarm DHT nodes in one process, for bench/dht's loopback network: each a
:class:`swarm.dht_shell.DhtNode` on its own UDP socket on 127.0.0.1, all in one event loop
(200 nodes as a few processes fit 2 cores; 200 interpreters would not).

    python group.py ROUTER COUNT SEED

The nodes bootstrap from ROUTER (HOST:PORT); then ``ready`` and their addresses are printed.
Commands, one JSON line each on stdin, each answered with one JSON line on stdout:

    {"announce": [[NODE, INFO_HASH_HEX, PORT], ...]}  -> {"announced": [NODES_TOLD, ...]}
    {"lookups": [[NODE, INFO_HASH_HEX, PORT], ...], "parallel": P}
        -> {"lookups": [[SECONDS, QUERIES, HOPS, FOUND, INFO_HASH_HEX], ...]}

A lookup is a ``get_peers`` of the node NODE (its index in this group), timed from the call
to the end of the lookup (the node's own clock, in this process); QUERIES is what the lookup
sent (the Search's count); FOUND whether 127.0.0.1:PORT was among the peers; HOPS the length
of the chain of answers that led to the first one carrying peers (a node from our own table
that has them is 1 hop), counted by a subclass of the lookup that only watches (installed
here, in this process only). The per-IP rate limit is lifted: every node shares 127.0.0.1.
The nodes stop at the end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

import swarm.dht.node
from swarm.dht.krpc import Address, NodeInfo
from swarm.dht.lookup import Lookup
from swarm.dht_nodes import parse_node_address
from swarm.dht_shell import DhtNode

RATE = 1e6
TIMEOUT = 10.0


class HopLookup(Lookup):
    """A lookup that also counts hops: a node heard of in an answer at depth d is at d + 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.depth: dict[Address, int] = {}
        self._adding = 0
        self.hops: int | None = None

    def add(self, node_id: bytes | None, addr: Address) -> None:
        self.depth.setdefault(addr, self._adding)
        super().add(node_id, addr)

    def answered(
        self,
        addr: Address,
        node_id: bytes,
        nodes: tuple[NodeInfo, ...] | None = None,
        values: tuple[Address, ...] | None = None,
        token: bytes | None = None,
    ) -> None:
        self._adding = self.depth.get(addr, 0) + 1
        try:
            super().answered(addr, node_id, nodes, values, token)
        finally:
            if values and self.hops is None:
                self.hops = self._adding
            self._adding = 0


setattr(swarm.dht.node, "Lookup", HopLookup)  # noqa: B010 - Node makes its lookups from it


async def announce(dn: DhtNode, info_hash: bytes, port: int) -> int:
    """Announce *info_hash* on *port*; to how many nodes ``announce_peer`` went."""
    search, out = dn.node.announce(info_hash, port, dn.clock())
    await dn._wait(search, out, TIMEOUT)
    return len(search.announced_to)


async def lookup(dn: DhtNode, info_hash: bytes, port: int) -> list[Any]:
    began = time.monotonic()
    search, out = dn.node.get_peers(info_hash, dn.clock())
    # the shell's own wait, so as to keep the Search (its query count) as well as the peers
    peers = await dn._wait(search, out, TIMEOUT)
    took = time.monotonic() - began
    hops = search.lookup.hops if isinstance(search.lookup, HopLookup) else None
    return [took, search.queries, hops, ("127.0.0.1", port) in peers]


async def worker(nodes: list[DhtNode], todo: list[Any], results: list[list[Any]]) -> None:
    """Take lookups from *todo* one at a time until none is left."""
    while todo:
        i, h, p = todo.pop(0)
        results.append([*await lookup(nodes[i], bytes.fromhex(h), p), h])


async def main(router: str, count: int, seed: int) -> None:
    rng = random.Random(seed)
    nodes = [
        DhtNode(rng=random.Random(rng.getrandbits(64)), query_rate=RATE, query_burst=RATE)
        for _ in range(count)
    ]
    try:
        for dn in nodes:
            await dn.start("127.0.0.1", 0)
        routers = [parse_node_address(router)]
        await asyncio.gather(*(dn.bootstrap(routers, timeout=TIMEOUT) for dn in nodes))
        print("ready " + " ".join(f"{h}:{p}" for h, p in (dn.address for dn in nodes)), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            cmd = json.loads(line)
            if "announce" in cmd:
                jobs = [announce(nodes[i], bytes.fromhex(h), p) for i, h, p in cmd["announce"]]
                print(json.dumps({"announced": await asyncio.gather(*jobs)}), flush=True)
            elif "lookups" in cmd:
                todo, results = list(cmd["lookups"]), list[list[Any]]()
                workers = (worker(nodes, todo, results) for _ in range(cmd.get("parallel", 1)))
                await asyncio.gather(*workers)
                print(json.dumps({"lookups": results}), flush=True)
    finally:
        for dn in nodes:
            await dn.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
