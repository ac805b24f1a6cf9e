"""qBittorrent (qbittorrent-nox 4.x, headless) and swarm, both ways, with qBittorrent on its
default settings and with encryption required (issue 20).

qBittorrent runs in a profile folder of the test's own, driven through its Web API v2
(tests/interop/qbt_helper.py): on 127.0.0.1, DHT, LSD, PEX and UPnP off, the rest its defaults
(uTP and TCP both, encryption "allow"), or with encryption "require" (libtorrent's
``pe_forced`` both ways). swarm runs on its own defaults (``--encryption prefer``; no
``--utp`` or ``--no-utp``, so they pass with uTP on or off; the uTP test passes ``--utp``).
qBittorrent is told of swarm's seed with torrents/addPeers; swarm fetch is given qBittorrent's
port with ``--peer``. Every file is compared byte for byte with its original. Skipped without
qbittorrent-nox, except under CI=true.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm import metainfo
from tests.interop.qbt_helper import ALLOW, REQUIRE, QBittorrent
from tests.procutil import Proc, digest, seed_port, swarm_run, wait_for

pytestmark = pytest.mark.interop

SIZE = 2 * 1024 * 1024 + 4321  # a short last piece
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")
SEEDING = {"uploading", "stalledUP", "queuedUP", "forcedUP"}
MODES = pytest.mark.parametrize("encryption", [ALLOW, REQUIRE], ids=["defaults", "require"])


def _payload(tmp_path: Path) -> tuple[Path, Path, str]:
    """A file of SIZE random bytes, its .torrent (no tracker) and its info-hash in hex."""
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(SIZE).randbytes(SIZE))
    torrent = tmp_path / "payload.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    return src, torrent, metainfo.load(torrent).info_hash.hex()


def _qbittorrent(
    procs: Callable[..., Proc], exe: str, tmp_path: Path, encryption: int
) -> QBittorrent:
    qbt = QBittorrent(procs, exe, tmp_path / "qbt-profile", encryption)
    prefs = qbt.preferences()
    # What the test claims to run: the encryption asked for, the rest as described above.
    assert prefs["encryption"] == encryption
    assert prefs["listen_port"] == qbt.port
    assert (prefs["dht"], prefs["pex"], prefs["lsd"], prefs["upnp"]) == (False,) * 4
    assert prefs["bittorrent_protocol"] == 0  # TCP and uTP
    return qbt


@MODES
def test_qbittorrent_downloads_from_a_swarm_seed(
    tmp_path: Path, procs: Callable[..., Proc], qbittorrent_nox: str, encryption: int
) -> None:
    src, torrent, info_hash = _payload(tmp_path)
    seed = procs("seed", src, "--torrent", torrent, *LOCAL)
    port = seed_port(seed)
    qbt = _qbittorrent(procs, qbittorrent_nox, tmp_path, encryption)
    out = tmp_path / "qbt"
    qbt.add(torrent, out)
    wait_for(lambda: qbt.info(info_hash) is not None, 10, "qBittorrent to add the torrent")
    qbt.add_peer(info_hash, f"127.0.0.1:{port}")
    qbt.wait_state(info_hash, SEEDING, 40)
    done, want = out / src.name, digest(src)
    # qBittorrent calls it done before its disk cache is surely on disk: poll the bytes.
    wait_for(lambda: done.stat().st_size == SIZE and digest(done) == want, 10, "the file")


@MODES
def test_swarm_fetches_from_a_qbittorrent_seed(
    tmp_path: Path, procs: Callable[..., Proc], qbittorrent_nox: str, encryption: int
) -> None:
    src, torrent, info_hash = _payload(tmp_path)
    qbt = _qbittorrent(procs, qbittorrent_nox, tmp_path, encryption)
    qbt.add(torrent, src.parent, seed=True)
    qbt.wait_state(info_hash, SEEDING, 20)
    out = tmp_path / "out"
    at_qbt = f"127.0.0.1:{qbt.port}"
    fetch = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", at_qbt)
    assert fetch.wait_exit(timeout=30) == 0, fetch.out[-5:] + fetch.err[-5:]
    assert digest(out / src.name) == digest(src)
    # Nothing for the user to act on: a refused plain dial is retried encrypted silently.
    assert not [line for line in fetch.out if line.startswith("notice:")]


@pytest.mark.parametrize("direction", ["qbt-leeches", "swarm-leeches"])
def test_over_utp_with_encryption_required(
    tmp_path: Path, procs: Callable[..., Proc], qbittorrent_nox: str, direction: str
) -> None:
    """swarm with ``--utp`` and a qBittorrent that requires encryption: the peer connection
    is uTP (swarm's log says so) and MSE runs over it, both ways. Dialling, swarm's plain
    handshake is refused with a FIN, and qBittorrent never acks swarm's FIN after it: the dial
    must count as refused at that FIN and go again with MSE at once (before c18bd39 it waited
    out the handshake time-out and dialled plain again, for ever)."""
    src, torrent, info_hash = _payload(tmp_path)
    qbt = _qbittorrent(procs, qbittorrent_nox, tmp_path, REQUIRE)
    if direction == "qbt-leeches":
        seed = procs("-v", "seed", src, "--torrent", torrent, *LOCAL, "--utp")
        port = seed_port(seed)
        out = tmp_path / "qbt"
        qbt.add(torrent, out)
        wait_for(lambda: qbt.info(info_hash) is not None, 10, "qBittorrent to add the torrent")
        qbt.add_peer(info_hash, f"127.0.0.1:{port}")
        qbt.wait_state(info_hash, SEEDING, 30)
        done, want = out / src.name, digest(src)
        wait_for(lambda: done.stat().st_size == SIZE and digest(done) == want, 10, "the file")
        assert any("a peer connected over uTP" in line for line in seed.err), seed.err[-10:]
    else:
        qbt.add(torrent, src.parent, seed=True)
        qbt.wait_state(info_hash, SEEDING, 20)
        out = tmp_path / "out"
        at_qbt = f"127.0.0.1:{qbt.port}"
        fetch = procs(
            "-v", "fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--utp", "--peer", at_qbt
        )
        assert fetch.wait_exit(timeout=30) == 0, fetch.out[-5:] + fetch.err[-5:]
        assert digest(out / src.name) == digest(src)
        assert any(f"connected to {at_qbt} over uTP" in line for line in fetch.err), fetch.err
