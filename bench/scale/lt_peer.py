"""One libtorrent downloader for bench/scale/run.py, under the system Python (Debian's
python3-libtorrent), set up as tests/interop/lt_helper.py sets it up (high_performance_seed,
TCP only, no DHT/LSD/UPnP/NAT-PMP, on 127.0.0.1 unless told another address).

    lt_peer.py T.torrent OUT_DIR UPLOAD DOWNLOAD [ADDRESS]

UPLOAD and DOWNLOAD are its caps in bytes/s (0: none, and no limit is set at all), set both as
the session's upload_rate_limit/download_rate_limit and on its local peer class (every peer
here is on 127.0.0.1, and libtorrent exempts local peers from the session's limits otherwise).
ADDRESS: the address it listens on, 127.0.0.1 by default (a lab host's address under
``run.py --lab netns``, where the kernel caps its links and UPLOAD and DOWNLOAD are 0). Prints
"ready" once loaded; on a line from stdin adds the torrent (it finds its peers through the
torrent's tracker, as swarm's downloaders do); prints "done" when it has every piece, with its
files flushed to disk; then seeds until stdin closes or it is killed.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))

import libtorrent as lt  # noqa: E402
import lt_helper  # noqa: E402


def main(torrent, out_dir, up, down, address="127.0.0.1"):
    up, down = int(up), int(down)
    pack = lt_helper.settings()
    pack["listen_interfaces"] = f"{address}:0"
    if up or down:
        pack.update({"upload_rate_limit": up, "download_rate_limit": down})
    # Under a rate limit libtorrent hands out quota once a tick (500 ms by default), and
    # every write waits for it, a handshake or a request too: from one swarm seed, one
    # libtorrent downloader got its first block 1.5 s after connecting (5.5 s for the 4 MiB
    # sample at 1 MiB/s). Its manual: "Setting this to a low value (around 100) means higher
    # resolution bandwidth quota distribution": 100 ms, 4.6 s.
    pack["tick_interval"] = int(os.environ.get("LT_TICK_MS", "100"))
    ses = lt.session(pack)
    if up or down:
        local = lt.session.local_peer_class_id
        pc = ses.get_peer_class(local)
        pc.update({"upload_limit": up, "download_limit": down})
        ses.set_peer_class(local, pc)
    ti = lt_helper.torrent_info(torrent)
    print("ready", flush=True)
    if not sys.stdin.readline():
        return
    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = out_dir
    # Started at once, as a user's client starts a torrent they add: not paused and not
    # left to the session's queue (add_torrent_params' defaults are both).
    params.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
    h = ses.add_torrent(params)
    while not h.status().is_seeding:
        time.sleep(0.01)
    lt_helper.flush(ses, h)
    print("done", ti.num_pieces(), flush=True)
    sys.stdin.read()  # seed until compare's bench closes our stdin


if __name__ == "__main__":
    main(*sys.argv[1:])
