"""libtorrent's side of bench/throughput: a seed or a leecher, one process each, as swarm's are.

    lt_pair.py seed T.torrent DATA_DIR
        checks DATA_DIR against the torrent, announces, prints "seeding PORT", then seeds until
        SIGTERM (it then tells the tracker it stopped and exits 0)
    lt_pair.py leech T.torrent OUT_DIR HOST:PORT [TIMEOUT]
        downloads from HOST:PORT and the torrent's tracker, fsyncs its files, exits 0 (1 on a
        time-out, default 600 s)

Runs under /usr/bin/python3 (Debian's python3-libtorrent). libtorrent is set up as its users set
it up to move data fast, by `lt_helper.settings()` in tests/interop/lt_helper.py (one set of
settings for the interop tests and this bench): `lt.high_performance_seed()`, uTP off both ways
(swarm speaks TCP only, so this is TCP against TCP), `aio_threads` and `hashing_threads` 2 (2
cores), `max_queued_disk_bytes` 16 MiB, DHT/LSD/UPnP/NAT-PMP off,
`allow_multiple_connections_per_ip`, listening on 127.0.0.1; peers on 127.0.0.1 are in
libtorrent's local peer class, which has no rate limit. The seed's data is checked before it says
it is seeding (so before run.py starts the clock); the leecher leaves only once its file is on the
disk (`lt_helper.flush`: flush_cache, then fsync), as `swarm fetch` does. run.py times the leecher
process from its start to its exit and takes its CPU time from the kernel (wait4), as for swarm.

With LT_ENCRYPTION=rc4 in the environment (rc4.py), both encryption policies are forced and RC4
is the only level allowed (what qBittorrent's "require encryption" sets). With LT_TRANSPORT=utp
(utp.py), uTP is on and TCP off both ways (`enable_incoming_utp`/`enable_outgoing_utp` on,
`enable_incoming_tcp`/`enable_outgoing_tcp` off), libtorrent's other uTP settings at their
defaults (target delay 100 ms, gain factor 3000, its MTU discovery capped at Ethernet's 1500):
its peers can only talk uTP, what its users get with TCP turned off.
"""

import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))

import libtorrent as lt  # noqa: E402
import lt_helper  # noqa: E402

if os.environ.get("LT_ENCRYPTION") == "rc4":
    _plain_settings = lt_helper.settings

    def _rc4_settings():
        pack = _plain_settings()
        pack["out_enc_policy"] = int(lt.enc_policy.forced)
        pack["in_enc_policy"] = int(lt.enc_policy.forced)
        pack["allowed_enc_level"] = int(lt.enc_level.rc4)
        pack["prefer_rc4"] = True
        return pack

    lt_helper.settings = _rc4_settings

if os.environ.get("LT_TRANSPORT") == "utp":
    _tcp_settings = lt_helper.settings

    def _utp_settings():
        pack = _tcp_settings()
        pack["enable_outgoing_utp"] = True
        pack["enable_incoming_utp"] = True
        pack["enable_outgoing_tcp"] = False
        pack["enable_incoming_tcp"] = False
        return pack

    lt_helper.settings = _utp_settings


def seed(torrent, data_dir):
    # SIGTERM ends the loop below, so the session is closed and the tracker hears "stopped".
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ses, h = lt_helper.start_seed(torrent, data_dir, timeout=300.0)
    try:
        while True:
            time.sleep(1)
    finally:
        del h, ses


def leech(torrent, out_dir, peer, timeout="600"):
    deadline = time.monotonic() + float(timeout)
    ses = lt_helper.session()
    h = lt_helper.add(ses, torrent, out_dir)
    host, port = peer.rsplit(":", 1)
    h.connect_peer((host, int(port)))
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            print(f"error: timed out at {h.status().progress:.3f}", flush=True)
            sys.exit(1)
        lt_helper.wait_alert(ses, lt.torrent_finished_alert, min(deadline, time.monotonic() + 0.5))
    lt_helper.flush(ses, h, max(1.0, deadline - time.monotonic()))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"seed": seed, "leech": leech}[cmd](*args)
