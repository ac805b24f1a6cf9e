"""swarm's MSE/PE initiator (swarm.wire.mse) against libtorrent with encryption forced (issue 20).

libtorrent seeds with ``out_enc_policy`` and ``in_enc_policy`` forced and ``allowed_enc_level``
RC4, so it refuses a plain handshake; the test dials it on 127.0.0.1 with the sans-I/O
initiator driven by a small asyncio loop here, sends the BitTorrent handshake as IA, and reads
libtorrent's handshake and bitfield through the RC4 stream. Skipped without python3-libtorrent,
except under CI=true (conftest).
"""

from __future__ import annotations

import asyncio
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from swarm import metainfo
from swarm.wire.handshake import HANDSHAKE_LEN, Handshake
from swarm.wire.mse import EncryptionPolicy, Handshaken, Initiator, Receiver, skey_lookup
from swarm.wire.mse_crypto import CRYPTO_PLAINTEXT, CRYPTO_RC4

pytestmark = pytest.mark.interop

PIECE = 32 * 1024
PIECES = 12  # a bitfield of two bytes, the last four bits spare

# lt_helper's seed or download, its settings with encryption forced both ways and RC4 only.
FORCED_LT = """
import sys
sys.path.insert(0, sys.argv[1])
import libtorrent as lt
import lt_helper

plain_settings = lt_helper.settings

def forced():
    pack = plain_settings()
    pack["out_enc_policy"] = int(lt.enc_policy.forced)
    pack["in_enc_policy"] = int(lt.enc_policy.forced)
    pack["allowed_enc_level"] = int(lt.enc_level.rc4)
    pack["prefer_rc4"] = True
    return pack

lt_helper.settings = forced
if sys.argv[2] == "seed":
    lt_helper.cmd_seed(sys.argv[3], sys.argv[4])
else:
    lt_helper.cmd_download(*sys.argv[3:])
"""


def _make_torrent(tmp_path: Path) -> tuple[Path, Path]:
    """The payload (12 pieces of 32 KiB) and its .torrent, made by ``swarm create``."""
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(20).randbytes(PIECE * PIECES))
    torrent = tmp_path / "t.torrent"
    subprocess.run(
        [sys.executable, "-m", "swarm", "-q", "create", str(src), "-o", str(torrent)]
        + ["--piece-length", "32K"],
        check=True,
        timeout=60,
    )
    return src, torrent


def _forced(libtorrent: list[str]) -> list[str]:
    """The command prefix of lt_helper under the system Python, encryption forced."""
    return [libtorrent[0], "-c", FORCED_LT, str(Path(libtorrent[1]).parent)]


def _seed(tmp_path: Path, procs, libtorrent: list[str]) -> tuple[metainfo.Torrent, int]:
    """A forced-RC4 libtorrent seeding the payload: its torrent and listening port."""
    src, torrent = _make_torrent(tmp_path)
    seed = procs(*_forced(libtorrent), "seed", torrent, src.parent, raw=True)
    line = seed.wait_line(lambda s: s.startswith("seeding"), timeout=60)
    return metainfo.load(torrent), int(line.split()[1])


async def _read(reader: asyncio.StreamReader) -> bytes:
    """The next bytes, or b"" once the peer closed (a reset counts as closed)."""
    try:
        return await reader.read(65536)
    except ConnectionError:
        return b""


async def _handshake_and_bitfield(
    port: int, info_hash: bytes, policy: EncryptionPolicy
) -> tuple[Handshaken, bytes, bytes]:
    """Dial, run the MSE initiator, then read libtorrent's handshake and its first message.

    A dial whose secret began with a zero byte (one in 256) is made again with a new key, as
    swarm's dialer does: libtorrent 2.0.8 closes those (Initiator.short_secret)."""
    for _ in range(3):
        got = await _dial_once(port, info_hash, policy)
        if got is not None:
            return got
    raise AssertionError("three short secrets in a row")


async def _dial_once(
    port: int, info_hash: bytes, policy: EncryptionPolicy
) -> tuple[Handshaken, bytes, bytes] | None:
    """One dial of _handshake_and_bitfield; None when libtorrent closed it over a short S."""
    ours = Handshake(bytes(8), info_hash, b"-SW0000-mseinterop00")
    mse = Initiator(info_hash, policy=policy, ia=ours.encode())
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(mse.start())
            done = None
            while done is None:
                data = await _read(reader)
                if not data and mse.short_secret:
                    return None
                assert data, "libtorrent closed the connection during the MSE handshake"
                step = mse.receive(data)
                writer.write(step.send)
                done = step.done
            plain = bytearray(done.payload)
            while len(plain) < HANDSHAKE_LEN + 4 or len(plain) < HANDSHAKE_LEN + 4 + int(
                struct.unpack(">I", plain[HANDSHAKE_LEN : HANDSHAKE_LEN + 4])[0]
            ):
                data = await _read(reader)
                assert data, "libtorrent closed the connection after the MSE handshake"
                plain += done.stream.decrypt(data)
            theirs = bytes(plain[:HANDSHAKE_LEN])
            (length,) = struct.unpack(">I", plain[HANDSHAKE_LEN : HANDSHAKE_LEN + 4])
            first = bytes(plain[HANDSHAKE_LEN + 4 : HANDSHAKE_LEN + 4 + length])
            return done, theirs, first
        finally:
            writer.close()


@pytest.mark.parametrize(
    "policy",
    [EncryptionPolicy(), EncryptionPolicy(allowed=CRYPTO_RC4)],
    ids=["offer-both", "rc4-only"],
)
def test_mse_initiator_gets_libtorrents_bitfield(
    tmp_path: Path, procs, libtorrent: list[str], policy: EncryptionPolicy
) -> None:
    torrent, port = _seed(tmp_path, procs, libtorrent)
    done, theirs, first = asyncio.run(_handshake_and_bitfield(port, torrent.info_hash, policy))
    assert done.method == CRYPTO_RC4 and done.stream.encrypted
    hs = Handshake.decode(theirs)
    assert hs.info_hash == torrent.info_hash
    # A bitfield (id 5) with every one of the 12 pieces, the spare bits zero.
    assert first == b"\x05\xff\xf0"


def test_plaintext_only_is_refused_by_forced_libtorrent(
    tmp_path: Path, procs, libtorrent: list[str]
) -> None:
    """Offering only plaintext to an RC4-only libtorrent: it closes, and we see it as a closed
    connection during the handshake, not a hang."""
    torrent, port = _seed(tmp_path, procs, libtorrent)
    policy = EncryptionPolicy(allowed=CRYPTO_PLAINTEXT, prefer=CRYPTO_PLAINTEXT)
    with pytest.raises(AssertionError, match="closed the connection during"):
        asyncio.run(_handshake_and_bitfield(port, torrent.info_hash, policy))


def test_libtorrent_dials_the_mse_receiver(tmp_path: Path, procs, libtorrent: list[str]) -> None:
    """The receiver role: a forced-RC4 libtorrent leecher dials a listener here that runs
    swarm's MSE receiver; the IA is libtorrent's BitTorrent handshake for the torrent, and
    after our handshake and a full bitfield, libtorrent's 'interested' comes back through
    the RC4 stream."""
    _, torrent_path = _make_torrent(tmp_path)
    torrent = metainfo.load(torrent_path)
    result: dict[str, object] = {}

    async def serve() -> None:
        got = asyncio.Event()

        async def on_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                mse = Receiver(skey_lookup([torrent.info_hash]))
                done = None
                while done is None:
                    data = await _read(reader)
                    if not data:
                        return
                    step = mse.receive(data)
                    writer.write(step.send)
                    done = step.done
                result["done"] = done
                ours = Handshake(bytes(8), torrent.info_hash, b"-SW0000-mseinterop01")
                writer.write(done.stream.encrypt(ours.encode() + b"\0\0\0\x03\x05\xff\xf0"))
                plain = bytearray(done.payload)
                while b"\0\0\0\x01\x02" not in plain:
                    data = await _read(reader)
                    if not data:
                        return
                    plain += done.stream.decrypt(data)
                result["interested"] = True
            finally:
                got.set()
                writer.close()

        server = await asyncio.start_server(on_peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out = tmp_path / "out"
        procs(
            *_forced(libtorrent), "download", torrent_path, out, "30", f"127.0.0.1:{port}", raw=True
        )
        async with server, asyncio.timeout(30):
            await got.wait()

    asyncio.run(serve())
    done = result.get("done")
    assert isinstance(done, Handshaken), "libtorrent's MSE handshake did not complete"
    assert done.method == CRYPTO_RC4 and done.info_hash == torrent.info_hash
    assert Handshake.decode(done.ia).info_hash == torrent.info_hash
    assert result.get("interested") is True
