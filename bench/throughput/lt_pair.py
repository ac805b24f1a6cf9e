"""libtorrent seed -> libtorrent leecher on loopback (run by /usr/bin/python3).

    lt_pair.py T.torrent DATA_DIR OUT_DIR   -> prints one JSON line:
        {"seconds", "seed_cpu", "leech_cpu"}

Seed and leecher are separate processes (like swarm's), each a libtorrent session.
"""

import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))


def child_seed(torrent, data_dir):
    import lt_helper

    lt_helper.cmd_seed(torrent, data_dir)


def main(torrent, data_dir, out_dir):
    seed = subprocess.Popen(
        [sys.executable, __file__, "--seed", torrent, data_dir], stdout=subprocess.PIPE, text=True
    )
    try:
        line = seed.stdout.readline()
        port = int(line.split()[1])
        import libtorrent as lt
        import lt_helper

        ses = lt_helper.session()
        ses.apply_settings({"cache_size": 1024})
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        h = lt_helper.add(ses, torrent, out_dir)
        # Count from the first connection, so libtorrent's start-up delay is not charged.
        h.connect_peer(("127.0.0.1", port))
        while h.status().num_peers == 0:
            time.sleep(0.005)
        t0 = time.monotonic()
        while not h.status().is_seeding:
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        leech_cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        with open(f"/proc/{seed.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        seed_cpu = (int(fields[11]) + int(fields[12])) / tick
        del lt
        print(json.dumps({"seconds": seconds, "seed_cpu": seed_cpu, "leech_cpu": leech_cpu}))
    finally:
        seed.kill()
        seed.wait()


if __name__ == "__main__":
    if sys.argv[1] == "--seed":
        child_seed(sys.argv[2], sys.argv[3])
    else:
        main(*sys.argv[1:4])
