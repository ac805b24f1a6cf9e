"""One libtorrent downloader for bench/scale/run.py, under the system Python (Debian's
python3-libtorrent), set up as tests/interop/lt_helper.py sets it up (high_performance_seed,
TCP only, no DHT/LSD/UPnP/NAT-PMP, 127.0.0.1).

    lt_peer.py T.torrent OUT_DIR UPLOAD DOWNLOAD

UPLOAD and DOWNLOAD are its caps in bytes/s (0: none), set both as the session's
upload_rate_limit/download_rate_limit and on its local peer class (every peer here is on
127.0.0.1, and libtorrent exempts local peers from the session's limits otherwise). Prints
"ready" once loaded; on a line from stdin adds the torrent (it finds its peers through the
torrent's tracker, as swarm's downloaders do); prints "done" when it has every piece, with its
files flushed to disk; then seeds until stdin closes or it is killed.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))

import libtorrent as lt  # noqa: E402
import lt_helper  # noqa: E402


def main(torrent, out_dir, up, down):
    up, down = int(up), int(down)
    pack = lt_helper.settings()
    pack.update({"upload_rate_limit": up, "download_rate_limit": down})
    ses = lt.session(pack)
    local = lt.session.local_peer_class_id
    pc = ses.get_peer_class(local)
    pc.update({"upload_limit": up, "download_limit": down})
    ses.set_peer_class(local, pc)
    ti = lt_helper.torrent_info(torrent)
    print("ready", flush=True)
    if not sys.stdin.readline():
        return
    h = lt_helper.add(ses, torrent, out_dir)
    while not h.status().is_seeding:
        time.sleep(0.01)
    lt_helper.flush(ses, h)
    print("done", ti.num_pieces(), flush=True)
    sys.stdin.read()  # seed until compare's bench closes our stdin


if __name__ == "__main__":
    main(*sys.argv[1:])
