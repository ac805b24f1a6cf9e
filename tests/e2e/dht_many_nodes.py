"""Many Mainline DHT nodes in one process, for the loopback tests: one
:class:`swarm.dht_shell.DhtNode` per node id given, each on its own UDP socket on 127.0.0.1
(OS-chosen ports), all in one event loop, so that 50 nodes cost one interpreter's start.

    python dht_many_nodes.py ROUTER ID_HEX [ID_HEX ...]

The nodes join through ROUTER (HOST:PORT) one after another, as nodes join a DHT that runs;
then one line ``nodes HOST:PORT ...`` (in the order of the ids) is printed. Each line
``stats`` on stdin is answered with one JSON line: the peers stored and the table sizes of
the nodes. The nodes stop at the end of stdin (or when the process is killed, which is how
a test takes them all away at once).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from swarm.dht_nodes import parse_node_address
from swarm.dht_shell import DhtNode

# All the nodes of a test share 127.0.0.1: a per-IP limit meant for the Internet would drop
# most of their queries to each other.
RATE = 2000.0


async def main(router: str, ids: list[bytes]) -> None:
    nodes = [
        DhtNode(rng=random.Random(node_id), node_id=node_id, query_rate=RATE, query_burst=RATE)
        for node_id in ids
    ]
    try:
        for node in nodes:
            await node.start("127.0.0.1", 0)
        routers = [parse_node_address(router)]
        # one at a time, not all at once: nodes that all ask a fresh router at once find it
        # knowing nobody, join with the router alone, and the nodes nearest an id may never
        # learn of each other (a lookup then ends at the wrong ones: issue 20); each that joins
        # a DHT that runs finds its neighbours, and they learn of it
        for node in nodes:
            await node.bootstrap(routers, timeout=10.0)
        print("nodes " + " ".join(f"{h}:{p}" for h, p in (n.address for n in nodes)), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "stats":
                stats = [node.node.stats() for node in nodes]
                peers = sum(int(s["peers"]) for s in stats)
                print(json.dumps({"peers": peers, "tables": [s["nodes"] for s in stats]}))
                sys.stdout.flush()
    finally:
        for node in nodes:
            await node.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [bytes.fromhex(x) for x in sys.argv[2:]]))
