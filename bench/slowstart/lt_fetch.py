"""libtorrent downloading one torrent from one peer it dials, for bench/slowstart/run.py. Runs
under the system Python (Debian's python3-libtorrent), set up by tests/interop/lt_helper.py.

    lt_fetch.py T.torrent OUT_DIR HOST:PORT TIMEOUT   -> prints "done" and exits 0

With no tracker, the peer is the only source: libtorrent is told to dial it again whenever it
has no peer (a dial made while the torrent is still being checked is dropped). The files are
flushed and fsynced before it exits, as swarm fetch does.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))

import lt_helper  # noqa: E402


def main(torrent, out_dir, peer, timeout):
    host, port = peer.rsplit(":", 1)
    ses = lt_helper.session()
    h = lt_helper.add(ses, torrent, out_dir)
    deadline = time.monotonic() + float(timeout)
    last_dial = 0.0
    while True:
        st = h.status()
        if st.is_seeding:
            lt_helper.flush(ses, h)
            print("done", flush=True)
            return
        if time.monotonic() > deadline:
            print(f"error: timed out at {st.progress:.3f}", flush=True)
            sys.exit(1)
        if st.num_peers == 0 and time.monotonic() - last_dial > 0.5:
            h.connect_peer((host, int(port)))
            last_dial = time.monotonic()
        time.sleep(0.02)


if __name__ == "__main__":
    main(*sys.argv[1:])
