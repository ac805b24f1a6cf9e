"""Drive libtorrent for the interop tests and bench/throughput. Runs under the system Python
(/usr/bin/python3), which has Debian's python3-libtorrent; the project's Python may not.

    lt_helper.py info T.torrent                -> JSON: info_hash, length, pieces, files
    lt_helper.py create PATH OUT.torrent [URL] -> writes a torrent made by libtorrent
    lt_helper.py seed T.torrent DATA_DIR       -> checks the data, then seeds until killed;
                                                  prints "seeding PORT"
    lt_helper.py download T.torrent OUT_DIR [TIMEOUT [HOST:PORT]]
                                               -> downloads, flushes the files to disk (fsync),
                                                  prints "done" and exits 0

libtorrent is set up as its users set it up to move data fast (`session()`): it starts from
`lt.high_performance_seed()`; uTP is off both ways (swarm speaks TCP only, and libtorrent talks
uTP to itself otherwise, which costs it some 30x on loopback); 2 disk (`aio_threads`) and 2
hashing threads for a 2-core machine; up to 16 MiB queued for the disk (`max_queued_disk_bytes`,
as swarm bounds its pending pieces); DHT, LSD, UPnP and NAT-PMP off; several connections per IP
allowed (every peer here is 127.0.0.1); it listens on 127.0.0.1 only. Peers on 127.0.0.1 are in
libtorrent's local peer class, which has no rate limit, and no global limit is set.
"""

import json
import os
import sys
import time

import libtorrent as lt


def settings():
    """The session settings described in the module docstring."""
    pack = lt.high_performance_seed()
    pack.update(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "aio_threads": 2,
            "hashing_threads": 2,
            "max_queued_disk_bytes": 16 << 20,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "allow_multiple_connections_per_ip": True,
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification,
            "announce_to_all_trackers": True,
            "min_announce_interval": 1,
            "user_agent": "libtorrent-interop",
            # libtorrent dials plain first on its defaults anyway; the encryption interop tests
            # (test_mse_engine.py) set their own policies, these keep the plain path.
            "out_enc_policy": int(lt.enc_policy.disabled),
            "in_enc_policy": int(lt.enc_policy.enabled),
        }
    )
    return pack


def session():
    return lt.session(settings())


def torrent_info(path):
    return lt.torrent_info(path)


def cmd_info(path):
    ti = torrent_info(path)
    files = ti.files()
    print(
        json.dumps(
            {
                "info_hash": str(ti.info_hash()),
                "length": ti.total_size(),
                "pieces": ti.num_pieces(),
                "piece_length": ti.piece_length(),
                "files": [
                    {"path": files.file_path(i).replace(os.sep, "/"), "length": files.file_size(i)}
                    for i in range(files.num_files())
                ],
            }
        )
    )


def cmd_create(path, out, url=None):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    t = lt.create_torrent(
        fs, 0, flags=lt.create_torrent.v1_only if hasattr(lt.create_torrent, "v1_only") else 0
    )
    if url:
        t.add_tracker(url)
    lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(t.generate()))


def add(ses, torrent, save_path, seed_mode=False):
    params = lt.add_torrent_params()
    params.ti = torrent_info(torrent)
    params.save_path = save_path
    if seed_mode:
        params.flags |= lt.torrent_flags.seed_mode
    return ses.add_torrent(params)


def wait_alert(ses, kind, deadline):
    """Pop alerts until one of type *kind* comes (returned) or *deadline* passes (None)."""
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, kind):
                return a
    return None


def flush(ses, h, timeout=60.0):
    """Put the torrent's files on the disk before leaving, as swarm does (it fsyncs its files
    when the last piece is verified): libtorrent writes its cache out and closes (unmaps) the
    files (`flush_cache`, then `cache_flushed_alert`), and each file is fsync'ed."""
    h.flush_cache()
    if wait_alert(ses, lt.cache_flushed_alert, time.monotonic() + timeout) is None:
        raise RuntimeError("libtorrent did not flush its files in time")
    files = h.torrent_file().files()
    save_path = h.status().save_path
    for i in range(files.num_files()):
        if files.file_flags(i) & lt.file_storage.flag_pad_file:
            continue  # BEP 47 pad files are never written, by libtorrent or swarm
        fd = os.open(os.path.join(save_path, files.file_path(i)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def start_seed(torrent, data_dir, timeout=120.0):
    """A session seeding *torrent* from *data_dir*, its data checked and announced; prints
    "seeding PORT" (exits 1 if the data does not check out within *timeout*)."""
    ses = session()
    h = add(ses, torrent, data_dir)
    h.force_recheck()
    deadline = time.monotonic() + timeout
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            print("error: data did not check out", flush=True)
            sys.exit(1)
        time.sleep(0.02)
    h.force_reannounce()
    print(f"seeding {ses.listen_port()}", flush=True)
    return ses, h


def cmd_seed(torrent, data_dir):
    ses, h = start_seed(torrent, data_dir)
    while True:
        time.sleep(1)


def cmd_download(torrent, out_dir, timeout="120", peer=None):
    ses = session()
    h = add(ses, torrent, out_dir)
    if peer:
        host, port = peer.rsplit(":", 1)
        h.connect_peer((host, int(port)))
    deadline = time.time() + float(timeout)
    last_announce = 0.0
    while True:
        st = h.status()
        if st.is_seeding:
            flush(ses, h)
            print("done", flush=True)
            return
        if time.time() > deadline:
            print(f"error: timed out at {st.progress:.3f}", flush=True)
            sys.exit(1)
        if time.time() - last_announce > 2 and st.num_peers == 0:
            h.force_reannounce()
            last_announce = time.time()
        time.sleep(0.05)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"info": cmd_info, "create": cmd_create, "seed": cmd_seed, "download": cmd_download}[cmd](*args)
