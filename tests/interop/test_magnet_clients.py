"""Real clients and swarm by magnet (BEP 9) and by PEX (BEP 11), on 127.0.0.1.

- libtorrent, given only the info-hash and a swarm seed's address, gets the metadata from the
  seed by ut_metadata and then the data;
- aria2c, given only a magnet (aria2 does not dial a magnet's ``x.pe`` peers, so the magnet
  names a ``swarm tracker`` in ``tr``), gets the metadata and the data from a swarm seed;
- a swarm leecher connected only to a libtorrent seed learns from the seed's ut_pex messages
  of a third peer (a libtorrent leecher) and dials it.

Every wait is bounded; every process is stopped by its PID (the ``procs`` fixture).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, aria2_argv, digest, seed_port, start_seed, swarm_run

pytestmark = pytest.mark.interop

# libtorrent (as lt_helper.session() sets it up) adding a magnet as its users do:
# add_torrent_params with the info-hash, one peer and a save path, nothing else. Prints
# "metadata" when metadata_received_alert comes, "done" once every piece is verified and the
# files are flushed; exits 1 at the deadline.
LT_MAGNET = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import libtorrent as lt
import lt_helper
info_hash, out, peer, timeout = sys.argv[2:6]
ses = lt_helper.session()
params = lt.add_torrent_params()
params.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(info_hash)))
params.save_path = out
host, port = peer.rsplit(":", 1)
params.peers = [(host, int(port))]
h = ses.add_torrent(params)
deadline = time.monotonic() + float(timeout)
said = False
while time.monotonic() < deadline:
    ses.wait_for_alert(100)
    for a in ses.pop_alerts():
        if isinstance(a, lt.metadata_received_alert):
            print("metadata", a.handle.torrent_file().name(), flush=True)
            said = True
    st = h.status()
    if said and st.is_seeding:
        lt_helper.flush(ses, h)
        print("done", flush=True)
        sys.exit(0)
st = h.status()
print(f"error: timed out; metadata {st.has_metadata}, progress {st.progress:.3f}", flush=True)
sys.exit(1)
"""

# The third peer of the PEX test: a libtorrent leecher that dials the libtorrent seed at SEED
# and nobody else. Its torrent has PEX off (torrent_flags.disable_pex: it neither sends nor
# reads ut_pex), so it can learn of nobody, and its download is capped (a torrent's own limit
# applies to local peers too) so that it stays a leecher, which the seed keeps connected and
# names in its PEX messages. Prints "listening PORT", then "peer PORT PEER_ID_HEX in|out" for
# each connection it has past the handshake, once; runs until stopped.
LT_THIRD_PEER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import libtorrent as lt
import lt_helper
torrent, out, seed, timeout = sys.argv[2:6]
ses = lt_helper.session()
params = lt.add_torrent_params()
params.ti = lt_helper.torrent_info(torrent)
params.save_path = out
params.flags |= lt.torrent_flags.disable_pex
params.download_limit = 16 * 1024
h = ses.add_torrent(params)
print("listening", ses.listen_port(), flush=True)
host, port = seed.rsplit(":", 1)
seen = set()
last_dial = 0.0
deadline = time.monotonic() + float(timeout)
while time.monotonic() < deadline:
    peers = h.get_peer_info()
    if not any(p.ip[1] == int(port) for p in peers) and time.monotonic() - last_dial > 1:
        h.connect_peer((host, int(port)))
        last_dial = time.monotonic()
    for p in peers:
        if p.flags & (lt.peer_info.handshake | lt.peer_info.connecting):
            continue
        way = "out" if p.flags & lt.peer_info.local_connection else "in"
        key = (p.ip[1], way)
        if key not in seen:
            seen.add(key)
            print("peer", p.ip[1], p.pid.to_bytes().hex(), way, flush=True)
    time.sleep(0.05)
"""

SWARM_PEER_ID = b"-SW"  # Azureus-style prefix of swarm's peer ids (swarm/session.py)


def lt_script(libtorrent: list[str], script: str, *args: object) -> list[str]:
    """The command that runs *script* under libtorrent's Python with lt_helper importable."""
    return [libtorrent[0], "-c", script, str(Path(libtorrent[1]).parent), *map(str, args)]


def make_payload(tmp_path: Path, size: int, seed: int) -> Path:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(seed).randbytes(size))
    return src


def create(src: Path, torrent: Path, *options: str) -> str:
    """``swarm create`` SRC -> TORRENT; the info-hash (hex) as ``swarm info`` prints it."""
    r = swarm_run("-q", "create", src, "-o", torrent, *options)
    assert r.returncode == 0, r.stderr
    info = swarm_run("info", torrent)
    assert info.returncode == 0, info.stderr
    line = next(s for s in info.stdout.splitlines() if s.startswith("info-hash:"))
    return line.split()[1]


def test_libtorrent_fetches_by_magnet_from_a_swarm_seed(
    tmp_path: Path, procs: Callable[..., Proc], libtorrent: list[str]
) -> None:
    # Several metadata pieces (a 16 KiB piece of the info dictionary carries 819 piece hashes).
    src = make_payload(tmp_path, 3 * 1024 * 1024 + 4321, 9)
    torrent = tmp_path / "t.torrent"  # no tracker: the seed's address is all libtorrent has
    info_hash = create(src, torrent, "--piece-length", "16K")
    seed = start_seed(procs, src, torrent)
    peer = f"127.0.0.1:{seed_port(seed)}"
    out = tmp_path / "lt"
    out.mkdir()
    lt = procs(*lt_script(libtorrent, LT_MAGNET, info_hash, out, peer, 90), raw=True)
    lt.wait_line(lambda s: s == "metadata payload.bin", timeout=60)
    lt.wait_line(lambda s: s == "done", timeout=90)
    assert lt.wait_exit(timeout=30) == 0
    assert digest(out / src.name) == digest(src)


def test_aria2_fetches_by_magnet_from_a_swarm_seed(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, aria2c: str
) -> None:
    src = make_payload(tmp_path, 2 * 1024 * 1024 + 12345, 11)
    torrent = tmp_path / "t.torrent"
    info_hash = create(src, torrent, "--piece-length", "16K", "-t", tracker)
    start_seed(procs, src, torrent)  # announces to the tracker, where aria2 finds it
    out = tmp_path / "aria"
    magnet = f"magnet:?xt=urn:btih:{info_hash}&tr={tracker}"
    fetch = procs(*aria2_argv(aria2c, magnet, out, "--bt-stop-timeout=50"), raw=True)
    assert fetch.wait_exit(timeout=60) == 0, fetch.err[-5:] + fetch.out[-5:]
    assert digest(out / src.name) == digest(src)


def test_swarm_learns_a_peer_from_libtorrents_pex_and_dials_it(
    tmp_path: Path, procs: Callable[..., Proc], libtorrent: list[str]
) -> None:
    src = make_payload(tmp_path, 8 * 1024 * 1024, 13)
    torrent = tmp_path / "t.torrent"  # no tracker: peers come from --peer and PEX only
    create(src, torrent, "--piece-length", "32K")
    seed = procs(*libtorrent, "seed", torrent, src.parent, raw=True)
    seed_port_ = int(seed.wait_line(lambda s: s.startswith("seeding "), timeout=60).split()[1])
    at_seed = f"127.0.0.1:{seed_port_}"

    # The third peer connects to the seed first, so that the seed's first PEX message to swarm
    # (sent once it has two peers) names it.
    (tmp_path / "third").mkdir()
    third_args = lt_script(libtorrent, LT_THIRD_PEER, torrent, tmp_path / "third", at_seed, 120)
    third = procs(*third_args, raw=True)
    third.wait_line(lambda s: s.startswith("listening "), timeout=60)
    third.wait_line(lambda s: s.startswith(f"peer {seed_port_} ") and s.endswith(" out"), 30)

    # swarm, told of the seed alone, capped so that it stays a leecher while this runs (the
    # seed would close a connection between two seeds).
    leecher = procs(
        "-v", "fetch", torrent, "-o", tmp_path / "swarm", "--peer", at_seed,
        "--host", "127.0.0.1", "--port", "0", "--max-download-rate", "64K",
    )  # fmt: skip

    def swarm_dialled_third(line: str) -> bool:
        parts = line.split()
        return (
            len(parts) == 4
            and parts[0] == "peer"
            and parts[3] == "in"
            and bytes.fromhex(parts[2]).startswith(SWARM_PEER_ID)
        )

    # The third peer learns of nobody (PEX off), so a connection it did not make, from a peer
    # whose id is swarm's, is swarm dialling the address libtorrent's PEX gave it.
    try:
        third.wait_line(swarm_dialled_third, timeout=45)
    except AssertionError:
        print("third peer:", *third.out, sep="\n  ", file=sys.stderr)
        print("swarm:", *leecher.err[-30:], sep="\n  ", file=sys.stderr)
        raise
    assert leecher.popen.poll() is None, "the swarm leecher exited"
