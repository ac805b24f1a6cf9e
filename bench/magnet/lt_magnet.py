"""libtorrent fetching a magnet's metadata, for bench/magnet/run.py. Runs under the system Python
(Debian's python3-libtorrent).

    lt_magnet.py INFO_HASH OUT_DIR TIMEOUT HOST:PORT [HOST:PORT ...]
        -> "ready T0" just before add_torrent, "metadata T1 NAME SIZE" at metadata_received_alert
           (T0, T1: time.monotonic(), the system-wide CLOCK_MONOTONIC), then exits 0

libtorrent is set up as its users set up a downloader: `lt.default_settings()`, with what it
needs on loopback and nothing else: it listens on 127.0.0.1; uTP off both ways (the seeds are
dialled over TCP, and libtorrent talks uTP to its own seeds otherwise); DHT, LSD, UPnP and
NAT-PMP off; several connections per IP (every seed is 127.0.0.1); outgoing connections in
plain text first (swarm's seeds speak no MSE; libtorrent would otherwise try RC4 first and fall
back). The torrent is added as a magnet is: add_torrent_params with the info-hash, the seeds'
addresses as peers and a save path, and started at once: without the `paused` and
`auto_managed` flags that add_torrent_params has by default (with them the session's
auto-manager starts the torrent on its next tick, 0.5 s later here, which is a wait for the
queue, not the metadata exchange that this bench times; a client that starts a torrent the
user added does the same). Even so libtorrent dials the peers it was given on its session tick
(`tick_interval`, 500 ms by default), so most of its time here is the wait for that tick: the
environment variable LT_TICK_MS sets `tick_interval` to show it (with 50, the ready figure falls
from about 0.55 s to 0.11 s); the default stays the reference, as libtorrent's users run it.
"""

import os
import sys
import time

import libtorrent as lt


def settings():
    pack = lt.default_settings()
    pack.update(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "allow_multiple_connections_per_ip": True,
            "out_enc_policy": int(lt.enc_policy.disabled),
            "tick_interval": int(os.environ.get("LT_TICK_MS", "500")),
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification,
        }
    )
    return pack


def main(info_hash, out_dir, timeout, *peers):
    ses = lt.session(settings())
    params = lt.add_torrent_params()
    params.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(info_hash)))
    params.save_path = out_dir
    params.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
    params.peers = [(host, int(port)) for host, port in (p.rsplit(":", 1) for p in peers)]
    print(f"ready {time.monotonic():.6f}", flush=True)
    ses.add_torrent(params)
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.metadata_received_alert):
                now = time.monotonic()
                ti = a.handle.torrent_file()
                print(f"metadata {now:.6f} {ti.name()} {len(ti.info_section())}", flush=True)
                return
    print("error: no metadata in time", flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
