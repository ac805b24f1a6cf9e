"""swarm seed and swarm fetch with MSE/PE against libtorrent, both ways (issue 20).

libtorrent runs lt_helper's seed or download with its encryption settings replaced: ``forced``
(``out_enc_policy`` and ``in_enc_policy`` forced, ``allowed_enc_level`` RC4, ``prefer_rc4``:
what "require encryption" is in qBittorrent), or ``enabled`` (libtorrent's defaults: both
policies enabled, plaintext and RC4 allowed, ``prefer_rc4`` off). swarm runs with its default
``--encryption prefer`` (and ``require`` once). Skipped without python3-libtorrent, except
under CI=true (conftest).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from procutil import digest, seed_port, swarm_run

pytestmark = pytest.mark.interop

PIECE = 32 * 1024
PIECES = 40
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")

LT_WITH_ENCRYPTION = """
import sys
sys.path.insert(0, sys.argv[1])
import libtorrent as lt
import lt_helper

plain_settings = lt_helper.settings

def with_encryption():
    pack = plain_settings()
    if sys.argv[2] == "forced":
        pack["out_enc_policy"] = int(lt.enc_policy.forced)
        pack["in_enc_policy"] = int(lt.enc_policy.forced)
        pack["allowed_enc_level"] = int(lt.enc_level.rc4)
        pack["prefer_rc4"] = True
    else:  # libtorrent's defaults
        pack["out_enc_policy"] = int(lt.enc_policy.enabled)
        pack["in_enc_policy"] = int(lt.enc_policy.enabled)
        pack["allowed_enc_level"] = int(lt.enc_level.both)
        pack["prefer_rc4"] = False
    return pack

lt_helper.settings = with_encryption
if sys.argv[3] == "seed":
    lt_helper.cmd_seed(sys.argv[4], sys.argv[5])
else:
    lt_helper.cmd_download(*sys.argv[4:])
"""

MODES = ["forced", "enabled"]


def _lt(libtorrent: list[str], mode: str) -> list[str]:
    return [libtorrent[0], "-c", LT_WITH_ENCRYPTION, str(Path(libtorrent[1]).parent), mode]


def _payload(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(21).randbytes(PIECE * PIECES - 1234))
    torrent = tmp_path / "t.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    return src, torrent


@pytest.mark.parametrize("mode", MODES)
def test_libtorrent_downloads_from_a_swarm_seed(
    tmp_path: Path, procs, libtorrent: list[str], mode: str
) -> None:
    src, torrent = _payload(tmp_path)
    port = seed_port(procs("seed", src, "--torrent", torrent, *LOCAL))
    out = tmp_path / "out"
    lt = procs(
        *_lt(libtorrent, mode), "download", torrent, out, "60", f"127.0.0.1:{port}", raw=True
    )
    lt.wait_line(lambda s: s == "done", timeout=90)
    assert digest(out / "payload.bin") == digest(src)


@pytest.mark.parametrize(
    ("mode", "ours"), [(m, "prefer") for m in MODES] + [("enabled", "require")]
)
def test_swarm_fetches_from_a_libtorrent_seed(
    tmp_path: Path, procs, libtorrent: list[str], mode: str, ours: str
) -> None:
    src, torrent = _payload(tmp_path)
    seed = procs(*_lt(libtorrent, mode), "seed", torrent, src.parent, raw=True)
    port = int(seed.wait_line(lambda s: s.startswith("seeding"), timeout=60).split()[1])
    out = tmp_path / "out"
    fetch = procs(
        "fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--encryption", ours,
        "--peer", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert fetch.wait_exit(90) == 0, fetch.out
    assert digest(out / "payload.bin") == digest(src)
    assert not [line for line in fetch.out if line.startswith("notice:")]
