"""libtorrent downloading a torrent from its web seeds (BEP 19 url-list), and from peers if it
finds any, for bench/webseed/run.py and tests/interop/test_webseed_clients.py. Runs under the
system Python (/usr/bin/python3, Debian's python3-libtorrent).

    lt_webseed.py T.torrent OUT_DIR [--timeout S] [--peer HOST:PORT] [--sources]
                  [--set NAME=VALUE ...]
        -> one JSON line when the download is complete and on the disk, exit 0:
           {"event": "done", "seconds": S, "web_seed_bytes": W, "peer_bytes": P, "settings": {}}
           (exit 1 with {"event": "error", ...} on a time-out)

libtorrent runs with its default settings (`lt.default_settings()`: web seeds are on by
default, `urlseed_pipeline_size` 5, `urlseed_max_request_bytes` 16 MiB, `max_out_request_queue`
500), plus only what a headless client on loopback needs; the JSON line lists them:
`listen_interfaces` 127.0.0.1:0; DHT, LSD, UPnP and NAT-PMP off (no public network here); uTP
off both ways and plain handshakes first (`out_enc_policy` disabled): swarm speaks TCP without
MSE, and libtorrent would otherwise try uTP and then MSE before a plain TCP handshake, a time-out
each. Neither of these touches a web seed's HTTP connection.

`seconds` runs from adding the torrent to the files being on the disk: libtorrent's cache
flushed and each file fsync'ed (as `swarm fetch` fsyncs its files when the last piece is
verified). With `--sources` the per-connection byte counts are sampled every 20 ms
(`get_peer_info`: libtorrent closes a web seed's connection once it is done, so the figures are
lower bounds); without it the script only waits for libtorrent's alerts, so that sampling costs
the timed download nothing.
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt

SETTINGS = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "out_enc_policy": int(lt.enc_policy.disabled),
}
ALERTS = lt.alert.category_t.error_notification | lt.alert.category_t.status_notification


def emit(obj):
    print(json.dumps(obj), flush=True)


def flush_to_disk(ses, h, deadline):
    """libtorrent's cache out to the files (`flush_cache`, then `cache_flushed_alert`), and
    each file fsync'ed."""
    h.flush_cache()
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        if any(isinstance(a, lt.cache_flushed_alert) for a in ses.pop_alerts()):
            break
    else:
        raise TimeoutError("libtorrent did not flush its files in time")
    files = h.torrent_file().files()
    save_path = h.status().save_path
    for i in range(files.num_files()):
        fd = os.open(os.path.join(save_path, files.file_path(i)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent")
    ap.add_argument("out_dir")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--peer", help="HOST:PORT of a peer to dial (again while none is connected)")
    ap.add_argument("--sources", action="store_true", help="sample bytes per source")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a libtorrent setting to change (an experiment); repeatable",
    )
    args = ap.parse_args()

    settings = dict(SETTINGS)
    defaults = lt.default_settings()
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in defaults:
            emit({"event": "error", "message": f"no libtorrent setting {name!r}"})
            sys.exit(2)
        kind = type(defaults[name])
        settings[name] = (value.lower() in ("1", "true")) if kind is bool else kind(value)
    pack = dict(settings)
    pack["alert_mask"] = ALERTS
    ses = lt.session(pack)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.out_dir
    start = time.monotonic()
    deadline = start + args.timeout
    h = ses.add_torrent(params)
    web = {}  # (host, port) -> the most bytes seen from that web seed's connection
    peers = {}
    last_dial = 0.0
    while True:
        st = h.status()
        if st.is_seeding:
            break
        now = time.monotonic()
        if now > deadline:
            emit({"event": "error", "message": f"timed out at {st.progress:.3f}"})
            sys.exit(1)
        if args.peer and now - last_dial > 0.5:
            last_dial = now
            kinds = [pi.connection_type for pi in h.get_peer_info()]
            if lt.peer_info.standard_bittorrent not in kinds:
                host, port = args.peer.rsplit(":", 1)
                h.connect_peer((host, int(port)))
        if args.sources:
            for pi in h.get_peer_info():
                seen = web if pi.connection_type == lt.peer_info.web_seed else peers
                # A peer by its id: an incoming connection's address changes from its
                # ephemeral port to the port the peer listens on once libtorrent learns it.
                key = str(pi.pid) if seen is peers else tuple(pi.ip)
                seen[key] = max(seen.get(key, 0), pi.total_download)
            time.sleep(0.02)
        else:
            ses.wait_for_alert(100)
            ses.pop_alerts()
    try:
        flush_to_disk(ses, h, deadline)
    except TimeoutError as exc:
        emit({"event": "error", "message": str(exc)})
        sys.exit(1)
    seconds = time.monotonic() - start
    emit(
        {
            "event": "done",
            "seconds": round(seconds, 4),
            "web_seed_bytes": sum(web.values()),
            "peer_bytes": sum(peers.values()),
            "libtorrent": lt.__version__,
            "settings": settings,
        }
    )


if __name__ == "__main__":
    main()
